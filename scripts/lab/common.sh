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
    # A daemon that stops (sshd on SIGTERM) removes its pid file, also
    # between a test for the file and the read: one read, allowed to fail
    # (a failed $(<file) would end the whole script under set -e).
    pid=""
    { read -r pid <"$pidfile" || [[ -n $pid ]]; } 2>/dev/null || return 1
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

# ---------------------------------------------------------------- podman service (any node)
# lab_containers_conf NAME [LINE...]: a node's containers.conf on stdout.
# runc: crun fails every RUN step here (cgroups hybrid mode). default_ulimits:
# runc refuses `podman run` without explicit rlimits here. The file events
# logger: no systemd. LINEs go into [engine] (tmp_dir + lock_type=file: by
# default every podman on the machine shares /run/libpod and the /libpod_lock
# shared-memory locks, and a node starting fresh frees ALL locks in that
# segment; per-node file locks keep nodes independent).
lab_containers_conf() {
    local name=$1
    shift
    cat <<EOF
# Written by scripts/farm-lab for node $name.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    if (($#)); then printf '%s\n' "$@"; fi
}

# lab_pings SOCK [SECONDS]: the podman service on SOCK answers (within 5 s).
lab_pings() { curl -sf --max-time "${2:-5}" --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }

# lab_await_service NAME PID SOCK LOG: wait until the service just started
# as PID answers on SOCK; die, with the end of LOG, when it exits or stays
# silent for $WAIT_SECS.
lab_await_service() {
    local name=$1 pid=$2 sock=$3 logf=$4 n
    for ((n = 0; n < WAIT_SECS * 5; n++)); do
        lab_pings "$sock" 2 && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$logf" >&2; die "$name: podman service exited (log: $logf)"; }
        sleep 0.2
    done
    tail -n 20 "$logf" >&2
    die "$name: podman service did not answer on $sock within ${WAIT_SECS}s (log: $logf)"
}

# ---------------------------------------------------------------- sshd (any node)
# lab_sshd_conf DIR SEEN PORT NAME AUTHKEYS [LINE...]: DIR/sshd_config for a node's
# sshd, with its host key DIR/ssh_host_ed25519_key (made when missing). SEEN is
# DIR as the sshd sees it (another path for an sshd inside a node's rootfs);
# LINEs are added as they are.
lab_sshd_conf() {
    local dir=$1 seen=$2 port=$3 name=$4 auth=$5
    shift 5
    [[ -f $dir/ssh_host_ed25519_key ]] ||
        ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$dir/ssh_host_ed25519_key"
    # StrictModes no: $LAB may live under a world-writable dir (e.g. /tmp in tests),
    # which would make sshd ignore authorized_keys. MaxSessions: farm may multiplex.
    # SetEnv SHLVL=1: bash sources ~/.bashrc for a command sent over SSH only as
    # a top-level shell (SHLVL<2); this machine's root ~/.bashrc runs pyenv init,
    # 5 s or more per command, which pushed farm-nodes' binfmt probe past its
    # timeout under load. The node's commands need nothing from ~/.bashrc.
    {
        cat <<EOF
# Written by scripts/farm-lab for node $name.
ListenAddress 127.0.0.1
Port $port
HostKey $seen/ssh_host_ed25519_key
PidFile $seen/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile $auth
StrictModes no
UsePAM no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
MaxSessions 64
MaxStartups 64:30:128
SetEnv SHLVL=1
LogLevel INFO
Subsystem sftp internal-sftp
EOF
        if (($#)); then printf '%s\n' "$@"; fi
    } >"$dir/sshd_config"
}

# lab_start_sshd NAME DIR PORT [SSHD...]: start the sshd of DIR/sshd_config on
# PORT and wait until it listens. SSHD is the command that runs sshd (default
# /usr/sbin/sshd; a node with its own rootfs enters it first). It gets
# "-f CONFIG -E LOG" with the paths as that sshd sees them: under
# $LAB_SSHD_SEEN when set, else under DIR.
lab_start_sshd() {
    local name=$1 dir=$2 port=$3 n holder seen
    shift 3
    (($#)) || set -- /usr/sbin/sshd
    seen=${LAB_SSHD_SEEN:-$dir}
    rm -f "$dir/sshd.pid"
    holder=$(port_holder "$port")
    [[ -z $holder ]] || die "$name: port $port is already in use by: $holder"
    "$@" -t -f "$seen/sshd_config" || die "$name: bad $dir/sshd_config"
    log "$name: starting sshd on 127.0.0.1:$port"
    # sshd daemonizes itself (own session) and writes PidFile
    "$@" -f "$seen/sshd_config" -E "$seen/sshd.log" </dev/null 9>&-
    for ((n = 0; n < 100; n++)); do
        pid_alive "$dir/sshd.pid" "$seen/sshd_config" && [[ -n $(port_holder "$port") ]] && return 0
        sleep 0.1
    done
    tail -n 20 "$dir/sshd.log" >&2 || true
    die "$name: sshd did not start on port $port (log: $dir/sshd.log)"
}

# lab_ssh USER PORT COMMAND...: run COMMAND on the node at 127.0.0.1:PORT.
lab_ssh() {
    local user=$1 port=$2
    shift 2
    ssh -i "$KEY" -p "$port" -o BatchMode=yes -o IdentitiesOnly=yes \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" \
        -o ConnectTimeout=10 "$user@127.0.0.1" "$@"
}

# lab_kill_sessions PORT...: sessions outlive their listener; a node that is
# down has none.
lab_kill_sessions() {
    local pids filter="" p
    for p in "$@"; do filter+="${filter:+ or }sport = :$p"; done
    pids=$(ss -Htnp state established "( $filter )" 2>/dev/null |
        grep -o '"sshd",pid=[0-9]*' | cut -d= -f2 | sort -u || true)
    # shellcheck disable=SC2086 # one pid a word
    [[ -z $pids ]] || kill -TERM $pids 2>/dev/null || true
}

# with_descendants PID...: the pids and all their descendants, one a line.
with_descendants() {
    local pids=("$@") table i=0 c
    table=$(ps -eo pid=,ppid=)
    while ((i < ${#pids[@]})); do
        while read -r c; do pids+=("$c"); done < <(awk -v pp="${pids[i]}" '$2 == pp {print $1}' <<<"$table")
        i=$((i + 1))
    done
    printf '%s\n' "${pids[@]}"
}
