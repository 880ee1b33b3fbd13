# shellcheck shell=bash
# kind-p5.sh: lab-p5, a rootful podman 5.4 (Debian trixie) service in a
# debootstrap'd rootfs, in its own mount namespace, behind its own sshd
# (trixie's, inside the rootfs). Sourced by part-kinds.sh.
#
# $LAB/base/trixie is the rootfs (debootstrap --variant=minbase plus podman and
# what it needs), made once and kept like the busybox tarballs; it stays as
# debootstrap left it but for /etc files written here. A holder process
# (unshare -m, see p5_holder_main) keeps the node's mount namespace: the rootfs
# bind-mounted onto itself (layer unpack remounts /), private /run, /tmp and
# /dev/shm, $LAB/lab-p5/storage on /var/lib/containers and $LAB/lab-p5/state on
# /var/lib/farm-node (host key, sshd config, logs, pid files). The service
# and sshd are entered into it with nsenter + chroot. down kills the three, and
# the namespace (with every mount in it) goes with the last of them.

P5_NAME=lab-p5
P5_PORT=2291
P5_DIR=$LAB/$P5_NAME
P5_ROOT=$LAB/base/trixie
P5_STATE=$P5_DIR/state
P5_SEEN=/var/lib/farm-node
P5_SOCK=/run/podman/podman.sock
P5_MIRROR=${FARM_LAB_DEBIAN_MIRROR:-}
P5_PACKAGES=podman,runc,conmon,netavark,aardvark-dns,nftables,iptables,catatonit,uidmap,openssh-server,ca-certificates,procps,psmisc,findutils
# Off the host podman's podman0 / 10.88.0.0/16 (the nodes share the host network).
P5_BRIDGE=p5podman0
P5_SUBNET=10.89.55.0/24

