# shellcheck shell=bash
# P5 cold transfer per link (issue #17): the pull-back of an image local
# storage lacks entirely, through the transfer registry (each layer
# compression the nodes offer) against an archive, on each link the lab can
# shape, and what farm-build chooses by default (--transfer auto,
# --transfer-compression auto).
#
#   bench/run P5             RUNS=3 (medians of 3)
#   P5_LINKS="loopback 50mbit/20ms" bench/run P5
#   P5_MODES="archive:archive:auto auto:auto:auto" bench/run P5   (the modes: LABEL:TRANSFER:COMPRESSION)
#
# The image is B7's: a ~70 MB base built on the node (40 MB random, ~30 MB
# of `seq` text), plus a 1 MiB random file changed before every build. Every
# run is cold: local storage loses the base and the registry cache is a new,
# empty directory. The modes of one run follow each other (interleaved), so
# a disturbance hits all of them. Nodes: P5_NODE (lab-3, podman 4.3.1) on
# every link, shaped with scripts/farm-lab shape; P5_NODE5 (lab-p5, podman
# 5.4.2) on loopback only (farm-lab shapes lab-N nodes only). Last, the
# rebuild case: the 1 MiB change again with the default choice, after a
# cold run filled the registry cache (B7's moved/lacked).

P5_NODE=${P5_NODE:-lab-3}
P5_NODE5=${P5_NODE5:-lab-p5}
P5_LINKS=${P5_LINKS:-loopback 1gbit/1ms 50mbit/20ms}
# LABEL:TRANSFER:COMPRESSION: farm-build --transfer and --transfer-compression
read -ra P5_MODES <<<"${P5_MODES:-archive:archive:auto registry-gzip:registry:gzip registry:registry:auto auto:auto:auto}"
P5_REPO=localhost/farm-bench/p5

# p5_layers STORE_ROOT: "diff-digest diff-size" of every layer of a storage.
p5_layers() { jq -r '.[] | select(."diff-digest" != null) | "\(."diff-digest") \(."diff-size")"' "$1/overlay-layers/layers.json"; }

# p5_base NODE: build the ~70 MB base on NODE only (this machine never saw it).
p5_base() {
	local node=$1 d=$OUT/p5-$1
	mkdir -p "$d/base" "$d/ctx"
	printf 'FROM localhost/busybox:amd64\nRUN echo %s >/nonce && head -c 40000000 /dev/urandom >/random.bin && seq 1 4000000 >/seq.txt\n' \
		"$(nonce)" >"$d/base/Containerfile"
	podman --connection "$node" build -q -t "$P5_REPO/base-$node:$$" "$d/base" >/dev/null
	printf 'FROM %s\nCOPY app.bin /app/app.bin\n' "$P5_REPO/base-$node:$$" >"$d/ctx/Containerfile"
	farm-nodes --node "$node" 2>/dev/null | scripts/examples/pin-platform.sh "linux/amd64=$node" >"$d/plan.jsonl"
}

# p5_forget: local storage loses every image a P5 build brought, and with
# them the base's layers.
p5_forget() {
	[[ -s $OUT/p5-ids ]] || return 0
	# shellcheck disable=SC2046 # image ids, one word each
	podman rmi -f $(sort -u "$OUT/p5-ids") >/dev/null 2>&1 || true
	: >"$OUT/p5-ids"
}

