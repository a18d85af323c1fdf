package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/resource"
)

// write puts src in dir/main.hcl with the files the cases refer to.
func write(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"main.hcl":           src,
		"id_app":             "key",
		"prompts/p.md":       "be careful\n",
		"skills/review/a.md": "skill",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func env(vars map[string]string) Options {
	return Options{LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
}

// TestValidationRules: each malformed definition gives exactly one error,
// on the line marked "# HERE", whose summary and detail say what to do.
type validationCase struct {
	name    string
	src     string
	summary string
	detail  string // a substring of the detail
}

// validationCases reads testdata/malformed: one definition per file, whose
// first line is the summary of the one error it must give and whose second
// line is a part of its detail; the offending line is marked "# HERE".
// cmd/bottleform runs the same files through `bottleform plan`.
func validationCases() []validationCase {
	names, _ := filepath.Glob(filepath.Join("testdata", "malformed", "*.hcl"))
	var out []validationCase
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			panic(err)
		}
		lines := strings.SplitN(string(b), "\n", 3)
		out = append(out, validationCase{
			name:    strings.TrimSuffix(filepath.Base(n), ".hcl"),
			summary: strings.TrimPrefix(lines[0], "# "),
			detail:  strings.TrimPrefix(lines[1], "# "),
			src:     string(b),
		})
	}
	return out
}

func TestValidationRules(t *testing.T) {
	tests := validationCases()
	if len(tests) < 20 {
		t.Fatalf("only %d malformed definitions", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantLine := 0
			for i, l := range strings.Split(tt.src, "\n") {
				if strings.Contains(l, "# HERE") {
					wantLine = i + 1
				}
			}
			if wantLine == 0 {
				t.Fatal("case has no # HERE marker")
			}
			dir := write(t, tt.src)
			cfg, _, diags := Load(dir, env(map[string]string{"HOME": dir, "T": "x", "G": "x", "A": "x"}))
			if cfg != nil {
				t.Fatal("Load returned a configuration despite errors")
			}
			errs := diags.Errs()
			if len(errs) != 1 {
				t.Fatalf("want exactly one error, got %d: %s", len(errs), diags.Error())
			}
			d := diags[0]
			for _, x := range diags {
				if x.Severity == d.Severity && x.Subject != nil {
					d = x
				}
			}
			for _, x := range diags {
				if x.Severity == 1 { // hcl.DiagError
					d = x
				}
			}
			if d.Summary != tt.summary {
				t.Errorf("summary = %q, want %q", d.Summary, tt.summary)
			}
			if !strings.Contains(d.Detail, tt.detail) {
				t.Errorf("detail = %q, want it to contain %q", d.Detail, tt.detail)
			}
			if d.Subject == nil {
				t.Fatal("diagnostic has no source range")
			}
			if d.Subject.Start.Line != wantLine {
				t.Errorf("diagnostic on line %d, want %d (%s)", d.Subject.Start.Line, wantLine, d.Error())
			}
		})
	}
}

