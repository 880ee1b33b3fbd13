# shellcheck shell=bash source-path=SCRIPTDIR
# part-kinds.sh: node kinds beyond rootful podman 4.3.1 (a lab part, see
# parts.sh): lab-p5 (rootful podman 5.4, Debian trixie, kind-p5.sh) and
# lab-rootless (rootless podman 4.3.1, kind-rootless.sh), and the farm
# "mixed" = lab-1, lab-p5, lab-rootless.

# shellcheck source=kind-p5.sh
. "$LAB_SCRIPTS/kind-p5.sh"
# shellcheck source=kind-rootless.sh
. "$LAB_SCRIPTS/kind-rootless.sh"

# FARM_LAB_KINDS picks the kinds up brings up (default: both); down stops both.
kinds_up() {
    local k
    for k in ${FARM_LAB_KINDS-$P5_NAME $RL_NAME}; do
        case $k in
            "$P5_NAME") p5_up ;;
            "$RL_NAME") rl_up ;;
            *) die "FARM_LAB_KINDS: no kind '$k' ($P5_NAME, $RL_NAME)" ;;
        esac
    done
}
kinds_down() { p5_down; rl_down; }
kinds_status() {
    local ok=0
    p5_status || ok=1
    rl_status || ok=1
    return $ok
}
kinds_nodes() { printf '%s\n' "$P5_NAME" "$RL_NAME"; }
kinds_connections() {
    if p5_holder_up; then echo "$P5_NAME $(p5_uri) $KEY"; fi
    if [[ -n $(rl_uid) ]]; then echo "$RL_NAME $(rl_uri) $KEY"; fi
}
kinds_farms() { echo "mixed lab-1 $P5_NAME $RL_NAME"; }
kinds_env() {
    echo "FARM_LAB_KIND_NODES=\"$P5_NAME $RL_NAME\""
    echo "FARM_LAB_MIXED_FARM=\"mixed\""
    echo "FARM_LAB_P5_PORT=\"$P5_PORT\""
    echo "FARM_LAB_P5_URI=\"$(p5_uri)\""
    echo "FARM_LAB_P5_HOLDER_PID_FILE=\"$P5_DIR/holder.pid\""
    echo "FARM_LAB_ROOTLESS_PORT=\"$RL_PORT\""
    echo "FARM_LAB_ROOTLESS_USER=\"$RL_USER\""
    echo "FARM_LAB_ROOTLESS_URI=\"$(rl_uri)\""
}

# node-stop / node-start / sshd-stop / sshd-start for lab-p5 and lab-rootless
kinds_node_stop() {
    case $1 in
        "$P5_NAME") stop_pidfile "$P5_DIR/service.pid" "system service --time=0 unix://$P5_SOCK" KILL ;;
        "$RL_NAME") stop_pidfile "$RL_DIR/service.pid" "$(rl_service_pattern)" KILL ;;
    esac
    log "$1: podman service stopped"
}
kinds_node_start() {
    case $1 in
        "$P5_NAME") p5_start_service ;;
        "$RL_NAME") rl_start_service ;;
    esac
    log "$1: podman service up"
}
kinds_sshd_stop() {
    case $1 in
        "$P5_NAME") stop_pidfile "$P5_STATE/sshd.pid" "$P5_SEEN/sshd_config" TERM ;;
        "$RL_NAME") stop_pidfile "$RL_DIR/sshd.pid" "$RL_DIR/sshd_config" TERM ;;
    esac
    log "$1: sshd stopped"
}
kinds_sshd_start() {
    case $1 in
        "$P5_NAME") p5_start_sshd ;;
        "$RL_NAME") rl_start_sshd ;;
    esac
    log "$1: sshd up"
}
# the holder of lab-p5's mount namespace (farm-lab --in-part kinds holder)
kinds_holder() { p5_holder_main; }
