package views_test

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/views"
)

func render(t *testing.T, p *planner.Plan, color bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := views.Plan(&buf, p, views.Options{Color: color}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPlanGolden(t *testing.T) {
	for _, tc := range plans {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, tc.name+".golden", render(t, tc.plan(), false))
		})
	}
}

// Each case asserts what the plan must make stand out.
func TestPlanShows(t *testing.T) {
	cases := []struct {
		name string
		plan func() *planner.Plan
		want []string
		not  []string
	}{
		{"create", createPlan, []string{
			"Warning: Egress route without path limits\n\n  in bottle \"reviewer\":\n  registry.npmjs.org allows every path.\n",
			"Security summary:\n  • bottle reviewer gains egress to api.github.com",
			"  + create\n\n",
			`  # bottle.reviewer.egress["api.github.com"] will be created` + "\n" + `  + egress "api.github.com" {`,
			`  + deploy_key "app" {`,
			"  + agent {\n",
			`          + HOST_USER   = host_env("USER")`,
			"      + content = <<-EOT\n",
			"Plan: 11 to add, 0 to change, 0 to destroy.\n",
		}, []string{"~ update", "- destroy", "Note:", "hidden"}},
		{"noop", func() *planner.Plan { return prior(nil) }, []string{"No changes. Your bottles match the configuration.\n"}, []string{"Plan:", "No objects to destroy."}},
		{"destroy_empty", destroyEmptyPlan, []string{"No objects to destroy: the state is empty.\n"}, nil},
		{"update_egress", updateEgressPlan, []string{
			"  ~ update in-place\n\n",
			"  # (paths changed)\n",
			"      ~ paths = [\n            \"/repos/acme/app/\",\n          + \"/repos/acme/app/pulls/\",\n        ]\n",
			"        # (3 unchanged attributes hidden)\n",
			"Plan: 0 to add, 1 to change, 0 to destroy.",
		}, []string{"+ create", "network"}},
		{"replace_agent", replaceAgentPlan, []string{
			"-/+ destroy and then create replacement\n",
			"  # bottle.reviewer.agent must be replaced\n  # (image changed)\n-/+ agent {\n",
			`      ~ image = "ghcr.io/acme/claude-agent:2.1" -> "ghcr.io/acme/claude-agent:2.2" # forces replacement`,
			"Plan: 1 to add, 0 to change, 1 to destroy.",
		}, nil},
		{"replace_env", replaceEnvPlan, []string{
			"      ~ env = { # forces replacement\n",
			"          + GH_TOKEN  = secret.github\n",
			`          - HOST_USER = host_env("USER") -> null`,
			`          ~ TZ        = "UTC" -> "Europe/Paris"`,
			"            # (1 unchanged element hidden)\n",
		}, nil},
		{"update_prompt", promptPlan, []string{
			"      ~ content = <<-EOT\n",
			"          - Point out bugs, missing tests and unclear names.\n          + Point out bugs, security issues, missing tests and unclear names.\n",
			"            Never push to main.\n          + Never print a token, even a placeholder.\n",
			"            # (2 unchanged lines hidden)\n            Review the open",
			"        EOT\n",
		}, nil},
		{"drift", driftPlan, []string{
			"Note: Objects have changed outside of bottleform\n\n  bottle.reviewer.agent: container stopped out of band\n\n",
			"  ~ agent {\n        # (6 unchanged attributes hidden)\n    }\n",
		}, nil},
		{"destroy", destroyPlan, []string{
			"  - destroy\n\n",
			"  # bottle.reviewer.git[\"app\"].deploy_key will be destroyed\n  - deploy_key \"app\" {\n",
			`      - token   = secret.gitea_admin -> null`,
			"Plan: 0 to add, 0 to change, 11 to destroy.",
		}, []string{"+ create"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := string(render(t, tc.plan(), false))
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q\n%s", n, out)
				}
			}
		})
	}
}

var sgr = regexp.MustCompile("\x1b\\[[0-9;]*m")

