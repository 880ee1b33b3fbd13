# shellcheck shell=bash
# B4 rebuild: the same pipeline twice, nothing changed.
#
# On lab-1..lab-3, linux/amd64 + linux/arm64, a CPU-bound step on the slowest
# node (arm64, emulated) of B4_SECONDS by the calibration (default 24 s, which
# makes >= 20 s in a build). Per run, with a NONCE new to the whole farm (so
# the first build is cold everywhere):
#   first     the pipeline, cold
#   second    the same pipeline again: the sticky plan sends each platform to
#             the node that built it, whose layer cache answers every step,
#             and the image is already local ("nothing to transfer", record
#             "transfer":"none")
#   shuffled  the same again, but the plan rotated (lab-1 -> lab-2 -> lab-3 ->
#             lab-1) so each platform lands on a node that has not built it:
#             what a non-sticky scheduler would cost
# second/first target <= 0.2; shuffled/first is the contrast.

B4_NODES=lab-1,lab-2,lab-3

# rotate_plan: job records in, each job moved to the next node of lab-1..3
# (taken from the job's own alternatives, which list every capable node).
rotate_plan() {
	jq -c 'if .kind == "job" then
		(.node.name | capture("lab-(?<i>[0-9]+)").i | tonumber) as $i
		| ("lab-" + (($i % 3) + 1 | tostring)) as $next
		| ([.node] + .alternatives) as $all
		| .node = ($all[] | select(.name == $next))
		| .alternatives = [$all[] | select(.name != $next)]
	else . end'
}

bench_B4() {
	local dir=$ROOT/bench/lib/count secs=${B4_SECONDS:-24} n r t nc tag
	n=$(iters arm64 "$secs")
	say "N=$n (arm64 about ${secs} s), $RUNS runs"
	local first=() second=() shuffled=() r2=() rs=() lines=() checks=()
	local loads=()
	for ((r = 1; r <= RUNS; r++)); do
		loads+=("$(load1)")
		nc=$(nonce)
		tag=$BENCH_REPO/b4:$r
		local args=(--build-arg "N=$n" --build-arg "NONCE=$nc")
		timeit t pipeline "b4-first-$r" "$B4_NODES" linux/amd64,linux/arm64 "$tag" "$dir" "${args[@]}" || warn "first run $r failed"
		pipeline_ok "b4-first-$r" 2 || { warn "first run $r: no manifest of 2 images"; return 1; }
		first+=("$t")
		timeit t pipeline "b4-second-$r" "$B4_NODES" linux/amd64,linux/arm64 "$tag" "$dir" "${args[@]}" || warn "second run $r failed"
		pipeline_ok "b4-second-$r" 2 || { warn "second run $r: no manifest of 2 images"; return 1; }
		second+=("$t")
		PLAN_FILTER=rotate_plan timeit t pipeline "b4-shuffled-$r" "$B4_NODES" linux/amd64,linux/arm64 "$tag" "$dir" "${args[@]}" ||
			warn "shuffled run $r failed"
		pipeline_ok "b4-shuffled-$r" 2 || { warn "shuffled run $r: no manifest of 2 images"; return 1; }
		shuffled+=("$t")
		r2+=("$(calc "${second[-1]} / ${first[-1]}")")
		rs+=("$(calc "${shuffled[-1]} / ${first[-1]}")")

		# Did the second run do what it should: same nodes, no transfer?
		local p1=$OUT/runs/b4-first-$r.images.jsonl p2=$OUT/runs/b4-second-$r.images.jsonl ps=$OUT/runs/b4-shuffled-$r.images.jsonl
		local place1 place2 places none logged
		place1=$(jq -r 'select(.kind == "image") | "\(.platform)@\(.node)"' "$p1" | sort | tr '\n' ' ')
		place2=$(jq -r 'select(.kind == "image") | "\(.platform)@\(.node)"' "$p2" | sort | tr '\n' ' ')
		places=$(jq -r 'select(.kind == "image") | "\(.platform)@\(.node)"' "$ps" | sort | tr '\n' ' ')
		none=$(jq -s '[.[] | select(.kind == "image") | .transfer == "none"] | all' "$p2")
		logged=$(grep -c 'nothing to transfer' "$OUT/runs/b4-second-$r.log" || true)
		checks+=("- run $r: first on ${place1}, second on ${place2}(same nodes: $([[ $place1 == "$place2" ]] && echo yes || echo NO)), every second-run record \"transfer\":\"none\": $none, \"nothing to transfer\" logged $logged times; shuffled on ${places}")
		lines+=("- first run $r ($(f2 "${first[-1]}") s): $(breakdown "b4-first-$r")"
			"- second run $r ($(f2 "${second[-1]}") s): $(breakdown "b4-second-$r")"
			"- shuffled run $r ($(f2 "${shuffled[-1]}") s): $(breakdown "b4-shuffled-$r")")
		say "run $r: first $(f2 "${first[-1]}") s, second $(f2 "${second[-1]}") s, shuffled $(f2 "${shuffled[-1]}") s"
	done

	md "Pipeline on $B4_NODES, linux/amd64 + linux/arm64, CPU-bound step (N=$n; arm64 emulated), layer caches on; each run uses a NONCE new to the farm, so \"first\" is cold. $RUNS runs, median (per-run values)."
	md ""
	md "| measurement | median s | runs |" "|---|---:|---|"
	md "| first (cold) | $(f2 "$(median "${first[@]}")") | $(runs_list "${first[@]}") |"
	md "| second, same pipeline (sticky plan) | $(f2 "$(median "${second[@]}")") | $(runs_list "${second[@]}") |"
	md "| shuffled: same, plan rotated to nodes that did not build it | $(f2 "$(median "${shuffled[@]}")") | $(runs_list "${shuffled[@]}") |"
	md "| 1-min load average at the start of the run | | $(join_by ' / ' "${loads[@]}") |"
	md "| **second/first** | **$(f2 "$(median "${r2[@]}")")** | $(runs_list "${r2[@]}") |"
	md "| **shuffled/first** | **$(f2 "$(median "${rs[@]}")")** | $(runs_list "${rs[@]}") |"
	md "" "Cache and pull-back checks:" "" "${checks[@]}" ""
	md "Where the time went:" "" "${lines[@]}" ""
	target "rebuild second/first (sticky)" "$(f2 "$(median "${r2[@]}")")" le 0.2
	info "rebuild shuffled/first (contrast)" "$(f2 "$(median "${rs[@]}")")"
}
