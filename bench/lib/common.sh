# shellcheck shell=bash
# Helpers shared by the benchmarks (sourced by bench/run).
#
# Conventions: every time is in seconds; a benchmark writes its part of
# RESULTS.md into $OUT/<name>.md with `md`, and every target it checks with
# `target`, which also prints a MISSED line. Nothing here ever fails the run
# because a target was missed: these are benchmarks, not tests.

# ---------------------------------------------------------------- output
say()  { printf '\033[1m[bench %s]\033[0m %s\n' "${BENCH:-run}" "$*" >&2; }
warn() { printf '[bench %s] warning: %s\n' "${BENCH:-run}" "$*" >&2; }

# md LINE...: append lines to this benchmark's RESULTS.md fragment.
md() { printf '%s\n' "$@" >>"$OUT/$BENCH.md"; }

# target LABEL VALUE OP LIMIT: compare VALUE with LIMIT (OP is le or ge), record
# MET / MISSED in the summary and in the fragment; MISSED also goes to stdout.
target() {
	local label=$1 value=$2 op=$3 limit=$4 ok verdict
	ok=$(awk -v v="$value" -v l="$limit" -v op="$op" 'BEGIN { print (op == "le" ? v <= l : v >= l) ? 1 : 0 }')
	if [[ $ok == 1 ]]; then
		verdict="MET"
	else
		# by how much: relative distance to the limit, in percent
		verdict="MISSED by $(awk -v v="$value" -v l="$limit" 'BEGIN { d = (v - l) / l * 100; printf "%.0f%%", ((d < 0) ? -d : d) }')"
		printf 'MISSED %s: %s = %s, target %s %s\n' "$BENCH" "$label" "$value" "$([[ $op == le ]] && echo '<=' || echo '>=')" "$limit"
	fi
	printf '%-3s %-42s %10s  target %s %-8s %s\n' "$BENCH" "$label" "$value" \
		"$([[ $op == le ]] && echo '<=' || echo '>=')" "$limit" "$verdict" >>"$OUT/summary.txt"
	md "- **target** $label = **$value** (target $([[ $op == le ]] && echo '≤' || echo '≥') $limit): **$verdict**"
}

# info LABEL VALUE: a number worth a summary line that has no target.
info() { printf '%-3s %-42s %10s\n' "$BENCH" "$1" "$2" >>"$OUT/summary.txt"; }

# ---------------------------------------------------------------- numbers
# median X...: the median of the numbers (mean of the middle two for an even count).
median() {
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) printf "%.3f\n", a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# calc EXPR: floating point arithmetic, 3 decimals ("calc 'a / b'").
calc() { awk "BEGIN { printf \"%.3f\n\", $* }"; }
# f2 X: X with 2 decimals, for tables.
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
# join_by SEP X...: "1.2 / 1.3 / 1.1" lists of per-run values in the tables.
join_by() { local sep=$1; shift; local out=$1; shift; for x in "$@"; do out+="$sep$x"; done; printf '%s' "$out"; }
runs_list() { local xs=() x; for x in "$@"; do xs+=("$(f2 "$x")"); done; join_by ' / ' "${xs[@]}"; }

# timeit VAR CMD...: run CMD, store its wall time in VAR. Returns CMD's status
# (callers decide what a failure means; the time is kept either way).
timeit() {
	local __var=$1 __t0 __rc=0
	shift
	__t0=$EPOCHREALTIME
	"$@" || __rc=$?
	printf -v "$__var" '%s' "$(calc "$EPOCHREALTIME - $__t0")"
	return "$__rc"
}

# load1: the 1-minute load average now; others share this machine, and a
# run taken under a load above the core count is a disturbed run.
load1() { cut -d' ' -f1 /proc/loadavg; }

# cpu_busy: seconds of CPU the whole machine has spent busy since boot, all
# cores together (/proc/stat: user, nice, system, irq, softirq, steal). The
# difference over a run is what the run cost the machine, nodes included:
# on the lab they are this machine.
cpu_busy() { awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit }' /proc/stat; }

# nonce: unique per call, for --build-arg NONCE= (defeats every layer cache).
nonce() { printf '%s-%s-%s' "$(date +%s%N)" "$$" "$RANDOM"; }

# iso_to_epoch 2026-11-27T09:39:54.694Z -> 1795772394.694 (slog text timestamps)
iso_to_epoch() { date -d "$1" +%s.%N; }

