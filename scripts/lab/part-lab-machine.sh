# shellcheck shell=bash
# part-lab-machine.sh: lab-machine, what `podman machine` is to a macOS or
# Windows user (a lab part, see parts.sh): a rootful podman 4.3.1 service
# with its own storage, in a network namespace of its own, reached only over
# its own sshd in that namespace. Tests use it as the LOCAL store (where
# farm-build pulls images back and farm-manifest makes the list), never as a
# node: it is in no system connection and no farm of the lab (tests that use
# "every connection" must not see it); a test names it in a connections file
# of its own or by CONTAINER_HOST (see $LAB/lab.env: FARM_LAB_MACHINE_*).
#
# The namespace ($LM_NS) has its own loopback: its 127.0.0.1 is not this
# machine's, as a VM's is not. A veth pair joins it to the host:
# $LM_HOST_ADDR here, $LM_ADDR there. The host reaches the machine's sshd
# at $LM_ADDR:$LM_PORT, as a user reaches a VM at its address (podman
# machine adds a 127.0.0.1 port forward in front; the lab does not need one,
# and a forwarder would be one more process that is not the machine). The
# service's unix socket lies in $LM_DIR, a path on the host's filesystem; the
# lab uses it only to check the service and for tests to look into the
# machine's storage, farm reaches it only through SSH.
#
# Processes are entered with `ip netns exec`, which also gives each a mount
# namespace of its own (/sys remounted, host mounts propagate in, none out):
# the service's overlay mounts stay inside, as in a VM. down stops the sshd,
# its sessions, the service, then every process left in the namespace (by
# `ip netns pids`), and deletes the namespace (the veth pair goes with it).
# Kept, like a node's: $LM_DIR/root (storage), the host key.

LM_NAME=lab-machine
LM_NS=farm-lab-machine
LM_DIR=$LAB/$LM_NAME
LM_SOCK=$LM_DIR/podman.sock
LM_HOST_IF=lmhost0
LM_VM_IF=lmvm0
LM_HOST_ADDR=10.231.13.1
LM_ADDR=10.231.13.2
LM_PORT=2292

lm_ns_up() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF "$LM_NS"; }
lm_in() { ip netns exec "$LM_NS" "$@"; }
lm_pattern() { echo "system service --time=0 unix://$LM_SOCK"; }
lm_service_up() {
    lm_ns_up && pid_alive "$LM_DIR/service.pid" "$(lm_pattern)" &&
        lab_pings "$LM_SOCK"
}
lm_sshd_up() { lm_ns_up && pid_alive "$LM_DIR/sshd.pid" "$LM_DIR/sshd_config"; }
lm_known_host() { echo "[$LM_ADDR]:$LM_PORT"; }
lm_uri() { echo "ssh://root@$LM_ADDR:$LM_PORT$LM_SOCK"; }

# lm_net: the namespace, the veth pair and the addresses; idempotent.
lm_net() {
    if ! lm_ns_up; then
        log "$LM_NAME: making network namespace $LM_NS ($LM_HOST_ADDR here, $LM_ADDR there)"
        ip netns add "$LM_NS"
    fi
    if ! ip link show "$LM_HOST_IF" >/dev/null 2>&1; then
        ip link add "$LM_HOST_IF" type veth peer name "$LM_VM_IF" netns "$LM_NS"
    fi
    ip addr replace "$LM_HOST_ADDR/30" dev "$LM_HOST_IF"
    ip link set "$LM_HOST_IF" up
    ip -n "$LM_NS" addr replace "$LM_ADDR/30" dev "$LM_VM_IF"
    ip -n "$LM_NS" link set lo up
    ip -n "$LM_NS" link set "$LM_VM_IF" up
}

lm_write_conf() {
    mkdir -p "$LM_DIR/root" "$LM_DIR/run" "$LM_DIR/tmp"
    lab_containers_conf "$LM_NAME" "tmp_dir = \"$LM_DIR/tmp\"" 'lock_type = "file"' >"$LM_DIR/containers.conf"
    # Its 127.0.0.1 only: the host reaches it at $LM_ADDR.
    lab_sshd_conf "$LM_DIR" "$LM_DIR" "$LM_PORT" "$LM_NAME" "$AUTH_KEYS" "ListenAddress $LM_ADDR"
}

lm_start_service() {
    local pid
    lm_service_up && return 0
    stop_pidfile "$LM_DIR/service.pid" "$(lm_pattern)" TERM
    rm -f "$LM_SOCK"
    log "$LM_NAME: starting podman service in $LM_NS on $LM_SOCK"
    # ip netns exec execs podman: the pid is podman's.
    CONTAINERS_CONF=$LM_DIR/containers.conf setsid nohup ip netns exec "$LM_NS" \
        podman --root "$LM_DIR/root" --runroot "$LM_DIR/run" --tmpdir "$LM_DIR/tmp" \
        system service --time=0 "unix://$LM_SOCK" >>"$LM_DIR/service.log" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$LM_DIR/service.pid"
    lab_await_service "$LM_NAME" "$pid" "$LM_SOCK" "$LM_DIR/service.log"
}

