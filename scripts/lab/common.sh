# shellcheck shell=bash
# common.sh: logging, pid files, the lab lock, packages, binfmt_misc, the client key.
# Sourced by scripts/farm-lab; see the top of that file for the layout.

# ---------------------------------------------------------------- helpers
log()  { printf 'farm-lab: %s\n' "$*" >&2; }
die()  { printf 'farm-lab: ERROR: %s\n' "$*" >&2; exit 1; }



# pid_alive PIDFILE PATTERN: the pid in PIDFILE is running and its command line
# contains PATTERN (guards against a recycled pid belonging to something else).
pid_alive() {
    local pidfile=$1 pattern=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    # zombies still have a /proc entry; treat them as dead
    [[ $(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null) != Z ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

# stop_pidfile PIDFILE PATTERN SIGNAL: signal the process, wait until it is gone,
# SIGKILL after 5 s. Removes the pidfile. No-op when it is not running.
stop_pidfile() {
    local pidfile=$1 pattern=$2 sig=${3:-TERM} pid n
    if pid_alive "$pidfile" "$pattern"; then
        pid=$(<"$pidfile")
        kill "-$sig" "$pid" 2>/dev/null || true
        for ((n = 0; n < 50; n++)); do
            pid_alive "$pidfile" "$pattern" || break
            sleep 0.1
        done
        if pid_alive "$pidfile" "$pattern"; then
            log "pid $pid ($pattern) ignored SIG$sig, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((n = 0; n < 50; n++)); do
                pid_alive "$pidfile" "$pattern" || break
                sleep 0.1
            done
            pid_alive "$pidfile" "$pattern" && die "pid $pid ($pattern) does not die"
        fi
    fi
    rm -f "$pidfile"
}

# Serialize concurrent farm-lab runs (tests may call fault helpers in parallel).
take_lock() {
    mkdir -p "$LAB"
    # Every long-lived process started below gets `9>&-`: an inherited fd would
    # hold this lock for the life of the service.
    exec 9>"$LAB/.farm-lab.lock"
    flock -w 300 9 || die "another farm-lab holds $LAB/.farm-lab.lock (see: fuser $LAB/.farm-lab.lock)"
}


port_holder() { # prints "pid cmdline" of whatever listens on 127.0.0.1:PORT, if any
    local pid
    pid=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true)
    [[ -n $pid ]] && echo "$pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    return 0
}


need_name() { [[ -n ${1:-} ]] || die "$2: missing node name (e.g. lab-1)"; }

# ---------------------------------------------------------------- packages
APT_UPDATED=0
apt_update_once() {
    if ((APT_UPDATED == 0)); then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
}

ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        apt_update_once
        log "installing: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
}

# ---------------------------------------------------------------- binfmt
ensure_binfmt() {
    local f=/proc/sys/fs/binfmt_misc/qemu-aarch64
    if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
        log "mounting binfmt_misc"
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
            die "cannot mount binfmt_misc (arm64 emulation needs it)"
    fi
    if [[ ! -e $f ]] || ! grep -qx enabled "$f"; then
        update-binfmts --enable >&2 || true
    fi
    [[ -e $f ]] || die "$f missing after update-binfmts --enable (is qemu-user-static installed?)"
    grep -qx enabled "$f" || die "$f is registered but not enabled"
    # F (fix binary) lets containers use the host's qemu without it in their rootfs
    grep -q '^flags:.*F' "$f" || log "warning: qemu-aarch64 is not registered with flag F"
}

# ---------------------------------------------------------------- keys
ensure_client_key() {
    mkdir -p "$LAB"
    chmod 755 "$LAB"
    [[ -f $KEY ]] || { log "generating client key $KEY"; ssh-keygen -q -t ed25519 -N '' -C farm-lab -f "$KEY"; }
    cp "$KEY.pub" "$AUTH_KEYS"
    chmod 644 "$AUTH_KEYS"
    mkdir -p "$(dirname "$KNOWN_HOSTS")"
    chmod 700 "$(dirname "$KNOWN_HOSTS")"
    mkdir -p /run/sshd   # sshd's privilege separation dir; /run is a tmpfs
}



# known_host_add PORT PUBKEY_FILE: "[127.0.0.1]:PORT KEY" in $KNOWN_HOSTS, replacing
# stale lines for the port.
known_host_add() {
    local port=$1 line
    line="[127.0.0.1]:$port $(cut -d' ' -f1,2 "$2")"
    touch "$KNOWN_HOSTS"
    grep -qxF "$line" "$KNOWN_HOSTS" && return 0
    ssh-keygen -q -R "[127.0.0.1]:$port" -f "$KNOWN_HOSTS" >/dev/null 2>&1 || true
    rm -f "$KNOWN_HOSTS.old"
    echo "$line" >>"$KNOWN_HOSTS"
}
