package explorer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// TestWebPageInChromium serves the explorer over the fixture on loopback,
// opens the page in headless Chromium through chromedriver's W3C API and
// checks what it shows: node ids, statuses, farm names, capacity bars, a
// live update, a filter, and a phone-sized layout without horizontal
// scrolling. Screenshots go to $ZOS_TEST_ARTIFACTS (or a temp dir).
func TestWebPageInChromium(t *testing.T) {
	driverBin := testutil.RequireBinary(t, "chromedriver")
	testutil.RequireBinary(t, "chromium")
	artifacts := artifactDir(t)

	// The fixture is pinned to testNow; move it to the wall clock (one
	// minute ahead, so that node 6, reported 80 minutes ago, stays up for
	// the test) and the page's "reported N min ago" reads naturally.
	src := fixture()
	shift := time.Since(testNow) + time.Minute
	for i := range src.nodes {
		src.nodes[i].Updated = src.nodes[i].Updated.Add(shift)
	}
	e := New(Config{Refresh: time.Hour}, src, testutil.Logger(t))
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)

	wd := startChromedriver(t, driverBin, artifacts)
	s := wd.newSession(t, 1280, 900)

	s.navigate(t, srv.URL+"/")
	s.waitFor(t, "seven nodes shown", `return document.querySelectorAll('#nodes [data-node-id]').length === 7`)

	type shown struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Farm   string `json:"farm"`
		Bars   []string
	}
	var nodes []shown
	s.exec(t, &nodes, `return [...document.querySelectorAll('#nodes [data-node-id]')].map(e => ({
		id: e.dataset.nodeId, status: e.dataset.status,
		farm: e.querySelector('.farm-name').textContent,
		Bars: [...e.querySelectorAll('.bar')].map(b => b.dataset.resource + ': ' + b.querySelector('.bar-label').textContent)}))`)
	var got []string
	for _, n := range nodes {
		got = append(got, n.ID+" "+n.Status+" "+n.Farm)
	}
	want := []string{"1 up alpha", "2 down alpha", "3 standby beta <b>", "4 down beta <b>",
		"5 standby gamma", "6 up gamma", "7 up farm 99"}
	if !slices.Equal(got, want) {
		t.Errorf("got nodes %q, want %q", got, want)
	}
	if len(nodes) > 0 {
		wantBars := []string{"CPU: 2 cores used · 6 cores free of 8 cores", "Memory: 4.0 GiB used · 10.0 GiB free of 16.0 GiB",
			"SSD: 100 GiB used · 380 GiB free of 500 GiB", "HDD: none"}
		if !slices.Equal(nodes[0].Bars, wantBars) {
			t.Errorf("got node 1 bars %q, want %q", nodes[0].Bars, wantBars)
		}
	}

	var farms []string
	s.exec(t, &farms, `return [...document.querySelectorAll('#farms .farm-name')].map(e => e.textContent)`)
	if want := []string{"alpha", "beta <b>", "gamma"}; !slices.Equal(farms, want) {
		t.Errorf("got farms %q, want %q", farms, want)
	}
	var markup int
	s.exec(t, &markup, `return document.querySelectorAll('#farms b, #nodes b').length`)
	if markup != 0 {
		t.Errorf("got %d <b> elements: a farm name was parsed as HTML", markup)
	}
	var tiles string
	s.exec(t, &tiles, `return document.getElementById('stats').innerText.replace(/\s+/g, ' ')`)
	for _, w := range []string{"7 nodes", "3 up", "2 standby", "2 down", "3 farms", "2 / 4 free IPs"} {
		if !strings.Contains(tiles, w) {
			t.Errorf("got stats %q, want %q in it", tiles, w)
		}
	}
	// Every field the page reads is in the API's answers.
	var text string
	s.exec(t, &text, `return document.body.innerText`)
	for _, bad := range []string{"undefined", "NaN", "never", "farm #"} {
		if strings.Contains(text, bad) {
			t.Errorf("the page shows %q: a field it reads is missing from the API", bad)
		}
	}
	if !strings.Contains(text, "reported 9 min ago") || !strings.Contains(text, "twin 10") {
		t.Errorf("got page text without node 1's report age or farm 1's twin:\n%.1500s", text)
	}
	s.screenshot(t, filepath.Join(artifacts, "explorer-desktop.png"))

	// Live: a node registered now shows up without reloading the page.
	src.mu.Lock()
	src.nodes = append(src.nodes, registry.Node{ID: 8, FarmID: 1, Updated: time.Now(),
		Total: registry.Resources{CRU: 4, MRU: 8 * gb}})
	src.mu.Unlock()
	if err := e.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, "node 8 shown live", `return document.querySelector('#nodes [data-node-id="8"][data-status="up"]') !== null`)

	// A filter: only the nodes that are up.
	s.exec(t, nil, `const sel = document.querySelector('select[name=status]');
		sel.value = 'up'; sel.dispatchEvent(new Event('change', {bubbles: true})); return null`)
	s.waitFor(t, "status filter applied", `return [...document.querySelectorAll('#nodes [data-node-id]')].map(e => e.dataset.nodeId).join(',') === '1,6,7,8'`)

	var errShown bool
	s.exec(t, &errShown, `return !document.getElementById('error').hidden`)
	if errShown {
		t.Error("the page shows an error banner")
	}

	// Phone: nothing wider than the screen.
	s.setWindow(t, 390, 844)
	s.waitFor(t, "phone layout", `return window.innerWidth <= 500`)
	var widths []int
	s.exec(t, &widths, `return [window.innerWidth, document.documentElement.scrollWidth]`)
	if len(widths) != 2 || widths[1] > widths[0] {
		t.Errorf("got viewport and content widths %v: the page scrolls sideways on a phone", widths)
	}
	s.screenshot(t, filepath.Join(artifacts, "explorer-phone.png"))
	s.exec(t, nil, `document.getElementById('nodes-title').scrollIntoView(); return null`)
	s.screenshot(t, filepath.Join(artifacts, "explorer-phone-nodes.png"))
	t.Logf("screenshots in %s", artifacts)
}

