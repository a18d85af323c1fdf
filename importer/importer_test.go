package importer_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/importer"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
)

var update = flag.Bool("update", false, "rewrite testdata/*.hcl from the current output")

// cases are the manifests and directories in testdata with a golden file
// testdata/NAME.hcl each.
var cases = []string{"api", "dev", "legacy", "pusher", "fleet"}

func source(name string) string {
	if st, err := os.Stat(filepath.Join("testdata", name)); err == nil && st.IsDir() {
		return filepath.Join("testdata", name)
	}
	return filepath.Join("testdata", name+".md")
}

func importCase(t *testing.T, name string) *importer.Result {
	t.Helper()
	res, err := importer.Import(source(name))
	if err != nil {
		t.Fatalf("import %s: %v", name, err)
	}
	return res
}

func TestGolden(t *testing.T) {
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			got := importCase(t, name).HCL
			path := filepath.Join("testdata", name+".hcl")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./importer -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the output (run go test ./importer -update and review the diff)\n--- got:\n%s", path, got)
			}
		})
	}
}

// TestOutputLoadsAndPlans: every output is fmt-clean, loads with the host
// checks of plan on, and plans.
func TestOutputLoadsAndPlans(t *testing.T) {
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			res := importCase(t, name)
			if f := hclwrite.Format(res.HCL); !bytes.Equal(f, res.HCL) {
				t.Errorf("the output is not in fmt form; formatted:\n%s", f)
			}
			cfg := load(t, res.HCL)
			if len(cfg.Bottles) == 0 {
				t.Error("the configuration has no bottle to bring up")
			}
			for n := range cfg.Bottles {
				if !slices.Contains(res.Bottles, n) {
					t.Errorf("the configuration has bottle %q, which the import does not report", n)
				}
			}
			p, err := planner.Diff(cfg, nil, nil, planner.Options{})
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			if len(p.Changes) == 0 {
				t.Error("the plan is empty")
			}
		})
	}
}

// load writes src as the only file of a directory, creates the key files
// it names (~ being a fake home), and loads it as plan does.
func load(t *testing.T, src []byte) *config.File {
	t.Helper()
	dir, home := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range keyFiles(t, src) {
		full := filepath.Join(dir, p)
		if rest, ok := strings.CutPrefix(p, "~/"); ok {
			full = filepath.Join(home, rest)
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("not a real key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(name string) (string, bool) {
		if name == "HOME" {
			return home, true
		}
		return "not-a-secret", true
	}
	cfg, _, diags := config.Load(dir, config.Options{LookupEnv: lookup})
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			t.Errorf("%s", d)
		}
	}
	if cfg == nil {
		t.Fatalf("the output does not load:\n%s", src)
	}
	return cfg
}

// keyFiles are the paths of the key "file" blocks of src.
func keyFiles(t *testing.T, src []byte) []string {
	f, diags := hclsyntax.ParseConfig(src, "main.hcl", hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		t.Fatalf("the output does not parse: %s", diags)
	}
	var out []string
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		for _, g := range b.Body.Blocks {
			for _, k := range g.Body.Blocks {
				if g.Type != "git" || k.Type != "key" || k.Labels[0] != "file" {
					continue
				}
				v, _ := k.Body.Attributes["path"].Expr.Value(nil)
				out = append(out, v.AsString())
			}
		}
	}
	return out
}

// TestWarningsAreComments: every warning is also a comment in the output,
// so nothing the import could not carry over is lost with the terminal.
func TestWarningsAreComments(t *testing.T) {
	for _, name := range cases {
		res := importCase(t, name)
		for _, w := range res.Warnings {
			c := "# " + filepath.Base(w.File) + ":" + strconv.Itoa(w.Line) + ": " + w.Text + "\n"
			if !bytes.Contains(res.HCL, []byte(c)) {
				t.Errorf("%s: warning %q is not a comment in the output", name, w)
			}
		}
	}
	if n := len(importCase(t, "legacy").Warnings); n < 10 {
		t.Errorf("legacy.md gave %d warnings, want one for each of its unmappable settings", n)
	}
}

