package node

import "strings"

// Build claims: while a farm job works on a node (upload, build, pull-back
// or push), farm-build holds a lock file there, in ClaimDir of the node's
// podman service (lib/dispatch's slot.go). Such a file that can be locked
// exclusively is a dead job's. farm-nodes counts the live ones in load.builds,
// so a run started later sees an earlier run's jobs before their first RUN
// step.

// ClaimDir is the directory of the build claims of the podman service
// listening on socket, as a shell word: one per service, under the user's
// home, because several services may share one machine and one user (the
// lab's nodes do).
func ClaimDir(socket string) string {
	return `"${HOME:-/tmp}/.cache/farm/builds/` + claimKey(socket) + `"`
}

// claimKey names the service's claims directory: its socket's path, with
// every character but letters, digits, dots and dashes made a "_".
func claimKey(socket string) string {
	key := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.TrimPrefix(socket, "/"))
	if key == "" {
		return "_"
	}
	return key
}

// countClaimsScript prints "@claims N": the live build claims in dir (a
// ClaimDir); nothing without flock(1). A lock file is opened read-only, so
// counting never makes one.
func countClaimsScript(dir string) string {
	return "claims=" + dir + "\n" + `if command -v flock >/dev/null 2>&1; then
	n=0
	for f in "$claims"/*.lock; do
		[ -f "$f" ] || continue
		{ exec 8<"$f"; } 2>/dev/null || continue
		flock -n -s 8 || n=$((n + 1))
		exec 8<&-
	done
	echo "@claims $n"
fi
`
}
