package gitgate

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
}

// logBuf is a goroutine-safe buffer for the JSON log.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the decoded log lines.
func (b *logBuf) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuf) requests(t *testing.T) []map[string]any {
	var out []map[string]any
	for _, m := range b.lines(t) {
		if m["msg"] == "git" {
			out = append(out, m)
		}
	}
	return out
}

type gate struct {
	srv  *Server
	ts   *httptest.Server
	log  *logBuf
	url  string // base URL of the test repository
	home string
}

// testRepo is the repository every test serves: agents may push
// agent/* (fast-forward only) and scratch/* (force too), not main.
var testRepo = Repo{Name: "repo", Push: []string{"refs/heads/agent/*", "+refs/heads/scratch/*"}}

// newGate seeds Root/repo.git with an initial commit on main (made in a
// temporary working clone, before the policy hook exists), then serves it.
func newGate(t *testing.T, maxBody int64) *gate {
	t.Helper()
	requireGit(t)
	g := &gate{log: &logBuf{}, home: t.TempDir()}
	root := t.TempDir()
	bare := filepath.Join(root, "repo.git")
	g.git(t, "", "-c", "init.defaultBranch=main", "init", "--bare", "--quiet", bare)
	work := t.TempDir()
	g.git(t, work, "-c", "init.defaultBranch=main", "init", "--quiet", ".")
	os.WriteFile(filepath.Join(work, "README"), []byte("hello\n"), 0o644)
	g.git(t, work, "add", "README")
	g.git(t, work, "commit", "--quiet", "-m", "initial")
	os.WriteFile(filepath.Join(work, "second"), []byte("two\n"), 0o644)
	g.git(t, work, "add", "second")
	g.git(t, work, "commit", "--quiet", "-m", "second")
	g.git(t, work, "push", "--quiet", bare, "main")

	g.srv = &Server{Root: root, MaxBody: maxBody, Log: slog.New(slog.NewJSONHandler(g.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ScanCommand: testScanCommand(t)}
	if err := g.srv.SetRepos([]Repo{testRepo}); err != nil {
		t.Fatal(err)
	}
	g.ts = httptest.NewServer(g.srv)
	t.Cleanup(g.ts.Close)
	g.url = g.ts.URL + "/repo.git"
	return g
}

func (g *gate) cmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "HOME="+g.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com")
	return cmd
}

// git runs git and fails the test on error; it returns stdout.
func (g *gate) git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := g.cmd(dir, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// gitFail runs git, expects it to fail, and returns its stderr.
func (g *gate) gitFail(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := g.cmd(dir, args...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("git %s: succeeded, want failure\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

func (g *gate) clone(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clone")
	g.git(t, "", append(append([]string{"clone", "--quiet"}, args...), g.url, dir)...)
	return dir
}

func commitFile(t *testing.T, g *gate, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	g.git(t, dir, "add", name)
	g.git(t, dir, "commit", "--quiet", "-m", "add "+name)
}

func TestCloneShallowFetchPull(t *testing.T) {
	g := newGate(t, 0)
	a := g.clone(t)
	if got := g.git(t, a, "log", "--format=%s"); got != "second\ninitial" {
		t.Fatalf("clone log = %q", got)
	}
	sh := g.clone(t, "--depth", "1")
	if got := g.git(t, sh, "rev-parse", "--is-shallow-repository"); got != "true" {
		t.Fatalf("--depth 1 clone is not shallow: %q", got)
	}
	if got := g.git(t, sh, "rev-list", "--count", "HEAD"); got != "1" {
		t.Fatalf("shallow clone has %s commits, want 1", got)
	}

	// b pushes to an allowed branch; a fetches and pulls it.
	b := g.clone(t)
	g.git(t, b, "checkout", "--quiet", "-b", "agent/feature")
	commitFile(t, g, b, "feature", []byte("feature\n"))
	g.git(t, b, "push", "--quiet", "origin", "agent/feature")
	want := g.git(t, b, "rev-parse", "HEAD")

	g.git(t, a, "fetch", "--quiet", "origin")
	if got := g.git(t, a, "rev-parse", "origin/agent/feature"); got != want {
		t.Fatalf("fetched origin/agent/feature = %s, want %s", got, want)
	}
	g.git(t, a, "checkout", "--quiet", "-b", "agent/feature", "--track", "origin/main")
	g.git(t, a, "pull", "--quiet", "--ff-only", "origin", "agent/feature")
	if got := g.git(t, a, "rev-parse", "HEAD"); got != want {
		t.Fatalf("after pull HEAD = %s, want %s", got, want)
	}
	g.git(t, sh, "fetch", "--quiet", "--depth", "1", "origin", "agent/feature")

	// One JSON line per request, with repo, service, status and bytes.
	reqs := g.log.requests(t)
	if len(reqs) < 8 {
		t.Fatalf("want a log line per request, got %d", len(reqs))
	}
	for _, m := range reqs {
		if m["repo"] != "repo" || m["status"] != float64(200) || m["bytes"] == nil {
			t.Fatalf("request log line %v", m)
		}
		if s := m["service"]; s != "git-upload-pack" && s != "git-receive-pack" {
			t.Fatalf("request log line service %v", m)
		}
	}
}

func TestPushSmallAndLarge(t *testing.T) {
	g := newGate(t, 0)
	a := g.clone(t)
	g.git(t, a, "checkout", "--quiet", "-b", "agent/small")
	commitFile(t, g, a, "small", []byte("small change\n"))
	g.git(t, a, "push", "--quiet", "origin", "agent/small")
	bare := filepath.Join(g.srv.Root, "repo.git")
	if got, want := g.git(t, bare, "rev-parse", "refs/heads/agent/small"), g.git(t, a, "rev-parse", "HEAD"); got != want {
		t.Fatalf("pushed ref = %s, want %s", got, want)
	}

	// Over 5 MiB of random data: the pack is larger than http.postBuffer
	// (1 MiB), so git sends it chunked.
	big := make([]byte, 6<<20)
	rand.Read(big)
	g.git(t, a, "checkout", "--quiet", "-b", "agent/big")
	commitFile(t, g, a, "big.bin", big)
	start := time.Now()
	g.git(t, a, "push", "--quiet", "origin", "agent/big")
	t.Logf("6 MiB push took %v", time.Since(start))
	if scans := g.hookLines(t); len(scans) > 0 {
		t.Logf("its scan: %s", scans[len(scans)-1]) // the scanner's own time, in the hook
	}
	if got, want := g.git(t, bare, "rev-parse", "refs/heads/agent/big"), g.git(t, a, "rev-parse", "HEAD"); got != want {
		t.Fatalf("pushed big ref = %s, want %s", got, want)
	}
	var chunked bool
	for _, m := range g.log.requests(t) {
		if m["service"] == "git-receive-pack" && m["method"] == "POST" && m["chunked"] == true {
			if m["bytes_in"].(float64) < 5<<20 {
				t.Fatalf("chunked push logged bytes_in %v", m["bytes_in"])
			}
			chunked = true
		}
	}
	if !chunked {
		t.Fatal("no chunked receive-pack POST seen")
	}
}

func TestPushForbiddenRef(t *testing.T) {
	g := newGate(t, 0)
	a := g.clone(t)
	commitFile(t, g, a, "x", []byte("x\n"))
	out := g.gitFail(t, a, "push", "origin", "main")
	want := "remote: bottleform git gate: refusing refs/heads/main: not in the bottle's push patterns refs/heads/agent/* +refs/heads/scratch/*"
	if !strings.Contains(out, want) {
		t.Fatalf("push stderr lacks %q:\n%s", want, out)
	}
	// The refusal also reached the server log, with the request path.
	var logged bool
	for _, m := range g.log.lines(t) {
		if m["msg"] == "git hook" && m["path"] == "/repo.git/git-receive-pack" && strings.Contains(m["line"].(string), "refusing refs/heads/main") {
			logged = true
		}
	}
	if !logged {
		t.Fatalf("hook refusal not logged:\n%s", g.log.String())
	}
	// Nothing moved.
	bare := filepath.Join(g.srv.Root, "repo.git")
	if got, want := g.git(t, bare, "rev-parse", "main"), g.git(t, a, "rev-parse", "HEAD~1"); got != want {
		t.Fatalf("main moved to %s", got)
	}
	// A tag outside the patterns is refused too.
	g.git(t, a, "tag", "v1")
	out = g.gitFail(t, a, "push", "origin", "v1")
	if !strings.Contains(out, "refusing refs/tags/v1") {
		t.Fatalf("tag push stderr:\n%s", out)
	}
}

func TestForcePushAndDelete(t *testing.T) {
	g := newGate(t, 0)
	a := g.clone(t)
	for _, branch := range []string{"agent/f", "scratch/f"} {
		g.git(t, a, "checkout", "--quiet", "-b", branch, "origin/main")
		commitFile(t, g, a, "f", []byte(branch+"\n"))
		g.git(t, a, "push", "--quiet", "origin", branch)
		g.git(t, a, "commit", "--quiet", "--amend", "-m", "rewritten")
	}
	// agent/* has no '+': the non-fast-forward update is refused.
	g.git(t, a, "checkout", "--quiet", "agent/f")
	out := g.gitFail(t, a, "push", "--force", "origin", "agent/f")
	if !strings.Contains(out, "remote: bottleform git gate: refusing refs/heads/agent/f: non-fast-forward update, and force-push is not granted") {
		t.Fatalf("force push to agent/f:\n%s", out)
	}
	out = g.gitFail(t, a, "push", "origin", ":agent/f")
	if !strings.Contains(out, "refusing refs/heads/agent/f: deleting a ref needs force-push") {
		t.Fatalf("delete agent/f:\n%s", out)
	}
	// scratch/* has '+': both are accepted.
	g.git(t, a, "checkout", "--quiet", "scratch/f")
	g.git(t, a, "push", "--quiet", "--force", "origin", "scratch/f")
	bare := filepath.Join(g.srv.Root, "repo.git")
	if got, want := g.git(t, bare, "rev-parse", "refs/heads/scratch/f"), g.git(t, a, "rev-parse", "HEAD"); got != want {
		t.Fatalf("force-pushed scratch/f = %s, want %s", got, want)
	}
	g.git(t, a, "push", "--quiet", "origin", ":scratch/f")
	if out, err := g.cmd(bare, "rev-parse", "--verify", "--quiet", "refs/heads/scratch/f").Output(); err == nil {
		t.Fatalf("scratch/f still exists: %s", out)
	}
	// A fast-forward to agent/f is still fine.
	g.git(t, a, "checkout", "--quiet", "-B", "agent/f", "origin/agent/f")
	commitFile(t, g, a, "g", []byte("ff\n"))
	g.git(t, a, "push", "--quiet", "origin", "agent/f")
}

func TestProtocolVersions(t *testing.T) {
	g := newGate(t, 0)
	out := g.git(t, "", "-c", "protocol.version=2", "ls-remote", g.url)
	if !strings.Contains(out, "refs/heads/main") {
		t.Fatalf("v2 ls-remote: %q", out)
	}
	dir := filepath.Join(t.TempDir(), "v2")
	g.git(t, "", "-c", "protocol.version=2", "clone", "--quiet", g.url, dir)
	var v2 int
	for _, m := range g.log.requests(t) {
		if m["protocol"] == "version=2" {
			v2++
		}
	}
	if v2 < 3 {
		t.Fatalf("server saw Git-Protocol: version=2 on %d requests, want >= 3", v2)
	}

	n := len(g.log.requests(t))
	out = g.git(t, "", "-c", "protocol.version=0", "ls-remote", g.url)
	if !strings.Contains(out, "refs/heads/main") {
		t.Fatalf("v0 ls-remote: %q", out)
	}
	dir0 := filepath.Join(t.TempDir(), "v0")
	g.git(t, "", "-c", "protocol.version=0", "clone", "--quiet", g.url, dir0)
	if got := g.git(t, dir0, "log", "--format=%s"); got != "second\ninitial" {
		t.Fatalf("v0 clone log = %q", got)
	}
	for _, m := range g.log.requests(t)[n:] {
		if m["protocol"] != nil {
			t.Fatalf("v0 request carried Git-Protocol: %v", m)
		}
	}
}

// raw sends req over a fresh connection and returns the status and body.
func raw(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response to %q: %v", req, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestContentLength(t *testing.T) {
	g := newGate(t, 1<<20)
	addr := g.ts.Listener.Addr().String()
	post := func(cl, body string) string {
		h := "POST /repo.git/git-upload-pack HTTP/1.1\r\nHost: gate\r\nContent-Type: application/x-git-upload-pack-request\r\nConnection: close\r\n"
		if cl != "" {
			h += "Content-Length: " + cl + "\r\n"
		}
		return h + "\r\n" + body
	}
	for _, tc := range []struct {
		name, cl, body string
		want           int
	}{
		{"non-numeric", "abc", "", 400},
		{"missing", "", "", 400},
		{"negative", "-1", "", 400},
		{"over MaxBody", "1048577", "", 413},
		{"valid", "4", "0000", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := raw(t, addr, post(tc.cl, tc.body))
			if code != tc.want {
				t.Fatalf("Content-Length %q: status %d, want %d (%s)", tc.cl, code, tc.want, body)
			}
		})
	}
	// The valid one reached git http-backend.
	var backend bool
	for _, m := range g.log.requests(t) {
		if m["status"] == float64(200) && m["exit"] == float64(0) && m["bytes_in"] == float64(4) {
			backend = true
		}
	}
	if !backend {
		t.Fatalf("valid POST did not reach the backend:\n%s", g.log.String())
	}
	// A chunked body needs no Content-Length.
	code, body := raw(t, addr, "POST /repo.git/git-upload-pack HTTP/1.1\r\nHost: gate\r\nContent-Type: application/x-git-upload-pack-request\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\n0000\r\n0\r\n\r\n")
	if code != 200 {
		t.Fatalf("chunked POST: %d %s", code, body)
	}
}

func TestUnknownRepoAndBadPaths(t *testing.T) {
	g := newGate(t, 0)
	get := func(path string) (int, string) {
		resp, err := http.Get(g.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/nope.git/info/refs?service=git-upload-pack")
	if code != 404 || !strings.Contains(body, "/repo.git") || !strings.Contains(body, "nope") {
		t.Fatalf("unknown repo: %d %q", code, body)
	}
	for _, p := range []string{"/repo/info/refs?service=git-upload-pack", "/../repo.git/info/refs", "/repo.git/HEAD", "/repo.git/objects/info/packs", "/"} {
		if code, body := get(p); code != 404 {
			t.Errorf("%s: %d %q, want 404", p, code, body)
		}
	}
	if code, _ := get("/repo.git/info/refs"); code != 403 {
		t.Errorf("dumb info/refs: %d, want 403", code)
	}
	if code, _ := get("/repo.git/git-upload-pack"); code != 405 {
		t.Errorf("GET git-upload-pack: %d, want 405", code)
	}
	out := g.gitFail(t, "", "ls-remote", g.ts.URL+"/nope.git")
	if !strings.Contains(out, "not found") && !strings.Contains(out, "404") {
		t.Fatalf("ls-remote of unknown repo:\n%s", out)
	}
}

func TestSetRepos(t *testing.T) {
	requireGit(t)
	s := &Server{Root: filepath.Join(t.TempDir(), "root"), ScanCommand: []string{"/nonexistent/scanner"}}
	for _, bad := range [][]Repo{
		{{Name: ""}}, {{Name: "."}}, {{Name: ".."}}, {{Name: "a/b"}}, {{Name: "a b"}}, {{Name: "x"}, {Name: "x"}},
		{{Name: "x", Push: []string{"main"}}}, {{Name: "x", Push: []string{"refs/heads/a?"}}},
		{{Name: "x", Push: []string{"refs/heads/a b"}}}, {{Name: "x", Push: []string{"refs/heads/[ab]"}}},
		{{Name: "x", Push: []string{"refs/heads/it's"}}},
	} {
		if err := s.SetRepos(bad); err == nil {
			t.Errorf("SetRepos(%v) succeeded", bad)
		}
	}
	if s.repos.Load() != nil {
		t.Fatal("a failed SetRepos swapped the set")
	}
	// No scanner: a repository that takes pushes is refused, unless
	// NoScan says pushes go unscanned; a read-only one needs none.
	ns := &Server{Root: filepath.Join(t.TempDir(), "root")}
	if err := ns.SetRepos([]Repo{{Name: "w", Push: []string{"refs/heads/*"}}}); err == nil || !strings.Contains(err.Error(), "no secret scanner") {
		t.Fatalf("SetRepos without a scanner: %v", err)
	}
	if err := ns.SetRepos([]Repo{{Name: "ro"}}); err != nil {
		t.Fatal(err)
	}
	ns.NoScan = true
	if err := ns.SetRepos([]Repo{{Name: "w", Push: []string{"refs/heads/*"}}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(ns.Root, "w.git", "hooks", "pre-receive")); !strings.Contains(string(b), ScanEnv+"=''\n") {
		t.Fatalf("NoScan wrapper:\n%s", b)
	}
	if err := s.SetRepos([]Repo{{Name: "a.b_c-1", Push: []string{"refs/heads/*"}}, {Name: "ro"}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a.b_c-1", "ro"} {
		dir := filepath.Join(s.Root, n+".git")
		if fi, err := os.Stat(filepath.Join(dir, "hooks", "pre-receive")); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s: pre-receive hook missing or not executable: %v", n, err)
		}
	}
	// Idempotent, and the policy is rewritten.
	if err := s.SetRepos([]Repo{{Name: "ro", Push: []string{"refs/heads/x"}}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Root, "ro.git", PolicyFile)); string(b) != "refs/heads/x\n" {
		t.Fatalf("policy = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Root, "ro.git", "info", "attributes")); !strings.Contains(string(b), "* !diff\n") {
		t.Fatalf("info/attributes = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Root, "ro.git", "hooks", "pre-receive")); !strings.Contains(string(b), ScanEnv+"="+shellQuote(shellQuote("/nonexistent/scanner"))+"\n") {
		t.Fatalf("pre-receive wrapper does not set %s:\n%s", ScanEnv, b)
	}
	if _, ok := (*s.repos.Load())["a.b_c-1"]; ok {
		t.Fatal("undeclared repository still served")
	}
}

func TestScripts(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "policy.sh")
	os.WriteFile(p, []byte(PolicyScript), 0o755)
	if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
		t.Fatalf("sh -n PolicyScript: %v\n%s", err, out)
	}
	// The wrapper quotes every word: a hook path and repo with quotes,
	// spaces and $ reach the program intact.
	hook := filepath.Join(dir, "it's a $HOME hook")
	os.WriteFile(hook, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\"\n"), 0o755)
	w := filepath.Join(dir, "wrapper")
	os.WriteFile(w, []byte(hookWrapper(hook, "r'e$po", "/x y/`p`", "")), 0o755)
	out, err := exec.Command(w).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "r'e$po\n/x y/`p`\n"; got != want {
		t.Fatalf("wrapper passed %q, want %q", got, want)
	}
	// The scanner command reaches the hook as ScanEnv, and eval gives back
	// its words.
	os.WriteFile(hook, []byte("#!/bin/sh\neval \"set -- $"+ScanEnv+"\"\nprintf '%s\\n' \"$@\"\n"), 0o755)
	os.WriteFile(w, []byte(hookWrapper(hook, "r", "p", scanCommand([]string{"/it's a $HOME", "sidecar", "`x`"}))), 0o755)
	if out, err = exec.Command(w).Output(); err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "/it's a $HOME\nsidecar\n`x`\n"; got != want {
		t.Fatalf("scan command came through as %q, want %q", got, want)
	}
}

// TestCustomHook: Server.Hook replaces the built-in policy, gets the repo
// name and policy file, and its refusal is shown to the client and logged.
func TestCustomHook(t *testing.T) {
	g := newGate(t, 0)
	hook := filepath.Join(t.TempDir(), "hook")
	os.WriteFile(hook, []byte("#!/bin/sh\necho \"custom $1 $(cat \"$2\" | tr '\\n' ' ')\" >&2\necho \"second line\" >>\"$"+LogEnv+"\"\nexit 3\n"), 0o755)
	g.srv.Hook = hook
	if err := g.srv.SetRepos([]Repo{testRepo}); err == nil || !strings.Contains(err.Error(), "built-in pre-receive hook") {
		t.Fatalf("SetRepos with a custom hook and a scanner: %v", err)
	}
	g.srv.NoScan = true
	if err := g.srv.SetRepos([]Repo{testRepo}); err != nil {
		t.Fatal(err)
	}
	a := g.clone(t)
	g.git(t, a, "checkout", "--quiet", "-b", "agent/x")
	commitFile(t, g, a, "x", []byte("x\n"))
	out := g.gitFail(t, a, "push", "origin", "agent/x")
	if !strings.Contains(out, "remote: custom repo refs/heads/agent/* +refs/heads/scratch/*") {
		t.Fatalf("push stderr:\n%s", out)
	}
	if !strings.Contains(g.log.String(), `"line":"second line"`) {
		t.Fatalf("hook log line missing:\n%s", g.log.String())
	}
}

// TestGzipBody: a gzip request body (git compresses large fetch requests) is
// passed to http-backend with HTTP_CONTENT_ENCODING, which inflates it.
func TestGzipBody(t *testing.T) {
	g := newGate(t, 0)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	io.WriteString(zw, "0000")
	zw.Close()
	req := fmt.Sprintf("POST /repo.git/git-upload-pack HTTP/1.1\r\nHost: gate\r\nContent-Type: application/x-git-upload-pack-request\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", zb.Len(), zb.String())
	if code, body := raw(t, g.ts.Listener.Addr().String(), req); code != 200 {
		t.Fatalf("gzip POST: %d %q", code, body)
	}
	req = "POST /repo.git/git-upload-pack HTTP/1.1\r\nHost: gate\r\nContent-Encoding: br\r\nContent-Length: 4\r\nConnection: close\r\n\r\n0000"
	if code, _ := raw(t, g.ts.Listener.Addr().String(), req); code != 415 {
		t.Fatalf("br POST: %d, want 415", code)
	}
}

// TestBackendErrorLoggedFirst: when http-backend answers with an error
// status, what it wrote to stderr is logged, with the path, before the
// status is sent (bot-bottle E10).
func TestBackendErrorLoggedFirst(t *testing.T) {
	g := newGate(t, 0)
	if err := os.RemoveAll(filepath.Join(g.srv.Root, "repo.git")); err != nil {
		t.Fatal(err)
	}
	var logLen int
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.srv.ServeHTTP(&snoop{ResponseWriter: w, onHeader: func() { logLen = strings.Count(g.log.String(), `"msg":"git stderr"`) }}, r)
	})
	ts := httptest.NewServer(h)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/repo.git/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("missing repository dir: status %d", resp.StatusCode)
	}
	if logLen == 0 {
		t.Fatalf("stderr not logged before the %d status:\n%s", resp.StatusCode, g.log.String())
	}
	if !strings.Contains(g.log.String(), `"path":"/repo.git/info/refs"`) {
		t.Fatalf("stderr log lacks the path:\n%s", g.log.String())
	}
}

type snoop struct {
	http.ResponseWriter
	onHeader func()
	done     bool
}

func (s *snoop) WriteHeader(code int) {
	if !s.done {
		s.done = true
		s.onHeader()
	}
	s.ResponseWriter.WriteHeader(code)
}
