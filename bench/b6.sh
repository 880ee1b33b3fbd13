# shellcheck shell=bash
# B6 farm-plan at scale: lib/plan's BenchmarkPlan10kNodes64Platforms (10,000
# synthetic nodes, 64 platforms), run RUNS times (-count) with a CPU profile;
# the profile's top is always shown: cheap, and it says where the time goes.

bench_B6() {
	local prof=$OUT/b6.cpu.prof out=$OUT/runs/b6.txt
	go test -tags "$GOTAGS" -run '^$' -bench '^BenchmarkPlan10kNodes64Platforms$' -benchmem \
		-count "$RUNS" -cpuprofile "$prof" -o "$OUT/plan.test" ./lib/plan/ >"$out" 2>&1 ||
		{ cat "$out" >&2; return 1; }
	local ns=() x
	mapfile -t ns < <(awk '/^BenchmarkPlan10kNodes64Platforms/ { for (i = 1; i < NF; i++) if ($(i + 1) == "ns/op") print $i }' "$out")
	((${#ns[@]})) || { cat "$out" >&2; return 1; }
	local secs=()
	for x in "${ns[@]}"; do secs+=("$(calc "$x / 1e9")"); done
	local med
	med=$(median "${secs[@]}")
	md "\`go test -bench BenchmarkPlan10kNodes64Platforms -count $RUNS -cpuprofile\` in lib/plan: one Plan() over 10,000 node records for 64 platforms."
	md ""
	md "- seconds per plan, median: **$(awk -v x="$med" 'BEGIN { printf "%.3f", x }')** (runs: $(join_by ' / ' "${secs[@]}"))"
	md "- allocations: $(awk '/^BenchmarkPlan10kNodes64Platforms/ { for (i = 1; i < NF; i++) if ($(i + 1) == "B/op" || $(i + 1) == "allocs/op") printf "%s %s  ", $i, $(i + 1); print ""; exit }' "$out")"
	md "" "CPU profile, top functions (\`go tool pprof -top\`):" "" '```'
	md "$(go tool pprof -top -nodecount=12 "$OUT/plan.test" "$prof" 2>/dev/null | sed -n '/^Showing\|flat%/,$p' | head -16)"
	md '```'
	target "seconds per 10k x 64 plan" "$(awk -v x="$med" 'BEGIN { printf "%.3f", x }')" le 0.5
}
