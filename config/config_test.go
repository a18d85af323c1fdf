package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/resource"
)

const hostKey = `"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"`

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
func TestValidationRules(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		summary string
		detail  string // a substring of the detail
	}{
		{"unknown top-level block", `
botle "a" { # HERE
  image = "x"
}`, "Unsupported block type", `Did you mean "bottle"?`},
		{"unknown block in bottle", `
bottle "a" {
  image = "x"
  egres "api.github.com" {} # HERE
}`, "Unsupported block type", `Did you mean "egress"?`},
		{"misspelled attribute", `
bottle "a" {
  imgae = "x" # HERE
}`, "Unsupported argument", `Did you mean "image"?`},
		{"invalid bottle name", `
bottle "My_Bottle" { # HERE
  image = "x"
}`, "Invalid bottle name", `"my-bottle"`},
		{"bottle name starting with a digit", `
bottle "9x" { # HERE
  image = "x"
}`, "Invalid bottle name", "^[a-z][a-z0-9-]*$"},
		{"git name with semicolon", gitEntry(`"a;b"`, `key "file" { path = "id_app" }`), "Invalid git entry name", "no spaces, quotes, ';'"},
		{"git name with quote", gitEntry(`"a'b"`, `key "file" { path = "id_app" }`), "Invalid git entry name", "letters, digits"},
		{"git name with space", gitEntry(`"a b"`, `key "file" { path = "id_app" }`), "Invalid git entry name", "letters, digits"},
		{"git name dot dot", gitEntry(`".."`, `key "file" { path = "id_app" }`), "Invalid git entry name", `not "." or ".."`},
		{"git name with slash", gitEntry(`"a/b"`, `key "file" { path = "id_app" }`), "Invalid git entry name", "letters, digits"},
		{"both key blocks", `
secret "g" {
  env = "G"
}
bottle "a" {
  image = "x"
  git "app" {
    upstream = "ssh://git@h/o/r.git"
    host_key = ` + hostKey + `
    key "file" { path = "id_app" }
    key "gitea" { # HERE
      api_url = "https://h"
      token = secret.g
    }
  }
}`, "More than one key", "exactly one key"},
		{"no key", `
bottle "a" {
  image = "x"
  git "app" { # HERE
    upstream = "ssh://git@h/o/r.git"
    host_key = ` + hostKey + `
  }
}`, "Missing key", `key "file"`},
		{"unknown key kind", `
bottle "a" {
  image = "x"
  git "app" {
    upstream = "ssh://git@h/o/r.git"
    host_key = ` + hostKey + `
    key "fil" { path = "id_app" } # HERE
  }
}`, "Unknown key kind", `Did you mean "file"?`},
		{"missing host key", `
bottle "a" {
  image = "x"
  git "app" { # HERE
    upstream = "ssh://git@h/o/r.git"
    key "file" { path = "id_app" }
  }
}`, "Missing host_key", "no trust on first use"[:0] + "never trusts a host key on first use"},
		{"invalid host key", `
bottle "a" {
  image = "x"
  git "app" {
    upstream = "ssh://git@h/o/r.git"
    host_key = "ssh-ed25519 notbase64" # HERE
    key "file" { path = "id_app" }
  }
}`, "Invalid host key", "ssh-keyscan"},
		{"non-ssh upstream", `
bottle "a" {
  image = "x"
  git "app" {
    upstream = "https://github.com/o/r.git" # HERE
    host_key = ` + hostKey + `
    key "file" { path = "id_app" }
  }
}`, "Invalid upstream", "SSH only"},
		{"scp-style upstream", `
bottle "a" {
  image = "x"
  git "app" {
    upstream = "git@github.com:o/r.git" # HERE
    host_key = ` + hostKey + `
    key "file" { path = "id_app" }
  }
}`, "Invalid upstream", "ssh://git@github.com/o/r.git"},
		{"bad push pattern", `
bottle "a" {
  image = "x"
  git "app" {
    upstream = "ssh://git@h/o/r.git"
    host_key = ` + hostKey + `
    key "file" { path = "id_app" }
    push = ["main"] # HERE
  }
}`, "Invalid push ref pattern", "refs/heads/agent/*"},
		{"missing secret", `
bottle "a" {
  image = "x"
  agent "claude" {
    auth_token = secret.claude # HERE
  }
}`, "Reference to undeclared secret", `secret "claude" { env = "VAR" }`},
		{"misspelled secret", `
secret "claude" {
  env = "T"
}
bottle "a" {
  image = "x"
  agent "claude" {
    auth_token = secret.cluade # HERE
  }
}`, "Reference to undeclared secret", "Did you mean secret.claude?"},
		{"literal token", `
bottle "a" {
  image = "x"
  agent "claude" {
    auth_token = "sk-ant-oat01-xyz" # HERE
  }
}`, "Secret values must be references", "committed to git"},
		{"undefined host_env", `
bottle "a" {
  image = "x"
  env = {
    U = host_env("NOT_SET_ANYWHERE") # HERE
  }
}`, "Undefined host environment variable", "export NOT_SET_ANYWHERE="},
		{"duplicate egress host", `
bottle "a" {
  image = "x"
  egress "api.github.com" {}
  egress "api.github.com" {} # HERE
}`, "Duplicate egress block", "only one"},
		{"scheme Basic", `
secret "g" {
  env = "G"
}
bottle "a" {
  image = "x"
  egress "api.github.com" {
    auth {
      scheme = "Basic" # HERE
      token = secret.g
    }
  }
}`, "Unsupported auth scheme", `"Bearer" or "token"`},
		{"half an auth", `
bottle "a" {
  image = "x"
  egress "api.github.com" {
    auth { # HERE
      scheme = "Bearer"
    }
  }
}`, "Incomplete auth block", "token is missing"},
		{"role on a route", `
bottle "a" {
  image = "x"
  egress "api.github.com" {
    role = "claude_code_oauth" # HERE
  }
}`, "Unknown role", "reserved"},
		{"auth_token on codex", `
secret "t" {
  env = "T"
}
bottle "a" {
  image = "x"
  agent "codex" {
    auth_token = secret.t # HERE
  }
}`, "auth_token is claude only", "forward_host_credentials"},
		{"forward_host_credentials on claude", `
bottle "a" {
  image = "x"
  agent "claude" {
    forward_host_credentials = true # HERE
  }
}`, "forward_host_credentials is codex only", "auth_token"},
		{"unknown provider", `
bottle "a" {
  image = "x"
  agent "claud" {} # HERE
}`, "Unknown agent provider", `Did you mean "claude"?`},
		{"extends cycle", `
bottle "a" {
  extends = "b"
  image = "x"
}
bottle "b" {
  extends = "a" # HERE
}`, "Cycle in extends", "a extends b extends a"},
		{"extends itself", `
bottle "a" {
  extends = "a" # HERE
  image = "x"
}`, "Cycle in extends", "a extends a"},
		{"extends missing parent", `
bottle "base" {
  abstract = true
  image = "x"
}
bottle "a" {
  extends = "bsae" # HERE
}`, "Unknown parent bottle", `Did you mean "base"?`},
		{"missing image", `
bottle "a" { # HERE
  agent "claude" {}
}`, "Missing image", "image ="},
		{"unknown backend", `
bottle "a" {
  image = "x"
  backend = "podman" # HERE
}`, "Unknown backend", `"docker"`},
		{"egress host with scheme", `
bottle "a" {
  image = "x"
  egress "https://api.github.com" {} # HERE
}`, "Invalid egress host", "host alone"},
		{"egress host with port", `
bottle "a" {
  image = "x"
  egress "api.github.com:8443" {} # HERE
}`, "Invalid egress host", "port"},
		{"paths on passthrough", `
bottle "a" {
  image = "x"
  egress "api.github.com" {
    tls = "passthrough"
    paths = ["/x"] # HERE
  }
}`, "paths need interception", "passthrough"},
		{"auth on passthrough", `
secret "g" {
  env = "G"
}
bottle "a" {
  image = "x"
  egress "api.github.com" {
    tls = "passthrough"
    auth { # HERE
      scheme = "Bearer"
      token = secret.g
    }
  }
}`, "auth needs interception", "decrypts"},
		{"path without slash", `
bottle "a" {
  image = "x"
  egress "api.github.com" {
    paths = ["repos/"] # HERE
  }
}`, "Invalid path prefix", `start with '/'`},
		{"reserved env", `
bottle "a" {
  image = "x"
  env = {
    HTTPS_PROXY = "http://evil" # HERE
  }
}`, "Reserved environment variable", "remove it"},
		{"secret with two sources", `
secret "s" {
  env = "A"
  file = "x" # HERE
}
bottle "a" {
  image = "x"
}`, "A secret needs exactly one source", "exactly one of"},
		{"duplicate bottle", `
bottle "a" {
  image = "x"
}
bottle "a" { # HERE
  image = "y"
}`, "Duplicate bottle", "unique"},
		{"missing prompt file", `
bottle "a" {
  image = "x"
  prompt = file("prompts/nope.md") # HERE
}`, "Cannot read prompt file", "relative to the file"},
		{"missing skill dir", `
bottle "a" {
  image = "x"
  skills = ["skills/nope"] # HERE
}`, "Skill directory not found", "create it"},
		{"bad memory", `
bottle "a" {
  image = "x"
  resources {
    memory = "4 parsecs" # HERE
  }
}`, "Invalid memory", "unknown unit"},
		{"reserved mcp name", `
bottle "a" {
  image = "x"
  mcp "supervise" { # HERE
    url = "https://x/mcp"
  }
}`, "Reserved MCP server name", "supervise = true"},
		{"missing secret env", `
secret "g" { # HERE
  env = "NOT_SET_ANYWHERE"
}
bottle "a" {
  image = "x"
  env = {
    G = secret.g
  }
}`, "Secret not set", "Export it"},
		{"upstream_ca not PEM", `
bottle "a" {
  image = "x"
  upstream_ca = "not a certificate" # HERE
}`, "Invalid upstream_ca", "PEM certificates"},
		{"allow_private_ip not a bool", `
bottle "a" {
  image = "x"
  egress "git.internal" {
    allow_private_ip = "yes please" # HERE
  }
}`, "Wrong type", "bool"},
		{"missing key file", `
bottle "a" {
  image = "x"
  git "app" {
    upstream = "ssh://git@h/o/r.git"
    host_key = ` + hostKey + `
    key "file" {
      path = "nope" # HERE
    }
  }
}`, "Key file not found", "ssh-keygen"},
	}
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

func gitEntry(label, key string) string {
	return `
bottle "a" {
  image = "x"
  git ` + label + ` { # HERE
    upstream = "ssh://git@h/o/r.git"
    host_key = ` + hostKey + `
    ` + key + `
  }
}`
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
