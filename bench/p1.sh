# shellcheck shell=bash
# P1 farm vs its peer, podman farm build (issue #17).
#
# The peer is podman 5.4.2's `podman farm build`, run as a client from the
# lab-p5 node's Debian trixie rootfs (in that node's mount namespace, chrooted,
# with its own storage on the namespace's /tmp). Side by side in each run, the
# same node, the same context, both ending with a manifest list in the lab
# registry (127.0.0.1:5000) and nothing pulled back:
#   peer  podman farm build --farm p5 --local=false --tls-verify=false -t REG/REPO
#   farm  farm-nodes --node lab-p5 | farm-plan | farm-build --push | farm-manifest
# Cases: a trivial Containerfile (the fixed cost) and a CPU-bound step of
# about P1_SECONDS (default 3). The node is lab-p5 because the peer cannot push
# from a podman 4.3.1 node at all, and cannot take a tag (both recorded below,
# with its error for an emulated platform).

# The peer's files, as the peer sees them (inside the chroot) and as the host
# writes them (through the node's mount namespace).
PEER_DIR=/tmp/farm-peer
peer_holder() { cat "$FARM_LAB_P5_HOLDER_PID_FILE"; }
peer_root() { echo "/proc/$(peer_holder)/root$FARM_LAB_DIR/base/trixie"; }

# peer CMD...: run CMD as the peer's client: podman 5.4.2 inside lab-p5's
# rootfs, with the peer's own containers.conf (connections, farms) and storage.
peer() {
	nsenter -t "$(peer_holder)" -m -- chroot "$FARM_LAB_DIR/base/trixie" /usr/bin/env -i \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		CONTAINERS_CONF=$PEER_DIR/containers.conf CONTAINERS_REGISTRIES_CONF=$PEER_DIR/registries.conf \
		"$@"
}
peer_podman() { peer podman --root "$PEER_DIR/storage" --runroot "$PEER_DIR/run" "$@"; }

# peer_setup: the peer's connections (lab-1..3 and lab-p5, the lab's key),
# farms "lab" and "p5", the lab registry as plain HTTP, and the contexts.
peer_setup() {
	[[ -n ${FARM_LAB_P5_URI:-} && -r ${FARM_LAB_P5_HOLDER_PID_FILE:-} ]] ||
		{ warn "P1 needs lab-p5 (scripts/farm-lab up with the kinds part)"; return 1; }
	local d n uri
	d=$(peer_root)$PEER_DIR
	rm -rf "$d"
	mkdir -p "$d/ctx"
	cp "$FARM_LAB_KEY" "$d/key"
	cp -r "$ROOT/bench/lib/trivial" "$ROOT/bench/lib/count" "$d/ctx/"
	{
		echo '[engine]'
		for n in $FARM_LAB_NODES lab-p5; do
			uri=$FARM_LAB_P5_URI
			[[ $n == lab-p5 ]] || { local v="FARM_LAB_${n#lab-}_URI"; uri=${!v}; }
			printf '[engine.service_destinations.%s]\nuri = "%s"\nidentity = "%s/key"\n' "$n" "$uri" "$PEER_DIR"
		done
		echo '[farms.list]'
		# shellcheck disable=SC2086 # the node names, one word each
		printf 'lab = [%s]\n' "$(printf '"%s",' $FARM_LAB_NODES | sed 's/,$//')"
		echo 'p5 = ["lab-p5"]'
	} >"$d/containers.conf"
	printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$FARM_LAB_REGISTRY" >"$d/registries.conf"
	peer_podman --version >&2
}

# peer_build FARM REPO CONTEXT [flags...]: the peer's whole run, list pushed.
peer_build() {
	local farm=$1 repo=$2 ctx=$3
	shift 3
	peer_podman farm build --farm "$farm" --local=false --tls-verify=false --cleanup \
		--platforms "${PEER_PLATFORMS:-linux/amd64}" -t "$FARM_LAB_REGISTRY/$repo" "$@" "$PEER_DIR/ctx/$ctx"
}

