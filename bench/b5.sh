# shellcheck shell=bash
# B5 farm-nodes over 8 nodes with unreachable ones.
#
# `farm-nodes --farm lab --timeout 5s` must answer within the per-node timeout
# plus 2 s however the farm fails. Three configurations, RUNS times each:
#   all up       8 lab nodes
#   one down     lab-5's podman service killed (sshd still answers: the
#                failure is quick, "connection refused" through ssh)
#   blackhole    lab-5 down, plus a 9th connection to a TCP port where a
#                listener accepts and never says a word (the harder case: only
#                the timeout ends it)
# The 9th connection and the 9-node farm "lab" live in a temporary
# CONTAINERS_CONF_OVERRIDE, seen by farm-nodes only.
#
# `farm-lab up 8` changes the lab farm for everybody (lab tests expect 3), so
# it is done only when no lab test runs, right before measuring, and undone
# (`up 3`) right after, also when this benchmark fails or is interrupted.

B5_TIMEOUT=${B5_TIMEOUT:-5s}

# wait_no_lab_tests: lab tests need the 3-node lab; wait (up to 20 min) while one runs.
wait_no_lab_tests() {
	local waited=0
	while pgrep -f 'lab\.test' >/dev/null; do
		((waited % 60 == 0)) && say "a lab test is running; waiting before farm-lab up 8"
		((waited < 1200)) || { warn "lab tests still running after 20 min"; return 1; }
		sleep 5
		waited=$((waited + 5))
	done
}

# blackhole PORTFILE: a TCP listener on 127.0.0.1 (free port) that accepts
# connections into its backlog and never reads or writes; prints its pid.
blackhole() {
	python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
time.sleep(3600)' "$1" >/dev/null 2>&1 &
	echo $!
}

b5_restore() {
	[[ -z ${B5_BH_PID:-} ]] || kill "$B5_BH_PID" 2>/dev/null || true
	say "restoring the 3-node lab: scripts/farm-lab up 3"
	"$ROOT/scripts/farm-lab" up 3 >"$OUT/runs/b5-up3.log" 2>&1 || warn "farm-lab up 3 failed (see $OUT/runs/b5-up3.log)"
}

# nodes_run CONFIG RUN: time farm-nodes, keep its records; prints "secs answered errors".
nodes_run() {
	local cfg=$1 r=$2 t rec=$OUT/runs/b5-$1-$2.jsonl
	timeit t farm-nodes --farm lab --timeout "$B5_TIMEOUT" >"$rec" 2>"$OUT/runs/b5-$cfg-$r.log" || true
	printf '%s %s %s\n' "$t" "$(jq -s '[.[] | select(.kind == "node" and .error == "")] | length' "$rec")" \
		"$(jq -s '[.[] | select(.kind == "node" and .error != "")] | length' "$rec")"
}

bench_B5() {
	wait_no_lab_tests
	# From here on the lab must be put back whatever happens.
	trap b5_restore EXIT
	trap 'exit 130' INT TERM
	say "scripts/farm-lab up 8"
	"$ROOT/scripts/farm-lab" up 8 >"$OUT/runs/b5-up8.log" 2>&1 || { warn "farm-lab up 8 failed"; return 1; }
	# shellcheck source=/dev/null # written by scripts/farm-lab up
	source "$FARM_LAB_DIR/lab.env"

	local override=$OUT/b5-override.conf portfile=$OUT/b5-port port
	B5_BH_PID=$(blackhole "$portfile")
	for _ in $(seq 50); do [[ -s $portfile ]] && break; sleep 0.1; done
	port=$(<"$portfile")
	local farm8 farm9
	farm8=$(printf '"lab-%d", ' 1 2 3 4 5 6 7 8)
	farm9="${farm8}\"lab-bh\""
	cat >"$override" <<EOF
# bench B5: a connection whose port accepts TCP and never answers.
[engine.service_destinations.lab-bh]
uri = "ssh://root@127.0.0.1:$port$FARM_LAB_DIR/lab-1/podman.sock"
identity = "$FARM_LAB_KEY"

[farms]
list = { lab = [$farm9] }
EOF

	local -A T OK ERR
	local cfg r line
	for ((r = 1; r <= RUNS; r++)); do
		line=$(nodes_run all-up "$r")
		T[all-up]+="${line%% *} "; OK[all-up]=$(awk '{ print $2 }' <<<"$line"); ERR[all-up]=$(awk '{ print $3 }' <<<"$line")
	done
	"$ROOT/scripts/farm-lab" node-stop lab-5 >/dev/null 2>&1 || { warn "node-stop lab-5 failed"; return 1; }
	for ((r = 1; r <= RUNS; r++)); do
		line=$(nodes_run one-down "$r")
		T[one-down]+="${line%% *} "; OK[one-down]=$(awk '{ print $2 }' <<<"$line"); ERR[one-down]=$(awk '{ print $3 }' <<<"$line")
	done
	for ((r = 1; r <= RUNS; r++)); do
		line=$(CONTAINERS_CONF_OVERRIDE=$override nodes_run blackhole "$r")
		T[blackhole]+="${line%% *} "; OK[blackhole]=$(awk '{ print $2 }' <<<"$line"); ERR[blackhole]=$(awk '{ print $3 }' <<<"$line")
	done
	kill "$B5_BH_PID" 2>/dev/null || true
	B5_BH_PID=

	local limit
	limit=$(f2 "$(calc "${B5_TIMEOUT%s} + 2")")
	md "\`farm-nodes --farm lab --timeout $B5_TIMEOUT\` over the lab scaled to 8 nodes (\`scripts/farm-lab up 8\`, put back to 3 afterwards); $RUNS runs each, median (per-run values)."
	md ""
	md "| farm | median s | runs | nodes answered / with error |" "|---|---:|---|---|"
	local -A DESC=([all-up]="8 nodes, all up" [one-down]="8 nodes, lab-5's service killed (sshd up)"
		[blackhole]="lab-5 down + a 9th connection to a port that accepts and never answers")
	for cfg in all-up one-down blackhole; do
		# shellcheck disable=SC2086
		md "| ${DESC[$cfg]} | $(f2 "$(median ${T[$cfg]})") | $(runs_list ${T[$cfg]}) | ${OK[$cfg]} / ${ERR[$cfg]} |"
	done
	md "" "The errors reported for the unreachable nodes (last run):" ""
	md "$(jq -r 'select(.kind == "node" and .error != "") | "- \(.name): \(.error)"' "$OUT/runs/b5-blackhole-$RUNS.jsonl")" ""
	# shellcheck disable=SC2086
	target "farm-nodes, one node blackholed (s)" "$(f2 "$(median ${T[blackhole]})")" le "$limit"
	# shellcheck disable=SC2086
	target "farm-nodes, one node down (s)" "$(f2 "$(median ${T[one-down]})")" le "$limit"
}
