package podmantest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

func (s *Server) defaultRoutes() []route {
	r := func(method, pattern string, h http.HandlerFunc) route {
		return route{method, regexp.MustCompile("^" + pattern + "$"), h}
	}
	return []route{
		r(http.MethodGet, `/_ping`, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "OK") }),
		r(http.MethodGet, `/info`, func(w http.ResponseWriter, _ *http.Request) { s.writeJSON(w, s.Info) }),
		r(http.MethodPost, `/build`, s.build),
		r(http.MethodGet, `/images/([^/]+)/exists`, exists("image", func(n string) bool { _, ok := s.Image(n); return ok })),
		r(http.MethodGet, `/images/([^/]+)/json`, s.inspect),
		r(http.MethodGet, `/images/export`, s.export),
		r(http.MethodPost, `/images/load`, s.load),
		r(http.MethodPost, `/images/([^/]+)/push`, s.push),
		r(http.MethodPost, `/images/pull`, s.pull),
		r(http.MethodPost, `/images/([^/]+)/tag`, s.tag),
		r(http.MethodPost, `/images/([^/]+)/untag`, s.untag),
		r(http.MethodDelete, `/images/remove`, s.remove),
		r(http.MethodPost, `/manifests/([^/]+)`, s.manifestCreate),
		r(http.MethodGet, `/manifests/([^/]+)/exists`, exists("manifest", func(n string) bool { _, ok := s.List(n); return ok })),
		r(http.MethodPut, `/manifests/([^/]+)`, s.manifestAdd),
		r(http.MethodGet, `/manifests/([^/]+)/json`, s.manifestInspect),
		r(http.MethodDelete, `/manifests/([^/]+)`, s.manifestDelete),
		r(http.MethodPost, `/manifests/([^/]+)/registry/(.+)`, s.manifestPush),
	}
}

func (s *Server) writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// pathArg is the n-th /-separated element of the request's escaped path
// after /vX/libpod, unescaped.
func pathArg(r *http.Request, n int) string {
	parts := strings.Split(versionPrefix.ReplaceAllString(r.URL.EscapedPath(), ""), "/")
	if n < len(parts) {
		v, err := url.PathUnescape(parts[n])
		if err == nil {
			return v
		}
		return parts[n]
	}
	return ""
}

// build reads the context and makes an image named by the t parameter:
// a log line, then the id, as podman's build stream does.
func (s *Server) build(w http.ResponseWriter, r *http.Request) {
	Drain(r)
	plat := r.URL.Query().Get("platform")
	id := BuiltID(plat)
	os, arch := "linux", "amd64"
	if p := strings.Split(plat, "/"); len(p) >= 2 {
		os, arch = p[0], p[1]
	}
	img := Image{ID: id, OS: os, Arch: arch, Size: 1000}
	if tag := r.URL.Query().Get("t"); tag != "" {
		img.Names = []string{tag}
	}
	s.AddImage(img)
	writeStream(w, map[string]string{"stream": "STEP 1/1: FROM scratch\n"}, map[string]string{"stream": id + "\n"})
}

// exists answers an exists endpoint as podman does: 204 or 404, no body.
func exists(what string, found func(name string) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if found(pathArg(r, 2)) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		Fail(http.StatusNotFound, "no such "+what)(w, r)
	}
}

func (s *Server) inspect(w http.ResponseWriter, r *http.Request) {
	img, ok := s.Image(pathArg(r, 2))
	if !ok {
		Fail(http.StatusNotFound, "no such image")(w, r)
		return
	}
	s.writeJSON(w, map[string]any{"Id": img.ID, "Digest": img.Digest, "Size": img.Size, "Os": img.OS,
		"Architecture": img.Arch, "RepoTags": img.Names})
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	var b []byte
	for _, ref := range r.URL.Query()["references"] {
		img, ok := s.Image(ref)
		if !ok {
			Fail(http.StatusNotFound, "no such image "+ref)(w, r)
			return
		}
		b = append(b, ArchiveOf(img)...)
	}
	w.Write(b)
}

func (s *Server) load(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	body, ok := bytes.CutPrefix(b, []byte("podmantest-archive\n"))
	var img Image
	if !ok || json.Unmarshal(body, &img) != nil {
		Fail(http.StatusInternalServerError, "payload does not match any of the supported image formats")(w, r)
		return
	}
	img.Names = nil
	s.AddImage(img)
	s.writeJSON(w, map[string]any{"Names": []string{"sha256:" + img.ID}})
}

func (s *Server) push(w http.ResponseWriter, r *http.Request) {
	img, ok := s.Image(pathArg(r, 2))
	if !ok {
		Fail(http.StatusNotFound, "no such image")(w, r)
		return
	}
	writeStream(w, map[string]string{"stream": "Copying blob\n"}, map[string]string{"manifestdigest": img.Digest})
}

