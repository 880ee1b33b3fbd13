# shellcheck shell=bash
# kind-rootless.sh: lab-rootless, a rootless podman 4.3.1 service of an
# unprivileged user the lab makes, behind its own sshd. Sourced by part-kinds.sh.
#
# The user ($RL_USER) gets a subuid/subgid range, its own containers.conf
# (runtime runc, cgroupfs) and storage.conf, and runs `podman system service`
# on podman's default rootless socket /run/user/UID/podman/podman.sock.
# Its home (storage, keys) is kept by down, like a node's root/; the user, its
# ranges, its processes (service, pause process, slirp4netns) and /run/user/UID
# are removed. RUN steps get a private network through slirp4netns, which needs
# /dev/net/tun 0666 as distributions ship it; up sets that mode if it differs
# and down puts the old one back.

RL_NAME=lab-rootless
RL_USER=${FARM_LAB_ROOTLESS_USER:-farmlab}
RL_PORT=2290
RL_DIR=$LAB/$RL_NAME
RL_HOME=$RL_DIR/home
# A fixed range: files in the kept storage are owned by ids in it.
RL_SUBID=300000-365535

rl_uid() { id -u "$RL_USER" 2>/dev/null || cat "$RL_DIR/uid" 2>/dev/null; }
rl_sock() { echo "/run/user/$(rl_uid)/podman/podman.sock"; }
rl_podman() { podman --url "unix://$(rl_sock)" "$@"; }
rl_service_pattern() { echo "system service --time=0 unix://$(rl_sock)"; }

rl_service_up() {
    [[ -n $(rl_uid) ]] || return 1
    pid_alive "$RL_DIR/service.pid" "$(rl_service_pattern)" &&
        lab_pings "$(rl_sock)"
}
rl_sshd_up() { pid_alive "$RL_DIR/sshd.pid" "$RL_DIR/sshd_config"; }

rl_make_user() {
    local uid
    if ! id -u "$RL_USER" >/dev/null 2>&1; then
        mkdir -p "$RL_DIR"
        # The same uid as before when known: the kept home and storage are its.
        uid=$(cat "$RL_DIR/uid" 2>/dev/null || true)
        log "$RL_NAME: creating user $RL_USER${uid:+ (uid $uid)}"
        useradd ${uid:+--uid "$uid"} --home-dir "$RL_HOME" --create-home --shell /bin/sh \
            --user-group --comment "farm-lab rootless node" "$RL_USER" >&2 ||
            die "$RL_NAME: useradd $RL_USER failed"
        # '*' (no password) instead of useradd's '!' (locked): sshd without
        # PAM refuses key logins of locked accounts.
        usermod -p '*' "$RL_USER"
    fi
    uid=$(id -u "$RL_USER")
    echo "$uid" >"$RL_DIR/uid"
    # useradd may have given a range of its own (SUB_UID_COUNT): keep exactly ours.
    sed -i "/^$RL_USER:/d" /etc/subuid /etc/subgid
    usermod --add-subuids "$RL_SUBID" --add-subgids "$RL_SUBID" "$RL_USER"
    chown "$uid:$uid" "$RL_HOME"
    install -d -o "$uid" -g "$uid" -m 700 "/run/user/$uid" "/run/user/$uid/podman"
}

rl_write_conf() {
    local uid=$1 d=$RL_HOME/.config/containers
    install -d -o "$uid" -g "$uid" "$RL_HOME/.config" "$d"
    lab_containers_conf "$RL_NAME" >"$d/containers.conf"
    cat >"$d/storage.conf" <<EOF
# Written by scripts/farm-lab for node $RL_NAME: native rootless overlay.
[storage]
driver = "overlay"
EOF
    chown "$uid:$uid" "$d/containers.conf" "$d/storage.conf"
}

rl_tun() {
    local mode
    [[ -c /dev/net/tun ]] || die "$RL_NAME: no /dev/net/tun (RUN steps need it for a private network)"
    mode=$(stat -c %a /dev/net/tun)
    [[ $mode == 666 ]] && return 0
    [[ -s $RL_DIR/tun.mode ]] || echo "$mode" >"$RL_DIR/tun.mode"
    log "$RL_NAME: /dev/net/tun $mode -> 666 (as distributions ship it; down restores $mode)"
    chmod 666 /dev/net/tun
}

