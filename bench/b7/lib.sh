# shellcheck shell=bash
# bench/b7/lib.sh: what bench/b7/run and bench/b7/ab share: the image (a
# ~70 MB base built on the node only, then a 1 MiB file changed before every
# build) and waiting for a node that other engineers' tests disturb. Needs
# bench/lib/common.sh, the lab's env, $OUT, $NODE, $PLATFORM and $BENCH_REPO.

# b7_image: build the base on $NODE, write $OUT/ctx/Containerfile on top of
# it and the plan pinning $PLATFORM to $NODE to $OUT/plan.jsonl.
b7_image() {
	BASE=$BENCH_REPO/b7-base:$$
	# shellcheck disable=SC2034 # the image's name, for the scripts that source this
	APP=$BENCH_REPO/b7-app:$$
	mkdir -p "$OUT/base" "$OUT/ctx"
	cat >"$OUT/base/Containerfile" <<EOC
FROM localhost/busybox:amd64
RUN echo $(nonce) >/nonce && head -c 40000000 /dev/urandom >/random.bin && seq 1 4000000 >/seq.txt
EOC
	say "building the ~70 MB base $BASE on $NODE"
	node_podman "$NODE" build -q -t "$BASE" "$OUT/base" >/dev/null
	printf 'FROM %s\nCOPY app.bin /app/app.bin\n' "$BASE" >"$OUT/ctx/Containerfile"
	wait_node
	farm-nodes --node "$NODE" 2>/dev/null | scripts/examples/pin-platform.sh "$PLATFORM=$NODE" >"$OUT/plan.jsonl"
}

# wait_node: other engineers' lab tests stop a node's sshd now and then.
wait_node() {
	local n
	for ((n = 0; n < 120; n++)); do
		farm-nodes --node "$NODE" --timeout 5s 2>/dev/null | jq -se 'any(.[]; .kind == "node" and .error == "")' >/dev/null && return 0
		sleep 1
	done
	warn "$NODE did not answer for 2 minutes"
	return 1
}

# new_app: the 1 MiB file that changes before every build.
new_app() { head -c "$APP_BYTES" /dev/urandom >"$OUT/ctx/app.bin"; }

# forget_app: local storage loses every image the runs brought (their ids
# are in $OUT/ids), and with them the base's layers: nothing else uses
# them, so the next cold run must bring it all.
forget_app() {
	[[ -s $OUT/ids ]] || return 0
	# shellcheck disable=SC2046 # image ids, one word each
	podman rmi -f $(sort -u "$OUT/ids") >/dev/null 2>&1 || true
	: >"$OUT/ids"
}