// Colour only adds SGR sequences: without them the text is the same, and
// with colour off there is no escape byte at all.
func TestPlanColor(t *testing.T) {
	for _, tc := range plans {
		t.Run(tc.name, func(t *testing.T) {
			plain := render(t, tc.plan(), false)
			colored := render(t, tc.plan(), true)
			if bytes.IndexByte(plain, 0x1b) >= 0 {
				t.Errorf("colour off, output has an escape byte:\n%q", plain)
			}
			if tc.plan().HasChanges() && bytes.IndexByte(colored, 0x1b) < 0 {
				t.Errorf("colour on, output has no escape byte")
			}
			if got := sgr.ReplaceAll(colored, nil); !bytes.Equal(got, plain) {
				t.Errorf("colour changed more than escapes:\n%s\n---\n%s", got, plain)
			}
		})
	}
}

func TestPlanStable(t *testing.T) {
	for _, tc := range plans {
		t.Run(tc.name, func(t *testing.T) {
			first := render(t, tc.plan(), true)
			for range 20 {
				if got := render(t, tc.plan(), true); !bytes.Equal(got, first) {
					t.Fatalf("second rendering differs:\n%s\n---\n%s", got, first)
				}
			}
		})
	}
}

// Text from the plan cannot smuggle escape sequences or bidi overrides to
// the terminal.
func TestPlanEscapesControlCharacters(t *testing.T) {
	p := promptPlan()
	for i := range p.Changes {
		c := &p.Changes[i]
		if c.Action == planner.Update {
			c.Reasons = []string{"content changed\x1b[2J"}
			c.After["content"] = resource.String("line one\nset title \x1b]0;pwned\x07\nhidden \u202eevil\n")
		}
	}
	p.Security = []string{"grants \x1b[8mnothing"}
	out := render(t, p, false)
	if bytes.IndexByte(out, 0x1b) >= 0 || bytes.Contains(out, []byte("\u202e")) {
		t.Fatalf("control characters reached the output:\n%q", out)
	}
	for _, want := range []string{`content changed\x1b[2J`, `set title \x1b]0;pwned\a`, `hidden \u202eevil`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks the escaped form %q:\n%s", want, out)
		}
	}
}

func TestPlanLongListsBreak(t *testing.T) {
	out := string(render(t, createPlan(), false))
	short := `      + aliases  = ["egress", "git-gate", "supervise"]`
	long := "      + routes      = [\n          + \"api.anthropic.com\",\n"
	for _, w := range []string{short, long} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q\n%s", w, out)
		}
	}
}

func TestColorEnabledOffForPipes(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm-256color")
	if views.ColorEnabled(w) || views.ColorEnabled(nil) {
		t.Error("colour enabled for a pipe or no file")
	}
}

// A long text with one changed line shows that line and its context only
// (go-diff's line mode was wrong on long inputs before v1.4.0).
func TestPlanLongTextDiff(t *testing.T) {
	var before, after strings.Builder
	for i := 1; i <= 400; i++ {
		fmt.Fprintf(&before, "line %d\n", i)
		if i == 300 {
			fmt.Fprintf(&after, "line %d changed\n", i)
		} else {
			fmt.Fprintf(&after, "line %d\n", i)
		}
	}
	p := prior(func(a resource.Address, c *planner.Change) {
		if a == addr(resource.KindPrompt, "") {
			c.Action = planner.Update
			c.After = clone(c.Before)
			c.Before = clone(c.Before)
			c.Before["content"] = resource.String(before.String())
			c.After["content"] = resource.String(after.String())
		}
	})
	want := "      ~ content = <<-EOT\n" +
		"            # (297 unchanged lines hidden)\n" +
		"            line 298\n            line 299\n" +
		"          - line 300\n          + line 300 changed\n" +
		"            line 301\n            line 302\n" +
		"            # (98 unchanged lines hidden)\n" +
		"        EOT\n"
	if out := string(render(t, p, false)); !strings.Contains(out, want) {
		t.Errorf("output lacks\n%s\ngot:\n%s", want, out)
	}
}
