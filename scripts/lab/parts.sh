# shellcheck shell=bash
# parts.sh: lab parts, pieces of the lab beyond the rootful nodes lab-1..N.
# Sourced by scripts/farm-lab; see the top of that file for the layout.
#
# A part is one file scripts/lab/part-NAME.sh, sourced after the core files.
# With P = NAME with every '-' made '_' (part-lab-machine.sh -> lab_machine),
# it defines these functions (only P_up, P_down and P_status are required):
#   P_up             bring the part up; idempotent. Runs under the lab lock,
#                    after lab-1..N, the client key, known_hosts and the base
#                    tarballs are ready, before connections and farms are written.
#   P_down           stop exactly what P_up started (processes, users, mounts,
#                    namespaces); idempotent, also when the part is not up.
#   P_status         one line per piece on stdout; non-zero when a piece is down.
#   P_connections    "NAME URI IDENTITY" lines: system connections to write
#                    into the lab's block of containers.conf.
#   P_farms          "FARM NODE..." lines: farms to add next to farm "lab".
#   P_env            KEY="VALUE" lines appended to $LAB/lab.env.
#   P_nodes          the node names the part owns, one a line; then
#   P_node_stop NAME, P_node_start NAME, P_sshd_stop NAME, P_sshd_start NAME
#                    serve `farm-lab node-stop NAME` and friends for them.
# Helpers from common.sh / nodes.sh are there to use: log, die, pid_alive,
# stop_pidfile, port_holder, ensure_known_host_line, import_base, $KEY,
# $AUTH_KEYS, $LAB, $WAIT_SECS.
# `up` brings up every part named in $FARM_LAB_PARTS (default: all of them;
# FARM_LAB_PARTS= brings up none); `down` takes down every part.
# `farm-lab part NAME up|down|status` handles one part alone, with the rest
# of the lab left as it is. $LAB/parts lists the parts that are up.

PARTS=()

load_parts() {
    local f name h
    for f in "$LAB_SCRIPTS"/part-*.sh; do
        [[ -e $f ]] || continue
        name=${f##*/part-}
        name=${name%.sh}
        # shellcheck source=/dev/null
        . "$f"
        for h in up down status; do
            declare -F "$(part_fn "$name" "$h")" >/dev/null ||
                die "$f: a lab part must define $(part_fn "$name" "$h")"
        done
        PARTS+=("$name")
    done
}

part_fn() { echo "${1//-/_}_$2"; }
part_has() { declare -F "$(part_fn "$1" "$2")" >/dev/null; }
# part_call PART HOOK ARGS...: run the hook if the part defines it.
part_call() {
    local p=$1 h=$2
    shift 2
    if part_has "$p" "$h"; then "$(part_fn "$p" "$h")" "$@"; fi
}

part_known() { local p; for p in "${PARTS[@]}"; do [[ $p == "$1" ]] && return 0; done; return 1; }
parts_up() { if [[ -s $LAB/parts ]]; then cat "$LAB/parts"; fi; }
part_is_up() { parts_up | grep -xF -- "$1" >/dev/null; }
mark_part() { # mark_part NAME up|down
    local rest
    rest=$(parts_up | grep -vxF -- "$1" || true)
    { [[ -z $rest ]] || echo "$rest"; [[ $2 != up ]] || echo "$1"; } >"$LAB/parts.tmp"
    mv "$LAB/parts.tmp" "$LAB/parts"
}

# Parts `up` brings up: $FARM_LAB_PARTS when set, else all.
selected_parts() {
    local p
    if [[ -n ${FARM_LAB_PARTS+set} ]]; then
        for p in $FARM_LAB_PARTS; do
            part_known "$p" || die "FARM_LAB_PARTS: no part '$p' (have: ${PARTS[*]:-none})"
            echo "$p"
        done
    elif ((${#PARTS[@]})); then
        printf '%s\n' "${PARTS[@]}"
    fi
}

# Every hook's output over the parts that are up.
parts_output() { local p; for p in $(parts_up); do part_call "$p" "$1"; done; }

# The part owning node NAME, if any.
part_of_node() {
    local p
    for p in "${PARTS[@]}"; do
        part_call "$p" nodes | grep -xF -- "$1" >/dev/null && { echo "$p"; return 0; }
    done
    return 1
}
