package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/resource"
)

// TestGitConfigRewritesWithRealGit checks, with the real git, that every
// form of an upstream resolves to the gate, and that nothing else does.
func TestGitConfigRewritesWithRealGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed: %v", err)
	}
	b := &resource.Bottle{
		GitUser: &resource.GitUser{Name: `Bot "Q" Bottle`, Email: "bot@example.test"},
		Git: []resource.GitEntry{
			{Name: "app", Upstream: "ssh://git@gitea.example.test/acme/app.git", User: "git", Host: "gitea.example.test", Port: 22, Path: "/acme/app.git"},
			{Name: "lib", Upstream: "ssh://git@gitea.example.test:2222/acme/lib", User: "git", Host: "gitea.example.test", Port: 2222, Path: "/acme/lib"},
		},
	}
	home := t.TempDir()
	cfg := filepath.Join(home, "bottleform.gitconfig")
	if err := os.WriteFile(cfg, []byte(GitConfig(b, DockerGate)), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "include.path=" + cfg}, args...)...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	if got := git("config", "user.name"); got != `Bot "Q" Bottle` {
		t.Errorf("user.name = %q", got)
	}
	if got := git("config", "user.email"); got != "bot@example.test" {
		t.Errorf("user.email = %q", got)
	}
	cases := map[string]string{
		"ssh://git@gitea.example.test/acme/app.git":      "http://git-gate/app.git",
		"git@gitea.example.test:acme/app.git":            "http://git-gate/app.git",
		"https://gitea.example.test/acme/app.git":        "http://git-gate/app.git",
		"ssh://git@gitea.example.test:2222/acme/lib":     "http://git-gate/lib.git",
		"ssh://git@gitea.example.test:2222/acme/lib.git": "http://git-gate/lib.git",
		"https://gitea.example.test/acme/lib.git":        "http://git-gate/lib.git",
		// Not declared: left alone.
		"ssh://git@gitea.example.test/acme/other.git": "ssh://git@gitea.example.test/acme/other.git",
		"ssh://git@gitea.example.test/acme/lib.git":   "ssh://git@gitea.example.test/acme/lib.git",
	}
	i := 0
	for in, want := range cases {
		i++
		name := "r" + string(rune('a'+i))
		git("remote", "add", name, in)
		if got := git("remote", "get-url", name); got != want {
			t.Errorf("%s resolves to %s, want %s", in, got, want)
		}
		if got := git("remote", "get-url", "--push", name); got != want {
			t.Errorf("%s (push) resolves to %s, want %s", in, got, want)
		}
	}
}