// pull finds the image by the reference's repository name in storage (a
// test adds it first): the fake has no registry behind it.
func (s *Server) pull(w http.ResponseWriter, r *http.Request) {
	ref := r.URL.Query().Get("reference")
	name, _, _ := strings.Cut(ref, "@")
	img, ok := s.Image(name)
	if !ok {
		writeStream(w, map[string]string{"error": "initializing source " + ref + ": manifest unknown"})
		return
	}
	s.mu.Lock()
	s.images[img.ID].Names = append(s.images[img.ID].Names, ref)
	s.mu.Unlock()
	writeStream(w, map[string]string{"stream": "Copying blob\n"}, map[string]any{"images": []string{img.ID}}, map[string]string{"id": img.ID})
}

func (s *Server) tag(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img := s.find(pathArg(r, 2))
	if img == nil {
		s.mu.Unlock()
		Fail(http.StatusNotFound, "no such image")(w, r)
		s.mu.Lock()
		return
	}
	s.nameLocked(img, r.URL.Query().Get("repo")+":"+r.URL.Query().Get("tag"))
	w.WriteHeader(http.StatusCreated)
}

// nameLocked names img, taking the name off any other image: in
// containers/storage a name is on one image at a time.
func (s *Server) nameLocked(img *Image, name string) {
	for _, other := range s.images {
		other.Names = slices.DeleteFunc(other.Names, func(n string) bool { return n == name })
	}
	img.Names = append(img.Names, name)
}

func (s *Server) untag(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img := s.find(pathArg(r, 2))
	if img == nil {
		s.mu.Unlock()
		Fail(http.StatusNotFound, "no such image")(w, r)
		s.mu.Lock()
		return
	}
	name := r.URL.Query().Get("repo") + ":" + r.URL.Query().Get("tag")
	var keep []string
	for _, n := range img.Names {
		if n != name {
			keep = append(keep, n)
		}
	}
	img.Names = keep
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var deleted, errs []string
	for _, ref := range r.URL.Query()["images"] {
		if img := s.find(ref); img != nil {
			delete(s.images, img.ID)
			deleted = append(deleted, img.ID)
		} else {
			errs = append(errs, "no such image "+ref)
		}
	}
	s.mu.Unlock()
	code := 0
	if len(errs) > 0 {
		code = 1
	}
	s.writeJSON(w, map[string]any{"Deleted": deleted, "Errors": errs, "ExitCode": code})
}

func (s *Server) manifestCreate(w http.ResponseWriter, r *http.Request) {
	name := pathArg(r, 2)
	s.mu.Lock()
	s.lists[name] = nil
	s.mu.Unlock()
	s.writeJSON(w, map[string]string{"Id": BuildID("list " + name)})
}

func (s *Server) manifestAdd(w http.ResponseWriter, r *http.Request) {
	name := pathArg(r, 2)
	var body struct {
		Images []string `json:"images"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.lists[name]; !ok {
		s.mu.Unlock()
		Fail(http.StatusNotFound, "no such manifest "+name)(w, r)
		s.mu.Lock()
		return
	}
	for _, ref := range body.Images {
		img := s.find(ref)
		if img == nil {
			s.mu.Unlock()
			Fail(http.StatusNotFound, "no such image "+ref)(w, r)
			s.mu.Lock()
			return
		}
		s.lists[name] = append(s.lists[name], img.ID)
	}
	s.writeJSON(w, map[string]string{"Id": BuildID("list " + name)})
}

func (s *Server) manifestInspect(w http.ResponseWriter, r *http.Request) {
	name := pathArg(r, 2)
	ids, ok := s.List(name)
	if !ok {
		Fail(http.StatusNotFound, "no such manifest")(w, r)
		return
	}
	var ms []map[string]any
	for _, id := range ids {
		img, _ := s.Image(id)
		ms = append(ms, map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": img.Digest,
			"size": 500, "platform": map[string]string{"os": img.OS, "architecture": img.Arch}})
	}
	s.writeJSON(w, map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": ms})
}

func (s *Server) manifestDelete(w http.ResponseWriter, r *http.Request) {
	name := pathArg(r, 2)
	s.mu.Lock()
	_, ok := s.lists[name]
	delete(s.lists, name)
	s.mu.Unlock()
	if !ok {
		Fail(http.StatusNotFound, "no such manifest")(w, r)
		return
	}
	s.writeJSON(w, map[string]any{"Deleted": []string{name}, "ExitCode": 0})
}

func (s *Server) manifestPush(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.List(pathArg(r, 2)); !ok {
		Fail(http.StatusNotFound, "no such manifest")(w, r)
		return
	}
	writeStream(w, map[string]string{"stream": "Writing manifest list\n"}, map[string]string{"Id": "sha256:" + strings.Repeat("e", 64)})
}
