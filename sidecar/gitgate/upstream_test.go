package gitgate

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/bottleform/bottleform/internal/gitsshd"
)

// testSSHEnv, set to 1, makes the test binary act as the SSH transport
// (SSHMain), the way `bottleform sidecar git-ssh` does; testScanEnv as the
// secret scanner (ScanMain), the way `bottleform sidecar git-scan` does.
const (
	testSSHEnv  = "BOTTLEFORM_GITGATE_TEST_SSH"
	testScanEnv = "BOTTLEFORM_GITGATE_TEST_SCAN"
)

func TestMain(m *testing.M) {
	if os.Getenv(testSSHEnv) == "1" {
		os.Exit(SSHMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	if os.Getenv(testScanEnv) == "1" {
		os.Exit(ScanMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// testScanCommand is a Server.ScanCommand that runs this test binary as
// the scanner.
func testScanCommand(t *testing.T) []string {
	t.Helper()
	envBin, err := exec.LookPath("env")
	if err != nil {
		t.Skip("no env program")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{envBin, testScanEnv + "=1", exe}
}

// sshd is a loopback SSH server (internal/gitsshd) that serves
// git-upload-pack and git-receive-pack from the real git, on repositories
// under root, to the one authorized client key.
type sshd struct {
	*gitsshd.Server
	ln net.Listener
}

func newSSHD(t *testing.T, root string, host ssh.Signer, authorized ssh.PublicKey) *sshd {
	t.Helper()
	s := startSSHD(t, root, host, authorized)
	t.Cleanup(func() { s.ln.Close() })
	return s
}

// startSSHD starts the server; the caller closes s.ln.
func startSSHD(tb testing.TB, root string, host ssh.Signer, authorized ssh.PublicKey) *sshd {
	tb.Helper()
	cfg := &ssh.ServerConfig{PublicKeyCallback: gitsshd.KeyIs(authorized)}
	cfg.AddHostKey(host)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &sshd{Server: &gitsshd.Server{Root: root, Config: cfg, Env: gitEnv(nil)}, ln: ln}
	go s.Serve(ln)
	return s
}

func (s *sshd) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *sshd) execLog() []string { return s.Execs() }

// ugate is a gate whose repository has an SSH upstream.
type ugate struct {
	*gate
	sshd     *sshd
	upstream string // the upstream bare repository
	work     string // a working clone of upstream, to add commits there
	keyPEM   []byte // the client's private key, for the canary
	hostKey  string // the upstream's host key, authorized_keys form
	repo     Repo
}

func genKey(tb testing.TB) (ssh.Signer, []byte) {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		tb.Fatal(err)
	}
	return signer, pem.EncodeToMemory(blk)
}

// newUpstreamGate makes an upstream (default branch trunk, two commits)
// behind a loopback SSH server, and a gate serving it as "repo"; edit may
// change the Repo before SetRepos.
func newUpstreamGate(t *testing.T, edit func(*ugate, *Repo)) *ugate {
	t.Helper()
	requireGit(t)
	envBin, err := exec.LookPath("env")
	if err != nil {
		t.Skip("no env program")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	g := &ugate{gate: &gate{log: &logBuf{}, home: t.TempDir()}}
	uroot := t.TempDir()
	g.upstream = filepath.Join(uroot, "o", "r.git")
	g.git(t, "", "-c", "init.defaultBranch=trunk", "init", "--bare", "--quiet", g.upstream)
	g.work = t.TempDir()
	g.git(t, g.work, "-c", "init.defaultBranch=trunk", "init", "--quiet", ".")
	commitFile(t, g.gate, g.work, "README", []byte("hello\n"))
	commitFile(t, g.gate, g.work, "second", []byte("two\n"))
	g.git(t, g.work, "remote", "add", "origin", g.upstream)
	g.git(t, g.work, "push", "--quiet", "origin", "trunk")

	host, _ := genKey(t)
	client, keyPEM := genKey(t)
	g.keyPEM = keyPEM
	g.hostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(host.PublicKey())))
	g.sshd = newSSHD(t, uroot, host, client.PublicKey())
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	g.srv = &Server{
		Root:        root,
		Log:         slog.New(slog.NewJSONHandler(g.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SSHCommand:  []string{envBin, testSSHEnv + "=1", exe},
		ScanCommand: testScanCommand(t),
	}
	g.repo = Repo{
		Name:     "repo",
		Push:     []string{"refs/heads/agent/*", "+refs/heads/scratch/*"},
		Upstream: Upstream{User: "git", Host: "127.0.0.1", Port: g.sshd.port(), Path: "/o/r.git", HostKey: g.hostKey},
		KeyFile:  keyFile,
	}
	if edit != nil {
		edit(g, &g.repo)
	}
	if err := g.srv.SetRepos([]Repo{g.repo}); err != nil {
		t.Fatal(err)
	}
	g.ts = httptest.NewServer(g.srv)
	t.Cleanup(g.ts.Close)
	g.url = g.ts.URL + "/repo.git"
	t.Cleanup(func() { g.noKeyIn(t, "the gate log", g.log.String()) })
	return g
}

// noKeyIn fails if text holds any line of the private key's PEM body.
func (g *ugate) noKeyIn(t *testing.T, what, text string) {
	t.Helper()
	for _, line := range strings.Split(string(g.keyPEM), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(text, line) {
			t.Fatalf("%s contains the private key", what)
		}
	}
	if strings.Contains(text, "PRIVATE KEY") {
		t.Fatalf("%s mentions a PRIVATE KEY", what)
	}
}

// upstreamRef is the upstream's value of ref, or "" if it does not exist.
func (g *ugate) upstreamRef(t *testing.T, ref string) string {
	out, _ := g.cmd(g.upstream, "rev-parse", "--verify", "--quiet", ref).Output()
	return strings.TrimSpace(string(out))
}

func (g *ugate) gateRef(t *testing.T, ref string) string {
	out, _ := g.cmd(filepath.Join(g.srv.Root, "repo.git"), "rev-parse", "--verify", "--quiet", ref).Output()
	return strings.TrimSpace(string(out))
}

func (g *ugate) receivePacks() int {
	n := 0
	for _, e := range g.sshd.execLog() {
		if strings.HasPrefix(e, "git-receive-pack ") {
			n++
		}
	}
	return n
}

// statuses are the logged statuses of the gate's requests.
func (g *ugate) statuses(t *testing.T) []float64 {
	var out []float64
	for _, m := range g.log.requests(t) {
		out = append(out, m["status"].(float64))
	}
	return out
}

func TestUpstreamCloneFetchBeforeServe(t *testing.T) {
	g := newUpstreamGate(t, nil)
	a := g.clone(t)
	if got := g.git(t, a, "log", "--format=%s"); got != "add second\nadd README" {
		t.Fatalf("clone log = %q", got)
	}
	// HEAD was repaired to upstream's default branch.
	if got := g.git(t, a, "rev-parse", "--abbrev-ref", "HEAD"); got != "trunk" {
		t.Fatalf("clone checked out %q, want trunk", got)
	}
	// A commit made upstream after the gate's first fetch is served.
	commitFile(t, g.gate, g.work, "third", []byte("three\n"))
	g.git(t, g.work, "push", "--quiet", "origin", "trunk")
	want := g.git(t, g.work, "rev-parse", "HEAD")
	g.git(t, a, "pull", "--quiet", "--ff-only")
	if got := g.git(t, a, "rev-parse", "HEAD"); got != want {
		t.Fatalf("after pull HEAD = %s, want upstream's %s", got, want)
	}
	b := g.clone(t, "--depth", "1")
	if got := g.git(t, b, "rev-parse", "HEAD"); got != want {
		t.Fatalf("second clone HEAD = %s, want %s", got, want)
	}
	// A branch deleted upstream is pruned from the gate.
	g.git(t, g.work, "push", "--quiet", "origin", "trunk:refs/heads/gone")
	if out := g.git(t, "", "ls-remote", g.url, "refs/heads/gone"); !strings.Contains(out, "refs/heads/gone") {
		t.Fatalf("ls-remote after upstream created gone: %q", out)
	}
	g.git(t, g.work, "push", "--quiet", "origin", ":refs/heads/gone")
	if out := g.git(t, "", "ls-remote", g.url, "refs/heads/gone"); out != "" {
		t.Fatalf("ls-remote after upstream deleted gone: %q", out)
	}
	for _, st := range g.statuses(t) {
		if st != 200 {
			t.Fatalf("request status %v:\n%s", st, g.log.String())
		}
	}
}

func TestUpstreamProtocolV2(t *testing.T) {
	g := newUpstreamGate(t, nil)
	dir := filepath.Join(t.TempDir(), "v2")
	g.git(t, "", "-c", "protocol.version=2", "clone", "--quiet", g.url, dir)
	if got := g.git(t, dir, "log", "--format=%s"); got != "add second\nadd README" {
		t.Fatalf("v2 clone log = %q", got)
	}
	var v2 int
	for _, m := range g.log.requests(t) {
		if m["protocol"] == "version=2" {
			v2++
		}
	}
	if v2 < 3 {
		t.Fatalf("gate saw version=2 on %d requests, want >= 3", v2)
	}
	// The gate's own fetches spoke v2 to the upstream, over SSH.
	var up int
	for _, e := range g.sshd.execLog() {
		if e == "git-upload-pack /o/r.git GIT_PROTOCOL=version=2" {
			up++
		}
	}
	if up < 3 {
		t.Fatalf("upstream saw %d v2 upload-packs: %q", up, g.sshd.execLog())
	}
}

func TestUpstreamPushThrough(t *testing.T) {
	g := newUpstreamGate(t, nil)
	a := g.clone(t)
	g.git(t, a, "checkout", "--quiet", "-b", "agent/x")
	commitFile(t, g.gate, a, "x", []byte("x\n"))
	g.git(t, a, "push", "--quiet", "origin", "agent/x")
	want := g.git(t, a, "rev-parse", "HEAD")
	if got := g.upstreamRef(t, "refs/heads/agent/x"); got != want {
		t.Fatalf("upstream agent/x = %q, want %s", got, want)
	}
	if got := g.gateRef(t, "refs/heads/agent/x"); got != want {
		t.Fatalf("gate agent/x = %q, want %s", got, want)
	}
	// A fast-forward, then a force push and a delete under a '+' pattern.
	commitFile(t, g.gate, a, "y", []byte("y\n"))
	g.git(t, a, "push", "--quiet", "origin", "agent/x")
	if got, want := g.upstreamRef(t, "refs/heads/agent/x"), g.git(t, a, "rev-parse", "HEAD"); got != want {
		t.Fatalf("upstream agent/x after ff = %q, want %s", got, want)
	}
	g.git(t, a, "checkout", "--quiet", "-b", "scratch/s")
	g.git(t, a, "push", "--quiet", "origin", "scratch/s")
	g.git(t, a, "commit", "--quiet", "--amend", "-m", "rewritten")
	g.git(t, a, "push", "--quiet", "--force", "origin", "scratch/s")
	if got, want := g.upstreamRef(t, "refs/heads/scratch/s"), g.git(t, a, "rev-parse", "HEAD"); got != want {
		t.Fatalf("upstream scratch/s after force = %q, want %s", got, want)
	}
	g.git(t, a, "push", "--quiet", "origin", ":scratch/s")
	if got := g.upstreamRef(t, "refs/heads/scratch/s"); got != "" {
		t.Fatalf("upstream scratch/s still exists: %s", got)
	}
	if got := g.gateRef(t, "refs/heads/scratch/s"); got != "" {
		t.Fatalf("gate scratch/s still exists: %s", got)
	}
	if !strings.Contains(g.log.String(), "pushed to the upstream") {
		t.Fatalf("push-through not logged:\n%s", g.log.String())
	}

	// The lease: a forced update whose old value is no longer upstream's
	// (upstream moved after the gate last fetched) is refused upstream.
	g.git(t, g.work, "push", "--quiet", "origin", "trunk:refs/heads/scratch/t")
	g.git(t, "", "ls-remote", g.url) // the gate fetches scratch/t
	c2, c1 := g.git(t, g.work, "rev-parse", "trunk"), g.git(t, g.work, "rev-parse", "trunk~1")
	bare := filepath.Join(g.srv.Root, "repo.git")
	env, err := g.srv.upstreamEnv(g.repo)
	if err != nil {
		t.Fatal(err)
	}
	hook := exec.Command(filepath.Join(bare, "hooks", builtinHook), "repo", filepath.Join(bare, PolicyFile))
	hook.Dir = bare
	hook.Env = gitEnv(append(env, "GIT_DIR="+bare, UpstreamEnv+"="+g.repo.Upstream.URL()))
	hook.Stdin = strings.NewReader(c1 + " " + c1 + " refs/heads/scratch/t\n")
	out, err := hook.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "stale info") {
		t.Fatalf("stale forced push: %v\n%s", err, out)
	}
	if got := g.upstreamRef(t, "refs/heads/scratch/t"); got != c2 {
		t.Fatalf("upstream scratch/t = %s, want %s", got, c2)
	}
}

func TestUpstreamPolicyRefusalNeverReachesUpstream(t *testing.T) {
	g := newUpstreamGate(t, nil)
	a := g.clone(t)
	before := g.upstreamRef(t, "refs/heads/trunk")
	commitFile(t, g.gate, a, "x", []byte("x\n"))
	out := g.gitFail(t, a, "push", "origin", "trunk")
	if !strings.Contains(out, "refusing refs/heads/trunk: not in the bottle's push patterns") {
		t.Fatalf("push stderr:\n%s", out)
	}
	// One ref refused refuses the whole push, allowed ones included.
	g.git(t, a, "branch", "agent/ok")
	out = g.gitFail(t, a, "push", "origin", "trunk", "agent/ok")
	if !strings.Contains(out, "refusing refs/heads/trunk") {
		t.Fatalf("mixed push stderr:\n%s", out)
	}
	if n := g.receivePacks(); n != 0 {
		t.Fatalf("upstream saw %d receive-packs, want 0: %q", n, g.sshd.execLog())
	}
	if got := g.upstreamRef(t, "refs/heads/trunk"); got != before {
		t.Fatalf("upstream trunk moved to %s", got)
	}
	if got := g.upstreamRef(t, "refs/heads/agent/ok"); got != "" {
		t.Fatalf("upstream got agent/ok")
	}
	g.noKeyIn(t, "client stderr", out)
}

func TestUpstreamRefusesPush(t *testing.T) {
	g := newUpstreamGate(t, nil)
	hook := "#!/bin/sh\nwhile read old new ref; do\n  case $ref in refs/heads/agent/blocked) echo \"upstream says no: $ref is protected\" >&2; exit 1;; esac\ndone\n"
	if err := os.WriteFile(filepath.Join(g.upstream, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	a := g.clone(t)
	g.git(t, a, "checkout", "--quiet", "-b", "agent/blocked")
	commitFile(t, g.gate, a, "b", []byte("b\n"))
	out := g.gitFail(t, a, "push", "origin", "agent/blocked")
	if !strings.Contains(out, "upstream says no: refs/heads/agent/blocked is protected") {
		t.Fatalf("client does not see upstream's verdict:\n%s", out)
	}
	if !strings.Contains(out, "refused the push") {
		t.Fatalf("client does not see the gate's summary:\n%s", out)
	}
	if got := g.gateRef(t, "refs/heads/agent/blocked"); got != "" {
		t.Fatalf("gate ref moved to %s although upstream refused", got)
	}
	if got := g.upstreamRef(t, "refs/heads/agent/blocked"); got != "" {
		t.Fatalf("upstream ref exists: %s", got)
	}
	if !strings.Contains(g.log.String(), "upstream says no") {
		t.Fatalf("upstream's verdict not logged:\n%s", g.log.String())
	}
	g.noKeyIn(t, "client stderr", out)

	// A ref upstream accepts still goes through afterwards.
	g.git(t, a, "checkout", "--quiet", "-b", "agent/y", "origin/trunk")
	commitFile(t, g.gate, a, "y", []byte("y\n"))
	g.git(t, a, "push", "--quiet", "origin", "agent/y")
	if got, want := g.upstreamRef(t, "refs/heads/agent/y"), g.git(t, a, "rev-parse", "HEAD"); got != want {
		t.Fatalf("upstream agent/y = %q, want %s", got, want)
	}
}

// failClone clones through the gate, expects failure, and checks the
// request was refused with want status, logged, and nothing was served.
func (g *ugate) failClone(t *testing.T, want float64, logWants ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clone")
	out := g.gitFail(t, "", "clone", g.url, dir)
	g.noKeyIn(t, "client stderr", out)
	st := g.statuses(t)
	if len(st) == 0 {
		t.Fatal("no request logged")
	}
	for _, s := range st {
		if s != want {
			t.Fatalf("request statuses %v, want all %v\n%s", st, want, g.log.String())
		}
	}
	for _, w := range logWants {
		if !strings.Contains(g.log.String(), w) {
			t.Fatalf("log lacks %q:\n%s", w, g.log.String())
		}
	}
	if refs := g.git(t, filepath.Join(g.srv.Root, "repo.git"), "for-each-ref"); refs != "" {
		t.Fatalf("the gate holds refs:\n%s", refs)
	}
	return out
}

func TestUpstreamHostKeyMismatch(t *testing.T) {
	var wrong ssh.Signer
	g := newUpstreamGate(t, func(g *ugate, r *Repo) {
		wrong, _ = genKey(t)
		r.Upstream.HostKey = string(ssh.MarshalAuthorizedKey(wrong.PublicKey()))
	})
	real, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(g.hostKey))
	out := g.failClone(t, 502, "host key mismatch for 127.0.0.1:",
		ssh.FingerprintSHA256(real), ssh.FingerprintSHA256(wrong.PublicKey()))
	if !strings.Contains(out, "could not fetch from the upstream") || !strings.Contains(out, "host key mismatch") {
		t.Fatalf("client stderr:\n%s", out)
	}
	if n := len(g.sshd.execLog()); n != 0 {
		t.Fatalf("upstream ran %d commands", n)
	}
}

func TestUpstreamNoHostKey(t *testing.T) {
	g := newUpstreamGate(t, func(g *ugate, r *Repo) { r.Upstream.HostKey = "" })
	g.failClone(t, 503, "no host key is pinned")
	// Pushes are refused as well.
	code, _ := raw(t, g.ts.Listener.Addr().String(), "GET /repo.git/info/refs?service=git-receive-pack HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n")
	if code != 503 {
		t.Fatalf("receive-pack advertisement: %d, want 503", code)
	}
	if n := g.sshd.Conns(); n != 0 {
		t.Fatalf("the gate connected to the upstream %d times", n)
	}
	// SSHMain refuses on its own too.
	t.Setenv(HostKeyEnv, "")
	var stderr bytes.Buffer
	if rc := SSHMain([]string{"-p", fmt.Sprint(g.sshd.port()), "git@127.0.0.1", "git-upload-pack '/o/r.git'"}, strings.NewReader(""), io.Discard, &stderr); rc != 255 || !strings.Contains(stderr.String(), "no host key is pinned") {
		t.Fatalf("SSHMain without a host key: %d %q", rc, stderr.String())
	}
	if n := g.sshd.Conns(); n != 0 {
		t.Fatalf("SSHMain connected without a host key")
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	g := newUpstreamGate(t, func(g *ugate, r *Repo) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.Upstream.Port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	})
	out := g.failClone(t, 502, "connection refused")
	if !strings.Contains(out, "could not fetch from the upstream") {
		t.Fatalf("client stderr:\n%s", out)
	}
}

func TestUpstreamWrongClientKey(t *testing.T) {
	g := newUpstreamGate(t, func(g *ugate, r *Repo) {
		_, other := genKey(t)
		r.KeyFile = filepath.Join(t.TempDir(), "other")
		os.WriteFile(r.KeyFile, other, 0o600)
	})
	g.failClone(t, 502, "unable to authenticate")
	if n := len(g.sshd.execLog()); n != 0 {
		t.Fatalf("upstream ran %d commands", n)
	}
}

func TestUpstreamSetRepos(t *testing.T) {
	requireGit(t)
	s := &Server{Root: t.TempDir()}
	ok := Upstream{User: "git", Host: "gitea.example", Port: 30009, Path: "/o/r.git"}
	if err := s.SetRepos([]Repo{{Name: "r", Upstream: ok}}); err != nil {
		t.Fatal(err)
	}
	if got := ok.URL(); got != "ssh://git@gitea.example:30009/o/r.git" {
		t.Fatalf("URL = %q", got)
	}
	if got := (Upstream{User: "git", Host: "::1", Path: "/r"}).URL(); got != "ssh://git@[::1]:22/r" {
		t.Fatalf("URL = %q", got)
	}
	for _, bad := range []Upstream{
		{User: "", Host: "h", Path: "/p"}, {User: "-oProxyCommand=x", Host: "h", Path: "/p"},
		{User: "git", Host: "-h", Path: "/p"}, {User: "git", Host: "h h", Path: "/p"},
		{User: "git", Host: "h", Path: "p"}, {User: "git", Host: "h", Path: "/a/../b"},
		{User: "git", Host: "h", Path: "/it's"}, {User: "git", Host: "h", Port: 70000, Path: "/p"},
		{User: "git", Host: "h", Path: "/p", HostKey: "not a key"},
	} {
		if err := s.SetRepos([]Repo{{Name: "r", Upstream: bad}}); err == nil {
			t.Errorf("SetRepos accepted upstream %+v", bad)
		}
	}
	s.Hook = "/bin/true"
	if err := s.SetRepos([]Repo{{Name: "r", Upstream: ok}}); err == nil {
		t.Error("SetRepos accepted a custom Hook with an upstream")
	}
}

func TestParseSSHArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want sshArgs
		err  bool
	}{
		// What git 2.39 passes with GIT_SSH_VARIANT=ssh.
		{[]string{"-o", "SendEnv=GIT_PROTOCOL", "-p", "2222", "git@127.0.0.1", "git-upload-pack '/o/r.git'"},
			sshArgs{user: "git", host: "127.0.0.1", port: "2222", network: "tcp", command: "git-upload-pack '/o/r.git'"}, false},
		{[]string{"git@h", "git-receive-pack", "'~u/r.git'"},
			sshArgs{user: "git", host: "h", port: "22", network: "tcp", command: "git-receive-pack '~u/r.git'"}, false},
		{[]string{"-6", "-p2", "--", "git@[::1]", "git-upload-pack '/r'"},
			sshArgs{user: "git", host: "::1", port: "2", network: "tcp6", command: "git-upload-pack '/r'"}, false},
		{[]string{"-l", "u", "h", "git-upload-pack '/r'"},
			sshArgs{user: "u", host: "h", port: "22", network: "tcp", command: "git-upload-pack '/r'"}, false},
		{[]string{"h", "git-upload-pack '/r'"}, sshArgs{}, true},                // no user
		{[]string{"git@h", "sh", "-c", "id"}, sshArgs{}, true},                  // not git
		{[]string{"-p", "0", "git@h", "git-upload-pack '/r'"}, sshArgs{}, true}, // bad port
		{[]string{"-p"}, sshArgs{}, true},
		{[]string{"-X", "git@h", "git-upload-pack '/r'"}, sshArgs{}, true},
		{[]string{"git@-oProxyCommand=x", "git-upload-pack '/r'"}, sshArgs{}, true},
	} {
		got, err := parseSSHArgs(tc.args)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("parseSSHArgs(%q) = %+v, %v", tc.args, got, err)
		}
	}
}
