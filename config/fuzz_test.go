package config_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/planner"
)

// FuzzLoad feeds arbitrary bytes to Load as main.hcl: it must never panic,
// must return either a configuration or an error diagnostic that says what
// to do, and a configuration it returns must plan, the same way twice.
func FuzzLoad(f *testing.F) {
	err := filepath.WalkDir(filepath.Join("..", "examples"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".hcl" {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(src)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		``,
		`bottle`,
		`bottle "a" {`,
		`bottle "a" { image = }`,
		"bottle \"a\" {\n  image = \"x\"\n  agent \"claude\" {}\n}\n",
		"bottle \"a\" {\n  extends = \"a\"\n  image = \"x\"\n}\n",
		"bottle \"a\" {\n  image = \"x\"\n  agent \"claude\" { auth_token = secret.missing }\n}\n",
		"secret \"s\" {\n  env = \"S\"\n}\nbottle \"a\" {\n  image = \"x\"\n  agent \"codex\" {}\n  env = { K = secret.s, H = host_env(\"HOME\") }\n  egress \"api.openai.com\" {}\n}\n",
		"bottle \"a\" {\n  image = \"x\"\n  agent \"claude\" {}\n  git \"g\" {\n    upstream = \"ssh://git@h/o/r.git\"\n    host_key = \"ssh-ed25519 AAAA\"\n    key \"file\" { path = \"~/k\" }\n  }\n}\n",
		"\x00\xff",
		`bottle "a" { prompt = file("missing.md") }`,
		`{{{{`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, src []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), src, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, opts := range []struct {
			name string
			opts config.Options
		}{
			{"validate", config.Options{}},
			{"plan", config.Options{LookupEnv: func(name string) (string, bool) {
				if name == "HOME" {
					return dir, true
				}
				return "not-a-secret", true
			}}},
		} {
			cfg, _, diags := config.Load(dir, opts.opts)
			checkDiags(t, opts.name, cfg, diags)
			if cfg == nil {
				continue
			}
			p1, err := planner.Diff(cfg, nil, nil, planner.Options{})
			if err != nil {
				t.Fatalf("%s: Diff of a loaded configuration: %v", opts.name, err)
			}
			p2, err := planner.Diff(cfg, nil, nil, planner.Options{})
			if err != nil {
				t.Fatalf("%s: second Diff: %v", opts.name, err)
			}
			if s1, s2 := p1.String(), p2.String(); s1 != s2 {
				t.Fatalf("%s: Diff is not deterministic:\n%s\n---\n%s", opts.name, s1, s2)
			}
		}
	})
}

func checkDiags(t *testing.T, mode string, cfg *config.File, diags hcl.Diagnostics) {
	t.Helper()
	switch {
	case cfg == nil && !diags.HasErrors():
		t.Fatalf("%s: no configuration and no error diagnostic: %v", mode, diags)
	case cfg != nil && diags.HasErrors():
		t.Fatalf("%s: a configuration along with errors: %s", mode, diags.Error())
	}
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if d.Summary == "" || d.Detail == "" {
			t.Errorf("%s: error diagnostic without summary or detail: %#v (subject %v)", mode, d, d.Subject)
		}
	}
}
