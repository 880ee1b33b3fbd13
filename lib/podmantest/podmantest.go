// Package podmantest is a fake podman service for unit tests: an
// in-process HTTP server on a unix socket that speaks the libpod endpoints
// farm uses (ping, info, build, image exists/inspect/export/load/push/pull/
// tag/untag/remove, manifests) with an in-memory image store, and that a
// test can script per endpoint to fail, stall or die part way through a
// stream. go-containerregistry's pkg/registry is the model.
package podmantest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Image is one image in the fake's storage.
type Image struct {
	ID     string
	Names  []string
	Digest string
	Size   int64
	OS     string
	Arch   string
}

// Server is a fake podman service. The zero value is not usable: use New.
type Server struct {
	// URI is unix:///.../podman.sock.
	URI string
	// Info is what GET /info answers (a libpod info document).
	Info map[string]any

	mu       sync.Mutex
	images   map[string]*Image
	lists    map[string][]string // manifest list name -> image ids
	requests []string
	routes   []route
	srv      *http.Server
	ln       net.Listener
}

type route struct {
	method string
	path   *regexp.Regexp
	h      http.HandlerFunc
}

// New starts a fake service; it stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "podmantest-")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen(filepath.Join(dir, "podman.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); os.RemoveAll(dir) })
	return s
}

// Listen starts a fake service on the unix socket sock, for a test that
// plays a podman process (see lib/local's tests); Close stops it.
func Listen(sock string) (*Server, error) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	s := &Server{
		URI: "unix://" + sock, images: map[string]*Image{}, lists: map[string][]string{}, ln: ln,
		Info: map[string]any{
			"host":    map[string]any{"os": "linux", "arch": "amd64", "cgroupManager": "cgroupfs", "cpus": 2, "memTotal": 1 << 30},
			"version": map[string]any{"Version": "4.3.1"},
		},
	}
	s.routes = s.defaultRoutes()
	s.srv = &http.Server{Handler: s}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the service at once: open connections are cut, as when the
// podman service dies.
func (s *Server) Close() { s.srv.Close() }

// Handle scripts the endpoint: requests whose method matches and whose
// escaped path (after /vX.Y.Z/libpod) matches the regular expression pattern go to
// h, before the fake's own handlers.
func (s *Server) Handle(method, pattern string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = append([]route{{method, regexp.MustCompile("^" + pattern + "$"), h}}, s.routes...)
}

// Requests lists "METHOD /path" of every request so far, the API version
// prefix removed, the path escaped as sent (localhost%2Fapp:1).
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Count is how many requests matched "METHOD /path" exactly.
func (s *Server) Count(req string) int {
	n := 0
	for _, r := range s.Requests() {
		if r == req {
			n++
		}
	}
	return n
}

// AddImage puts img into storage, taking its names off any other image, as
// containers/storage does.
func (s *Server) AddImage(img Image) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := img
	if c.OS == "" {
		c.OS = "linux"
	}
	if c.Arch == "" {
		c.Arch = "amd64"
	}
	if c.Digest == "" {
		c.Digest = "sha256:" + strings.Repeat("d", 64)
	}
	c.Names = nil
	s.images[c.ID] = &c
	for _, name := range img.Names {
		s.nameLocked(&c, name)
	}
}

// Image returns the image with this id or name.
func (s *Server) Image(ref string) (Image, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if img := s.find(ref); img != nil {
		c := *img
		c.Names = append([]string(nil), img.Names...)
		return c, true
	}
	return Image{}, false
}

// Images lists the ids in storage, sorted.
func (s *Server) Images() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.images {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// List returns the image ids in manifest list name.
func (s *Server) List(name string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, ok := s.lists[name]
	return append([]string(nil), ids...), ok
}

func (s *Server) find(ref string) *Image {
	ref = strings.TrimPrefix(ref, "containers-storage:")
	if img, ok := s.images[ref]; ok {
		return img
	}
	for _, img := range s.images {
		if strings.HasPrefix(img.ID, ref) && len(ref) >= 12 {
			return img
		}
		for _, n := range img.Names {
			if n == ref || n == "localhost/"+ref || strings.TrimPrefix(n, "docker.io/library/") == ref {
				return img
			}
		}
	}
	return nil
}

var versionPrefix = regexp.MustCompile(`^/v[0-9][0-9.]*/libpod`)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Match on the escaped path: names such as localhost/app:1 travel as
	// one escaped element.
	path := versionPrefix.ReplaceAllString(r.URL.EscapedPath(), "")
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+path)
	routes := s.routes
	s.mu.Unlock()
	w.Header().Set("Libpod-API-Version", "4.3.1")
	for _, rt := range routes {
		if (rt.method == "" || rt.method == r.Method) && rt.path.MatchString(path) {
			rt.h(w, r)
			return
		}
	}
	Fail(http.StatusNotFound, "no such endpoint in podmantest: "+r.Method+" "+path)(w, r)
}

// Fail answers with podman's error document and the status code.
func Fail(code int, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"cause": msg, "message": msg, "response": code})
	}
}

// Stream answers 200 with these JSON messages, one a line, flushing each.
func Stream(msgs ...any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		writeStream(w, msgs...)
	}
}

func writeStream(w http.ResponseWriter, msgs ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, m := range msgs {
		enc.Encode(m)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// Stall reads the request, signals started (when not nil) and then
// answers nothing until the client goes away: a node that hangs.
func Stall(started chan<- struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if started != nil {
			started <- struct{}{}
		}
		<-r.Context().Done()
	}
}

// DieMidStream writes these messages, then cuts the connection: a podman
// service killed part way through a stream.
func DieMidStream(msgs ...any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		writeStream(w, msgs...)
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic("podmantest: cannot hijack")
		}
		c, _, err := hj.Hijack()
		if err == nil {
			c.Close()
		}
	}
}

// ArchiveOf is the fake's image archive for id, what export sends and load
// understands: the archive carries the image itself.
func ArchiveOf(img Image) []byte {
	b, _ := json.Marshal(img)
	return append([]byte("podmantest-archive\n"), b...)
}

// BuildID is an image id made from key: a test's own images and lists.
func BuildID(key string) string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(key)))
}

// BuiltID is the id of the image the fake's build makes for platform, as
// the build request names it (OS/ARCH[/VARIANT]).
func BuiltID(platform string) string { return BuildID("build " + platform) }

// Drain reads r fully: helpers that script endpoints use it before answering.
func Drain(r *http.Request) { io.Copy(io.Discard, r.Body) }
