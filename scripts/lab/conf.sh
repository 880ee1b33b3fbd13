# shellcheck shell=bash
# conf.sh: system connections, farms and lab.env.
# Sourced by scripts/farm-lab; see the top of that file for the layout.

# ---------------------------------------------------------------- containers.conf
# Remove our marked block, and any lab-* destination tables that a podman rewrite
# of the file left outside it (podman drops comments when it rewrites), so the
# block we append never duplicates a table (a TOML error).
strip_lab_block() {
    local file=$1
    [[ -f $file ]] || return 0
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
        $0 == b { inblock = 1; next }
        $0 == e { inblock = 0; next }
        inblock { next }
        /^[ \t]*\[/ { skip = ($0 ~ /^[ \t]*\[engine\.service_destinations\.("?)lab-[A-Za-z0-9_-]+("?)\][ \t]*$/) }
        skip { next }
        { print }
    ' "$file"
}

write_connections() {
    local n=$1 i tmp
    mkdir -p "$(dirname "$MAIN_CONF")"
    tmp=$(mktemp "$MAIN_CONF.farm-lab.XXXXXX")
    strip_lab_block "$MAIN_CONF" >"$tmp"
    {
        echo "$BEGIN_MARK"
        # Full URIs written by hand: podman 4.3.1 `system connection add` drops the
        # socket path. Dotted sub-tables may follow any table in TOML.
        for ((i = 1; i <= n; i++)); do
            echo "[engine.service_destinations.lab-$i]"
            echo "  uri = \"$(node_uri "$i")\""
            echo "  identity = \"$KEY\""
        done
        parts_output connections | while read -r name uri identity; do
            echo "[engine.service_destinations.$name]"
            echo "  uri = \"$uri\""
            echo "  identity = \"$identity\""
        done
        echo "$END_MARK"
    } >>"$tmp"
    chmod 644 "$tmp"
    mv "$tmp" "$MAIN_CONF"
}

write_dropins() {
    local n=$1 i list="" farms farm node nodes
    mkdir -p "$DROPIN_DIR"
    for ((i = 1; i <= n; i++)); do list+="${list:+, }\"lab-$i\""; done
    farms="lab = [$list]"
    while read -r farm nodes; do
        [[ -n $farm ]] || continue
        list=""
        for node in $nodes; do list+="${list:+, }\"$node\""; done
        farms+=", $farm = [$list]"
    done < <(parts_output farms)
    # A farm in a drop-in survives podman 4.3.1 rewriting the main file (it drops
    # [farms], a table it does not know). containers/common v0.57.5 reads
    # Farms.List (map[string][]string) from [farms] key "list".
    cat >"$FARM_DROPIN" <<EOF
# Written by scripts/farm-lab; removed by farm-lab down.
[farms]
list = { $farms }
EOF
    # crun fails here, and runc needs explicit rlimits for `podman run`.
    cat >"$RUNTIME_DROPIN" <<EOF
# Written by scripts/farm-lab; removed by farm-lab down.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
EOF
}

verify_connections() {
    local n=$1 i list arch name
    list=$(podman system connection list --format '{{.Name}}' 2>&1) ||
        die "podman system connection list failed (bad $MAIN_CONF?): $list"
    for ((i = 1; i <= n; i++)); do
        grep -qx "lab-$i" <<<"$list" || die "connection lab-$i missing from 'podman system connection list'"
    done
    for name in $(parts_output connections | cut -d' ' -f1); do
        grep -qxF "$name" <<<"$list" || die "connection $name missing from 'podman system connection list'"
    done
    arch=$(podman --connection lab-1 info --format '{{.Host.Arch}}' 2>&1) ||
        die "podman --connection lab-1 info failed: $arch"
    [[ $arch == amd64 ]] || die "podman --connection lab-1 info: unexpected arch '$arch'"
}

# ---------------------------------------------------------------- lab.env
write_env() {
    local n=$1 i nodes=""
    for ((i = 1; i <= n; i++)); do nodes+="${nodes:+ }lab-$i"; done
    {
        echo "# Written by scripts/farm-lab up; source it."
        echo "FARM_LAB_DIR=\"$LAB\""
        echo "FARM_LAB_NODES=\"$nodes\""
        echo "FARM_LAB_KEY=\"$KEY\""
        echo "FARM_LAB_REGISTRY=\"$REGISTRY_ADDR\""
        echo "FARM_LAB_FARM=\"lab\""
        for ((i = 1; i <= n; i++)); do
            echo "FARM_LAB_${i}_PORT=\"$(node_port "$i")\""
            echo "FARM_LAB_${i}_SOCK=\"$(node_sock "$i")\""
            echo "FARM_LAB_${i}_URI=\"$(node_uri "$i")\""
        done
        parts_output env
    } >"$LAB/lab.env.tmp"
    mv "$LAB/lab.env.tmp" "$LAB/lab.env"
}

