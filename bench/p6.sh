# shellcheck shell=bash
# P6 two pipelines at once on a shared farm (issue #17).
#
# Side by side in each run, on the farm lab (lab-1..3), each pipeline one
# CPU-bound amd64 step of about P6_SECONDS (default 3), --no-cache with a
# unique NONCE, pulled back and listed locally:
#   one   a single pipeline alone;
#   two   two pipelines (two images, as two CI jobs) started together;
#   late  the same two, the second started P6_STAGGER s (default 1) after the
#         first, so that its farm-nodes sees the first one's RUN step (node
#         record load.builds) and farm-plan puts it elsewhere.
# Ratio = wall time of the pair (first start to last end) / the single one.
# Each run also says where the jobs went (shared a node or spread). On the
# lab every node is the same 2-core machine: spreading cannot add cores, so
# the ratio for CPU-bound steps says more about this machine than about
# placement; the placement columns say whether the runs spread. So each run
# also measures what the machine spent (cpu_busy: every core, the nodes'
# services and builds included): two pipelines cannot end before the
# machine has done the work of both, so max(one, busy of two / cores) / one
# is the floor of the ratio on this machine, wherever the jobs go.

# p6_pair ID STAGGER N NONCE: two pipelines, the second STAGGER s later;
# prints the pair's wall time.
p6_pair() {
	local id=$1 stagger=$2 n=$3 nonce=$4 t0 pids=()
	t0=$EPOCHREALTIME
	pipeline "$id-a" lab-1,lab-2,lab-3 linux/amd64 "localhost/farm-bench/p6-$id-a" "$ROOT/bench/lib/count" \
		--no-cache --build-arg "N=$n" --build-arg "NONCE=$nonce-a" &
	pids+=($!)
	sleep "$stagger"
	pipeline "$id-b" lab-1,lab-2,lab-3 linux/amd64 "localhost/farm-bench/p6-$id-b" "$ROOT/bench/lib/count" \
		--no-cache --build-arg "N=$n" --build-arg "NONCE=$nonce-b" &
	pids+=($!)
	wait "${pids[@]}" || true
	if ! pipeline_ok "$id-a" 1 || ! pipeline_ok "$id-b" 1; then
		warn "$id: a pipeline made no list (see $OUT/runs/$id-*.log)"
		return 1
	fi
	calc "$EPOCHREALTIME - $t0"
}

# p6_where ID: "lab-1+lab-1 (shared)" or "lab-1+lab-3 (spread)".
p6_where() {
	local a b
	a=$(jq -r 'select(.kind == "image") | .node' "$OUT/runs/$1-a.images.jsonl")
	b=$(jq -r 'select(.kind == "image") | .node' "$OUT/runs/$1-b.images.jsonl")
	if [[ $a == "$b" ]]; then echo "$a+$b (shared)"; else echo "$a+$b (spread)"; fi
}

bench_P6() {
	local secs=${P6_SECONDS:-3} stagger=${P6_STAGGER:-1} n r t nonce
	local one=() two=() late=() r_two=() r_late=() where_two=() where_late=() loads=()
	local busy_one=() busy_two=() floor=() b0 cores
	cores=$(nproc)
	n=$(iters amd64 "$secs")
	say "N=$n (amd64 about ${secs} s), $RUNS runs, stagger ${stagger} s"
	loads+=("$(load1)")
	for ((r = 1; r <= RUNS; r++)); do
		nonce=$(nonce)
		b0=$(cpu_busy)
		measure_pipeline t "p6-one-$r" 1 lab-1,lab-2,lab-3 linux/amd64 "localhost/farm-bench/p6-one-$r" \
			"$ROOT/bench/lib/count" --no-cache --build-arg "N=$n" --build-arg "NONCE=$nonce" || return 1
		one+=("$t") busy_one+=("$(calc "$(cpu_busy) - $b0")")
		b0=$(cpu_busy)
		t=$(p6_pair "p6-two-$r" 0 "$n" "$nonce") || return 1
		busy_two+=("$(calc "$(cpu_busy) - $b0")")
		floor+=("$(calc "(${busy_two[-1]} / $cores > ${one[-1]} ? ${busy_two[-1]} / $cores : ${one[-1]}) / ${one[-1]}")")
		two+=("$t") r_two+=("$(calc "$t / ${one[-1]}")") where_two+=("$(p6_where "p6-two-$r")")
		t=$(p6_pair "p6-late-$r" "$stagger" "$n" "$nonce") || return 1
		late+=("$t") r_late+=("$(calc "$t / ${one[-1]}")") where_late+=("$(p6_where "p6-late-$r")")
		say "run $r: one $(f2 "${one[-1]}") s (machine busy $(f2 "${busy_one[-1]}") CPU-s); two together $(f2 "${busy_two[-1]}") CPU-s, $(f2 "${two[-1]}") s (${where_two[-1]}); second ${stagger} s later $(f2 "${late[-1]}") s (${where_late[-1]})"
	done
	loads+=("$(load1)")
	md "Farm lab (lab-1..3, one 2-core machine), one amd64 CPU-bound step (N=$n, about ${secs} s) per pipeline, --no-cache, unique NONCE; $RUNS interleaved runs, median (per-run values). Pair time: first start to last end."
	md ""
	md "| measurement | median s | runs | where the two jobs went |" "|---|---:|---|---|"
	md "| one pipeline | $(f2 "$(median "${one[@]}")") | $(runs_list "${one[@]}") | |"
	md "| two started together | $(f2 "$(median "${two[@]}")") | $(runs_list "${two[@]}") | $(join_by ' / ' "${where_two[@]}") |"
	md "| **two together / one** | **$(f2 "$(median "${r_two[@]}")")** | $(runs_list "${r_two[@]}") | |"
	md "| machine CPU busy, one pipeline (CPU-s, all $cores cores) | $(f2 "$(median "${busy_one[@]}")") | $(runs_list "${busy_one[@]}") | |"
	md "| machine CPU busy, two together (CPU-s) | $(f2 "$(median "${busy_two[@]}")") | $(runs_list "${busy_two[@]}") | |"
	md "| floor of two / one on this machine: max(one, busy of two / $cores) / one | $(f2 "$(median "${floor[@]}")") | $(runs_list "${floor[@]}") | |"
	md "| second started ${stagger} s later | $(f2 "$(median "${late[@]}")") | $(runs_list "${late[@]}") | $(join_by ' / ' "${where_late[@]}") |"
	md "| two, staggered / one | $(f2 "$(median "${r_late[@]}")") | $(runs_list "${r_late[@]}") | |"
	md "| 1-min load average before / after | | $(join_by ' / ' "${loads[@]}") | |"
	md ""
	target "two pipelines together / one (lab)" "$(f2 "$(median "${r_two[@]}")")" le 1.15
	info "two pipelines, 2nd ${stagger} s later / one" "$(f2 "$(median "${r_late[@]}")")"
	info "floor of two / one on $cores cores (CPU)" "$(f2 "$(median "${floor[@]}")")"
}
