package applier_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// loadConfig loads src without looking at the host (as validate does), so
// that secrets the host lacks are found by Resolve, not by the loader.
func loadConfig(t *testing.T, src string) *config.File {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, diags := config.Load(dir, config.Options{})
	if diags.HasErrors() {
		t.Fatalf("load: %s", diags.Error())
	}
	return cfg
}

func diff(t *testing.T, cfg *config.File, prior *state.State) *planner.Plan {
	t.Helper()
	p, err := planner.Diff(cfg, prior, nil, planner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

const refsConfig = `
secret "claude_tok" {
  env = "CLAUDE_TOKEN"
}
secret "db" {
  prompt = "Staging DB password"
}
secret "gh" {
  env = "GH_TOKEN"
}
secret "gitea_admin" {
  env = "GITEA_TOKEN"
}
secret "other" {
  file = "other.txt"
}
bottle "a" {
  image = "x"
  agent "claude" {
    auth_token = secret.claude_tok
  }
  env = {
    DB   = secret.db
    USER = host_env("USER")
    TZ   = "UTC"
  }
  egress "api.github.com" {
    auth {
      scheme = "Bearer"
      token  = secret.gh
    }
  }
  git "app" {
    upstream = "ssh://git@gitea.acme.dev:2222/acme/app.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "gitea" {
      api_url = "https://gitea.acme.dev"
      token   = secret.gitea_admin
    }
  }
}
bottle "b" {
  image = "y"
  agent "codex" {
    forward_host_credentials = true
  }
  env = {
    OTHER = secret.other
    USER  = host_env("USER")
  }
}
`

// liveState records the objects p creates for the given bottles, as an
// apply of p would leave them.
func liveState(p *planner.Plan, bottles ...string) *state.State {
	s := &state.State{Lineage: "test-lineage", Serial: 1}
	for _, c := range p.Changes {
		for _, b := range bottles {
			if c.Addr.Bottle == b {
				s.Set(resource.BackendDocker, &state.Resource{Addr: c.Addr, Attrs: c.After, Digest: c.After.Digest()})
			}
		}
	}
	return s
}

func TestRefs(t *testing.T) {
	cfg := loadConfig(t, refsConfig)
	p0 := diff(t, cfg, nil)
	aRefs := []string{`host_env("USER")`, "secret.claude_tok", "secret.db", "secret.gh", "secret.gitea_admin"}
	tests := []struct {
		name string
		live []string // bottles already applied
		want []string
	}{
		{
			name: "every bottle new",
			want: []string{`host_credentials("codex")`, `host_env("USER")`, "secret.claude_tok", "secret.db", "secret.gh", "secret.gitea_admin", "secret.other"},
		},
		{name: "an unchanged bottle contributes none", live: []string{"b"}, want: aRefs},
		{name: "no changes", live: []string{"a", "b"}, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := diff(t, cfg, liveState(p0, tt.live...))
			got := []string{}
			for _, r := range applier.Refs(p) {
				got = append(got, r.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Refs = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("an unchanged bottle's secrets are not read", func(t *testing.T) {
		p := diff(t, cfg, liveState(p0, "a"))
		// b's secrets are missing; a's would fail to resolve too, but a
		// has no changes.
		got, err := applier.Resolve(p, applier.Source{
			LookupEnv:      lookup(map[string]string{"USER": "alice"}),
			ReadFile:       func(string) ([]byte, error) { return []byte("other-value"), nil },
			HostCredential: func(string) (resource.Secret, error) { return resource.NewSecret("codex-value"), nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[resource.Ref{Secret: "other"}].Reveal() != "other-value" {
			t.Errorf("resolved %d secrets, want b's 3", len(got))
		}
	})
}

// canaries are values that must never appear in an error or a printout.
var canaries = map[string]string{
	"CANARY_ENV":  "canary-env-7c1d0f93",
	"CANARY_HOST": "canary-host-5e2a8b41",
}

const canaryDecls = `
secret "canary" {
  env = "CANARY_ENV"
}
secret "canary_file" {
  file = "canary.txt"
}
`

const canaryFile = "canary-file-9d3f6a27"

// resolveSrc returns a Source whose environment holds env and the
// canaries, and whose files are files (relative to dir) plus canary.txt.
func resolveSrc(dir string, env, files map[string]string) (applier.Source, *[]string) {
	all := map[string]string{}
	for k, v := range canaries {
		all[k] = v
	}
	for k, v := range env {
		all[k] = v
	}
	var read []string
	return applier.Source{
		Dir:       dir,
		LookupEnv: lookup(all),
		ReadFile: func(path string) ([]byte, error) {
			read = append(read, path)
			if path == filepath.Join(dir, "canary.txt") {
				return []byte(canaryFile + "\n"), nil
			}
			if v, ok := files[path]; ok {
				return []byte(v), nil
			}
			return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		},
	}, &read
}

// bottleUsing is a bottle whose agent gets expr as V, and the canaries.
func bottleUsing(expr string) string {
	return fmt.Sprintf(`
bottle "a" {
  image = "x"
  agent "claude" {}
  env = {
    V  = %s
    C1 = secret.canary
    C2 = secret.canary_file
    C3 = host_env("CANARY_HOST")
  }
}
`, expr)
}

func TestResolve(t *testing.T) {
	const dir = "/work/cfg"
	tests := []struct {
		name     string
		decl     string // secret "s" { ... } body
		expr     string // "" is secret.s
		env      map[string]string
		files    map[string]string
		prompt   func(text string) (string, error)
		want     string
		wantRead string   // the path read for secret.s
		wantErr  []string // substrings of the error
	}{
		{name: "env", decl: `env = "S_VAR"`, env: map[string]string{"S_VAR": "env-value"}, want: "env-value"},
		{
			name: "file relative to the configuration", decl: `file = "tokens/s.txt"`,
			files: map[string]string{"/work/cfg/tokens/s.txt": "file-value\r\n"}, want: "file-value", wantRead: "/work/cfg/tokens/s.txt",
		},
		{
			name: "file in the home directory", decl: `file = "~/.config/s"`, env: map[string]string{"HOME": "/home/alice"},
			files: map[string]string{"/home/alice/.config/s": "home-value\n"}, want: "home-value", wantRead: "/home/alice/.config/s",
		},
		{
			name: "absolute file", decl: `file = "/etc/bottleform/s"`,
			files: map[string]string{"/etc/bottleform/s": "abs-value"}, want: "abs-value", wantRead: "/etc/bottleform/s",
		},
		{name: "host_env", expr: `host_env("S_HOST")`, env: map[string]string{"S_HOST": "host-value"}, want: "host-value"},
		{
			name: "prompt", decl: `prompt = "Staging DB password"`, want: "typed-value",
			prompt: func(text string) (string, error) {
				if text != "Staging DB password" {
					return "", fmt.Errorf("asked %q", text)
				}
				return "typed-value", nil
			},
		},
		{
			name: "prompt without a terminal", decl: `prompt = "Staging DB password"`,
			wantErr: []string{"secret.s", "no terminal", `env = "VAR"`},
		},
		{
			name: "prompt fails", decl: `prompt = "Staging DB password"`,
			prompt:  func(string) (string, error) { return "", errors.New("read /dev/tty: interrupted") },
			wantErr: []string{"secret.s", "read /dev/tty: interrupted"},
		},
		{name: "env not set", decl: `env = "S_VAR"`, wantErr: []string{"secret.s", "$S_VAR", "not set"}},
		{name: "host_env not set", expr: `host_env("S_HOST")`, wantErr: []string{`host_env("S_HOST")`, "not set"}},
		{name: "file missing", decl: `file = "s.txt"`, wantErr: []string{"secret.s", "/work/cfg/s.txt", "file does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expr := tt.expr
			src := canaryDecls
			if expr == "" {
				expr = "secret.s"
				src += "secret \"s\" {\n  " + tt.decl + "\n}\n"
			}
			p := diff(t, loadConfig(t, src+bottleUsing(expr)), nil)
			source, read := resolveSrc(dir, tt.env, tt.files)
			source.Prompt = tt.prompt
			got, err := applier.Resolve(p, source)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("Resolve succeeded")
				}
				if got != nil {
					t.Errorf("Resolve returned values with an error: %v", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				assertNoCanary(t, "error", err.Error())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ref, _ := refOf(t, p, "V")
			if v, ok := got.Value(ref); !ok || v.Reveal() != tt.want {
				t.Errorf("%s = %q (%v), want %q", ref, v.Reveal(), ok, tt.want)
			}
			if tt.wantRead != "" && !contains(*read, tt.wantRead) {
				t.Errorf("read %q, want %s among them", *read, tt.wantRead)
			}
			for _, c := range []struct {
				ref  resource.Ref
				want string
			}{
				{resource.Ref{Secret: "canary"}, canaries["CANARY_ENV"]},
				{resource.Ref{Secret: "canary_file"}, canaryFile},
				{resource.Ref{HostEnv: "CANARY_HOST"}, canaries["CANARY_HOST"]},
			} {
				if v, _ := got.Value(c.ref); v.Reveal() != c.want {
					t.Errorf("%s = %q, want %q", c.ref, v.Reveal(), c.want)
				}
			}
			if len(got) != 4 {
				t.Errorf("resolved %d values, want 4", len(got))
			}
		})
	}
}

// refOf returns the reference the agent's env var name holds in p.
func refOf(t *testing.T, p *planner.Plan, name string) (resource.Ref, bool) {
	t.Helper()
	for _, e := range p.Bottles["a"].Env {
		if e.Name == name {
			return e.Ref, true
		}
	}
	t.Fatalf("no env var %s", name)
	return resource.Ref{}, false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func assertNoCanary(t *testing.T, what, s string) {
	t.Helper()
	for _, c := range append([]string{canaryFile}, canaries["CANARY_ENV"], canaries["CANARY_HOST"]) {
		if strings.Contains(s, c) {
			t.Errorf("%s contains the secret value %q:\n%s", what, c, s)
		}
	}
}

func TestResolveNamesEveryMissingSecret(t *testing.T) {
	src := canaryDecls + `
secret "s" {
  env = "S_VAR"
}
secret "t" {
  env = "T_VAR"
}
` + strings.Replace(bottleUsing("secret.s"), "C3", "W  = secret.t\n    C3", 1)
	p := diff(t, loadConfig(t, src), nil)
	source, _ := resolveSrc("/work/cfg", nil, nil)
	_, err := applier.Resolve(p, source)
	if err == nil {
		t.Fatal("Resolve succeeded")
	}
	for _, w := range []string{"secret.s reads $S_VAR", "secret.t reads $T_VAR"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	assertNoCanary(t, "error", err.Error())
}

func TestResolvedSecretsNeverPrint(t *testing.T) {
	p := diff(t, loadConfig(t, canaryDecls+bottleUsing("secret.canary")), nil)
	source, _ := resolveSrc("/work/cfg", nil, nil)
	got, err := applier.Resolve(p, source)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("resolved %d values, want 3", len(got))
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out := fmt.Sprintf(verb, got)
		if !strings.Contains(out, "(sensitive)") {
			t.Errorf("%s prints %s without (sensitive)", verb, out)
		}
		assertNoCanary(t, verb, out)
	}
	for ref, v := range got {
		if out := fmt.Sprintf("%v", v); out != "(sensitive)" {
			t.Errorf("%s prints as %q", ref, out)
		}
	}
}

func TestResolveHostCredentials(t *testing.T) {
	p := diff(t, loadConfig(t, `
bottle "c" {
  image = "x"
  agent "codex" {
    forward_host_credentials = true
  }
}
`), nil)
	ref := resource.Ref{HostCredential: "codex"}
	if _, err := applier.Resolve(p, applier.Source{LookupEnv: lookup(nil)}); err == nil || !strings.Contains(err.Error(), `host_credentials("codex")`) {
		t.Errorf("without a reader: err = %v, want one naming %s", err, ref)
	}
	var asked []string
	got, err := applier.Resolve(p, applier.Source{
		LookupEnv: lookup(nil),
		HostCredential: func(provider string) (resource.Secret, error) {
			asked = append(asked, provider)
			return resource.NewSecret("codex-token"), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := got.Value(ref); v.Reveal() != "codex-token" || !reflect.DeepEqual(asked, []string{"codex"}) {
		t.Errorf("%s = %q after asking for %q", ref, v.Reveal(), asked)
	}
	// The reader's error comes back under the reference it was for.
	_, err = applier.Resolve(p, applier.Source{
		LookupEnv: lookup(nil),
		HostCredential: func(string) (resource.Secret, error) {
			return resource.Secret{}, errors.New("/home/a/.codex/auth.json does not exist")
		},
	})
	if err == nil || err.Error() != `host_credentials("codex"): /home/a/.codex/auth.json does not exist` {
		t.Errorf("a failing reader: err = %v", err)
	}
}
