//go:build lab

package lab

// Nobody gets in, nothing gets out: no password, token or private key in any
// record, log line or error message; nothing the build context leaves out
// (ignored files, what symlinks point to outside it, special files) ever
// reaches a node or an image.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// relSecrets finds secrets in text: verbatim, or inside anything that looks
// like base64 (an X-Registry-Auth header, an authfile's "auth").
type relSecrets struct {
	plain   []string // passwords, as typed
	encoded []string // base64 lines of key files, authfile entries
}

var relBase64Token = regexp.MustCompile(`[A-Za-z0-9+/_-]{16,}={0,2}`)

func (s relSecrets) find(text string) []string {
	var hits []string
	for _, p := range append(append([]string{}, s.plain...), s.encoded...) {
		if strings.Contains(text, p) {
			hits = append(hits, p)
		}
	}
	for _, tok := range relBase64Token.FindAllString(text, -1) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			dec, err := enc.DecodeString(tok)
			if err != nil {
				continue
			}
			for _, p := range s.plain {
				if bytes.Contains(dec, []byte(p)) {
					hits = append(hits, p+" (base64 in "+tok+")")
				}
			}
		}
	}
	return hits
}

// relLogTail returns what was appended to a log file since offset.
func relLogSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func relLogTail(path string, offset int64) string {
	data, _ := os.ReadFile(path)
	if int64(len(data)) < offset {
		return string(data)
	}
	return string(data[offset:])
}

