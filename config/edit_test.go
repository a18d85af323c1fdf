package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const editBase = `bottle "base" {
  abstract = true
  image    = "agent:1"
  agent "claude" {}
}
`

const editMain = `# The reviewer.
bottle "rev" {
  extends = "base"

  egress "api.github.com" {
    paths = ["/repos/acme/app/"] # only the app
  }

  git "app" {
    upstream = "ssh://git@gitea.acme.dev:2222/acme/app.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "file" {
      path = "id_app"
    }
    push = ["refs/heads/agent/*"]
  }
  prompt = file("prompt.md")
}
`

func editDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{"base.hcl": editBase, "main.hcl": editMain, "id_app": "key", "prompt.md": "Review.\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestAddEgress(t *testing.T) {
	dir := editDir(t)
	e, err := AddEgress(dir, "rev", "api.example.test", "proposed by the agent (p-1234):\nto read the release notes")
	if err != nil {
		t.Fatal(err)
	}
	if e.Path != filepath.Join(dir, "main.hcl") || string(e.Before) != editMain {
		t.Fatalf("edit of %s", e.Path)
	}
	after := string(e.After)
	for _, want := range []string{
		"# proposed by the agent (p-1234):\n  # to read the release notes\n  egress \"api.example.test\" {\n  }\n",
		"# The reviewer.", `paths = ["/repos/acme/app/"] # only the app`, // comments kept
	} {
		if !strings.Contains(after, want) {
			t.Errorf("edited file lacks %q:\n%s", want, after)
		}
	}
	// Nothing is written until Write.
	if b, _ := os.ReadFile(e.Path); string(b) != editMain {
		t.Error("the file changed before Write")
	}
	if err := e.Write(); err != nil {
		t.Fatal(err)
	}
	cfg, _, diags := Load(dir, Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	var hosts []string
	for _, r := range cfg.Bottles["rev"].Egress {
		hosts = append(hosts, r.Host)
	}
	if !slices.Contains(hosts, "api.example.test") {
		t.Errorf("hosts after the edit: %v", hosts)
	}

	// Refusals change nothing.
	before, _ := os.ReadFile(e.Path)
	for _, c := range []struct{ bottle, host, want string }{
		{"rev", "api.example.test", "already declares"},
		{"rev", "bad host!", "would not load"},
		{"nope", "x.example", "declares bottle \"nope\""},
	} {
		if _, err := AddEgress(dir, c.bottle, c.host, "why"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddEgress(%s, %s): %v, want %q", c.bottle, c.host, err, c.want)
		}
	}
	if after, _ := os.ReadFile(e.Path); string(after) != string(before) {
		t.Error("a refused edit changed the file")
	}
}

func TestAddPushRef(t *testing.T) {
	dir := editDir(t)
	e, err := AddPushRef(dir, "rev", "app", "refs/heads/release/*", "proposed by the agent (p-99): cut releases")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(e.After), "# proposed by the agent (p-99): cut releases\n    push = [\"refs/heads/agent/*\", \"refs/heads/release/*\"]\n") {
		t.Errorf("edited file:\n%s", e.After)
	}
	if err := e.Write(); err != nil {
		t.Fatal(err)
	}
	cfg, _, diags := Load(dir, Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if got := cfg.Bottles["rev"].Git[0].Push; !slices.Equal(got, []string{"refs/heads/agent/*", "refs/heads/release/*"}) {
		t.Errorf("push after the edit: %v", got)
	}
	for _, c := range []struct{ repo, pattern, want string }{
		{"app", "refs/heads/release/*", "already allows"},
		{"lib", "refs/heads/x", "no git entry"},
		{"app", "heads/x", "would not load"},
	} {
		if _, err := AddPushRef(dir, "rev", c.repo, c.pattern, "why"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddPushRef(%s, %s): %v, want %q", c.repo, c.pattern, err, c.want)
		}
	}
}

func TestEditWriteRefusesAChangedFile(t *testing.T) {
	dir := editDir(t)
	e, err := AddEgress(dir, "rev", "api.example.test", "why")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.Path, []byte(editMain+"\n# edited meanwhile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Write(); err == nil || !strings.Contains(err.Error(), "changed while") {
		t.Errorf("Write over a changed file: %v", err)
	}
}
