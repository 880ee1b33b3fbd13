package dispatch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/farm-build/farm/lib/conn"
)

// A dead run's temporary files on a node: what podman (and buildah in it)
// leaves in its temporary directory when the service dies mid-build, or
// when the upload of the context breaks off (the run killed, its
// connection gone):
//
//   - libpod_builder*/: the uploaded context. Podman 4 keeps it verbatim in
//     tarBall, then unpacks it in build/; podman 5 unpacks it into build/
//     as it arrives (no tarBall), and removes the directory when the
//     request ends, unless the service dies first. farm-build marks its
//     context twice (markContext): its run's id is the comment of the first
//     gzip header, at a fixed place in the first bytes (tarBall), and the
//     first file of the archive is farm-run-RUN (runMarkFile), sent as a
//     secret: the service unpacks it first into build/ and moves it to
//     libpod_builder*/ before the build starts (as it does every secret of
//     a remote build), so the build never sees it, and the directory names
//     the run from the first entry unpacked until it is removed.
//   - buildah*/: a RUN step's runtime bundle; its hosts file has the job's
//     host entry, farm-RUNJOB.invalid (cgroup.go).
//
// A directory is the dead run's only when it carries that mark and belongs
// to the node's user (rootless and rootful services may share /var/tmp,
// and each user's runs have their leases in their own home). Nothing else
// is touched: a user's build, another program's files, a run with a
// lease. Podman's temporary directory is its service's TMPDIR, else
// /var/tmp: tmpDirsScript asks the node's service processes (those named
// by the node's socket, and socket-activated ones) for theirs.

// contextMark is the gzip comment of run's build context.
func contextMark(run string) string { return "farm-run " + run }

// runMarkFile is the name of the file that marks run's build context.
func runMarkFile(run string) string { return "farm-run-" + run }

