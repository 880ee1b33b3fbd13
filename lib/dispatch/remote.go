// Package dispatch runs farm's jobs: one image for one platform on one node,
// with the compressed context sent as it is to every node, build logs
// streamed back, fail-over to the job's alternatives when a node fails, and
// remote builds really stopped when the run is cancelled.
package dispatch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/farm-build/farm/lib/fault"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/podman"
)

// request is one POST /build.
type request struct {
	spec     *Spec
	platform platform.Platform
	cgroup   string
	marker   string // a host entry naming the job, see marker()
	runMark  string // the context's mark file, sent as a secret (tmpfiles.go)
	// cache is the farm-wide layer cache's repository as the node reaches
	// it (see transfer.Puller.CacheForward); empty: the node's own only.
	cache string
	// version is the node's podman (nil: unknown): before 4.4 the build
	// API takes one --cache-from/--cache-to repository, as a plain string.
	version    *semver.Version
	context    io.Reader
	logLine    func(string)
	onUploaded func()
}

// imageIDLine is how the build stream names the image it made.
var imageIDLine = regexp.MustCompile(`^[0-9a-f]{64}$`)

// send runs the build on a connected node and returns the new image's id.
// A build that ran and failed (a bad Containerfile, a RUN step that exits
// non-zero) is marked fault.Deterministic: another node would fail the same
// way. Other errors mean the node or the connection failed.
func send(ctx context.Context, node *podman.Client, req request) (string, error) {
	params, err := req.params()
	if err != nil {
		return "", err
	}
	body := &watchEOF{r: req.context, onEOF: req.onUploaded}
	headers := http.Header{"Content-Type": []string{"application/x-tar"}}
	resp, err := node.Do(ctx, body, http.MethodPost, "/build", params, headers)
	if err != nil {
		return "", fmt.Errorf("sending the build: %w", err)
	}
	defer resp.Body.Close()
	if !resp.IsSuccess() {
		if err := resp.Process(nil); err != nil {
			// The server refused the request itself (bad parameters,
			// unreadable context): that is the same on every node.
			return "", fault.AsDeterministic(err)
		}
	}
	return readStream(resp.Body, req.logLine)
}

// readStream follows the JSON stream of a build: log lines, then the id, or
// an error.
func readStream(r io.Reader, logLine func(string)) (string, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	var id string
	var partial strings.Builder
	var tail []string // the last lines of the log, for a failure's record
	for {
		var msg images.BuildResponse
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) && id != "" {
				return id, nil
			}
			if errors.Is(err, io.EOF) {
				return "", errors.New("the build stream ended without an image id (did the node's podman service stop?)")
			}
			return "", fmt.Errorf("reading the build stream: %w", err)
		}
		switch {
		case msg.Error != nil || msg.ErrorMessage != "":
			text := msg.ErrorMessage
			if msg.Error != nil && msg.Error.Message != "" {
				text = msg.Error.Message
			}
			return "", fault.AsDeterministic(errors.New(withTail(strings.TrimSpace(text), tail)))
		case msg.Stream != "":
			// The server may split a line across messages; log whole lines.
			partial.WriteString(msg.Stream)
			text := partial.String()
			for {
				nl := strings.IndexByte(text, '\n')
				if nl < 0 {
					break
				}
				line := text[:nl]
				text = text[nl+1:]
				if imageIDLine.MatchString(line) {
					id = line
				}
				if strings.TrimSpace(line) != "" {
					tail = append(tail, line)
					if len(tail) > logTailLines {
						tail = tail[1:]
					}
				}
				if logLine != nil {
					logLine(line)
				}
			}
			partial.Reset()
			partial.WriteString(text)
		}
	}
}

// logTailLines is how many of a failed build's last log lines its error
// carries: the real cause is there ("container exited on killed", a
// command's own message), while podman's error only says "while running
// runtime: exit status 1".
const logTailLines = 5

func withTail(msg string, tail []string) string {
	if len(tail) == 0 {
		return msg
	}
	return msg + " (build log ends: " + strings.Join(tail, " | ") + ")"
}

// watchEOF calls onEOF once when the body has been read to the end: the
// server has the whole context and the build proper begins.
type watchEOF struct {
	r     io.Reader
	onEOF func()
	done  bool
}

func (w *watchEOF) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err == io.EOF && !w.done {
		w.done = true
		if w.onEOF != nil {
			w.onEOF()
		}
	}
	return n, err
}