// The typical commands, with a password in connection URIs, the lab's
// private key as identity, and registry credentials in an authfile, each
// run at debug level, succeeding and failing: no output of any of them and
// no line the nodes' podman services logged meanwhile holds a secret.
func TestNoSecretInRecordsOrLogs(t *testing.T) {
	const uriPassword = "S3cretPW"
	regPassword := "RegPassw0rd-" + relNonce()
	wrongPassword := "WrongPassw0rd-" + relNonce()
	hash, err := bcrypt.GenerateFromPassword([]byte(regPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	reg := relStartRegistry(t, "farm:"+string(hash))
	dir := t.TempDir()
	authfile := func(name, password string) string {
		auth := base64.StdEncoding.EncodeToString([]byte("farm:" + password))
		return relWriteFile(t, filepath.Join(dir, name), fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.addr, auth))
	}
	goodAuth, badAuth := authfile("auth.json", regPassword), authfile("bad-auth.json", wrongPassword)

	key := labVar(t, "FARM_LAB_KEY")
	secrets := relSecrets{plain: []string{uriPassword, regPassword, wrongPassword}}
	for _, p := range []string{regPassword, wrongPassword} {
		secrets.encoded = append(secrets.encoded, base64.StdEncoding.EncodeToString([]byte("farm:"+p)))
	}
	pem, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(pem), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "-----") {
			secrets.encoded = append(secrets.encoded, line)
		}
	}
	if len(secrets.encoded) < 4 {
		t.Fatalf("no key body in %s", key)
	}
	// The scanner itself must catch a leak, or this test proves nothing.
	header := base64.URLEncoding.EncodeToString([]byte(`{"username":"farm","password":"` + regPassword + `"}`))
	for _, leak := range []string{"uri ssh://root:" + uriPassword + "@h", "X-Registry-Auth: " + header, "key " + secrets.encoded[2]} {
		if len(secrets.find(leak)) == 0 {
			t.Fatalf("the scanner misses the secret in %q", leak)
		}
	}

	withPW := func(uri string) string { return strings.Replace(uri, "root@", "root:"+uriPassword+"@", 1) }
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	conf := relWriteFile(t, filepath.Join(dir, "containers.conf"), fmt.Sprintf(`[engine.service_destinations.lab-1]
uri = %q
identity = %q
[engine.service_destinations.pw-refused]
uri = "ssh://root:%[3]s@%[4]s/run/podman/podman.sock"
identity = %[2]q
[engine.service_destinations.pw-badport]
uri = "ssh://root:%[3]s@127.0.0.1:notaport/run/podman/podman.sock"
identity = %[2]q
[engine.service_destinations.pw-nosocket]
uri = "ssh://root:%[3]s@127.0.0.1:%[5]s"
identity = %[2]q
[engine.service_destinations.pw-pubkey]
uri = %[6]q
identity = "%[2]s.pub"
[engine.service_destinations.pw-scheme]
uri = "ftp://root:%[3]s@127.0.0.1/podman.sock"
`, withPW(labVar(t, "FARM_LAB_1_URI")), key, uriPassword, closed, labVar(t, "FARM_LAB_2_PORT"), withPW(labVar(t, "FARM_LAB_3_URI"))))
	env := []string{"CONTAINERS_CONF=" + conf, "FARM_LOG_LEVEL=debug"}

	logs := map[string]int64{}
	for i := 1; i <= len(relLabNodes(t)); i++ {
		path := fmt.Sprintf("%s/lab-%d/service.log", labDir(), i)
		logs[path] = relLogSize(path)
	}

	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile})
	nodes, plan, pushed := filepath.Join(dir, "nodes.jsonl"), filepath.Join(dir, "plan.jsonl"), filepath.Join(dir, "pushed.jsonl")
	image := reg.addr + "/farm-test/secrets:1"
	local := "localhost/farm-test/secrets:" + relNonce()
	relRemoveLocal(t, local, local+"-linux-amd64", local+"-linux-arm64")
	t.Cleanup(func() {
		relRemoveOnNodes(t, local+"-linux-amd64", local+"-linux-arm64", image+"-linux-amd64", image+"-linux-arm64",
			reg.addr+"/farm-test/secrets:denied-linux-amd64", reg.addr+"/farm-test/secrets:denied-linux-arm64")
	})
	// A hand-written plan (a custom scheduler) may carry the password
	// itself: farm-build must not repeat it either.
	badJobs := relWriteFile(t, filepath.Join(dir, "bad-jobs.jsonl"), fmt.Sprintf(
		`{"v":1,"kind":"job","platform":"linux/amd64","node":{"name":"pw-refused","uri":"ssh://root:%[1]s@%[2]s/run/podman/podman.sock","identity":%[3]q}}`+"\n"+
			`{"v":1,"kind":"job","platform":"linux/arm64","node":{"name":"pw-badport","uri":"ssh://root:%[1]s@127.0.0.1:notaport/x.sock","identity":%[3]q}}`+"\n"+
			`{"v":1,"kind":"job","platform":"linux/riscv64","node":{"name":"pw-pubkey","uri":%[4]q,"identity":"%[3]s.pub"}}`+"\n"+
			`{"v":1,"kind":"end"}`+"\n",
		uriPassword, closed, key, withPW(labVar(t, "FARM_LAB_1_URI"))))

	steps := []struct {
		script string
		ok     bool
	}{
		// ok: whether the step must succeed (it must fail otherwise).
		{"farm-nodes --timeout 5s > " + nodes + "; cat " + nodes, true},
		{"farm-nodes --timeout 5s --format table", true},
		{"farm-plan --platforms linux/amd64,linux/arm64 --explain < " + nodes + " > " + plan + "; cat " + plan, true},
		{fmt.Sprintf("farm-build --push --tls-verify=false --authfile %s -t %s --build-arg NONCE=%s %s < %s | tee %s", goodAuth, image, relNonce(), ctxDir, plan, pushed), true},
		{fmt.Sprintf("farm-manifest --tls-verify=false --authfile %s < %s", goodAuth, pushed), true},
		{fmt.Sprintf("farm-build --push --tls-verify=false --authfile %s -t %s --build-arg NONCE=%s %s < %s", badAuth, reg.addr+"/farm-test/secrets:denied", relNonce(), ctxDir, plan), false},
		{fmt.Sprintf("farm-manifest --tls-verify=false --authfile %s %s < %s", badAuth, reg.addr+"/farm-test/secrets:denied", pushed), false},
		{fmt.Sprintf("set -o pipefail; farm-build -t %s --build-arg NONCE=%s %s < %s | farm-manifest --tls-verify=false --authfile %s --push %s",
			local, relNonce(), ctxDir, plan, goodAuth, reg.addr+"/farm-test/secrets:2"), true},
		{"farm-build --timeout 20s -t localhost/farm-test/secrets:bad " + ctxDir + " < " + badJobs, false},
	}
	var all strings.Builder
	for _, step := range steps {
		r := run(t, env, step.script)
		if (r.code == 0) != step.ok {
			t.Errorf("exit %d, want success %v: %s", r.code, step.ok, step.script)
		}
		if strings.Contains(step.script, badAuth) && strings.Contains(r.stderr, "retrying in") {
			t.Errorf("refused credentials are not worth a retry: %s", step.script)
		}
		for _, out := range []string{r.stdout, r.stderr} {
			if hits := secrets.find(out); len(hits) > 0 {
				t.Errorf("secrets in the output of %s: %v\n%s", step.script, hits, out)
			}
			all.WriteString(out)
		}
	}
	for path, offset := range logs {
		if hits := secrets.find(relLogTail(path, offset)); len(hits) > 0 {
			t.Errorf("secrets in %s: %v", path, hits)
		}
	}

	// Redacted, not dropped: the records still say which user and key.
	n := nodesOf(decode(t, relRead(nodes)))
	if lab1 := n["lab-1"]; lab1 == nil || lab1.Error != "" || !strings.HasPrefix(lab1.URI, "ssh://root:xxxxx@127.0.0.1:") || lab1.Identity != key {
		t.Errorf("lab-1 should answer, its URI redacted and its identity named by path: %+v", lab1)
	}
	for name, want := range map[string]string{"pw-refused": "connection refused", "pw-badport": "not a valid URL",
		"pw-nosocket": "no socket path", "pw-pubkey": ".pub", "pw-scheme": "unsupported scheme"} {
		if rec := n[name]; rec == nil || !strings.Contains(rec.Error, want) || !strings.Contains(rec.URI, "xxxxx") {
			t.Errorf("%s: want an error saying %q and a redacted URI: %+v", name, want, rec)
		}
	}
	if !strings.Contains(all.String(), "unauthorized") && !strings.Contains(all.String(), "authentication required") {
		t.Errorf("the bad credentials should be reported as refused")
	}
	for _, ref := range []string{reg.addr + "/farm-test/secrets:denied", reg.addr + "/farm-test/secrets:denied-linux-amd64"} {
		if out, err := relSkopeoRaw(ref, "--creds", "farm:"+regPassword); err == nil || !strings.Contains(out, "manifest unknown") {
			t.Errorf("refused credentials pushed %s (skopeo: %v %s)", ref, err, out)
		}
	}
}