rl_start_service() {
    local uid pid
    rl_service_up && return 0
    uid=$(rl_uid)
    stop_pidfile "$RL_DIR/service.pid" "$(rl_service_pattern)" TERM
    rm -f "$(rl_sock)"
    log "$RL_NAME: starting rootless podman service of $RL_USER on $(rl_sock)"
    # setpriv, not runuser/su: it execs podman itself, so the pid is podman's.
    setsid nohup setpriv --reuid="$uid" --regid="$uid" --init-groups \
        env -i HOME="$RL_HOME" USER="$RL_USER" LOGNAME="$RL_USER" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        XDG_RUNTIME_DIR="/run/user/$uid" \
        podman system service --time=0 "unix://$(rl_sock)" >>"$RL_DIR/service.log" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$RL_DIR/service.pid"
    lab_await_service "$RL_NAME" "$pid" "$(rl_sock)" "$RL_DIR/service.log"
}

rl_start_sshd() {
    rl_sshd_up && return 0
    lab_sshd_conf "$RL_DIR" "$RL_DIR" "$RL_PORT" "$RL_NAME" "$AUTH_KEYS" "AllowUsers $RL_USER"
    lab_start_sshd "$RL_NAME" "$RL_DIR" "$RL_PORT"
}

rl_up() {
    rl_make_user
    rl_write_conf "$(rl_uid)"
    rl_tun
    rl_start_service
    rl_start_sshd
    known_host_add "$RL_PORT" "$RL_DIR/ssh_host_ed25519_key.pub"
    lab_ssh "$RL_USER" "$RL_PORT" true ||
        die "$RL_NAME: ssh -p $RL_PORT $RL_USER@127.0.0.1 failed (log: $RL_DIR/sshd.log)"
    import_base "$RL_NAME" rl_podman
}

# rl_kill_user: every process of the user (service, pause process holding
# its user namespace, conmon, slirp4netns, a step's processes), by pid.
rl_kill_user() {
    local uid pids n
    uid=$(rl_uid)
    [[ -n $uid ]] || return 0
    for ((n = 0; n < 20; n++)); do
        mapfile -t pids < <(ps -eo pid=,uid= | awk -v u="$uid" '$2 == u {print $1}')
        ((${#pids[@]})) || return 0
        ((n == 0)) && log "$RL_NAME: stopping the processes of $RL_USER: ${pids[*]}"
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.2
    done
    die "$RL_NAME: processes of $RL_USER do not die"
}

rl_down() {
    local uid
    uid=$(rl_uid)
    stop_pidfile "$RL_DIR/sshd.pid" "$RL_DIR/sshd_config" TERM
    lab_kill_sessions "$RL_PORT"
    if [[ -n $uid ]]; then
        stop_pidfile "$RL_DIR/service.pid" "$(rl_service_pattern)" TERM
        rl_kill_user
        rm -rf "/run/user/$uid"
    fi
    if id -u "$RL_USER" >/dev/null 2>&1; then
        log "$RL_NAME: removing user $RL_USER (home $RL_HOME kept)"
        userdel "$RL_USER" >&2 || die "$RL_NAME: userdel $RL_USER failed"
        sed -i "/^$RL_USER:/d" /etc/subuid /etc/subgid
    fi
    if [[ -s $RL_DIR/tun.mode ]]; then
        chmod "$(cat "$RL_DIR/tun.mode")" /dev/net/tun
        rm -f "$RL_DIR/tun.mode"
    fi
    ssh-keygen -q -R "[127.0.0.1]:$RL_PORT" -f "$KNOWN_HOSTS" >/dev/null 2>&1 || true
}

rl_status() {
    local svc=up ssh=up
    rl_service_up || svc=down
    rl_sshd_up || ssh=down
    printf '%s port=%d user=%s service=%s sshd=%s\n' "$RL_NAME" "$RL_PORT" "$RL_USER" "$svc" "$ssh"
    [[ $svc == up && $ssh == up ]]
}

rl_uri() { echo "ssh://$RL_USER@127.0.0.1:$RL_PORT$(rl_sock)"; }
