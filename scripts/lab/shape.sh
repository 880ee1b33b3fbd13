# shellcheck shell=bash
# shape.sh: one node behind an emulated link (scripts/lab/linkem).
# Sourced by scripts/farm-lab; see the top of that file for the layout.

# ---------------------------------------------------------------- link shaping
# shape puts a node behind an emulated WAN link: its sshd moves to an inner
# port (node port + 1000) and linkem (scripts/lab/linkem, built here with Go)
# listens on the node's port, giving every connection through it RATE each
# way and DELAY round trip. Only this node's SSH traffic crosses the link:
# everything farm sends it (podman API, context, image transfer) and nothing
# else on loopback. The kernel of this lab has no sch_netem (nor sch_prio),
# so tc on lo could cap the rate but not add the delay (scripts/lab/NOTES.md).
LINKEM=$LAB/linkem
shape_file() { echo "$(node_dir "$1")/shape"; }
shaped() { [[ -s $(shape_file "$1") ]]; }
linkem_up() { pid_alive "$(node_dir "$1")/linkem.pid" "$LINKEM -listen 127.0.0.1:$(node_port "$1") "; }

build_linkem() {
    local root=$LAB_SCRIPTS/../.. go src
    src=$root/scripts/lab/linkem/main.go
    [[ -x $LINKEM && $LINKEM -nt $src ]] && return 0
    go=$(command -v go || echo /usr/local/go/bin/go)
    [[ -x $go ]] || die "shape needs Go to build $src"
    log "building $LINKEM"
    (cd "$root" && CGO_ENABLED=0 "$go" build -o "$LINKEM.new" ./scripts/lab/linkem) || die "building linkem failed"
    mv "$LINKEM.new" "$LINKEM"
}

start_linkem() {
    local i=$1 dir port rate delay n
    dir=$(node_dir "$i") port=$(node_port "$i")
    linkem_up "$i" && return 0
    read -r rate delay <"$(shape_file "$i")"
    [[ -z $(port_holder "$port") ]] || die "lab-$i: port $port is already in use by: $(port_holder "$port")"
    log "lab-$i: link emulator on 127.0.0.1:$port -> sshd on $(sshd_port "$i"): $rate, $delay round trip"
    setsid nohup "$LINKEM" -listen "127.0.0.1:$port" -target "127.0.0.1:$(sshd_port "$i")" \
        -rate "$rate" -delay "$delay" >>"$dir/linkem.log" 2>&1 </dev/null 9>&- &
    echo $! >"$dir/linkem.pid"
    for ((n = 0; n < 50; n++)); do
        linkem_up "$i" && [[ -n $(port_holder "$port") ]] && return 0
        sleep 0.1
    done
    tail -n 5 "$dir/linkem.log" >&2 || true
    die "lab-$i: linkem did not start (log: $dir/linkem.log)"
}

stop_linkem() { stop_pidfile "$(node_dir "$1")/linkem.pid" "$LINKEM -listen" TERM; }

# restart_ssh i: sshd on the port it should have now, linkem in front when
# shaped. Sessions already open stay as they were (on their old path): a run
# in progress is not cut, and every new connection takes the new path.
restart_ssh() {
    local i=$1 dir
    dir=$(node_dir "$i")
    stop_linkem "$i"
    stop_pidfile "$dir/sshd.pid" "$dir/sshd_config" TERM
    mkdir -p /run/sshd
    start_sshd "$i"
    if shaped "$i"; then start_linkem "$i"; fi
    ssh_node "$i" true || die "lab-$i: ssh through port $(node_port "$i") failed"
}

cmd_shape() {
    local name=${1:-} rate=${2:-} delay=${3:-} i
    need_name "$name" shape; i=$(node_index "$name"); need_member "$name" "$i"
    [[ $rate =~ ^[0-9]+(\.[0-9]+)?([kmg]bit)?$ ]] || die "shape: RATE like 50mbit, 800kbit (got '$rate')"
    [[ $delay =~ ^[0-9]+(\.[0-9]+)?(us|ms|s)$ ]] || die "shape: DELAY like 20ms (got '$delay')"
    take_lock
    build_linkem
    echo "$rate $delay" >"$(shape_file "$i")"
    restart_ssh "$i"
    log "$name: shaped to $rate, $delay round trip"
}

cmd_unshape() {
    local name=${1:-} i d
    need_name "$name" unshape
    take_lock
    if [[ $name == --all ]]; then
        for d in "$LAB"/lab-*; do
            i=${d##*/lab-}
            if ! [[ $i =~ ^[0-9]+$ ]] || ! shaped "$i"; then continue; fi
            rm -f "$(shape_file "$i")"
            restart_ssh "$i"
            log "lab-$i: unshaped"
        done
        return 0
    fi
    i=$(node_index "$name")
    shaped "$i" || { log "$name: not shaped"; return 0; }
    rm -f "$(shape_file "$i")"
    restart_ssh "$i"
    log "$name: unshaped"
}