# farm_push RUN_ID REPO CONTEXT [flags...]: the farm's run to the same end.
farm_push() {
	local id=$1 repo=$2 ctx=$3
	shift 3
	# shellcheck disable=SC2034 # read by pipeline (bench/lib/common.sh)
	MANIFEST_ARGS=(--tls-verify=false)
	pipeline "$id" lab-p5 linux/amd64 "$FARM_LAB_REGISTRY/$repo" \
		"$ROOT/bench/lib/$ctx" --push --tls-verify=false --cleanup "$@"
	# shellcheck disable=SC2034 # read by pipeline (bench/lib/common.sh)
	MANIFEST_ARGS=()
}

# p1_case NAME CONTEXT [build flags...]: RUNS rounds of a run of the
# farm, of the farm with no node info cache (farm-nodes --cache-ttl 0: a
# first run, or one after a pause), and of the peer, in an order that
# rotates each round (each goes first, second and third alike: a run
# right after another may find the node still settling); sets the arrays
# farm_t, cold_t, peer_t, ratio_t and cold_ratio_t.
p1_case() {
	local name=$1 ctx=$2 r t nonce who order=(cold farm peer)
	shift 2
	farm_t=() cold_t=() peer_t=() ratio_t=() cold_ratio_t=()
	for ((r = 1; r <= RUNS; r++)); do
		nonce=$(nonce)
		for who in "${order[@]}"; do
			case $who in
			cold | farm)
				# shellcheck disable=SC2034 # read by pipeline (bench/lib/common.sh)
				NODES_ARGS=()
				# shellcheck disable=SC2034
				[[ $who == farm ]] || NODES_ARGS=(--cache-ttl 0)
				timeit t farm_push "p1-$name-$who-$r" "farm-bench/p1-$name-$who-$r" "$ctx" --no-cache \
					--build-arg "NONCE=$nonce-$who" "$@" || true
				pipeline_ok "p1-$name-$who-$r" 1 || { warn "farm run $name $r made no list (see $OUT/runs/p1-$name-$who-$r.log)"; return 1; }
				if [[ $who == farm ]]; then farm_t+=("$t"); else cold_t+=("$t"); fi
				;;
			peer)
				timeit t peer_build p5 "farm-bench/p1-$name-peer-$r" "$ctx" --no-cache \
					--build-arg "NONCE=$nonce-p" "$@" >"$OUT/runs/p1-$name-peer-$r.log" 2>&1 ||
					{ warn "peer run $name $r failed (see $OUT/runs/p1-$name-peer-$r.log)"; return 1; }
				peer_t+=("$t")
				;;
			esac
		done
		order=("${order[@]:1}" "${order[0]}")
		# shellcheck disable=SC2034 # read by pipeline (bench/lib/common.sh)
		NODES_ARGS=()
		ratio_t+=("$(calc "${farm_t[-1]} / ${peer_t[-1]}")")
		cold_ratio_t+=("$(calc "${cold_t[-1]} / ${peer_t[-1]}")")
		say "$name run $r: farm $(f2 "${farm_t[-1]}") s (no info cache $(f2 "${cold_t[-1]}") s), peer $(f2 "${peer_t[-1]}") s"
	done
}

# peer_error DESCRIPTION FARM REPO: one line of the peer's error for a case
# it cannot build (the farm builds each: other benchmarks and tests).
peer_error() {
	local what=$1 farm=$2 repo=$3 err
	# podman prints "Error: build: building: 1 error occurred:" and the cause
	# on the next line: keep from the first Error line on, as one line.
	err=$(peer_build "$farm" "$repo" trivial --build-arg "NONCE=$(nonce)" 2>&1 |
		sed -n '/^Error/,$p' | sed 's/^[[:space:]]*//' | tr '\n' ' ' | sed 's/ *$//' || true)
	md "| $what | \`${err:-(no error: it succeeded)}\` |"
}

