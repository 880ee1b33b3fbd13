# shellcheck shell=bash
# B1 farm vs local emulation.
#
# A CPU-bound RUN step (arm64 emulated; B1_SECONDS, default 12, gives >= 10 s) for
# linux/amd64 + linux/arm64, in one run, side by side:
#   farm    the whole pipeline on lab-1,lab-2
#   local   podman build --platform linux/amd64,linux/arm64 --manifest (what a
#           user does instead: podman builds the platforms one after the other)
#   T_i     each platform alone on a node (podman --url unix://NODE-SOCK build),
#           for the bound
# On one machine the farm cannot remove emulation, only run platforms side by
# side: bound = max(max T_i, sum T_i / cores). Ratios are computed per run
# (each run's four measurements are close in time) and the median is reported.

bench_B1() {
	local dir=$ROOT/bench/lib/count secs=${B1_SECONDS:-12}
	local n_amd n_arm cores
	cores=$(nproc)
	# One N for both platforms (the same Containerfile, as a user would have):
	# tuned so the slowest, emulated arm64, takes about $secs by the calibration,
	# which runs ~15% fast compared to a build: 12 s gives a >= 10 s step.
	n_arm=$(iters arm64 "$secs")
	n_amd=$n_arm
	say "N=$n_arm (arm64 about ${secs} s), $RUNS runs"
	local farm=() local_=() ta=() tb=() bound=() r_local=() r_bound=() r_max=() lines=()
	local r id t tag loads=()
	for ((r = 1; r <= RUNS; r++)); do
		loads+=("$(load1)")
		id=b1-farm-$r
		tag=$BENCH_REPO/b1:farm-$r
		measure_pipeline t "$id" 2 lab-1,lab-2 linux/amd64,linux/arm64 "$tag" "$dir" \
			--no-cache --build-arg "N=$n_arm" --build-arg "NONCE=$(nonce)" || return 1
		farm+=("$t")
		lines+=("- farm run $r ($(f2 "$t") s): $(breakdown "$id")")

		timeit t podman build --platform linux/amd64,linux/arm64 --manifest "$BENCH_REPO/b1:local-$r" \
			--no-cache --build-arg "N=$n_arm" --build-arg "NONCE=$(nonce)" "$dir" \
			>"$OUT/runs/b1-local-$r.log" 2>&1 || { warn "local build failed"; return 1; }
		local_+=("$t")

		timeit t node_podman lab-1 build --platform linux/amd64 -t "$BENCH_REPO/b1:single-amd64-$r" \
			--no-cache --build-arg "N=$n_amd" --build-arg "NONCE=$(nonce)" "$dir" \
			>"$OUT/runs/b1-amd64-$r.log" 2>&1 || { warn "single amd64 build failed"; return 1; }
		ta+=("$t")
		timeit t node_podman lab-2 build --platform linux/arm64 -t "$BENCH_REPO/b1:single-arm64-$r" \
			--no-cache --build-arg "N=$n_arm" --build-arg "NONCE=$(nonce)" "$dir" \
			>"$OUT/runs/b1-arm64-$r.log" 2>&1 || { warn "single arm64 build failed"; return 1; }
		tb+=("$t")

		bound+=("$(awk -v a="${ta[-1]}" -v b="${tb[-1]}" -v c="$cores" \
			'BEGIN { m = (a > b) ? a : b; s = (a + b) / c; printf "%.3f", ((m > s) ? m : s) }')")
		r_local+=("$(calc "${farm[-1]} / ${local_[-1]}")")
		r_bound+=("$(calc "${farm[-1]} / ${bound[-1]}")")
		r_max+=("$(awk -v f="${farm[-1]}" -v a="${ta[-1]}" -v b="${tb[-1]}" 'BEGIN { printf "%.3f", f / ((a > b) ? a : b) }')")
		say "run $r: farm $(f2 "${farm[-1]}") s, local $(f2 "${local_[-1]}") s, amd64 $(f2 "${ta[-1]}") s, arm64 $(f2 "${tb[-1]}") s, bound $(f2 "${bound[-1]}") s"
	done

	md "CPU-bound RUN step (busybox sh counts to N=$n_arm; arm64 under qemu), linux/amd64 + linux/arm64, --no-cache, unique NONCE build-arg per build; $RUNS runs, median (per-run values)."
	md ""
	md "| measurement | median s | runs |" "|---|---:|---|"
	md "| farm: farm-nodes --node lab-1,lab-2 \\| farm-plan \\| farm-build \\| farm-manifest | $(f2 "$(median "${farm[@]}")") | $(runs_list "${farm[@]}") |"
	md "| local: podman build --platform linux/amd64,linux/arm64 --manifest | $(f2 "$(median "${local_[@]}")") | $(runs_list "${local_[@]}") |"
	md "| T_amd64: podman --url unix://lab-1 build --platform linux/amd64 | $(f2 "$(median "${ta[@]}")") | $(runs_list "${ta[@]}") |"
	md "| T_arm64: podman --url unix://lab-2 build --platform linux/arm64 | $(f2 "$(median "${tb[@]}")") | $(runs_list "${tb[@]}") |"
	md "| bound = max(max T_i, sum T_i / $cores cores) | $(f2 "$(median "${bound[@]}")") | $(runs_list "${bound[@]}") |"
	md "| **farm/local** | **$(f2 "$(median "${r_local[@]}")")** | $(runs_list "${r_local[@]}") |"
	md "| 1-min load average at the start of the run ($cores cores) | | $(join_by ' / ' "${loads[@]}") |"
	md "| **farm/bound** | **$(f2 "$(median "${r_bound[@]}")")** | $(runs_list "${r_bound[@]}") |"
	md "| **P2: farm / max T_i** | **$(f2 "$(median "${r_max[@]}")")** | $(runs_list "${r_max[@]}") |"
	md ""
	md "Where the farm's time went (offsets from the start of the pipeline; build/transfer seconds from the image records):"
	md ""
	md "${lines[@]}"
	md ""
	info "farm/local (no target; < 1 means the farm wins)" "$(f2 "$(median "${r_local[@]}")")"
	target "farm/bound" "$(f2 "$(median "${r_bound[@]}")")" le 1.10
	target "P2: farm / max T_i" "$(f2 "$(median "${r_max[@]}")")" le 1.05
}
