# shellcheck shell=bash
# bench/RESULTS.md: each benchmark's numbers live between
#   <!-- bench:B1 begin --> ... <!-- bench:B1 end -->
# and bench/run replaces only what is between the markers of the benchmarks it
# ran. Everything else (how to run, the analysis, the B7 section another
# engineer writes) is left as it is.

# machine_line: what the numbers were measured on.
machine_line() {
	printf '%s cores, %s GiB RAM, kernel %s, %s' "$(nproc)" \
		"$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)" \
		"$(uname -r)" "$(podman --version)"
}

# results_init: create RESULTS.md with every section's markers if it is missing.
results_init() {
	[[ -e $RESULTS ]] && return
	{
		echo "# farm benchmarks"
		echo
		for b in "${ALL[@]}"; do
			echo "## $b"
			echo
			echo "<!-- bench:$b begin -->"
			echo "<!-- bench:$b end -->"
			echo
		done
		echo "## B7 layer transfer (bench/b7)"
	} >"$RESULTS"
}

# results_put NAME: replace NAME's section between its markers with
# $OUT/NAME.md (prefixed by when, where and how it was measured); append the
# section at the end when the markers are missing.
results_put() {
	local name=$1 frag tmp
	frag=$OUT/$name.results
	{
		echo "_Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(machine_line); command: \`$COMMAND\`; load average before/after: $(cat "$OUT/$name.load" 2>/dev/null)._"
		echo
		cat "$OUT/$name.md"
	} >"$frag"
	if ! grep -qF "<!-- bench:$name begin -->" "$RESULTS"; then
		printf '\n## %s\n\n<!-- bench:%s begin -->\n<!-- bench:%s end -->\n' "$name" "$name" "$name" >>"$RESULTS"
	fi
	tmp=$(mktemp "$RESULTS.XXXXXX")
	awk -v b="<!-- bench:$name begin -->" -v e="<!-- bench:$name end -->" -v frag="$frag" '
		$0 == b { print; while ((getline l < frag) > 0) print l; skip = 1; next }
		$0 == e { skip = 0 }
		!skip { print }' "$RESULTS" >"$tmp"
	# Write in place (not mv) so the file keeps its inode and mode; the window
	# where another editor of the file could race is one cat.
	cat "$tmp" >"$RESULTS"
	rm -f "$tmp"
}