bench_P1() {
	local secs=${P1_SECONDS:-3} n loads=()
	peer_setup || return 1
	n=$(iters amd64 "$secs")
	say "N=$n (amd64 about ${secs} s), $RUNS runs; peer: $(peer_podman --version)"
	loads+=("$(load1)")
	p1_case trivial trivial
	local tf=("${farm_t[@]}") tp=("${peer_t[@]}") tr=("${ratio_t[@]}") tc=("${cold_t[@]}") tcr=("${cold_ratio_t[@]}")
	loads+=("$(load1)")
	p1_case count count --build-arg "N=$n"
	loads+=("$(load1)")

	md "One platform (linux/amd64) on lab-p5 (podman 5.4.2), --no-cache, unique NONCE per build, both pushing to the lab registry and making the list there; $RUNS rounds of farm, farm with no info cache and peer, interleaved, the order rotating each round (each goes first, second and third alike); median (per-run values)."
	md "peer = \`podman farm build --farm p5 --local=false --tls-verify=false -t $FARM_LAB_REGISTRY/REPO\` (podman 5.4.2 client); farm = \`farm-nodes --node lab-p5 | farm-plan | farm-build --push | farm-manifest\`, as a user's next run within farm-nodes' --cache-ttl (5 minutes: the node's podman info is not asked again); farm, no info cache = the same with \`farm-nodes --cache-ttl 0\` (a first run, or one after a pause)."
	md ""
	md "| measurement | median s | runs |" "|---|---:|---|"
	md "| farm, trivial | $(f2 "$(median "${tf[@]}")") | $(runs_list "${tf[@]}") |"
	md "| peer, trivial | $(f2 "$(median "${tp[@]}")") | $(runs_list "${tp[@]}") |"
	md "| **farm/peer, trivial** | **$(f2 "$(median "${tr[@]}")")** | $(runs_list "${tr[@]}") |"
	md "| farm, no info cache, trivial | $(f2 "$(median "${tc[@]}")") | $(runs_list "${tc[@]}") |"
	md "| farm, no info cache / peer, trivial | $(f2 "$(median "${tcr[@]}")") | $(runs_list "${tcr[@]}") |"
	md "| farm, CPU-bound step (N=$n) | $(f2 "$(median "${farm_t[@]}")") | $(runs_list "${farm_t[@]}") |"
	md "| peer, same | $(f2 "$(median "${peer_t[@]}")") | $(runs_list "${peer_t[@]}") |"
	md "| **farm/peer, CPU-bound** | **$(f2 "$(median "${ratio_t[@]}")")** | $(runs_list "${ratio_t[@]}") |"
	md "| farm, no info cache / peer, CPU-bound | $(f2 "$(median "${cold_ratio_t[@]}")") | $(runs_list "${cold_ratio_t[@]}") |"
	md "| 1-min load average before trivial / before CPU-bound / after | | $(join_by ' / ' "${loads[@]}") |"
	md ""
	md "What the peer cannot build (farm builds each of these):" "" "| case | the peer's error |" "|---|---|"
	PEER_PLATFORMS=linux/amd64,linux/arm64 peer_error "amd64 + arm64 (lab-p5 emulates arm64)" p5 farm-bench/p1-fails
	peer_error "amd64 on the podman 4.3.1 nodes (farm lab)" lab farm-bench/p1-fails
	peer_error "a tagged name (-t REG/REPO:TAG) on lab-p5" p5 farm-bench/p1-fails:tagged
	md ""
	target "farm/peer, trivial (lab-p5)" "$(f2 "$(median "${tr[@]}")")" le 1.00
	target "farm/peer, CPU-bound (lab-p5)" "$(f2 "$(median "${ratio_t[@]}")")" le 1.00
}
