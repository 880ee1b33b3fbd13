# shellcheck shell=bash
# P3 many files (issue #17).
#
# A context of P3_FILES (default 100,000) small files of about 3.9 KB (about
# 390 MB; half of each file is random base64, half repeated text, so gzip has
# work of both kinds), copied whole into the image (COPY . /ctx, --no-cache),
# one platform (linux/amd64) on lab-1, side by side in each run:
#   farm    farm-nodes --node lab-1 | farm-plan | farm-build | farm-manifest
#   plain   podman --connection lab-1 build && podman --connection lab-1 save | podman load
#   local   podman build here (no node, no link: the floor for this machine)
# Target: farm / plain <= 0.5. The context is generated once into
# $BENCH_CACHE/p3-FILES (kept between runs: writing 100,000 files takes a
# while).

# p3_context FILES: the directory of the context, made if missing.
p3_context() {
	local files=$1 dir=${BENCH_CACHE:-/tmp/farm-bench-cache}/p3-$1
	if [[ ! -e $dir/.complete ]]; then
		say "writing a context of $files files to $dir"
		rm -rf "$dir"
		python3 - "$dir" "$files" <<'EOF'
import base64, os, random, sys
root, files = sys.argv[1], int(sys.argv[2])
rnd = random.Random(17)
text = b"the quick brown fox jumps over the lazy dog 0123456789\n" * 36
for i in range(files):
    d = os.path.join(root, "d%03d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.txt" % i), "wb") as f:
        f.write(base64.b64encode(rnd.randbytes(1440)) + b"\n" + text)
EOF
		printf 'FROM localhost/busybox:amd64\nARG NONCE=0\nCOPY . /ctx\n' >"$dir/Containerfile"
		touch "$dir/.complete"
	fi
	echo "$dir"
}

bench_P3() {
	local files=${P3_FILES:-100000} dir r t id size
	dir=$(p3_context "$files")
	size=$(du -sm --exclude=.complete "$dir" | cut -f1)
	say "context: $files files, $size MB on disk, $RUNS runs"
	local farm=() plain=() local_=() r_plain=() r_local=() lines=() loads=()
	for ((r = 1; r <= RUNS; r++)); do
		loads+=("$(load1)")
		id=p3-farm-$r
		measure_pipeline t "$id" 1 lab-1 linux/amd64 "$BENCH_REPO/p3:farm-$r" "$dir" \
			--no-cache --build-arg "NONCE=$(nonce)" || return 1
		farm+=("$t")
		lines+=("- farm run $r ($(f2 "$t") s): $(breakdown "$id")")
		timeit t plain_remote "$BENCH_REPO/p3:plain-$r" "$dir" --no-cache --build-arg "NONCE=$(nonce)" \
			>"$OUT/runs/p3-plain-$r.log" 2>&1 || { warn "plain remote build failed"; return 1; }
		plain+=("$t")
		timeit t podman build --platform linux/amd64 -t "$BENCH_REPO/p3:local-$r" --no-cache \
			--build-arg "NONCE=$(nonce)" "$dir" >"$OUT/runs/p3-local-$r.log" 2>&1 ||
			{ warn "local build failed"; return 1; }
		local_+=("$t")
		r_plain+=("$(calc "${farm[-1]} / ${plain[-1]}")")
		r_local+=("$(calc "${farm[-1]} / ${local_[-1]}")")
		say "run $r: farm $(f2 "${farm[-1]}") s, plain $(f2 "${plain[-1]}") s, local $(f2 "${local_[-1]}") s"
		# 390 MB images pile up fast: keep only what the next run needs.
		cleanup_images
	done

	md "$files files of about 3.9 KB ($size MB on disk), COPY . /ctx, linux/amd64 on lab-1, --no-cache; $RUNS runs, median (per-run values)."
	md ""
	md "| measurement | median s | runs |" "|---|---:|---|"
	md "| farm: farm-nodes --node lab-1 \\| farm-plan \\| farm-build \\| farm-manifest | $(f2 "$(median "${farm[@]}")") | $(runs_list "${farm[@]}") |"
	md "| plain: podman --connection lab-1 build + save \\| podman load | $(f2 "$(median "${plain[@]}")") | $(runs_list "${plain[@]}") |"
	md "| local: podman build | $(f2 "$(median "${local_[@]}")") | $(runs_list "${local_[@]}") |"
	md "| **farm/plain** | **$(f2 "$(median "${r_plain[@]}")")** | $(runs_list "${r_plain[@]}") |"
	md "| farm/local | $(f2 "$(median "${r_local[@]}")") | $(runs_list "${r_local[@]}") |"
	md "| 1-min load average at the start of the run ($(nproc) cores) | | $(join_by ' / ' "${loads[@]}") |"
	md ""
	md "Where the farm's time went (offsets from the start of the pipeline; build/transfer seconds from the image records):"
	md ""
	md "${lines[@]}"
	md ""
	info "farm/local (no target)" "$(f2 "$(median "${r_local[@]}")")"
	target "farm/plain" "$(f2 "$(median "${r_plain[@]}")")" le 0.5
}