# p5_build ID NODE MODE COMPRESSION CACHE: one farm-build; prints
#   wall transfer_seconds moved_bytes transfer compression_line
# (moved: bytes_in + bytes_out beyond the context).
p5_build() {
	local id=$1 node=$2 mode=$3 comp=$4 cache=$5 d=$OUT/p5-$2 wall rec ctx try
	head -c 1048576 /dev/urandom >"$d/ctx/app.bin"
	for try in 1 2; do
		XDG_CACHE_HOME=$cache timeit wall farm-build -t "$P5_REPO/app:$$" --progress plain --transfer "$mode" \
			--transfer-compression "$comp" "$d/ctx" <"$d/plan.jsonl" >"$OUT/runs/$id.json" 2>"$OUT/runs/$id.log" && break
		tail -n 5 "$OUT/runs/$id.log" >&2
		((try == 1)) || return 1
		warn "$id failed (lab disturbed?); running it again"
		sleep 2
	done
	rec=$(jq -c 'select(.kind == "image")' "$OUT/runs/$id.json")
	[[ -n $rec ]] || return 1
	jq -r .id <<<"$rec" >>"$OUT/p5-ids"
	ctx=$(sed -n 's/.*msg="build context ready".* bytes=\([0-9]*\).*/\1/p' "$OUT/runs/$id.log" | head -1)
	printf '%s %s %s %s %s\n' "$wall" "$(jq -r .transfer_seconds <<<"$rec")" \
		"$(jq -r "(.bytes_in + .bytes_out - ${ctx:-0})" <<<"$rec")" "$(jq -r .transfer <<<"$rec")" \
		"$(grep -o '; [a-z]* layers)' "$OUT/runs/$id.log" | head -1 | cut -d' ' -f2)"
}