// convert converts one manifest given as text.
func convert(t *testing.T, name, text string) (*importer.Result, error) {
	t.Helper()
	return importer.Convert([]importer.Source{{Path: name, Data: []byte(text)}})
}

func TestEnvSentinels(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        resource.EnvVar
		secret      *resource.SecretSource
	}{
		{name: "interpolated", value: "${FOO}", want: resource.EnvVar{Name: "X", Ref: resource.Ref{HostEnv: "FOO"}}},
		{name: "prefixed is literal", value: "x${FOO}", want: resource.EnvVar{Name: "X", Literal: "x${FOO}"}},
		{name: "no braces is literal", value: "$FOO", want: resource.EnvVar{Name: "X", Literal: "$FOO"}},
		{name: "bad name is literal", value: "${1A}", want: resource.EnvVar{Name: "X", Literal: "${1A}"}},
		{name: "template is literal", value: "%{ if a }", want: resource.EnvVar{Name: "X", Literal: "%{ if a }"}},
		{name: "plain", value: "plain", want: resource.EnvVar{Name: "X", Literal: "plain"}},
		{
			name: "default prompt", value: "?",
			want:   resource.EnvVar{Name: "X", Ref: resource.Ref{Secret: "x"}},
			secret: &resource.SecretSource{Name: "x", Kind: resource.SecretPrompt, Source: "Value of X"},
		},
		{
			name: "custom prompt", value: "?Enter key",
			want:   resource.EnvVar{Name: "X", Ref: resource.Ref{Secret: "x"}},
			secret: &resource.SecretSource{Name: "x", Kind: resource.SecretPrompt, Source: "Enter key"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := convert(t, "a.md", "---\nenv:\n  X: '"+tc.value+"'\n---\n")
			if err != nil {
				t.Fatal(err)
			}
			cfg := load(t, res.HCL)
			b := cfg.Bottles["a"]
			if len(b.Env) != 1 || b.Env[0] != tc.want {
				t.Errorf("env = %+v, want %+v\n%s", b.Env, tc.want, res.HCL)
			}
			if tc.secret != nil && cfg.Secrets["x"] != *tc.secret {
				t.Errorf("secret x = %+v, want %+v", cfg.Secrets["x"], *tc.secret)
			}
		})
	}
}

// TestPromptVerbatim: the body reaches the bottle's prompt as written:
// template sequences, lines like the heredoc's delimiter, and control
// characters a heredoc cannot hold.
func TestPromptVerbatim(t *testing.T) {
	for name, body := range map[string]string{
		"templates": "First ${x} and %{ if y } and $${z} and %%{w}.\n  EOT\n\tindented\nEOT1\n\nlast",
		"markdown":  "# Title\n\n```sh\ngo test ./...\n```\n\n- a\n  - b",
		"controls":  "a lone\rreturn, a NUL \x00 and an escape \x1b[31m",
	} {
		t.Run(name, func(t *testing.T) {
			res, err := convert(t, "p.md", "---\n---\n\n"+body+"\n\n")
			if err != nil {
				t.Fatal(err)
			}
			cfg := load(t, res.HCL)
			if got, want := cfg.Bottles["p"].Prompt, body+"\n"; got != want {
				t.Errorf("prompt = %q, want %q\n%s", got, want, res.HCL)
			}
		})
	}
}

// TestControlCharacters: text from a manifest cannot end a comment line or
// reach the terminal as a control sequence.
func TestControlCharacters(t *testing.T) {
	res, err := convert(t, "c.md", "---\n\"bad\\nkey\\e[2J\": 1\nbottle: base\nskills: [\"x\\e[2J\\ny\"]\n---\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 3 {
		t.Errorf("warnings = %q, want three", res.Warnings)
	}
	for _, w := range res.Warnings {
		if strings.ContainsAny(w.Text, "\n\x1b") {
			t.Errorf("warning %q holds a control character", w.Text)
		}
	}
	if bytes.ContainsAny(res.HCL, "\x1b") {
		t.Errorf("the output holds an escape character:\n%s", res.HCL)
	}
	if _, diags := hclsyntax.ParseConfig(res.HCL, "c.hcl", hcl.Pos{Line: 1, Column: 1}); diags.HasErrors() {
		t.Errorf("the output does not parse: %s\n%s", diags, res.HCL)
	}
	_, err = convert(t, "u.md", "---\n---\nok\n\xff\n")
	if err == nil || err.Error() != "u.md:4: the manifest is not UTF-8 text" {
		t.Errorf("error = %v, want u.md:4: the manifest is not UTF-8 text", err)
	}
}