// markContext returns the build context r, a gzip stream, with run's
// marks (see above) in a gzip member of its own put before it (a gzip
// reader reads the members as one stream, as podman's does), and the name
// of the mark file, which the request must send as a secret. The mark is
// not counted in the image record's bytes_out, the context's size. Another
// stream passes as is, and the name is "".
func markContext(r io.Reader, run string) (io.Reader, string) {
	head := make([]byte, 3)
	n, err := io.ReadFull(r, head)
	rest := io.MultiReader(bytes.NewReader(head[:n]), r)
	if err != nil || head[0] != 0x1f || head[1] != 0x8b || head[2] != 8 {
		return rest, ""
	}
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	zw.Comment = contextMark(run)
	tw := tar.NewWriter(zw)
	body := contextMark(run) + "\n"
	if err := tw.WriteHeader(&tar.Header{Name: runMarkFile(run), Mode: 0o600, Size: int64(len(body)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}); err != nil {
		panic(err) // a fixed, valid header
	}
	io.WriteString(tw, body)
	tw.Flush() // no end of archive: the context's entries follow
	zw.Close()
	return io.MultiReader(&b, rest), runMarkFile(run)
}

// markFuncScript defines mark DIR, which prints the id of the farm run
// that DIR is a temporary directory of, or nothing.
const markFuncScript = `mark() {
	case ${1##*/} in libpod_builder*|buildah*) ;; *) return 0 ;; esac
	[ -O "$1" ] || return 0
	for f in "$1"/build/farm-run-* "$1"/farm-run-*; do
		r=${f##*/farm-run-}
		case $r in *[!0-9a-f]*) continue ;; ????????????) echo "$r"; return 0 ;; esac
	done
	if [ -f "$1/tarBall" ]; then
		[ "$(head -c 4 "$1/tarBall" | od -An -tx1 | tr -d ' \n')" = 1f8b0810 ] || return 0
		m=$(head -c 32 "$1/tarBall" | tail -c 22 | tr '\0' '\n' | head -n 1)
		printf '%s\n' "$m" | grep -x 'farm-run [0-9a-f]\{12\}' | cut -c 10-
	elif [ -f "$1/hosts" ]; then
		grep -o '[[:space:]]farm-[0-9a-f]\{20\}\.invalid$' "$1/hosts" | head -n 1 | cut -c 7-18
	fi
}
`

// tmpDirsScript prints the directories where the node's podman service
// keeps its temporary files: fixed (podman's default, /var/tmp), and the
// TMPDIR of each podman process of the node's user serving socket, or
// started by socket activation (systemd passes it the socket: LISTEN_FDS;
// its command line names none). More directories than the service's are
// harmless: only what names a dead run goes.
func tmpDirsScript(fixed []string, socket string) string {
	var b strings.Builder
	b.WriteString("tmpdirs() {\n")
	for _, d := range fixed {
		fmt.Fprintf(&b, "\techo %s\n", shellQuote(d))
	}
	fmt.Fprintf(&b, `	for c in $(grep -lx podman /proc/[0-9]*/comm 2>/dev/null); do
		p=${c%%/comm}
		[ -O "$p" ] || continue
		e=$(tr '\0' '\n' <"$p/environ" 2>/dev/null)
		tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF -e %[1]s -e %[2]s ||
			printf '%%s\n' "$e" | grep -q '^LISTEN_FDS=' || continue
		printf '%%s\n' "$e" | sed -n 's/^TMPDIR=//p'
	done
}
`, shellQuote("unix://"+socket), shellQuote("unix:"+socket))
	return b.String()
}

// tmpLeftoversScript lists "RUN tmp DIR" for each temporary directory of
// the node's user that looks marked (see leftoversScript). It lists the
// uploads' mark files, and reads 32 bytes of each tarBall and each
// bundle's hosts file, with a few processes
// per temporary directory (a node may have many leftovers, and its load
// may be high); removeTmpScript checks each mark exactly before it removes
// anything.
func tmpLeftoversScript(fixed []string, socket string) string {
	return tmpDirsScript(fixed, socket) + `tmpdirs | sort -u | while IFS= read -r d; do
	[ -n "$d" ] || continue
	set --
	for t in "$d"/libpod_builder*/tarBall; do
		[ -O "$t" ] && set -- "$@" "$t"
	done
	[ $# -gt 0 ] && head -v -c 32 -- "$@" | tr -c 'A-Za-z0-9 /_.=<>\n-' . | sed -n '
		/^==> .* <==$/ { s/^==> \(.*\)\/tarBall <==$/\1/; h; d; }
		s/^\.\{10\}farm-run \([0-9a-f]\{12\}\)\.$/\1 tmp /
		t mark
		d
		:mark
		G
		s/ tmp \n/ tmp /p'
	for f in "$d"/libpod_builder*/build/farm-run-* "$d"/libpod_builder*/farm-run-*; do
		r=${f##*/farm-run-} b=${f%/farm-run-*}
		b=${b%/build}
		case $r in *[!0-9a-f]*) continue ;; ????????????) [ -O "$b" ] && echo "$r tmp $b" ;; esac
	done
	set --
	for t in "$d"/buildah*/hosts; do
		[ -O "$t" ] && set -- "$@" "$t"
	done
	[ $# -gt 0 ] && grep -H -o -m 1 '[[:space:]]farm-[0-9a-f]\{20\}\.invalid$' -- "$@" |
		sed -n 's/^\(.*\)\/hosts:[[:space:]]farm-\([0-9a-f]\{12\}\)[0-9a-f]\{8\}\.invalid$/\2 tmp \1/p'
done
`
}

// removeTmpScript removes run's temporary directories dirs, each only if
// it still names run and nothing is mounted under it.
func removeTmpScript(run string, dirs []string) string {
	var b strings.Builder
	b.WriteString(markFuncScript)
	b.WriteString("n=0\nfor d in")
	for _, d := range dirs {
		b.WriteString(" " + shellQuote(d))
	}
	fmt.Fprintf(&b, `; do
	[ "$(mark "$d")" = %s ] || continue
	grep -qF " $d/" /proc/self/mountinfo && continue
	rm -rf -- "$d" && n=$((n+1))
done
echo $n
`, run)
	return b.String()
}

// removeTmp removes the dead run's temporary directories on the node and
// returns how many went.
func removeTmp(ctx context.Context, s *conn.Session, run string, dirs []string) (string, error) {
	if len(dirs) == 0 {
		return "0", nil
	}
	out, err := s.Run(ctx, removeTmpScript(run, dirs))
	return strings.TrimSpace(string(out)), err
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
