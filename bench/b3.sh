# shellcheck shell=bash
# B3 context shipping: a 200 MB context, half compressible text (Go sources),
# half random blobs.
#
#   throughput  lib/buildctx's BenchmarkCompress (walk + tar + compress of its
#               own generated 200 MB mixed context): none, compress/gzip and
#               pgzip at BestSpeed and Default; target pgzip >= 1.8x gzip
#   levels      bench/context (another engineer's program) on our context
#   to a node   farm-build with the 200 MB context minus farm-build with an
#               empty one (a trivial RUN step, so the difference is archive +
#               upload + the node unpacking it); and, for the alternatives,
#               the same tar streamed over the node's ssh uncompressed and
#               through single-threaded gzip -1; and what a user does instead:
#               `podman --connection lab-1 build` (podman's remote client tars
#               and compresses with compress/gzip at the default level), the
#               same difference with and without the context.

CTX_CACHE=${BENCH_CACHE:-/tmp/farm-bench-cache}

# make_context DIR MB: about MB/2 of Go sources and MB/2 of random files. Kept
# between runs (it is the same context every time; generating it costs ~10 s).
make_context() {
	local dir=$1 mb=$2 half f
	[[ -f $dir/.complete-$mb ]] && return
	rm -rf "$dir"
	mkdir -p "$dir/src" "$dir/assets"
	half=$((mb * 1000000 / 2))
	# Text: real source code compresses like real source code. GOROOT/src
	# holds ~100 MB of .go files; copy passes until half is reached.
	local pass=0 total=0 size
	while ((total < half)); do
		pass=$((pass + 1))
		while IFS= read -r -d '' f; do
			size=$(stat -c %s "$f")
			mkdir -p "$dir/src/$pass/$(dirname "${f#"$GOROOT_SRC"/}")"
			cp "$f" "$dir/src/$pass/${f#"$GOROOT_SRC"/}"
			total=$((total + size))
			((total < half)) || break
		done < <(find "$GOROOT_SRC" -name '*.go' -type f -print0 | sort -z)
	done
	# Random: 256 KiB .. 4 MiB blobs, like images or archives (incompressible).
	local i=0 n
	total=0
	while ((total < half)); do
		n=$(((256 + (i * 977) % 3840) * 1024))
		head -c "$n" /dev/urandom >"$dir/assets/blob$i.bin"
		total=$((total + n))
		i=$((i + 1))
	done
	cp "$ROOT/bench/lib/trivial/Containerfile" "$dir/Containerfile"
	touch "$dir/.complete-$mb"
}

# ssh_node CMD: a command on lab-1's sshd, as farm's own connection reaches it.
ssh_node() {
	ssh -i "$FARM_LAB_KEY" -p "$FARM_LAB_1_PORT" -o BatchMode=yes -o StrictHostKeyChecking=yes root@127.0.0.1 "$@"
}
stream_plain() { tar -C "$1" -cf - . | ssh_node 'cat >/dev/null'; }
stream_gzip()  { tar -C "$1" -cf - . | gzip -1 | ssh_node 'cat >/dev/null'; }
podman_remote() { podman --connection lab-1 build --platform linux/amd64 --no-cache "$@"; }

bench_B3() {
	GOROOT_SRC=$(go env GOROOT)/src
	local ctx=$CTX_CACHE/ctx200 empty=$CTX_CACHE/ctx-empty
	say "context: $ctx"
	make_context "$ctx" 200
	mkdir -p "$empty"
	cp "$ROOT/bench/lib/trivial/Containerfile" "$empty/Containerfile"
	local ctx_mb
	ctx_mb=$(du -sb --exclude=.complete-200 "$ctx" | awk '{ printf "%.0f", $1 / 1e6 }')

	# --- throughput: the Go benchmark, one iteration per -count.
	say "BenchmarkCompress (-benchtime 2x -count $RUNS)"
	local out=$OUT/runs/b3-compress.txt
	go test -tags "$GOTAGS" -run '^$' -bench '^BenchmarkCompress$' -benchtime 2x -count "$RUNS" \
		-cpuprofile "$OUT/b3.cpu.prof" -o "$OUT/buildctx.test" ./lib/buildctx/ >"$out" 2>&1 ||
		{ cat "$out" >&2; return 1; }
	local c mbs size cpu
	declare -A MBS SIZE CPU MBSRUNS
	# field COMPRESSOR UNIT: the values before UNIT on that sub-benchmark's lines:
	# "BenchmarkCompress/pgzip-BestSpeed-2  1  1234 ns/op  170.00 MB/s  880 cpu-ms/op  49.6 %size"
	field() { awk -v c="BenchmarkCompress/$1-" -v u="$2" 'index($1, c) == 1 { for (i = 1; i < NF; i++) if ($(i + 1) == u) print $i }' "$out"; }
	for c in none gzip-BestSpeed gzip-Default pgzip-BestSpeed pgzip-Default; do
		mapfile -t mbs < <(field "$c" MB/s)
		mapfile -t size < <(field "$c" %size)
		mapfile -t cpu < <(field "$c" cpu-ms/op)
		((${#mbs[@]})) || { cat "$out" >&2; return 1; }
		MBS[$c]=$(median "${mbs[@]}") SIZE[$c]=$(median "${size[@]}") CPU[$c]=$(median "${cpu[@]}")
		MBSRUNS[$c]=$(runs_list "${mbs[@]}")
	done
	local r1 r6
	r1=$(calc "${MBS[pgzip-BestSpeed]} / ${MBS[gzip-BestSpeed]}")
	r6=$(calc "${MBS[pgzip-Default]} / ${MBS[gzip-Default]}")

	# --- levels on our own context (bench/context; its table verbatim).
	say "bench/context on $ctx"
	local levels_out=$OUT/runs/b3-levels.txt
	go run ./bench/context -dir "$ctx" -levels 1,6 -runs 2 -nodes 1 -links 100,1000,10000 >"$levels_out" 2>&1 ||
		warn "bench/context failed (see $levels_out)"

	# --- wall time to a node, side by side per run.
	say "wall time to a node, $RUNS runs"
	local plan=$OUT/runs/b3-plan.jsonl
	farm-nodes --node lab-1 2>/dev/null | farm-plan --platforms linux/amd64 >"$plan" 2>/dev/null
	local full=() base=() diff=() ready=() plain=() gz=() pfull=() pbase=() pdiff=() t r log t0 ts bytes=""
	local loads=()
	for ((r = 1; r <= RUNS; r++)); do
		loads+=("$(load1)")
		log=$OUT/runs/b3-full-$r.log
		t0=$EPOCHREALTIME
		timeit t farm-build -t "$BENCH_REPO/b3:full-$r" --no-cache --build-arg "NONCE=$(nonce)" "$ctx" \
			<"$plan" >/dev/null 2>"$log" || { warn "farm-build with the context failed"; cat "$log" >&2; return 1; }
		full+=("$t")
		ts=$(sed -n 's/^time=\([^ ]*\) .*msg="build context ready".*/\1/p' "$log" | head -1)
		bytes=$(sed -n 's/.*msg="build context ready".* bytes=\([0-9]*\).*/\1/p' "$log" | head -1)
		ready+=("$(calc "$(iso_to_epoch "$ts") - $t0")")
		timeit t farm-build -t "$BENCH_REPO/b3:empty-$r" --no-cache --build-arg "NONCE=$(nonce)" "$empty" \
			<"$plan" >/dev/null 2>"$OUT/runs/b3-empty-$r.log" || { warn "farm-build, empty context, failed"; return 1; }
		base+=("$t")
		diff+=("$(calc "${full[-1]} - ${base[-1]}")")
		timeit t podman_remote -t "$BENCH_REPO/b3:podman-full-$r" --build-arg "NONCE=$(nonce)" "$ctx" \
			>"$OUT/runs/b3-podman-full-$r.log" 2>&1 || { warn "podman remote build with the context failed"; return 1; }
		pfull+=("$t")
		timeit t podman_remote -t "$BENCH_REPO/b3:podman-empty-$r" --build-arg "NONCE=$(nonce)" "$empty" \
			>"$OUT/runs/b3-podman-empty-$r.log" 2>&1 || { warn "podman remote build, empty context, failed"; return 1; }
		pbase+=("$t")
		pdiff+=("$(calc "${pfull[-1]} - ${pbase[-1]}")")
		timeit t stream_plain "$ctx" || { warn "tar | ssh failed"; return 1; }
		plain+=("$t")
		timeit t stream_gzip "$ctx" || { warn "tar | gzip -1 | ssh failed"; return 1; }
		gz+=("$t")
		say "run $r: farm-build +$(f2 "${diff[-1]}") s for the context (ready after $(f2 "${ready[-1]}") s); podman remote +$(f2 "${pdiff[-1]}") s; tar|ssh $(f2 "${plain[-1]}") s; tar|gzip -1|ssh $(f2 "${gz[-1]}") s"
	done

	md "Context: $ctx_mb MB ($(find "$ctx" -type f | wc -l) files): half Go sources from GOROOT/src, half random blobs of 256 KiB..4 MiB."
	md "" "**Throughput** (lib/buildctx BenchmarkCompress: walk + tar + compress of its own generated ~200 MB mixed context, written to io.Discard; \`-benchtime 2x -count $RUNS\`, median):" ""
	md "| compressor | MB/s of tar | runs | compressed size | CPU ms per op |" "|---|---:|---|---:|---:|"
	for c in none gzip-BestSpeed gzip-Default pgzip-BestSpeed pgzip-Default; do
		md "| $c | $(f2 "${MBS[$c]}") | ${MBSRUNS[$c]} | ${SIZE[$c]} % | ${CPU[$c]} |"
	done
	md "" "- pgzip/gzip throughput at BestSpeed (farm's default level): **$(f2 "$r1")x**; at Default (6): **$(f2 "$r6")x**"
	md "" "**Levels on this context** (\`go run ./bench/context -dir CTX -levels 1,6 -runs 2\`; \"total @L\" = archive time + one upload at L Mbit/s):" "" '```'
	md "$(cat "$levels_out")" '```'
	md "" "**Wall time to a node** (lab-1 over its ssh connection on loopback; $RUNS runs, median):" ""
	md "| what | median s | runs |" "|---|---:|---|"
	md "| farm-build, $ctx_mb MB context, trivial RUN | $(f2 "$(median "${full[@]}")") | $(runs_list "${full[@]}") |"
	md "| farm-build, empty context, same RUN | $(f2 "$(median "${base[@]}")") | $(runs_list "${base[@]}") |"
	md "| **context cost in farm-build (pgzip level 1: archive + upload + unpack on the node)** | **$(f2 "$(median "${diff[@]}")")** | $(runs_list "${diff[@]}") |"
	md "| of which archived (\"build context ready\", ${bytes:-?} bytes compressed) | $(f2 "$(median "${ready[@]}")") | $(runs_list "${ready[@]}") |"
	md "| podman --connection lab-1 build, same context (client: tar + compress/gzip level 6, one thread) | $(f2 "$(median "${pfull[@]}")") | $(runs_list "${pfull[@]}") |"
	md "| podman --connection lab-1 build, empty context | $(f2 "$(median "${pbase[@]}")") | $(runs_list "${pbase[@]}") |"
	md "| **context cost in podman remote build** | **$(f2 "$(median "${pdiff[@]}")")** | $(runs_list "${pdiff[@]}") |"
	md "| uncompressed: tar \\| ssh node 'cat >/dev/null' | $(f2 "$(median "${plain[@]}")") | $(runs_list "${plain[@]}") |"
	md "| single-threaded gzip: tar \\| gzip -1 \\| ssh node 'cat >/dev/null' | $(f2 "$(median "${gz[@]}")") | $(runs_list "${gz[@]}") |"
	md "| 1-min load average at the start of the run | | $(join_by ' / ' "${loads[@]}") |"
	md "" "farm-build's context throughput to one node: **$(f2 "$(calc "$ctx_mb / $(median "${diff[@]}")")") MB/s**; podman remote build: $(f2 "$(calc "$ctx_mb / $(median "${pdiff[@]}")")") MB/s (farm/podman time: **$(f2 "$(calc "$(median "${diff[@]}") / $(median "${pdiff[@]}")")")**); uncompressed over ssh: $(f2 "$(calc "$ctx_mb / $(median "${plain[@]}")")") MB/s; gzip -1 over ssh: $(f2 "$(calc "$ctx_mb / $(median "${gz[@]}")")") MB/s."
	# Level 6 pays off below the link speed at which the bytes it saves take as
	# long to send as the extra CPU time it costs (per upload).
	# Per 200 MB of tar: extra seconds of level 6 and the MB it saves; level 6
	# wins on links slower than saved*8/extra Mbit/s.
	local extra_s saved_mb even
	extra_s=$(awk -v a="${MBS[pgzip-Default]}" -v b="${MBS[pgzip-BestSpeed]}" 'BEGIN { printf "%.3f", 200 / a - 200 / b }')
	saved_mb=$(calc "2 * (${SIZE[pgzip-BestSpeed]} - ${SIZE[pgzip-Default]})")
	even=$(awk -v s="$saved_mb" -v e="$extra_s" 'BEGIN { printf "%.0f", ((e > 0) ? s * 8 / e : 0) }')
	md "" "Default level: per 200 MB of tar, pgzip Default costs $(f2 "$extra_s") s more than BestSpeed (wall, $(nproc) cores) and saves $(f2 "$saved_mb") MB; it pays off only where the upload runs slower than **$even Mbit/s** (divide by the number of nodes sharing this machine's uplink). The uncompressed tar over ssh shows what the link does here; BestSpeed, farm's default, keeps compression off the critical path on LANs and loopback while still halving the text."
	md "" "CPU profile of BenchmarkCompress (all compressors; \`go tool pprof -top\`): where the CPU goes; the wall-clock ratio also depends on whether pgzip gets both cores (compare CPU ms with wall time above)." "" '```'
	md "$(go tool pprof -top -nodecount=12 "$OUT/buildctx.test" "$OUT/b3.cpu.prof" 2>/dev/null | sed -n '/^Showing/,$p' | head -16)" '```' ""
	target "pgzip/gzip throughput (BestSpeed)" "$(f2 "$r1")" ge 1.8
	info "pgzip/gzip throughput (Default level)" "$(f2 "$r6")"
	info "context to a node, farm-build (s)" "$(f2 "$(median "${diff[@]}")")"
	info "context to a node, podman remote (s)" "$(f2 "$(median "${pdiff[@]}")")"
	info "context, uncompressed tar|ssh (s)" "$(f2 "$(median "${plain[@]}")")"
	info "context, tar|gzip -1|ssh (s)" "$(f2 "$(median "${gz[@]}")")"
}
