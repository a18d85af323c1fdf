package egress

import (
	"context"
	"io"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Real clients through the gateway: curl and git. Each runs with a clean
// environment so that no proxy or CA setting of the host leaks in.

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LANG=C"}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCurl(t *testing.T) {
	curl := lookPath(t, "curl")
	got := make(chan seen, 8)
	_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{header: r.Header.Clone(), proto: r.ProtoMajor}
		io.WriteString(w, "from upstream\n")
	}))
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p, port443: port})
	gwCA := writeFile(t, "gateway-ca.pem", e.gw.CACertPEM())
	upCA := writeFile(t, "upstream-ca.pem", upstreamPKI().caPEM)
	proxy := "http://" + e.addr

	for _, v := range []string{"--http1.1", "--http2"} {
		t.Run("intercept "+v, func(t *testing.T) {
			out, err := run(t, "", nil, curl, "-sS", v, "-x", proxy, "--cacert", gwCA, "-w", "%{http_code} %{http_version}",
				"-H", "Authorization: Bearer agent-fake", "-H", "X-Api-Key: agent-key", "-H", "x_api.key: agent-key-2",
				"https://api.test/repos/acme/app/pulls")
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			want := map[string]string{"--http1.1": "from upstream\n200 1.1", "--http2": "from upstream\n200 2"}[v]
			if out != want {
				t.Errorf("curl printed %q, want %q", out, want)
			}
			assertClean(t, (<-got).header, "Bearer "+realToken)
		})
	}
	t.Run("passthrough", func(t *testing.T) {
		out, err := run(t, "", nil, curl, "-sS", "-x", proxy, "--cacert", upCA, "https://other.test/")
		if err != nil || out != "from upstream\n" {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		<-got
	})
	t.Run("refused CONNECT", func(t *testing.T) {
		out, err := run(t, "", nil, curl, "-sS", "-v", "-x", proxy, "--cacert", gwCA, "https://evil.test/")
		if err == nil || !strings.Contains(out, "403 Forbidden (bottleform egress: not_granted)") {
			t.Errorf("curl: %v\n%s", err, out)
		}
	})
	t.Run("refused plain http", func(t *testing.T) {
		out, err := run(t, "", nil, curl, "-sS", "-x", proxy, "http://evil.test/x")
		if err != nil || !strings.Contains(out, "why: not_granted:") || !strings.Contains(out, "propose_egress") {
			t.Errorf("curl: %v\n%s", err, out)
		}
	})
	t.Run("refused path", func(t *testing.T) {
		out, err := run(t, "", nil, curl, "-sS", "-x", proxy, "--cacert", gwCA, "--path-as-is", "https://api.test/repos/acme/app/../../other")
		if err != nil || !strings.Contains(out, "why: path_invalid:") {
			t.Errorf("curl: %v\n%s", err, out)
		}
	})
}

// gitUpstream serves a bare repository at /repos/acme/app.git with the
// real git http-backend, and records the Authorization of every request.
func gitUpstream(t *testing.T, git string, auth chan<- string) int {
	root := t.TempDir()
	work := t.TempDir()
	bare := filepath.Join(root, "repos", "acme", "app.git")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", work},
		{"-C", work, "-c", "user.name=t", "-c", "user.email=t@test", "commit", "-q", "--allow-empty", "-m", "first"},
		{"init", "-q", "--bare", "-b", "main", bare},
		{"-C", work, "push", "-q", bare, "main"},
	} {
		if out, err := run(t, "", nil, git, args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	backend := &cgi.Handler{Path: git, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case auth <- r.Header.Get("Authorization"):
		default:
		}
		backend.ServeHTTP(w, r)
	}))
	return port
}

func TestGitThroughIntercept(t *testing.T) {
	git := lookPath(t, "git")
	auth := make(chan string, 16)
	port := gitUpstream(t, git, auth)
	p := basePolicy()
	p.Routes[0].Paths = []string{"/repos/acme/app.git/"}
	e := newEnv(t, envConfig{policy: &p, port443: port})
	env := []string{"GIT_SSL_CAINFO=" + writeFile(t, "ca.pem", e.gw.CACertPEM()),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0"}
	proxy := "http.proxy=http://" + e.addr
	dest := filepath.Join(t.TempDir(), "app")

	out, err := run(t, "", env, git, "-c", proxy, "clone", "-q", "https://api.test/repos/acme/app.git", dest)
	if err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if out, err := run(t, dest, env, git, "log", "--format=%s"); err != nil || out != "first\n" {
		t.Fatalf("cloned log %q %v", out, err)
	}
	for len(auth) > 0 {
		if a := <-auth; a != "Bearer "+realToken {
			t.Errorf("upstream saw Authorization %q", a)
		}
	}
	e.logs.waitDecision(t, map[string]any{"method": "GET", "path": "/repos/acme/app.git/info/refs", "verdict": "allow", "status": 200})
	e.logs.waitDecision(t, map[string]any{"method": "POST", "path": "/repos/acme/app.git/git-upload-pack", "verdict": "allow", "status": 200})

	// A push is refused before anything reaches the upstream.
	out, err = run(t, dest, env, git, "-c", proxy, "-c", "user.name=t", "-c", "user.email=t@test", "commit", "-q", "--allow-empty", "-m", "second")
	if err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}
	out, err = run(t, dest, env, git, "-c", proxy, "push", "origin", "HEAD:refs/heads/agent/x")
	if err == nil || !strings.Contains(out, "403") {
		t.Errorf("git push: %v\n%s", err, out)
	}
	if len(auth) > 0 {
		t.Errorf("a push request reached the upstream")
	}
	e.logs.waitDecision(t, map[string]any{"method": "GET", "verdict": "deny", "reason": "git_push", "status": 403})
}