# p5_link NODE LINK: RUNS interleaved cold runs of every mode on NODE over
# LINK; leaves $OUT/p5-NODE-LINK-MODE.txt.
p5_link() {
	local node=$1 link=$2 k m label mode comp key
	key=$node-${link//\//-}
	if [[ $link != loopback ]]; then
		say "shaping $node: ${link%/*}, ${link#*/} round trip"
		scripts/farm-lab shape "$node" "${link%/*}" "${link#*/}" >/dev/null 2>&1
	fi
	for m in "${P5_MODES[@]}"; do : >"$OUT/p5-$key-${m%%:*}.txt"; done
	for ((k = 1; k <= RUNS; k++)); do
		for m in "${P5_MODES[@]}"; do
			IFS=: read -r label mode comp <<<"$m"
			p5_forget
			say "$node $link: cold $label $k/$RUNS (load $(load1))"
			p5_build "$key-$label-$k" "$node" "$mode" "$comp" "$OUT/p5-cache-$key-$label-$k" >>"$OUT/p5-$key-$label.txt"
		done
	done
	[[ $link == loopback ]] || scripts/farm-lab unshape "$node" >/dev/null 2>&1
}

# p5_rebuild NODE: the rebuild case with the default choice: a cold run
# fills a registry cache, then RUNS rebuilds each change 1 MiB; prints the
# median moved / lacked (lacked: the uncompressed size of the layers local
# storage did not have before the build).
p5_rebuild() {
	local node=$1 cache=$OUT/p5-cache-rebuild k before lacked line
	p5_forget
	p5_build "rebuild-$node-0" "$node" auto auto "$cache" >/dev/null
	: >"$OUT/p5-rebuild.txt"
	for ((k = 1; k <= RUNS; k++)); do
		before=$OUT/runs/rebuild-$k.before
		p5_layers "$(podman info --format '{{.Store.GraphRoot}}')" | cut -d' ' -f1 | sort -u >"$before"
		line=$(p5_build "rebuild-$node-$k" "$node" auto auto "$cache")
		podman image inspect "$(tail -1 "$OUT/p5-ids")" --format '{{range .RootFS.Layers}}{{println .}}{{end}}' |
			sed '/^$/d' | sort -u >"$OUT/runs/rebuild-$k.layers"
		lacked=$(comm -23 "$OUT/runs/rebuild-$k.layers" "$before" |
			join - <(p5_layers "$(podman info --format '{{.Store.GraphRoot}}')" | sort -u) | awk '{ s += $2 } END { print s + 0 }')
		echo "$line $lacked" >>"$OUT/p5-rebuild.txt"
	done
	# shellcheck disable=SC2046 # numbers
	median $(awk '{ printf "%.3f\n", $3 / $6 }' "$OUT/p5-rebuild.txt")
}

# p5_rows NODE LINK: the table rows of one link, and its targets.
p5_rows() {
	local node=$1 link=$2 key m label f arch_t t
	key=$node-${link//\//-}
	# shellcheck disable=SC2046 # numbers
	arch_t=$(median $(awk '{ print $2 }' "$OUT/p5-$key-archive.txt"))
	for m in "${P5_MODES[@]}"; do
		label=${m%%:*} f=$OUT/p5-$key-$label.txt
		# shellcheck disable=SC2046 # numbers
		t=$(median $(awk '{ print $2 }' "$f"))
		# shellcheck disable=SC2046 # numbers, words
		md "| $node | $link | $label ($(awk '{ print $4 "/" $5 }' "$f" | sort -u | tr '\n' ' ' | sed 's/ $//')) | $(f2 "$(median $(awk '{ print $3 / 1048576 }' "$f"))") | $(f2 "$t") | $(runs_list $(awk '{ print $2 }' "$f")) | $(f2 "$(median $(awk '{ print $1 }' "$f"))") | $(f2 "$(calc "$t / $arch_t")") |"
	done
}

# p5_cleanup: the node unshaped, P5's images gone here and on both nodes.
p5_cleanup() {
	local n
	scripts/farm-lab unshape "$P5_NODE" >/dev/null 2>&1 || true
	p5_forget
	for n in "$P5_NODE" "$P5_NODE5"; do
		podman --connection "$n" rmi -f "$P5_REPO/base-$n:$$" >/dev/null 2>&1 || true
	done
}

bench_P5() {
	local node link rebuild
	# bench/run runs each benchmark in a subshell of its own: EXIT is its end.
	trap 'p5_cleanup' EXIT
	: >"$OUT/p5-ids"
	p5_base "$P5_NODE"
	p5_base "$P5_NODE5"
	for link in $P5_LINKS; do p5_link "$P5_NODE" "$link"; done
	p5_link "$P5_NODE5" loopback
	rebuild=$(p5_rebuild "$P5_NODE")
	md "Cold pull-back of B7's image (~70 MB base built on the node + 1 MiB) into a local storage that lacks all of it, with an empty registry cache; modes interleaved in each run; medians of $RUNS. *moved*: bytes on the node's link beyond the build context; *transfer s*: the image record's transfer_seconds; the mode column says which transfer and compression the run used (\`/\`-less: archive). Links shaped by \`scripts/farm-lab shape\` ($P5_NODE only)."
	md ""
	md "| node | link | mode (transfer/compression) | moved MiB | transfer s | every run | wall s | transfer / archive |"
	md "|---|---|---|---:|---:|---|---:|---:|"
	for link in $P5_LINKS; do p5_rows "$P5_NODE" "$link"; done
	p5_rows "$P5_NODE5" loopback
	md ""
	for link in $P5_LINKS; do p5_targets "$P5_NODE" "$link"; done
	p5_targets "$P5_NODE5" loopback
	target "rebuild moved/lacked, default ($P5_NODE)" "$rebuild" le 1.2
}

# p5_targets NODE LINK: the default (auto) and --transfer registry against
# the archive, cold, on one link.
p5_targets() {
	local key=$1-${2//\//-} a
	# shellcheck disable=SC2046 # numbers
	a=$(median $(awk '{ print $2 }' "$OUT/p5-$key-archive.txt"))
	# shellcheck disable=SC2046 # numbers
	target "$1 $2 cold auto / archive" "$(calc "$(median $(awk '{ print $2 }' "$OUT/p5-$key-auto.txt")) / $a")" le 1.00
	# shellcheck disable=SC2046 # numbers
	target "$1 $2 cold registry / archive" "$(calc "$(median $(awk '{ print $2 }' "$OUT/p5-$key-registry.txt")) / $a")" le 1.00
}
