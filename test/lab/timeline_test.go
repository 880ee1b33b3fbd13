//go:build lab

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// need makes sure a command from a Debian package is there, installing the
// package as scripts/farm-lab installs the lab's (apt-get, root), so the
// test runs on a fresh machine too.
func need(t *testing.T, command, pkg string) string {
	t.Helper()
	if path, err := exec.LookPath(command); err == nil {
		return path
	}
	t.Logf("%s is missing: apt-get install %s", command, pkg)
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", pkg}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	path, err := exec.LookPath(command)
	if err != nil {
		t.Fatalf("%s still missing after installing %s: %v", command, pkg, err)
	}
	return path
}

// chromium runs Debian's chromium headless with the flags this machine
// needs (no sandbox as root, no background networking: the network is
// closed) and a profile of its own.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin := need(t, "chromium", "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// measure is what the test's script found in the page Chromium rendered.
type measure struct {
	Width int `json:"width"`
	Rows  []struct {
		Row    string  `json:"row"`
		X      float64 `json:"x"`
		Width  float64 `json:"width"`
		Height float64 `json:"height"`
		Phases int     `json:"phases"`
		Drawn  int     `json:"drawn"`
	} `json:"rows"`
}

// pageProbe is appended to the page: once laid out, it writes into the
// document, for --dump-dom, each row's box as the browser drew it and how
// many of its phase bars have a size.
const pageProbe = `<script>
window.addEventListener("load", () => {
  const svg = document.querySelector("svg");
  const rows = [...document.querySelectorAll("g.row")].map(g => {
    const r = g.getBoundingClientRect();
    const bars = [...g.querySelectorAll("rect.phase")];
    return {row: g.dataset.row, x: r.x, width: r.width, height: r.height,
      phases: bars.length, drawn: bars.filter(b => b.getBoundingClientRect().width > 0).length};
  });
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({width: svg.getBoundingClientRect().width, rows});
  document.body.appendChild(pre);
});
</script>`

// TestTimelineInChromium: a real lab run through farm-timeline, its page
// rendered by headless Chromium; every job's row is drawn, with its phases.
// FARM_TIMELINE_SCREENSHOT=docs/timeline.png also keeps the screenshot.
func TestTimelineInChromium(t *testing.T) {
	root := repo(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "run.html")
	tag := "localhost/timeline-" + relNonce() + ":1"
	relRemoveLocal(t, tag, tag+"-linux-amd64", tag+"-linux-arm64")
	r := run(t, nil, fmt.Sprintf(`set -o pipefail
farm-nodes --farm lab | farm-plan --platforms linux/amd64,linux/arm64 \
  | farm-build -t %s --no-cache --cleanup --progress plain examples/hello \
  | farm-timeline -o %s --title 'farm build: examples/hello on the lab' | farm-manifest`, tag, page))
	if r.code != 0 {
		t.Fatalf("pipeline exit %d", r.code)
	}
	recs := decode(t, r.stdout)
	if len(recs) != 1 || recs[0].Kind() != "manifest" || !ended(r.stdout) {
		t.Fatalf("stdout %s", r.stdout)
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	// The jobs: every platform@node the run built on, from its own stderr.
	jobs := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\[([^]@]+@[^]]+)\] done: `).FindAllStringSubmatch(r.stderr, -1) {
		jobs[m[1]] = true
	}
	if len(jobs) != 2 {
		t.Fatalf("jobs done in stderr: %v", jobs)
	}
	probed := filepath.Join(dir, "probed.html")
	os.WriteFile(probed, []byte(strings.Replace(string(html), "</body>", pageProbe+"\n</body>", 1)), 0o644)
	dom := chromium(t, "--dump-dom", "--window-size=1000,400", "file://"+probed)
	m := regexp.MustCompile(`(?s)<pre id="probe">(.*?)</pre>`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the probe wrote nothing: %.2000s", dom)
	}
	var got measure
	if err := json.Unmarshal([]byte(unescapeHTML(m[1])), &got); err != nil {
		t.Fatalf("probe %q: %v", m[1], err)
	}
	if got.Width != 960 {
		t.Errorf("the picture is %d pixels wide, want 960", got.Width)
	}
	seen := map[string]bool{}
	for _, row := range got.Rows {
		seen[row.Row] = true
		if row.Height <= 0 || row.Width <= 0 || row.X < 0 || row.X+row.Width > 1000 {
			t.Errorf("row %s drawn at %+v", row.Row, row)
		}
		if row.Drawn != row.Phases || row.Phases == 0 {
			t.Errorf("row %s: %d of %d phases drawn", row.Row, row.Drawn, row.Phases)
		}
	}
	for job := range jobs {
		if !seen[job] {
			t.Errorf("no row for %s in the picture; rows %+v", job, got.Rows)
		}
	}
	if !seen["context (client)"] || len(got.Rows) != len(jobs)+1 {
		t.Errorf("rows %+v, want the context and %d jobs", got.Rows, len(jobs))
	}
	shot := filepath.Join(dir, "timeline.png")
	chromium(t, "--screenshot="+shot, "--window-size=960,"+svgHeight(t, string(html)), "--hide-scrollbars", "file://"+page)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 5000 {
		t.Fatalf("screenshot: %v %v", fi, err)
	}
	if keep := os.Getenv("FARM_TIMELINE_SCREENSHOT"); keep != "" {
		png, _ := os.ReadFile(shot)
		if err := os.WriteFile(filepath.Join(root, keep), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// svgHeight is the picture's height plus the page's margins.
func svgHeight(t *testing.T, html string) string {
	m := regexp.MustCompile(`<svg [^>]*height="(\d+)"`).FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no svg height in %.500s", html)
	}
	var h int
	fmt.Sscan(m[1], &h)
	return fmt.Sprint(h + 32)
}

func unescapeHTML(s string) string {
	return strings.NewReplacer("&quot;", `"`, "&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}