func TestSecretsShared(t *testing.T) {
	res, err := importer.Convert([]importer.Source{
		{Path: "a.md", Data: []byte("---\nenv:\n  TOKEN: '?'\nagent_provider:\n  auth_token: CLAUDE\n---\n")},
		{Path: "b.md", Data: []byte("---\nenv:\n  TOKEN: '?Other'\nagent_provider:\n  auth_token: CLAUDE\n---\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, res.HCL)
	if got := cfg.Bottles["a"].Agent.AuthToken; got != cfg.Bottles["b"].Agent.AuthToken || got.Secret != "claude" {
		t.Errorf("auth tokens %v and %v, want one secret.claude", got, cfg.Bottles["b"].Agent.AuthToken)
	}
	if a, b := cfg.Bottles["a"].Env[0].Ref.Secret, cfg.Bottles["b"].Env[0].Ref.Secret; a != "token" || b != "token_b" {
		t.Errorf("prompt secrets %q and %q, want token and token_b (their prompts differ)", a, b)
	}
}

// TestUnknownKey: an unknown key is a warning naming the key, its line and
// the likely spelling; the rest of the manifest is imported.
func TestUnknownKey(t *testing.T) {
	res, err := convert(t, "u.md", "---\nsupervise: true\negres:\n  routes: []\n---\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 {
		t.Fatalf("warnings = %v, want one", res.Warnings)
	}
	w := res.Warnings[0]
	if w.File != "u.md" || w.Line != 3 || !strings.Contains(w.Text, `"egres"`) || !strings.Contains(w.Text, `did you mean "egress"`) {
		t.Errorf("warning = %s, want u.md:3 naming egres and suggesting egress", w)
	}
	if !bytes.Contains(res.HCL, []byte("supervise = true")) {
		t.Errorf("the rest was not imported:\n%s", res.HCL)
	}
}

func TestDeterministic(t *testing.T) {
	for _, name := range cases {
		a, b := importCase(t, name), importCase(t, name)
		if !bytes.Equal(a.HCL, b.HCL) {
			t.Errorf("%s: two imports differ", name)
		}
	}
}

// TestMalformed: manifests bot-bottle would refuse, or that cannot be
// read, give an error naming the file and line.
func TestMalformed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "malformed", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/malformed/*.md: %v", err)
	}
	for _, tc := range []struct {
		name, text string
		want       string
	}{
		{name: "bad-yaml.md", want: "bad-yaml.md:3: invalid YAML"},
		{name: "no-front-matter.md", want: "no-front-matter.md:1: no front matter"},
		{name: "unknown-provider.md", want: `unknown-provider.md:3: unknown agent provider "claud": the template is "claude" or "codex"; did you mean "claude"?`},
		{name: "unclosed.md", text: "---\nsupervise: true\n", want: "unclosed.md:1: the front matter opened on line 1 is never closed"},
		{name: "Bad_Name.md", text: "---\n---\n", want: "Bad_Name.md:1: the file name"},
		{name: "list.md", text: "---\n- a\n---\n", want: "list.md:2: the front matter must be a mapping"},
		{name: "supervise.md", text: "---\nsupervise: yes\n---\n", want: "supervise.md:2: supervise must be true or false, not a string"},
		{name: "codex-token.md", text: "---\nagent_provider:\n  template: codex\n  auth_token: X\n---\n", want: "codex-token.md:4: agent_provider.auth_token is for the claude template only"},
		{name: "no-host.md", text: "---\negress:\n  routes:\n    - path_allowlist: [/]\n---\n", want: "no-host.md:4: egress.routes[0] has no host"},
		{name: "half-auth.md", text: "---\negress:\n  routes:\n    - host: a.dev\n      auth:\n        scheme: Bearer\n---\n", want: "half-auth.md:5: egress.routes[0].auth has scheme but no token_ref"},
		{name: "basic.md", text: "---\negress:\n  routes:\n    - host: a.dev\n      auth:\n        scheme: Basic\n        token_ref: T\n---\n", want: `basic.md:6: egress.routes[0].auth.scheme "Basic" is not supported`},
		{name: "dup-route.md", text: "---\negress:\n  routes:\n    - host: a.dev\n    - host: a.dev\n---\n", want: "dup-route.md:5: a second route for a.dev (the first is on line 4)"},
		{name: "both-keys.md", text: "---\ngit-gate:\n  repos:\n    r:\n      url: ssh://git@h/o/r.git\n      identity: k\n      provisioned_key:\n        provider: gitea\n        token_env: T\n---\n", want: "both-keys.md:7: git-gate.repos.r has both identity and provisioned_key"},
		{name: "no-key.md", text: "---\ngit-gate:\n  repos:\n    r:\n      url: ssh://git@h/o/r.git\n---\n", want: "no-key.md:4: git-gate.repos.r has neither identity"},
		{name: "github-key.md", text: "---\ngit-gate:\n  repos:\n    r:\n      url: ssh://git@h/o/r.git\n      provisioned_key:\n        provider: github\n        token_env: T\n---\n", want: `github-key.md:7: unknown provisioner "github"`},
		{name: "https.md", text: "---\ngit-gate:\n  repos:\n    r:\n      url: https://h/o/r.git\n      identity: k\n---\n", want: `https.md:5: git-gate.repos.r.url "https://h/o/r.git" is not an ssh:// URL`},
		{name: "bad-host-key.md", text: "---\ngit-gate:\n  repos:\n    r:\n      url: ssh://git@h/o/r.git\n      identity: k\n      host_key: nonsense\n---\n", want: "bad-host-key.md:7: git-gate.repos.r.host_key is not an SSH public key"},
		{name: "old-git.md", text: "---\ngit:\n  r: {}\n---\n", want: `old-git.md:2: the key "git" is bot-bottle's old repository format`},
		{name: "dup-key.md", text: "---\nsupervise: true\nsupervise: false\n---\n", want: `dup-key.md:3: invalid YAML in the front matter: mapping key "supervise" already defined at line 2`},
		{name: "agent-repos.md", text: "---\nbottle: base\ngit-gate:\n  repos: {}\n---\n", want: "agent-repos.md:4: git-gate.repos on an agent"},
		{name: "self.md", text: "---\nbottle: self\n---\n", want: "self.md:2: the agent \"self\" runs on a bottle of the same name"},
		{name: "env-list.md", text: "---\nenv:\n  A: [1]\n---\n", want: "env-list.md:3: env A must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.text == "" {
				_, err = importer.Import(filepath.Join("testdata", "malformed", tc.name))
			} else {
				_, err = convert(t, tc.name, tc.text)
			}
			if err == nil {
				t.Fatal("no error")
			}
			var errs importer.Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %v is not importer.Errors", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%s\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestReservedEnvRefused keeps the importer's list of reserved variables
// in step with config's: each is refused in env.
func TestReservedEnvRefused(t *testing.T) {
	for _, name := range importer.ReservedEnv {
		src := "bottle \"a\" {\n  image = \"x\"\n  env = { " + name + " = \"v\" }\n}\n"
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, diags := config.Load(dir, config.Options{}); !diags.HasErrors() {
			t.Errorf("config takes env %s, which the importer leaves out as reserved", name)
		}
	}
}

func FuzzConvert(f *testing.F) {
	for _, name := range []string{"api", "dev", "legacy", "pusher", "fleet/base", "fleet/reviewer", "fleet/triage"} {
		b, err := os.ReadFile(filepath.Join("testdata", name+".md"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := importer.Convert([]importer.Source{{Path: "f.md", Data: data}})
		if err != nil {
			return
		}
		if _, diags := hclsyntax.ParseConfig(res.HCL, "f.hcl", hcl.Pos{Line: 1, Column: 1}); diags.HasErrors() {
			t.Fatalf("the output does not parse: %s\n%s", diags, res.HCL)
		}
	})
}