func artifactDir(t *testing.T) string {
	dir := os.Getenv("ZOS_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "explorer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating artifact dir: %v", err)
	}
	return dir
}

// webDriver is a chromedriver process in its own process group, so that
// the cleanup kills it and every browser process it started.
type webDriver struct {
	base    string
	cmd     *exec.Cmd
	profile string // chromium's --user-data-dir
}

func startChromedriver(t *testing.T, bin, logDir string) *webDriver {
	t.Helper()
	profile := t.TempDir() // removed after the processes are gone (cleanups run last-in first-out)
	port := testutil.FreePort(t)
	cmd := exec.Command(bin, "--port="+strconv.Itoa(port), "--allowed-ips=127.0.0.1",
		"--log-path="+filepath.Join(logDir, "chromedriver.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	wd := &webDriver{base: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, profile: profile}
	t.Cleanup(func() { wd.stop(t) })

	testutil.Eventually(t, 15*time.Second, fmt.Sprintf("chromedriver on port %d to be ready", port), func() (bool, error) {
		var st struct {
			Ready bool `json:"ready"`
		}
		err := wd.call(http.MethodGet, "/status", nil, &st)
		return err == nil && st.Ready, err
	})
	return wd
}

// stop kills the process group and checks that nothing of it is left.
func (wd *webDriver) stop(t *testing.T) {
	pgid := wd.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		_ = wd.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	// Browser processes are children of chromedriver in the same group;
	// give them a moment to exit, then make sure.
	if testutil.Poll(5*time.Second, func() (bool, error) { return len(groupMembers(pgid)) == 0, nil }) == nil {
		return
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	var left []int
	if testutil.Poll(5*time.Second, func() (bool, error) { left = groupMembers(pgid); return len(left) == 0, nil }) != nil {
		t.Errorf("processes %v of the browser's group %d are still running after SIGKILL", left, pgid)
	}
}

// groupMembers lists the live (not zombie) processes in process group pgid.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the ")" closing the command name: state ppid pgrp ...
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		f := strings.Fields(rest)
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// call does one W3C WebDriver request and decodes its "value".
func (wd *webDriver) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, wd.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webdriver %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("webdriver %s %s: reading: %w", method, path, err)
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("webdriver %s %s: %d %.300s", method, path, resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webdriver %s %s: %d %.500s", method, path, resp.StatusCode, env.Value)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(env.Value, out)
}

type wdSession struct {
	wd *webDriver
	id string
}

func (wd *webDriver) newSession(t *testing.T, width, height int) *wdSession {
	t.Helper()
	args := []string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--no-first-run", "--no-default-browser-check",
		"--disable-breakpad", "--disable-crash-reporter",
		"--user-data-dir=" + wd.profile,
		fmt.Sprintf("--window-size=%d,%d", width, height),
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":        "chrome",
		"goog:chromeOptions": map[string]any{"args": args},
	}}}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	if err := wd.call(http.MethodPost, "/session", caps, &created); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	s := &wdSession{wd: wd, id: created.SessionID}
	t.Cleanup(func() { _ = wd.call(http.MethodDelete, "/session/"+s.id, nil, nil) })
	return s
}

func (s *wdSession) navigate(t *testing.T, url string) {
	t.Helper()
	if err := s.wd.call(http.MethodPost, "/session/"+s.id+"/url", map[string]string{"url": url}, nil); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
}

func (s *wdSession) exec(t *testing.T, out any, script string) {
	t.Helper()
	if err := s.execErr(out, script); err != nil {
		t.Fatalf("running script: %v", err)
	}
}

func (s *wdSession) execErr(out any, script string) error {
	body := map[string]any{"script": script, "args": []any{}}
	return s.wd.call(http.MethodPost, "/session/"+s.id+"/execute/sync", body, out)
}

// waitFor polls a script returning a boolean until it is true.
func (s *wdSession) waitFor(t *testing.T, what, script string) {
	t.Helper()
	err := testutil.Poll(20*time.Second, func() (bool, error) {
		var ok bool
		err := s.execErr(&ok, script)
		return err == nil && ok, err
	})
	if err == nil {
		return
	}
	var text string
	_ = s.execErr(&text, `return document.body.innerText.slice(0, 2000)`)
	t.Fatalf("waiting for %s: %v; page shows:\n%s", what, err, text)
}

func (s *wdSession) setWindow(t *testing.T, width, height int) {
	t.Helper()
	if err := s.wd.call(http.MethodPost, "/session/"+s.id+"/window/rect",
		map[string]int{"width": width, "height": height}, nil); err != nil {
		t.Fatalf("resizing the window: %v", err)
	}
}

func (s *wdSession) screenshot(t *testing.T, path string) {
	t.Helper()
	var b64 string
	if err := s.wd.call(http.MethodGet, "/session/"+s.id+"/screenshot", nil, &b64); err != nil {
		t.Errorf("taking a screenshot: %v", err)
		return
	}
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Errorf("decoding the screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("saving the screenshot: %v", err)
	}
}