func TestExtendsMerge(t *testing.T) {
	dir := write(t, `
secret "t" {
  env = "T"
}
bottle "base" {
  abstract = true
  image = "base:1"
  env = {
    A = "parent"
    B = "parent"
  }
  egress "a.example" {}
  egress "b.example" {
    paths = ["/p/"]
  }
  git_user {
    name = "Parent"
    email = "p@x.dev"
  }
  resources {
    cpus = 1
    memory = "1GiB"
  }
  skills = ["skills/review"]
}
bottle "mid" {
  extends = "base"
  egress "b.example" {}
  env = {
    B = "mid"
    T = secret.t
  }
  resources {
    cpus = 2
  }
}
bottle "leaf" {
  extends = "mid"
  image = "leaf:1"
  git_user {
    name = "Leaf"
    email = "leaf@x.dev"
  }
  prompt = file("prompts/p.md")
}
`)
	cfg, _, diags := Load(dir, Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if _, ok := cfg.Bottles["base"]; ok {
		t.Error("abstract bottle base is in Bottles")
	}
	leaf := cfg.Bottles["leaf"]
	if leaf == nil {
		t.Fatal("no leaf")
	}
	if leaf.Image != "leaf:1" || cfg.Bottles["mid"].Image != "base:1" {
		t.Errorf("image: leaf %q mid %q", leaf.Image, cfg.Bottles["mid"].Image)
	}
	envs := map[string]resource.EnvVar{}
	for _, e := range leaf.Env {
		envs[e.Name] = e
	}
	if envs["A"].Literal != "parent" || envs["B"].Literal != "mid" || envs["T"].Ref.Secret != "t" {
		t.Errorf("env = %+v", leaf.Env)
	}
	if len(leaf.Egress) != 2 || leaf.Egress[1].Host != "b.example" || len(leaf.Egress[1].Paths) != 0 {
		t.Errorf("egress: child block must replace the parent's whole: %+v", leaf.Egress)
	}
	if leaf.Resources.CPUs != 2 || leaf.Resources.MemoryText != "1GiB" {
		t.Errorf("resources merged field by field: %+v", leaf.Resources)
	}
	if leaf.GitUser.Name != "Leaf" || leaf.GitUser.Email != "leaf@x.dev" {
		t.Errorf("git_user = %+v", leaf.GitUser)
	}
	if len(leaf.Skills) != 1 || leaf.Skills[0].Name != "review" || !strings.HasPrefix(leaf.Skills[0].Digest, "sha256:") {
		t.Errorf("skills = %+v", leaf.Skills)
	}
	if leaf.Prompt != "be careful\n" || leaf.PromptFile != "prompts/p.md" {
		t.Errorf("prompt = %q from %q", leaf.Prompt, leaf.PromptFile)
	}
}

func TestUpstreamParsedOnce(t *testing.T) {
	tests := []struct {
		in               string
		user, host, path string
		port             int
	}{
		{"ssh://git@h:30009/o/r.git", "git", "h", "/o/r.git", 30009},
		{"ssh://h/o/r", "git", "h", "/o/r", 22},
		{"ssh://alice@gitea.acme.dev/acme/app.git", "alice", "gitea.acme.dev", "/acme/app.git", 22},
		{"ssh://git@[::1]:2222/o/r.git", "git", "::1", "/o/r.git", 2222},
	}
	for _, tt := range tests {
		u, msg := parseUpstream(tt.in)
		if msg != "" {
			t.Errorf("%s: %s", tt.in, msg)
			continue
		}
		if u.user != tt.user || u.host != tt.host || u.path != tt.path || u.port != tt.port {
			t.Errorf("%s = %+v", tt.in, u)
		}
	}
	for _, bad := range []string{"ssh://git@h", "ssh://git@h:0/o/r", "ssh://git@h/o/r?x=1", "ssh://git:pw@h/o/r", "file:///tmp/r"} {
		if _, msg := parseUpstream(bad); msg == "" {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestNames(t *testing.T) {
	for name, want := range map[string]bool{"my-bottle": true, "a": true, "a1-b": true, "My_Bottle": false, "9x": false, "-a": false, "": false} {
		if validBottleName(name) != want {
			t.Errorf("bottle %q: %v", name, !want)
		}
	}
	for name, want := range map[string]bool{"a.b_c-1": true, "App": true, "a b": false, "a;b": false, "a'b": false, "a/b": false, "": false, ".": false, "..": false} {
		if validGitName(name) != want {
			t.Errorf("git %q: %v", name, !want)
		}
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"4GiB": 4 << 30, "512MiB": 512 << 20, "1G": 1e9, "1.5GiB": 3 << 29} {
		got, err := parseMemory(in)
		if err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "4", "lots", "1KiB", "-1GiB"} {
		if _, err := parseMemory(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDigestIgnoresFormatting(t *testing.T) {
	a, _, d1 := Load(write(t, "bottle \"a\" {\n  image = \"x\"\n}\n"), Options{})
	b, _, d2 := Load(write(t, "bottle \"a\" {\n    image=\"x\"   # comment\n}\n"), Options{})
	c, _, d3 := Load(write(t, "bottle \"a\" {\n  image = \"y\"\n}\n"), Options{})
	if d1.HasErrors() || d2.HasErrors() || d3.HasErrors() {
		t.Fatal(d1, d2, d3)
	}
	if a.Digest != b.Digest {
		t.Error("reformatting changed the digest")
	}
	if a.Digest == c.Digest {
		t.Error("a different image kept the digest")
	}
}

func TestUnusedSecretWarns(t *testing.T) {
	_, _, diags := Load(write(t, "secret \"s\" {\n  env = \"S\"\n}\nbottle \"a\" {\n  image = \"x\"\n}\n"), Options{})
	if diags.HasErrors() || len(diags) != 1 || diags[0].Summary != "Unused secret" {
		t.Fatalf("diags = %v", diags)
	}
}

func TestNoFiles(t *testing.T) {
	_, _, diags := Load(t.TempDir(), Options{})
	if !diags.HasErrors() || !strings.Contains(diags[0].Detail, "--chdir") {
		t.Fatalf("diags = %v", diags)
	}
}

// TestRouteMethods: methods are read sorted and without repeats, and a
// forge host (a git upstream's host) takes an intercepted route, with or
// without methods, in any spelling of the host.
func TestRouteMethods(t *testing.T) {
	dir := write(t, `
bottle "a" {
  image = "x"
  git "app" {
    upstream = "ssh://git@Gitea.Example.Test.:2222/owner/repo.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "file" { path = "id_app" }
  }
  egress "gitea.example.test" {
    methods = ["POST", "GET", "HEAD", "GET"]
  }
  egress "api.example.test" {
    tls = "passthrough"
  }
  egress "plain.example.test" {}
}
`)
	cfg, _, diags := Load(dir, Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	routes := map[string]resource.Route{}
	for _, r := range cfg.Bottles["a"].Egress {
		routes[r.Host] = r
	}
	if got := routes["gitea.example.test"].Methods; strings.Join(got, ",") != "GET,HEAD,POST" {
		t.Errorf("methods = %q, want GET,HEAD,POST", got)
	}
	if got := routes["plain.example.test"].Methods; got != nil {
		t.Errorf("unset methods = %q, want nil", got)
	}
	for _, bad := range []string{`"TRACE"`, `"CONNECT"`, `""`, `"GET/1"`} {
		_, _, diags := Load(write(t, "bottle \"a\" {\n  image = \"x\"\n  egress \"h.test\" {\n    methods = ["+bad+"]\n  }\n}\n"), Options{})
		if len(diags.Errs()) != 1 || diags[0].Summary != "Invalid method" {
			t.Errorf("methods = [%s]: %v", bad, diags)
		}
	}
}