// ----------------------------------------------------------- build context

// relGrep lists the files under dirs holding any of the markers (no
// symlinks followed, no devices or FIFOs read).
func relGrep(t *testing.T, markers []string, dirs ...string) []string {
	t.Helper()
	args := []string{"-rlF", "-D", "skip"}
	for _, m := range markers {
		args = append(args, "-e", m)
	}
	var existing []string
	for _, d := range dirs {
		if fileExists(d) {
			existing = append(existing, d)
		}
	}
	if len(existing) == 0 {
		return nil
	}
	out, err := exec.Command("grep", append(args, existing...)...).Output()
	if exit, ok := err.(*exec.ExitError); ok && exit.ExitCode() == 1 {
		return nil // nothing found
	}
	if err != nil && len(out) == 0 {
		t.Fatalf("grep: %v", err)
	}
	return strings.Fields(string(out))
}

// relNodeDirs is where a node keeps anything a build sent it: its storage
// and temporary files, and /var/tmp where its service unpacks contexts.
func relNodeDirs() []string {
	dirs, _ := filepath.Glob(labDir() + "/lab-*/root")
	tmps, _ := filepath.Glob(labDir() + "/lab-*/tmp")
	return append(append(dirs, tmps...), "/var/tmp")
}

// A context with everything that must not leave the machine: ignored files
// (.env, keys/, **/*.pem), symlinks out of it (to /etc/shadow, via ..,
// absolute: sent as symlinks, as podman-remote sends them, never followed;
// the node refuses one that climbs out with ..),
// a socket, a FIFO, a device. The build succeeds with a warning for each
// special file left out; no node and no image holds an ignored file's or an
// outside file's content, while the one ordinary file does reach both (so
// the search can find things). A COPY of ../ fails on the node.
func TestBuildContextNeverLeaks(t *testing.T) {
	nonce := relNonce()
	marker := func(what string) string { return "FARM-MARKER-" + what + "-" + nonce }
	parent := t.TempDir()
	relWriteFile(t, filepath.Join(parent, "outside.txt"), marker("OUTSIDE")+"\n")
	ctxDir := filepath.Join(parent, "ctx")
	files := map[string]string{
		"Containerfile":    "FROM localhost/busybox:amd64\nCOPY . /app/\nRUN ls -la /app\n",
		"Containerfile.up": "FROM localhost/busybox:amd64\nCOPY ../outside.txt /outside.txt\n",
		".containerignore": ".env\nkeys/\n**/*.pem\n",
		"sent.txt":         marker("SENT") + "\n",
		".env":             "TOKEN=" + marker("ENV") + "\n",
		"keys/id_rsa":      marker("KEY") + "\n",
		"server.pem":       marker("PEM") + "\n",
		"sub/deep.pem":     marker("DEEPPEM") + "\n",
	}
	for name, content := range files {
		path := filepath.Join(ctxDir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(path), 0o755)
		relWriteFile(t, path, content)
	}
	for link, target := range map[string]string{"shadow": "/etc/shadow", "etc": "/etc", "inside": "sent.txt"} {
		if err := os.Symlink(target, filepath.Join(ctxDir, link)); err != nil {
			t.Fatal(err)
		}
	}
	sock, err := net.Listen("unix", filepath.Join(ctxDir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if err := syscall.Mkfifo(filepath.Join(ctxDir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(filepath.Join(ctxDir, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatal(err)
	}
	secretMarkers := []string{marker("OUTSIDE"), marker("ENV"), marker("KEY"), marker("PEM"), marker("DEEPPEM")}
	shadow, err := os.ReadFile("/etc/shadow")
	if err != nil || len(bytes.TrimSpace(shadow)) == 0 {
		t.Fatalf("/etc/shadow: %v", err)
	}
	shadowLine := strings.SplitN(string(shadow), "\n", 2)[0]

	tag := "localhost/farm-test/context:" + nonce
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	t.Cleanup(func() { relRemoveOnNodes(t, tag+"-linux-amd64") })
	relRemoveLocal(t, tag+"-linux-amd64")
	r := run(t, nil, fmt.Sprintf("farm-build -t %s %s < %s", tag, ctxDir, plan))
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, want := range []string{
		"not sending " + ctxDir + "/sock: a socket cannot be part of a build context",
		"not sending " + ctxDir + "/fifo: a named pipe cannot be part of a build context",
		"not sending " + ctxDir + "/null: a character device cannot be part of a build context",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr should warn: %s", want)
		}
	}
	if strings.Contains(r.stderr, "not sending symlink") {
		t.Errorf("symlinks are sent as symlinks, as podman-remote sends them")
	}
	// Symlinks out of the context arrive as symlinks, as with podman: they
	// resolve in the image, never to this machine's files.
	for link, target := range map[string]string{"shadow": "/etc/shadow", "etc": "/etc"} {
		if ls := podman(t, "run", "--rm", "--pull=never", tag+"-linux-amd64", "ls", "-ld", "/app/"+link); !strings.HasSuffix(strings.TrimSpace(ls), "/app/"+link+" -> "+target) {
			t.Errorf("/app/%s should be a symlink to %s: %q", link, target, ls)
		}
	}
	// The image: the ordinary file and the inner symlink are there, nothing
	// else of the list, and nothing of /etc/shadow.
	if link := podman(t, "run", "--rm", "--pull=never", tag+"-linux-amd64", "ls", "-l", "/app/inside"); !strings.HasSuffix(link, "/app/inside -> sent.txt") {
		t.Errorf("the symlink inside the context should arrive as a symlink to sent.txt, reads %q", link)
	}
	listing := podman(t, "run", "--rm", "--pull=never", tag+"-linux-amd64", "ls", "-a", "/app")
	for _, want := range []string{"sent.txt", "inside", "Containerfile"} {
		if !strings.Contains(listing, want) {
			t.Errorf("/app lacks %s:\n%s", want, listing)
		}
	}
	for _, never := range []string{".env", "keys", "server.pem", "sock", "fifo", "null"} {
		for _, f := range strings.Fields(listing) {
			if f == never {
				t.Errorf("/app holds %s:\n%s", never, listing)
			}
		}
	}
	if deep := podman(t, "run", "--rm", "--pull=never", tag+"-linux-amd64", "ls", "/app/sub"); strings.TrimSpace(deep) != "" {
		t.Errorf("/app/sub should be empty (deep.pem is ignored): %s", deep)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	podman(t, "save", "--format", "docker-archive", "-o", archive, tag+"-linux-amd64")
	saved, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(saved, []byte(marker("SENT"))) {
		t.Fatalf("the image archive lacks the ordinary file: the search below would prove nothing")
	}
	for _, m := range append(secretMarkers, shadowLine) {
		if bytes.Contains(saved, []byte(m)) {
			t.Errorf("the image holds %q", m)
		}
	}
	// The nodes: the ordinary file reached lab-1's storage, nothing else did.
	if found := relGrep(t, []string{marker("SENT")}, labDir()+"/lab-1/root"); len(found) == 0 {
		t.Fatalf("the ordinary file is not in lab-1's storage: the search below would prove nothing")
	}
	if found := relGrep(t, secretMarkers, relNodeDirs()...); len(found) > 0 {
		t.Errorf("files the context left out reached a node: %v", found)
	}

	// COPY ../outside.txt: the file was never sent, so the build fails on
	// the node, for the same reason everywhere (no fail-over). A symlink
	// to it with .. is sent as a symlink, as podman-remote sends it, and
	// the node's podman refuses it ("invalid symlink").
	if err := os.Symlink("../outside.txt", filepath.Join(ctxDir, "up")); err != nil {
		t.Fatal(err)
	}
	r = run(t, nil, fmt.Sprintf("farm-build -t %s-up -f %s/Containerfile.up %s < %s", tag, ctxDir, ctxDir, plan))
	errs := errorsOf(decode(t, r.stdout))
	if r.code != 1 || len(errs) != 1 || !strings.Contains(errs[0].Error, "outside.txt") {
		t.Errorf("COPY ../outside.txt should fail the build naming the file: exit %d, %+v", r.code, errs)
	}
	if strings.Contains(r.stderr, "failing over") {
		t.Errorf("a COPY from outside the context fails the same on every node: no fail-over")
	}
	if found := relGrep(t, []string{marker("OUTSIDE")}, relNodeDirs()...); len(found) > 0 {
		t.Errorf("the file outside the context reached a node: %v", found)
	}
}

// A file farm-build cannot read is an error that names it (an image quietly
// missing a file is worse than a failed build), before anything is sent;
// the same file in .containerignore is no problem. farm-build runs without
// CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so root cannot read a mode 000 file.
func TestUnreadableContextFile(t *testing.T) {
	for _, ignored := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignored=%v", ignored), func(t *testing.T) {
			files := map[string]string{"Containerfile": nonceFile, "locked.bin": "x\n"}
			if ignored {
				files[".containerignore"] = "locked.bin\n"
			}
			ctxDir := relContext(t, files)
			locked := filepath.Join(ctxDir, "locked.bin")
			if err := os.Chmod(locked, 0); err != nil {
				t.Fatal(err)
			}
			// --push: no local podman service (it would run without the
			// capabilities too); empty stdin: nothing to build anyway.
			r := run(t, nil, "setpriv --bounding-set=-dac_override,-dac_read_search bin/farm-build --push -t localhost/farm-test/unreadable:1 "+ctxDir+" < /dev/null")
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			if ignored {
				if !strings.Contains(r.stderr, "build context ready") || strings.Contains(r.stderr, "permission denied") {
					t.Errorf("an ignored unreadable file must not matter")
				}
				return
			}
			want := "reading " + locked + ": permission denied (make it readable or list it in .containerignore)"
			if !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "build context ready") {
				t.Errorf("stderr should say %q and stop there", want)
			}
			if len(decode(t, r.stdout)) > 1 || strings.Contains(r.stdout, `"kind":"image"`) {
				t.Errorf("records: %s", r.stdout)
			}
		})
	}
}

// Connection URIs that are not valid URLs but carry a password (no scheme,
// "ssh:" without slashes, "ssh:/"): the password is shown nowhere, not in
// node records, the table, farm-plan's log nor farm-build's error records.
func TestNoPasswordFromMalformedURIs(t *testing.T) {
	const pw = "hunter2"
	dir := t.TempDir()
	key := labVar(t, "FARM_LAB_KEY")
	port := labVar(t, "FARM_LAB_3_PORT")
	sock := labVar(t, "FARM_LAB_3_SOCK")
	uris := map[string]string{
		"no-scheme":   "root:" + pw + "@127.0.0.1:" + port + sock,
		"one-colon":   "ssh:root:" + pw + "@127.0.0.1:" + port + sock,
		"one-slash":   "ssh:/root:" + pw + "@127.0.0.1:" + port + sock,
		"slash-in-pw": "ssh://root:hun/" + pw + "@127.0.0.1:" + port + sock,
	}
	var conf, jobs strings.Builder
	conf.WriteString(fmt.Sprintf("[engine.service_destinations.lab-1]\nuri = %q\nidentity = %q\n", labVar(t, "FARM_LAB_1_URI"), key))
	plats := []string{"linux/amd64", "linux/arm64", "linux/386", "linux/s390x"}
	for name, uri := range uris {
		conf.WriteString(fmt.Sprintf("[engine.service_destinations.%s]\nuri = %q\nidentity = %q\n", name, uri, key))
		// One platform each: a plan names a platform once.
		jobs.WriteString(fmt.Sprintf(`{"v":1,"kind":"job","platform":%q,"node":{"name":%q,"uri":%q,"identity":%q}}`+"\n", plats[0], name, uri, key))
		plats = plats[1:]
	}
	env := []string{"CONTAINERS_CONF=" + relWriteFile(t, filepath.Join(dir, "containers.conf"), conf.String()), "FARM_LOG_LEVEL=debug"}
	nodes := filepath.Join(dir, "nodes.jsonl")
	ctxDir := relContext(t, map[string]string{"Containerfile": "FROM localhost/busybox:amd64\n"})
	for _, script := range []string{
		"farm-nodes --timeout 5s > " + nodes + "; cat " + nodes,
		"farm-nodes --timeout 5s --format table",
		"farm-plan --platforms linux/amd64 --explain < " + nodes,
		"farm-build --timeout 20s -t localhost/farm-test/malformed:1 " + ctxDir + " < " + relWriteFile(t, filepath.Join(dir, "jobs.jsonl"), jobs.String()+`{"v":1,"kind":"end"}`+"\n"),
	} {
		r := run(t, env, script)
		for _, out := range []string{r.stdout, r.stderr} {
			if strings.Contains(out, pw) {
				t.Errorf("%s shows the password:\n%s", script, out)
			}
		}
	}
	n := nodesOf(decode(t, relRead(nodes)))
	for name := range uris {
		if rec := n[name]; rec == nil || rec.Error == "" || !strings.Contains(rec.URI, "root:xxxxx@") {
			t.Errorf("%s: want an error record naming the user with the password redacted: %+v", name, rec)
		}
	}
}