lm_start_sshd() {
    local n
    lm_sshd_up && return 0
    rm -f "$LM_DIR/sshd.pid"
    lm_in /usr/sbin/sshd -t -f "$LM_DIR/sshd_config" || die "$LM_NAME: bad $LM_DIR/sshd_config"
    log "$LM_NAME: starting sshd on $LM_ADDR:$LM_PORT (in $LM_NS)"
    # sshd daemonizes itself (own session) and writes its PidFile.
    lm_in /usr/sbin/sshd -f "$LM_DIR/sshd_config" -E "$LM_DIR/sshd.log" </dev/null 9>&-
    for ((n = 0; n < 100; n++)); do
        if pid_alive "$LM_DIR/sshd.pid" "$LM_DIR/sshd_config" &&
            timeout 1 bash -c ": <>/dev/tcp/$LM_ADDR/$LM_PORT" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$LM_DIR/sshd.log" >&2 || true
    die "$LM_NAME: sshd did not start on $LM_ADDR:$LM_PORT (log: $LM_DIR/sshd.log)"
}

# lm_known_hosts_line: its host key as known_hosts has it.
lm_known_hosts_line() { echo "$(lm_known_host) $(cut -d' ' -f1,2 "$LM_DIR/ssh_host_ed25519_key.pub")"; }

lab_machine_up() {
    lm_net
    lm_write_conf
    lm_start_service
    lm_start_sshd
    touch "$KNOWN_HOSTS"
    if ! grep -qxF "$(lm_known_hosts_line)" "$KNOWN_HOSTS"; then
        ssh-keygen -q -R "$(lm_known_host)" -f "$KNOWN_HOSTS" >/dev/null 2>&1 || true
        rm -f "$KNOWN_HOSTS.old"
        lm_known_hosts_line >>"$KNOWN_HOSTS"
    fi
    ssh -i "$KEY" -p "$LM_PORT" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$KNOWN_HOSTS" -o ConnectTimeout=10 "root@$LM_ADDR" \
        "curl -sf --max-time 5 --unix-socket $LM_SOCK http://d/_ping" >/dev/null ||
        die "$LM_NAME: ssh -p $LM_PORT root@$LM_ADDR to its service failed (log: $LM_DIR/sshd.log)"
    # Like a VM: this machine's 127.0.0.1 (the lab registry on $REGISTRY_ADDR) is not its.
    if lm_in curl -s --max-time 2 -o /dev/null "http://$REGISTRY_ADDR/v2/"; then
        die "$LM_NAME: reaches $REGISTRY_ADDR from $LM_NS: its loopback is not its own"
    fi
}

# lm_kill_ns: every process left in the namespace (conmon, containers, a
# session's children), by pid.
lm_kill_ns() {
    local pids n
    lm_ns_up || return 0
    for ((n = 0; n < 20; n++)); do
        mapfile -t pids < <(ip netns pids "$LM_NS" 2>/dev/null)
        ((${#pids[@]})) || return 0
        mapfile -t pids < <(with_descendants "${pids[@]}")
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.2
    done
    die "$LM_NAME: processes in $LM_NS do not die: ${pids[*]}"
}

lab_machine_down() {
    stop_pidfile "$LM_DIR/sshd.pid" "$LM_DIR/sshd_config" TERM
    if lm_service_up; then
        timeout 30 podman --url "unix://$LM_SOCK" stop --all --time 2 >/dev/null 2>&1 ||
            log "$LM_NAME: could not stop all containers (killed below)"
    fi
    stop_pidfile "$LM_DIR/service.pid" "$(lm_pattern)" TERM
    # sshd's sessions and whatever the service left live in the namespace.
    lm_kill_ns
    if lm_ns_up; then
        ip netns del "$LM_NS"
        log "$LM_NAME: network namespace $LM_NS removed"
    fi
    ip link del "$LM_HOST_IF" 2>/dev/null || true
    if [[ -d $LM_DIR ]]; then
        unmount_under "$LM_DIR"
        rm -rf "$LM_DIR/run" "$LM_DIR/tmp"
        rm -f "$LM_SOCK"
    fi
    ssh-keygen -q -R "$(lm_known_host)" -f "$KNOWN_HOSTS" >/dev/null 2>&1 || true
    rm -f "$KNOWN_HOSTS.old"
}

lab_machine_status() {
    local ns=up svc=up ssh=up
    lm_ns_up || ns=down
    lm_service_up || svc=down
    lm_sshd_up || ssh=down
    printf '%s ssh=%s:%d netns=%s service=%s sshd=%s\n' "$LM_NAME" "$LM_ADDR" "$LM_PORT" "$ns" "$svc" "$ssh"
    [[ $ns == up && $svc == up && $ssh == up ]]
}

# No P_connections, no P_farms: lab-machine is a local store, not a node.
lab_machine_env() {
    echo "FARM_LAB_MACHINE_URI=\"$(lm_uri)\""
    echo "FARM_LAB_MACHINE_SOCK=\"$LM_SOCK\""
    echo "FARM_LAB_MACHINE_ADDR=\"$LM_ADDR\""
    echo "FARM_LAB_MACHINE_PORT=\"$LM_PORT\""
    echo "FARM_LAB_MACHINE_NETNS=\"$LM_NS\""
    echo "FARM_LAB_MACHINE_HOST_KEY=\"$LM_DIR/ssh_host_ed25519_key.pub\""
}
