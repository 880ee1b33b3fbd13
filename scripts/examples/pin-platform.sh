#!/bin/sh
# pin-platform.sh: a plan stage of your own, in POSIX sh and jq, for
# docs/custom-scheduler.md. It replaces farm-plan when you want to say
# exactly where each platform builds:
#
#   farm-nodes | scripts/examples/pin-platform.sh linux/arm64=lab-3 | farm-build -t IMG .
#
# It reads node records on stdin and writes, for each PLATFORM=NODE, a job
# record building PLATFORM on NODE: emulated when PLATFORM is not among the
# node's native platforms, with every other reachable node that lists
# PLATFORM (natively first, then by emulation, each by name) as the
# alternatives farm-build fails over to. Error records are passed on.
# farm-nodes ends its output with an end record; without one it died part
# way, and this script plans nothing. Its own output ends with one too, the
# last line it writes (farm-build builds nothing from a plan without it).
#
# Platforms must be canonical (linux/amd64, linux/arm64, linux/arm/v7), as
# farm-nodes writes them: this script compares strings and does not know
# that aarch64 is arm64. farm-plan does; use it when spellings vary.
#
# Exit status: 0 ok, 1 bad input or a pin that cannot be honoured (nothing
# but the error records read is written then), 2 usage.
set -eu

me="pin-platform.sh"

usage() {
	cat <<EOF
usage: farm-nodes | $me PLATFORM=NODE [PLATFORM=NODE...] | farm-build -t IMG .

Build each PLATFORM on NODE. PLATFORM is canonical: os/arch[/variant], e.g.
linux/amd64, linux/arm64, linux/arm/v7 (not arm64, aarch64 or linux/arm64/v8).
EOF
}

die() { # die STATUS MESSAGE
	printf '%s: %s\n' "$me" "$2" >&2
	[ "$1" != 2 ] || printf "Try '%s --help' for more information.\n" "$me" >&2
	exit "$1"
}

# canonical PLATFORM: is it spelled the way farm writes platforms?
canonical() {
	case $1 in
	*/arm64/v8) return 1 ;; # farm drops arm64's default variant
	*/arm) return 1 ;;      # and writes arm's default one: linux/arm/v7
	esac
	printf '%s\n' "$1" | grep -Eq '^[a-z0-9]+/(386|amd64|arm|arm64|loong64|mips|mipsle|mips64|mips64le|ppc64|ppc64le|riscv64|s390x|wasm)(/v[0-9][0-9.]*)?$'
}

case ${1-} in
-h | --help)
	usage
	exit 0
	;;
esac
[ $# -gt 0 ] || {
	usage >&2
	exit 2
}
command -v jq >/dev/null 2>&1 || die 1 "needs jq (apt-get install jq)"

seen=" "
for pin in "$@"; do
	case $pin in
	?*=?*) ;;
	*) die 2 "\"$pin\": want PLATFORM=NODE" ;;
	esac
	platform=${pin%%=*}
	canonical "$platform" ||
		die 2 "\"$platform\" is not a canonical platform: write os/arch[/variant], e.g. linux/arm64 or linux/arm/v7"
	case $seen in
	*" $platform "*) die 2 "$platform is pinned twice" ;;
	esac
	seen="$seen$platform "
done

# Everything is read before anything is written: a pin that cannot be
# honoured must not leave half a plan for farm-build to start on.
input=$(mktemp)
trap 'rm -f "$input"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cat >"$input"

# The pins as jq objects {platform, node}; the node name is everything
# after the first "=".
# shellcheck disable=SC2016 # $ARGS is jq's, not the shell's
pins='def pins: $ARGS.positional | map(index("=") as $i | {platform: .[:$i], node: .[$i + 1:]});'

problems=$(jq -rs "$pins"'
	. as $recs
	| [$recs[] | select(type == "object" and .kind == "node")] as $nodes
	| ($recs | to_entries[]
		| select((.value | type) != "object" or .value.v != 1 or (.value.kind != "node" and .value.kind != "error" and .value.kind != "end"))
		| "record \(.key + 1): \(.value | tojson | .[:60]): not a version 1 node or error record; \($ARGS.named.me) reads what farm-nodes writes"),
	  (if ($nodes | length) == 0 then "no node records on stdin: farm-nodes | \($ARGS.named.me) PLATFORM=NODE"
	   elif any($recs[]; type == "object" and .kind == "end") | not then "stdin ended without an end record: farm-nodes did not finish (killed or interrupted?), so these are not all the nodes"
	   else empty end),
	  (if ($nodes | length) == 0 then empty else pins[] | . as $p
		| [$nodes[] | select(.name == $p.node)][0] as $n
		| if $n == null then
			"\($p.platform)=\($p.node): no node \($p.node) on stdin (nodes: \([$nodes[].name] | join(", ")))"
		  elif ($n.error // "") != "" then
			"\($p.platform)=\($p.node): node \($p.node) is unreachable: \($n.error)"
		  elif (any($n.native[]?, $n.emulated[]?; . == $p.platform) | not) then
			"\($p.platform)=\($p.node): node \($p.node) neither builds nor emulates \($p.platform) (native: \($n.native // [] | join(", ")); emulated: \($n.emulated // [] | join(", ")))"
		  else empty end
	  end)
' --arg me "$me" --args "$@" <"$input") || die 1 "stdin is not a record stream (one JSON object a line)"

# Error records from upstream go on whatever happens here.
jq -c 'select(type == "object" and .kind == "error")' <"$input"

if [ -n "$problems" ]; then
	printf '%s\n' "$problems" | sed "s/^/$me: /" >&2
	exit 1
fi

jq -cs "$pins"'
	[.[] | select(.kind == "node" and (.error // "") == "")] as $up
	| pins[] | . as $p
	| [$up[] | select(.name == $p.node)][0] as $node
	| [$up[] | select(.name != $p.node)] as $others
	| {
		v: 1,
		kind: "job",
		platform: $p.platform,
		node: $node,
		emulated: (any($node.native[]?; . == $p.platform) | not),
		alternatives: (
			([$others[] | select(any(.native[]?; . == $p.platform))] | sort_by(.name))
			+ ([$others[] | select(any(.native[]?; . == $p.platform) | not)
				| select(any(.emulated[]?; . == $p.platform))] | sort_by(.name))
		)
	}
' --args "$@" <"$input"
# The end record, last: the plan is complete.
printf '%s\n' '{"v":1,"kind":"end","stage":"pin-platform.sh"}'