p5_holder_up() { pid_alive "$P5_DIR/holder.pid" "farm-lab-ns $P5_NAME"; }
p5_holder() { cat "$P5_DIR/holder.pid"; }
# The node's socket as the host reaches it: through the holder's mount namespace.
p5_host_sock() { echo "/proc/$(p5_holder)/root$P5_ROOT$P5_SOCK"; }
p5_podman() { podman --url "unix://$(p5_host_sock)" "$@"; }
# p5_enter CMD...: run CMD inside the node (its namespace, chrooted), with a
# clean environment (the host's podman variables must not leak in).
p5_enter() {
    nsenter -t "$(p5_holder)" -m -- chroot "$P5_ROOT" /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

p5_service_up() {
    p5_holder_up && pid_alive "$P5_DIR/service.pid" "system service --time=0 unix://$P5_SOCK" &&
        lab_pings "$(p5_host_sock)"
}
p5_sshd_up() { pid_alive "$P5_STATE/sshd.pid" "$P5_SEEN/sshd_config"; }

p5_mirror() {
    local m
    [[ -n $P5_MIRROR ]] && { echo "$P5_MIRROR"; return; }
    # the Debian mirror apt uses here (what apt reads, not what files say)
    # shellcheck disable=SC2016 # apt expands $(LABEL), not the shell
    m=$(apt-get indextargets --format '$(LABEL) $(REPO_URI)' 2>/dev/null | awk '$1 == "Debian" {print $2; exit}')
    echo "${m:-http://deb.debian.org/debian/}"
}

p5_rootfs() {
    [[ -x $P5_ROOT/usr/bin/podman && -f $P5_ROOT/.farm-lab-complete ]] && return 0
    command -v debootstrap >/dev/null || { apt_update_once; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
    log "$P5_NAME: debootstrap trixie into $P5_ROOT (once; kept by down)"
    rm -rf "$P5_ROOT.tmp"
    debootstrap --variant=minbase --include="$P5_PACKAGES" trixie "$P5_ROOT.tmp" "$(p5_mirror)" >"$LAB/base/trixie-debootstrap.log" 2>&1 ||
        { tail -n 20 "$LAB/base/trixie-debootstrap.log" >&2; die "$P5_NAME: debootstrap failed (log: $LAB/base/trixie-debootstrap.log)"; }
    touch "$P5_ROOT.tmp/.farm-lab-complete"
    rm -rf "$P5_ROOT"
    mv "$P5_ROOT.tmp" "$P5_ROOT"
}

p5_write_conf() {
    local etc=$P5_ROOT/etc/containers
    mkdir -p "$etc/networks" "$P5_ROOT$P5_SEEN" "$P5_ROOT/var/lib/containers"
    lab_containers_conf "$P5_NAME" 'lock_type = "file"' >"$etc/containers.conf"
    # podman's default network, with a bridge and subnet of its own.
    cat >"$etc/networks/podman.json" <<EOF
{
  "name": "podman",
  "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
  "driver": "bridge",
  "network_interface": "$P5_BRIDGE",
  "created": "2026-01-01T00:00:00Z",
  "subnets": [{"subnet": "$P5_SUBNET", "gateway": "${P5_SUBNET%.0/24}.1"}],
  "ipv6_enabled": false,
  "internal": false,
  "dns_enabled": false,
  "ipam_options": {"driver": "host-local"}
}
EOF
    mkdir -p "$P5_STATE" "$P5_DIR/storage"
    cp "$AUTH_KEYS" "$P5_STATE/authorized_keys"
    chmod 644 "$P5_STATE/authorized_keys"
    lab_sshd_conf "$P5_STATE" "$P5_SEEN" "$P5_PORT" "$P5_NAME" "$P5_SEEN/authorized_keys"
}

# p5_holder_main: the body of the holder process, inside its new mount
# namespace (farm-lab --in-part kinds holder).
p5_holder_main() {
    local r=$P5_ROOT
    mount --bind "$r" "$r"
    mount -t proc proc "$r/proc"
    mount --rbind /sys "$r/sys"
    mount --rbind /dev "$r/dev"
    mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
    mount -t tmpfs -o mode=755 run "$r/run"
    mount -t tmpfs -o mode=1777 tmp "$r/tmp"
    mount --bind "$P5_DIR/storage" "$r/var/lib/containers"
    mount --bind "$P5_STATE" "$r$P5_SEEN"
    mount -t binfmt_misc binfmt_misc "$r/proc/sys/fs/binfmt_misc" 2>/dev/null || true
    mkdir -p "$r/run/sshd" "$r/run/podman"
    cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
    # the namespace lives as long as this process (or the service, or sshd)
    exec -a "farm-lab-ns $P5_NAME" sleep infinity
}

p5_start_holder() {
    local n
    p5_holder_up && return 0
    log "$P5_NAME: making its mount namespace"
    setsid nohup unshare -m --propagation private -- "$LAB_SCRIPTS/../farm-lab" --in-part kinds holder \
        >>"$P5_DIR/holder.log" 2>&1 </dev/null 9>&- &
    echo $! >"$P5_DIR/holder.pid"
    for ((n = 0; n < 100; n++)); do
        p5_holder_up && [[ -d /proc/$(p5_holder)/root$P5_ROOT/run/podman ]] && return 0
        sleep 0.1
    done
    tail -n 20 "$P5_DIR/holder.log" >&2
    die "$P5_NAME: its mount namespace did not come up (log: $P5_DIR/holder.log)"
}

p5_start_service() {
    local pid
    p5_service_up && return 0
    stop_pidfile "$P5_DIR/service.pid" "system service --time=0 unix://$P5_SOCK" TERM
    log "$P5_NAME: starting podman $(p5_enter podman --version | awk '{print $3}') service on $P5_SOCK"
    p5_enter rm -f "$P5_SOCK"
    setsid nohup nsenter -t "$(p5_holder)" -m -- chroot "$P5_ROOT" /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        podman system service --time=0 "unix://$P5_SOCK" >>"$P5_DIR/service.log" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$P5_DIR/service.pid"
    lab_await_service "$P5_NAME" "$pid" "$(p5_host_sock)" "$P5_DIR/service.log"
}

p5_start_sshd() {
    p5_sshd_up && return 0
    LAB_SSHD_SEEN=$P5_SEEN lab_start_sshd "$P5_NAME" "$P5_STATE" "$P5_PORT" \
        nsenter -t "$(p5_holder)" -m -- chroot "$P5_ROOT" /usr/sbin/sshd
}

p5_up() {
    p5_rootfs
    p5_write_conf
    p5_start_holder
    p5_start_service
    p5_start_sshd
    known_host_add "$P5_PORT" "$P5_STATE/ssh_host_ed25519_key.pub"
    lab_ssh root "$P5_PORT" true ||
        die "$P5_NAME: ssh -p $P5_PORT root@127.0.0.1 failed (log: $P5_STATE/sshd.log)"
    import_base "$P5_NAME" p5_podman
}

# p5_kill_node: containers and build steps the node started, by pid: every
# process whose mount namespace is the node's (conmon, runc, a RUN step's
# buildah-oci-runtime, netavark's aardvark-dns...), after the service.
p5_kill_node() {
    local ns pids p n
    p5_holder_up || return 0
    ns=$(readlink "/proc/$(p5_holder)/ns/mnt")
    for ((n = 0; n < 20; n++)); do
        pids=()
        for p in /proc/[0-9]*; do
            [[ $(readlink "$p/ns/mnt" 2>/dev/null) == "$ns" ]] && pids+=("${p#/proc/}")
        done
        ((${#pids[@]})) || return 0
        mapfile -t pids < <(with_descendants "${pids[@]}")
        ((${#pids[@]})) || return 0
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.2
    done
    die "$P5_NAME: processes in its namespace do not die: ${pids[*]}"
}

p5_down() {
    stop_pidfile "$P5_STATE/sshd.pid" "$P5_SEEN/sshd_config" TERM
    lab_kill_sessions "$P5_PORT"
    if p5_service_up; then
        timeout 30 podman --url "unix://$(p5_host_sock)" stop --all --time 2 >/dev/null 2>&1 || log "$P5_NAME: could not stop all containers (killed below)"
    fi
    stop_pidfile "$P5_DIR/service.pid" "system service --time=0 unix://$P5_SOCK" TERM
    # processes a container of the node started live in namespaces of their
    # own; conmon (their parent) is in the node's, so it goes first
    p5_kill_node
    rm -f "$P5_DIR/holder.pid"
    ssh-keygen -q -R "[127.0.0.1]:$P5_PORT" -f "$KNOWN_HOSTS" >/dev/null 2>&1 || true
    # netavark's bridge and nft table live in the host network namespace
    ip link del "$P5_BRIDGE" 2>/dev/null || true
    nft delete table inet netavark 2>/dev/null || true
}

p5_status() {
    local svc=up ssh=up
    p5_service_up || svc=down
    p5_sshd_up || ssh=down
    printf '%s port=%d podman=5 service=%s sshd=%s\n' "$P5_NAME" "$P5_PORT" "$svc" "$ssh"
    [[ $svc == up && $ssh == up ]]
}

p5_uri() { echo "ssh://root@127.0.0.1:$P5_PORT$P5_SOCK"; }
