package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMalformedDefinitions runs `bottleform plan` on every malformed
// definition of config/testdata/malformed: each must exit 1 with exactly
// one error, pointing at the line marked "# HERE" with the summary the
// file names, and must write nothing (no .bottleform, no plan file).
func TestMalformedDefinitions(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "testdata", "malformed", "*.hcl"))
	if err != nil || len(files) < 20 {
		t.Fatalf("%d malformed definitions, want at least 20 (%v)", len(files), err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hcl")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(src), "\n")
			summary := strings.TrimPrefix(lines[0], "# ")
			line := 0
			for i, l := range lines {
				if strings.Contains(l, "# HERE") {
					line = i + 1
				}
			}
			dir := t.TempDir()
			for p, body := range map[string]string{
				"main.hcl": string(src), "id_app": "key", "prompts/p.md": "be careful\n", "skills/review/a.md": "skill",
			} {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range map[string]string{"HOME": dir, "T": "x", "G": "x", "A": "x"} {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"--chdir", dir, "--no-color", "plan", "--out", filepath.Join(dir, "p.plan")}, nil, &stdout, &stderr)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstderr:\n%s", code, stderr.String())
			}
			if n := strings.Count(stderr.String(), "Error: "); n != 1 {
				t.Errorf("%d errors, want 1:\n%s", n, stderr.String())
			}
			if !strings.Contains(stderr.String(), "Error: "+summary) {
				t.Errorf("stderr lacks %q:\n%s", "Error: "+summary, stderr.String())
			}
			if want := "main.hcl line " + strconv.Itoa(line) + ","; !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr does not point at %s:\n%s", want, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout is not empty:\n%s", stdout.String())
			}
			for _, p := range []string{".bottleform", "p.plan"} {
				if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
					t.Errorf("%s was written", p)
				}
			}
		})
	}
}