# ---------------------------------------------------------------- lab
lab_sock() { echo "$FARM_LAB_DIR/$1/podman.sock"; }
node_podman() { local n=$1; shift; podman --url "unix://$(lab_sock "$n")" "$@"; }

# Every image a benchmark makes is named localhost/farm-bench/...; cleanup
# removes exactly those, locally and on every running node (never prune: other
# engineers' tests share these storages).
BENCH_REPO=localhost/farm-bench
cleanup_images() {
	local n ids
	# shellcheck disable=SC2046 # list names, one word each
	podman manifest rm $(podman images --filter "reference=$BENCH_REPO/*" --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>' | sort -u) >/dev/null 2>&1 || true
	ids=$(podman images --filter "reference=$BENCH_REPO/*" -q | sort -u)
	# shellcheck disable=SC2086 # image ids, one word each
	[[ -z $ids ]] || podman rmi -f $ids >/dev/null 2>&1 || true
	for n in $FARM_LAB_NODES; do
		[[ -S $(lab_sock "$n") ]] || continue
		ids=$(node_podman "$n" images --filter "reference=$BENCH_REPO/*" -q 2>/dev/null | sort -u) || continue
		# shellcheck disable=SC2086 # image ids, one word each
		[[ -z $ids ]] || node_podman "$n" rmi -f $ids >/dev/null 2>&1 || true
	done
}

# ---------------------------------------------------------------- calibration
# The CPU-bound Containerfile counts to N in busybox sh. How fast that is
# differs per machine and per platform (arm64 runs under qemu), so N is derived
# from a short measurement with local podman: iterations per second, per arch,
# with the container start-up cost subtracted. The fastest of three tries
# counts: others' load only ever slows a try down, and N should not depend on
# how busy the machine was during calibration (a busy calibration gave a 40%
# smaller N and a step under the 10 s asked for).
calibrate() {
	local f=$OUT/calibration.env arch t0 t1 n rate best
	# shellcheck source=/dev/null # a calibration of an earlier run
	if [[ -s $f ]]; then source "$f"; return; fi
	for arch in amd64 arm64; do
		local img=localhost/busybox:$arch
		# ~1.5 s per try: native amd64 counts ~10x faster than emulated arm64
		# (a too short try drowns in the container start-up noise).
		n=200000
		[[ $arch == amd64 ]] && n=2000000
		best=0
		for _ in 1 2 3; do
			timeit t0 podman run --rm --pull=never --platform "linux/$arch" "$img" true 2>/dev/null
			timeit t1 podman run --rm --pull=never --platform "linux/$arch" "$img" \
				sh -c "i=0; while [ \$i -lt $n ]; do i=\$((i+1)); done" 2>/dev/null
			rate=$(awk -v n=$n -v a="$t0" -v b="$t1" 'BEGIN { d = b - a; if (d < 0.05) d = 0.05; printf "%d", n / d }')
			((rate > best)) && best=$rate
		done
		printf 'RATE_%s=%s\n' "$arch" "$best" >>"$f"
	done
	# shellcheck source=/dev/null # the calibration written just above
	source "$f"
	# shellcheck disable=SC2154 # RATE_* come from the calibration file sourced above
	say "calibrated busybox sh loop: amd64 $RATE_amd64/s, arm64 $RATE_arm64/s"
}
# iters ARCH SECONDS: N for a RUN step of about SECONDS on ARCH.
iters() { calibrate; local r="RATE_$1"; awk -v r="${!r}" -v s="$2" 'BEGIN { printf "%d", r * s }'; }

# ---------------------------------------------------------------- the pipeline
# stamp FILE STAGE: copy records from stdin to stdout unchanged, noting when
# each one passed (and its kind) in FILE: that is where the pipeline's time goes.
stamp() {
	local file=$1 stage=$2 line kind
	while IFS= read -r line; do
		printf '%s\n' "$line"
		kind=unknown
		[[ $line =~ \"kind\":\"([a-z]+)\" ]] && kind=${BASH_REMATCH[1]}
		printf '%s %s %s\n' "$EPOCHREALTIME" "$stage" "$kind" >>"$file"
	done
}

# farm-manifest's flags in `pipeline` (e.g. --tls-verify=false after --push).
MANIFEST_ARGS=()
# farm-nodes' flags in `pipeline` (e.g. --cache-ttl 0: no node info cache).
NODES_ARGS=()

# pipeline RUN_ID NODES PLATFORMS TAG DIR [farm-build flags...]
# farm-nodes --node NODES | farm-plan --platforms PLATFORMS [| $PLAN_FILTER]
#   | farm-build -t TAG --preconnect NODES flags DIR | farm-manifest
# (what `farm build --node NODES` runs).
# Leaves $OUT/runs/RUN_ID.{stamps,images.jsonl,log,manifest.json}.
pipeline() {
	local id=$1 nodes=$2 platforms=$3 tag=$4 dir=$5
	shift 5
	local p=$OUT/runs/$id
	mkdir -p "$OUT/runs"
	: >"$p.log"
	printf '%s start -\n' "$EPOCHREALTIME" >"$p.stamps"
	farm-nodes --node "$nodes" "${NODES_ARGS[@]}" 2>>"$p.log" | stamp "$p.stamps" nodes |
		farm-plan --platforms "$platforms" 2>>"$p.log" | ${PLAN_FILTER:-cat} | stamp "$p.stamps" plan |
		farm-build -t "$tag" --preconnect "$nodes" "$@" "$dir" 2>>"$p.log" | tee "$p.images.jsonl" | stamp "$p.stamps" build |
		farm-manifest "${MANIFEST_ARGS[@]}" 2>>"$p.log" >"$p.manifest.json"
	printf '%s end -\n' "$EPOCHREALTIME" >>"$p.stamps"
}

# breakdown RUN_ID: one line saying where a pipeline run's time went: node
# records out of farm-nodes, jobs out of farm-plan, the context archived
# (farm-build's "build context ready" log line), each image record (with its
# build_seconds/transfer_seconds/transfer), the manifest; offsets from the start.
breakdown() {
	local p=$OUT/runs/$1 t0 ctx=""
	t0=$(awk '$2 == "start" { print $1 }' "$p.stamps")
	local ts
	ts=$(sed -n 's/^time=\([^ ]*\) .*msg="build context ready".*/\1/p' "$p.log" | head -1)
	[[ -z $ts ]] || ctx=$(calc "$(iso_to_epoch "$ts") - $t0")
	awk -v t0="$t0" -v ctx="$ctx" '
		$2 == "nodes" { nodes = $1 - t0 } $2 == "plan" { plan = $1 - t0 }
		$2 == "build" { img[++n] = $1 - t0 } $2 == "end" { end = $1 - t0 }
		END {
			printf "nodes %.2f s, plan %.2f s", nodes, plan
			if (ctx != "") printf ", context ready %.2f s", ctx
			for (i = 1; i <= n; i++) printf ", image %d at %.2f s", i, img[i]
			printf ", end %.2f s", end
		}' "$p.stamps"
	jq -r 'select(.kind == "image") | " | \(.platform)@\(.node): build \(.build_seconds) s, transfer \(.transfer_seconds) s (\(.transfer))"' \
		"$p.images.jsonl" | tr -d '\n'
	jq -r 'select(.kind == "error") | " | ERROR \(.platform // "")@\(.node // ""): \(.error)"' "$p.images.jsonl" | tr -d '\n'
	echo
}

# measure_pipeline VAR RUN_ID COUNT NODES PLATFORMS TAG DIR [flags...]: time
# `pipeline` into VAR; when the run did not make a manifest of COUNT images
# (other engineers' lab tests kill nodes and remove images on this machine),
# the measurement was disturbed: re-run it, up to 3 attempts.
measure_pipeline() {
	local __v=$1 id=$2 count=$3 attempt
	shift 3
	for attempt in 1 2 3; do
		timeit "$__v" pipeline "$id" "$@" || true
		pipeline_ok "$id" "$count" && return 0
		warn "$id: no manifest of $count images (attempt $attempt; see $OUT/runs/$id.log); re-running"
		cp "$OUT/runs/$id.log" "$OUT/runs/$id.attempt$attempt.log" 2>/dev/null || true
	done
	return 1
}

# pipeline_ok RUN_ID PLATFORM_COUNT: the run made a manifest of that many images.
pipeline_ok() {
	[[ $(jq -r 'select(.kind == "manifest") | .instances | length' "$OUT/runs/$1.manifest.json" 2>/dev/null) == "$2" ]]
}
