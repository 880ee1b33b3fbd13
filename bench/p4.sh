# shellcheck shell=bash
# P4 farm-wide layer cache: a rebuild the plan sends to other nodes.
#
# On lab-1..lab-3, linux/amd64 + linux/arm64, B4's CPU-bound step (about
# P4_SECONDS on arm64, emulated; default 24 s) in bench/lib/p4/Containerfile,
# on a base image every node pulled from the lab registry. Per run, with a
# NONCE new to the whole farm (the first build is cold everywhere):
#   first     the pipeline with --layer-cache farm: each node pushes its steps
#             to the transfer registry's layer cache
#   rotated   the same, the plan rotated (lab-1 -> lab-2 -> lab-3 -> lab-1,
#             B4's rotate_plan) so each platform lands on a node that has not
#             built it: the steps come from the farm's cache
#   node-only the same, rotated once more (to the third node, which has not
#             built it either), with --layer-cache node: each node's own
#             cache, what B4's "shuffled" measures
# rotated/first target <= 0.3; node-only/first is the contrast.

P4_NODES=lab-1,lab-2,lab-3
P4_BASE_REPO=farm-bench/p4-base

# p4_base: the lab imports localhost/busybox into each node on its own (a
# different image each time: the import's time stamp); give every node one
# base, as nodes that pull their FROM from a registry have.
p4_base() {
	local base=$FARM_LAB_REGISTRY/$P4_BASE_REPO arch n
	for arch in amd64 arm64; do
		node_podman lab-1 tag "localhost/busybox:$arch" "$base:$arch"
		node_podman lab-1 push -q --tls-verify=false "$base:$arch" >/dev/null
		for n in ${P4_NODES//,/ }; do
			node_podman "$n" pull -q --tls-verify=false --arch "$arch" "$base:$arch" >/dev/null
		done
	done
	echo "$base"
}

rotate_twice() { rotate_plan | rotate_plan; }

bench_P4() {
	local secs=${P4_SECONDS:-24} n r t nc tag base ctx
	n=$(iters arm64 "$secs")
	base=$(p4_base)
	say "N=$n (arm64 about ${secs} s), base $base, $RUNS runs"
	local first=() rotated=() nodeonly=() rr=() rn=() lines=() checks=() loads=()
	for ((r = 1; r <= RUNS; r++)); do
		loads+=("$(load1)")
		nc=$(nonce)
		tag=$BENCH_REPO/p4:$r
		ctx=$OUT/p4-context-$r
		mkdir -p "$ctx"
		cp bench/lib/p4/Containerfile "$ctx/"
		printf 'N=%s\nNONCE=%s\n' "$n" "$nc" >"$ctx/params"
		local args=(--build-arg "BASE=$base")
		measure_pipeline t "p4-first-$r" 2 "$P4_NODES" linux/amd64,linux/arm64 "$tag" "$ctx" "${args[@]}" --layer-cache farm ||
			{ warn "first run $r: no manifest of 2 images"; return 1; }
		first+=("$t")
		PLAN_FILTER=rotate_plan measure_pipeline t "p4-rotated-$r" 2 "$P4_NODES" linux/amd64,linux/arm64 "$tag" "$ctx" "${args[@]}" --layer-cache farm ||
			{ warn "rotated run $r: no manifest of 2 images"; return 1; }
		rotated+=("$t")
		PLAN_FILTER=rotate_twice measure_pipeline t "p4-nodeonly-$r" 2 "$P4_NODES" linux/amd64,linux/arm64 "$tag" "$ctx" "${args[@]}" --layer-cache node ||
			{ warn "node-only run $r: no manifest of 2 images"; return 1; }
		nodeonly+=("$t")
		rr+=("$(calc "${rotated[-1]} / ${first[-1]}")")
		rn+=("$(calc "${nodeonly[-1]} / ${first[-1]}")")

		# Did the rotated run use other nodes, and take its steps from the cache?
		local p1=$OUT/runs/p4-first-$r p2=$OUT/runs/p4-rotated-$r p3=$OUT/runs/p4-nodeonly-$r place1 place2 place3 pulled same
		place1=$(jq -r 'select(.kind == "image") | "\(.platform)@\(.node)"' "$p1.images.jsonl" | sort | tr '\n' ' ')
		place2=$(jq -r 'select(.kind == "image") | "\(.platform)@\(.node)"' "$p2.images.jsonl" | sort | tr '\n' ' ')
		place3=$(jq -r 'select(.kind == "image") | "\(.platform)@\(.node)"' "$p3.images.jsonl" | sort | tr '\n' ' ')
		pulled=$(grep -c 'Cache pulled from remote' "$p2.log" || true)
		same=$(jq -rs '[.[] | select(.kind == "image")] | sort_by(.platform) | map(.id) | join(",")' "$p1.images.jsonl" "$p2.images.jsonl" |
			awk -F, '{ print ($1 == $2 && $3 == $4) ? "yes" : "NO" }')
		checks+=("- run $r: first on ${place1}, rotated on ${place2}, node-only on ${place3}; rotated run: $pulled steps \"Cache pulled from remote\", same image IDs as the first: $same")
		lines+=("- first run $r ($(f2 "${first[-1]}") s): $(breakdown "p4-first-$r")"
			"- rotated run $r ($(f2 "${rotated[-1]}") s): $(breakdown "p4-rotated-$r")"
			"- node-only run $r ($(f2 "${nodeonly[-1]}") s): $(breakdown "p4-nodeonly-$r")")
		say "run $r: first $(f2 "${first[-1]}") s, rotated $(f2 "${rotated[-1]}") s, node-only $(f2 "${nodeonly[-1]}") s"
	done

	md "Pipeline on $P4_NODES, linux/amd64 + linux/arm64, CPU-bound step (N=$n; arm64 emulated) after a COPY of the run's parameters, on one base image every node pulled from the lab registry; each run uses a NONCE new to the farm, so \"first\" is cold. $RUNS runs, median (per-run values)."
	md ""
	md "| measurement | median s | runs |" "|---|---:|---|"
	md "| first (cold), --layer-cache farm | $(f2 "$(median "${first[@]}")") | $(runs_list "${first[@]}") |"
	md "| rotated plan (other nodes), --layer-cache farm | $(f2 "$(median "${rotated[@]}")") | $(runs_list "${rotated[@]}") |"
	md "| rotated again (third nodes), --layer-cache node | $(f2 "$(median "${nodeonly[@]}")") | $(runs_list "${nodeonly[@]}") |"
	md "| 1-min load average at the start of the run | | $(join_by ' / ' "${loads[@]}") |"
	md "| **rotated/first** | **$(f2 "$(median "${rr[@]}")")** | $(runs_list "${rr[@]}") |"
	md "| **node-only/first** | **$(f2 "$(median "${rn[@]}")")** | $(runs_list "${rn[@]}") |"
	md "" "Placement and cache checks:" "" "${checks[@]}" ""
	md "Where the time went:" "" "${lines[@]}" ""
	target "rebuild rotated/first (farm cache)" "$(f2 "$(median "${rr[@]}")")" le 0.3
	info "rebuild node-only/first (contrast)" "$(f2 "$(median "${rn[@]}")")"
}
