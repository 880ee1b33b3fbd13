# shellcheck shell=bash
# nodes.sh: the rootful nodes lab-1..N (podman service + sshd each).
# Sourced by scripts/farm-lab; see the top of that file for the layout.

node_dir()  { echo "$LAB/lab-$1"; }
node_port() { echo $((BASE_PORT + $1 - 1)); }
node_sock() { echo "$LAB/lab-$1/podman.sock"; }
node_uri()  { echo "ssh://root@127.0.0.1:$(node_port "$1")$(node_sock "$1")"; }
# A shaped node's sshd listens on an inner port; linkem, the link emulator,
# holds the node's port in front of it (see "link shaping" below).
sshd_port() { if shaped "$1"; then echo $(($(node_port "$1") + 1000)); else node_port "$1"; fi; }
# podman client talking straight to a node's socket (no ssh)
node_podman() { local i=$1; shift; podman --url "unix://$(node_sock "$i")" "$@"; }

# Validate NAME (lab-i) against the nodes that exist; prints i.
node_index() {
    local name=$1 i
    [[ $name =~ ^lab-([1-9][0-9]*)$ ]] || die "unknown node '$name' (expected lab-1, lab-2, ...)"
    i=${BASH_REMATCH[1]}
    [[ -f $(node_dir "$i")/containers.conf ]] || die "unknown node '$name': no $(node_dir "$i") (run: farm-lab up $i)"
    echo "$i"
}

# Number of nodes of the current lab (written by up, removed by down).
current_count() { if [[ -s $LAB/nodes ]]; then cat "$LAB/nodes"; fi; }

# ---------------------------------------------------------------- podman node
write_node_conf() {
    local i=$1 dir
    dir=$(node_dir "$i")
    mkdir -p "$dir/root" "$dir/run" "$dir/tmp"
    lab_containers_conf "lab-$i" "tmp_dir = \"$dir/tmp\"" 'lock_type = "file"' >"$dir/containers.conf.new"
    mv "$dir/containers.conf.new" "$dir/containers.conf"
}

service_up() { # i: process alive AND socket answers
    local i=$1
    pid_alive "$(node_dir "$i")/service.pid" "$(node_sock "$i")" && lab_pings "$(node_sock "$i")"
}

start_service() {
    local i=$1 dir sock pid
    dir=$(node_dir "$i") sock=$(node_sock "$i")
    if service_up "$i"; then return 0; fi
    # alive but not answering (wedged): replace it
    stop_pidfile "$dir/service.pid" "$sock" TERM
    [[ -f $dir/containers.conf ]] || write_node_conf "$i"
    mkdir -p "$dir/root" "$dir/run" "$dir/tmp"   # down removes run/ and tmp/
    rm -f "$sock"
    log "lab-$i: starting podman service on $sock"
    # setsid+nohup: the service must outlive this script and the shell that ran it.
    # --tmpdir too: libpod's database would otherwise override tmp_dir on later starts.
    CONTAINERS_CONF=$dir/containers.conf setsid nohup \
        podman --root "$dir/root" --runroot "$dir/run" --tmpdir "$dir/tmp" \
        system service --time=0 "unix://$sock" >>"$dir/service.log" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$dir/service.pid"
    lab_await_service "lab-$i" "$pid" "$sock" "$dir/service.log"
}

# ---------------------------------------------------------------- sshd per node
write_sshd_conf() {
    local i=$1 dir
    dir=$(node_dir "$i")
    lab_sshd_conf "$dir" "$dir" "$(sshd_port "$i")" "lab-$i" "$AUTH_KEYS"
}

sshd_up() { pid_alive "$(node_dir "$1")/sshd.pid" "$(node_dir "$1")/sshd_config"; }


start_sshd() {
    local i=$1
    write_sshd_conf "$i"
    if sshd_up "$i"; then return 0; fi
    lab_start_sshd "lab-$i" "$(node_dir "$i")" "$(sshd_port "$i")"
}

# known_hosts line for this node's host key; stale lines for the port are dropped.
ensure_known_host() { known_host_add "$(node_port "$1")" "$(node_dir "$1")/ssh_host_ed25519_key.pub"; }

ssh_node() { local i=$1; shift; lab_ssh root "$(node_port "$i")" "$@"; }

stop_node() { # i: service (TERM), sshd listener and its open sessions
    local i=$1 dir pids
    dir=$(node_dir "$i")
    stop_pidfile "$dir/service.pid" "$(node_sock "$i")" TERM
    stop_pidfile "$dir/sshd.pid" "$dir/sshd_config" TERM
    stop_linkem "$i"
    kill_sessions "$i"
}

kill_sessions() { lab_kill_sessions "$(node_port "$1")" "$(sshd_port "$1")"; }


# Processes the nodes spawned that outlive their service (a node SIGKILLed by
# node-stop leaves its containers running): orphaned conmon/runc whose command
# line names $LAB, plus everything below them (conmon is the subreaper of its
# container, so the payload is its descendant). A podman client or a shell of
# someone using the lab is neither, and is never touched.
kill_lab_orphans() {
    local p pids=()
    for p in $(pgrep -P 1 -f -- "$LAB/lab-" || true); do
        [[ $(cat "/proc/$p/comm" 2>/dev/null) =~ ^(conmon|runc|catatonit|slirp4netns)$ ]] && pids+=("$p")
    done
    ((${#pids[@]})) || return 0
    mapfile -t pids < <(with_descendants "${pids[@]}")
    log "killing leftover node processes: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.5
}


# Starting a piece of a node only makes sense while the lab it belongs to is up.
need_member() {
    local n
    n=$(current_count)
    [[ -n $n ]] || die "$1: the lab is down (run: farm-lab up)"
    (($2 <= n)) || die "$1: not part of the current $n-node lab (run: farm-lab up $2)"
}
