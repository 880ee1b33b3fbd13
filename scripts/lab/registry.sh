# shellcheck shell=bash
# registry.sh: the docker-registry on $REGISTRY_ADDR.
# Sourced by scripts/farm-lab; see the top of that file for the layout.

# ---------------------------------------------------------------- registry
registry_up() {
    pid_alive "$LAB/registry.pid" "$LAB/registry.yml" &&
        curl -sf --max-time 5 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1
}

start_registry() {
    local n holder pid
    mkdir -p "$LAB/registry-data"
    cat >"$LAB/registry.yml" <<EOF
# Written by scripts/farm-lab.
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $LAB/registry-data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
    registry_up && return 0
    stop_pidfile "$LAB/registry.pid" "$LAB/registry.yml" TERM
    holder=$(port_holder "${REGISTRY_ADDR##*:}")
    if [[ $holder == *"/etc/docker/registry/config.yml"* ]]; then
        # Debian's own docker-registry service (started by the package's init
        # script on install); it listens on :5000 with htpasswd auth. Stop it.
        log "stopping Debian's docker-registry service that holds port 5000"
        invoke-rc.d docker-registry stop >&2 || service docker-registry stop >&2 || true
        sleep 1
        holder=$(port_holder "${REGISTRY_ADDR##*:}")
    fi
    [[ -z $holder ]] || die "port ${REGISTRY_ADDR##*:} is already in use by: $holder"
    log "starting registry on $REGISTRY_ADDR"
    setsid nohup docker-registry serve "$LAB/registry.yml" >>"$LAB/registry.log" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$LAB/registry.pid"
    for ((n = 0; n < WAIT_SECS * 5; n++)); do
        curl -sf --max-time 2 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$LAB/registry.log" >&2; die "registry exited (log: $LAB/registry.log)"; }
        sleep 0.2
    done
    die "registry did not answer on http://$REGISTRY_ADDR/v2/ (log: $LAB/registry.log)"
}

