# shellcheck shell=bash
# B2 overhead vs plain remote.
#
# One platform (linux/amd64), one node (lab-1), side by side in each run:
#   farm   farm-nodes --node lab-1 | farm-plan | farm-build | farm-manifest
#   plain  podman --connection lab-1 build ... && podman --connection lab-1 save IMG | podman load
# first with a CPU-bound step of about B2_SECONDS (default 11 s): the ratio
# farm/plain says what the pipeline costs on a real build; then with a trivial
# Containerfile: farm - plain is the pipeline's fixed overhead in seconds.

# plain_remote TAG DIR [build flags...]: what a user does without farm.
plain_remote() {
	local tag=$1 dir=$2
	shift 2
	podman --connection lab-1 build --platform linux/amd64 -t "$tag" "$@" "$dir" &&
		podman --connection lab-1 save "$tag" | podman load
}

bench_B2() {
	local secs=${B2_SECONDS:-11} n r t id
	n=$(iters amd64 "$secs")
	say "N=$n (amd64 about ${secs} s), $RUNS runs"
	local farm=() plain=() ratio=() tfarm=() tplain=() over=() lines=()
	local loads=()
	for ((r = 1; r <= RUNS; r++)); do
		loads+=("$(load1)")
		id=b2-farm-$r
		measure_pipeline t "$id" 1 lab-1 linux/amd64 "$BENCH_REPO/b2:farm-$r" "$ROOT/bench/lib/count" \
			--no-cache --build-arg "N=$n" --build-arg "NONCE=$(nonce)" || return 1
		farm+=("$t")
		lines+=("- farm run $r ($(f2 "$t") s): $(breakdown "$id")")
		timeit t plain_remote "$BENCH_REPO/b2:plain-$r" "$ROOT/bench/lib/count" \
			--no-cache --build-arg "N=$n" --build-arg "NONCE=$(nonce)" \
			>"$OUT/runs/b2-plain-$r.log" 2>&1 || { warn "plain remote build failed"; return 1; }
		plain+=("$t")
		ratio+=("$(calc "${farm[-1]} / ${plain[-1]}")")

		id=b2-trivial-$r
		measure_pipeline t "$id" 1 lab-1 linux/amd64 "$BENCH_REPO/b2:trivial-farm-$r" "$ROOT/bench/lib/trivial" \
			--no-cache --build-arg "NONCE=$(nonce)" || return 1
		tfarm+=("$t")
		lines+=("- trivial farm run $r ($(f2 "$t") s): $(breakdown "$id")")
		timeit t plain_remote "$BENCH_REPO/b2:trivial-plain-$r" "$ROOT/bench/lib/trivial" \
			--no-cache --build-arg "NONCE=$(nonce)" \
			>"$OUT/runs/b2-trivial-plain-$r.log" 2>&1 || { warn "trivial plain build failed"; return 1; }
		tplain+=("$t")
		over+=("$(calc "${tfarm[-1]} - ${tplain[-1]}")")
		say "run $r: farm $(f2 "${farm[-1]}") s, plain $(f2 "${plain[-1]}") s; trivial: farm $(f2 "${tfarm[-1]}") s, plain $(f2 "${tplain[-1]}") s"
	done
	# The pieces of the fixed overhead, measured alone.
	local tn=() tp=()
	for ((r = 1; r <= RUNS; r++)); do
		timeit t farm-nodes --node lab-1 >"$OUT/runs/b2-nodes.jsonl" 2>/dev/null || true
		tn+=("$t")
		timeit t farm-plan --platforms linux/amd64 <"$OUT/runs/b2-nodes.jsonl" >/dev/null 2>&1 || true
		tp+=("$t")
	done

	md "One platform (linux/amd64) on one node (lab-1), --no-cache, unique NONCE per build; $RUNS runs, median (per-run values)."
	md "plain = \`podman --connection lab-1 build\` then \`podman --connection lab-1 save IMG | podman load\`."
	md ""
	md "| measurement | median s | runs |" "|---|---:|---|"
	md "| farm pipeline, CPU-bound step (N=$n) | $(f2 "$(median "${farm[@]}")") | $(runs_list "${farm[@]}") |"
	md "| plain remote, same | $(f2 "$(median "${plain[@]}")") | $(runs_list "${plain[@]}") |"
	md "| **farm/plain** | **$(f2 "$(median "${ratio[@]}")")** | $(runs_list "${ratio[@]}") |"
	md "| farm pipeline, trivial Containerfile | $(f2 "$(median "${tfarm[@]}")") | $(runs_list "${tfarm[@]}") |"
	md "| plain remote, trivial | $(f2 "$(median "${tplain[@]}")") | $(runs_list "${tplain[@]}") |"
	md "| **fixed overhead = farm - plain (trivial)** | **$(f2 "$(median "${over[@]}")")** | $(runs_list "${over[@]}") |"
	md "| 1-min load average at the start of the run | | $(join_by ' / ' "${loads[@]}") |"
	md "| of which farm-nodes --node lab-1 alone | $(f2 "$(median "${tn[@]}")") | $(runs_list "${tn[@]}") |"
	md "| of which farm-plan alone | $(f2 "$(median "${tp[@]}")") | $(runs_list "${tp[@]}") |"
	md ""
	md "Where the pipeline's time went:" "" "${lines[@]}" ""
	target "farm/plain (one node, amd64)" "$(f2 "$(median "${ratio[@]}")")" le 1.05
	info "fixed overhead, trivial build (s)" "$(f2 "$(median "${over[@]}")")"
}
