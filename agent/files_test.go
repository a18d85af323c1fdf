package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/resource"
)

func TestClaudeJSON(t *testing.T) {
	withToken := resource.AgentSpec{Provider: "claude", AuthToken: claudeToken}
	suffix := Placeholder[len(Placeholder)-20:]
	tests := []struct {
		name    string
		current string
		in      FileInput
		want    string // JSON, compared as values
		wantErr string
	}{
		{
			name: "a new file, with a token",
			in:   FileInput{Spec: withToken, Workdir: "/work"},
			want: `{"hasCompletedOnboarding": true, "customApiKeyResponses": {"approved": ["` + suffix + `"], "rejected": []},
				"projects": {"/work": {"hasTrustDialogAccepted": true}}}`,
		},
		{
			name: "a new file, without a token",
			in:   FileInput{Spec: resource.AgentSpec{Provider: "claude"}, Workdir: "/"},
			want: `{"hasCompletedOnboarding": true, "projects": {"/": {"hasTrustDialogAccepted": true}}}`,
		},
		{
			name: "merged into the agent's own settings",
			current: `{"theme": "dark", "numStartups": 12, "hasCompletedOnboarding": false,
				"mcpServers": {"docs": {"type": "http", "url": "https://x/mcp"}},
				"customApiKeyResponses": {"approved": ["other-key-suffix-0001"], "rejected": ["` + suffix + `", "rejected-suffix-00002"]},
				"projects": {"/work": {"allowedTools": ["Bash"], "hasTrustDialogAccepted": false}, "/other": {"x": 1}}}`,
			in: FileInput{Spec: withToken, Workdir: "/work"},
			want: `{"theme": "dark", "numStartups": 12, "hasCompletedOnboarding": true,
				"mcpServers": {"docs": {"type": "http", "url": "https://x/mcp"}},
				"customApiKeyResponses": {"approved": ["other-key-suffix-0001", "` + suffix + `"], "rejected": ["rejected-suffix-00002"]},
				"projects": {"/work": {"allowedTools": ["Bash"], "hasTrustDialogAccepted": true}, "/other": {"x": 1}}}`,
		},
		{
			name:    "applied twice: the suffix once",
			current: `{"customApiKeyResponses": {"approved": ["` + suffix + `"]}}`,
			in:      FileInput{Spec: withToken, Workdir: "/w"},
			want: `{"hasCompletedOnboarding": true, "customApiKeyResponses": {"approved": ["` + suffix + `"], "rejected": []},
				"projects": {"/w": {"hasTrustDialogAccepted": true}}}`,
		},
		{
			name:    "large numbers kept as written",
			current: `{"firstStartTime": 12345678901234567890}`,
			in:      FileInput{Spec: resource.AgentSpec{Provider: "claude"}, Workdir: "/w"},
			want:    `{"firstStartTime": 12345678901234567890, "hasCompletedOnboarding": true, "projects": {"/w": {"hasTrustDialogAccepted": true}}}`,
		},
		{
			name:    "an empty file",
			current: "\n",
			in:      FileInput{Spec: resource.AgentSpec{Provider: "claude"}, Workdir: "/w"},
			want:    `{"hasCompletedOnboarding": true, "projects": {"/w": {"hasTrustDialogAccepted": true}}}`,
		},
		{
			name:    "removing the auth leaves the file alone",
			current: `{"hasCompletedOnboarding": true}`,
			in:      FileInput{Spec: withToken, Remove: true},
			want:    `{"hasCompletedOnboarding": true}`,
		},
		{name: "not JSON", current: `{"theme": `, in: FileInput{Spec: withToken, Workdir: "/w"}, wantErr: "it is not a JSON object; fix it or remove it"},
		{name: "not an object", current: `[1]`, in: FileInput{Spec: withToken, Workdir: "/w"}, wantErr: "it is not a JSON object"},
		{name: "projects not an object", current: `{"projects": []}`, in: FileInput{Spec: withToken, Workdir: "/w"}, wantErr: "projects is not a JSON object"},
		{name: "project not an object", current: `{"projects": {"/w": true}}`, in: FileInput{Spec: withToken, Workdir: "/w"}, wantErr: `projects["/w"] is not a JSON object`},
		{name: "approved not a list", current: `{"customApiKeyResponses": {"approved": "x"}}`, in: FileInput{Spec: withToken, Workdir: "/w"}, wantErr: "customApiKeyResponses.approved is not a JSON array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var current []byte
			if tt.current != "" {
				current = []byte(tt.current)
			}
			got, err := claudeJSON(current, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			dec := json.NewDecoder(strings.NewReader(string(got)))
			dec.UseNumber()
			if err := dec.Decode(&g); err != nil {
				t.Fatalf("%v:\n%s", err, got)
			}
			dec = json.NewDecoder(strings.NewReader(tt.want))
			dec.UseNumber()
			if err := dec.Decode(&w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestAgentEnv(t *testing.T) {
	spec := resource.AgentSpec{Provider: "claude", AuthToken: claudeToken}
	if got := AgentEnv(spec, false); !reflect.DeepEqual(got, Env(spec)) {
		t.Errorf("as a user: %v, want Env's %v", got, Env(spec))
	}
	if got := AgentEnv(spec, true); got["IS_SANDBOX"] != "1" || got["CLAUDE_CODE_OAUTH_TOKEN"] != Placeholder {
		t.Errorf("as root: %v, want IS_SANDBOX=1 too", got)
	}
	if got := AgentEnv(resource.AgentSpec{Provider: "codex"}, true); len(got) != 0 {
		t.Errorf("codex as root: %v, want nothing", got)
	}
	if AgentEnv(resource.AgentSpec{Provider: "claude"}, true); Env(resource.AgentSpec{Provider: "claude"})["IS_SANDBOX"] != "" {
		t.Error("AgentEnv changed the provider's table")
	}
}

func TestMCPArgv(t *testing.T) {
	claude, _ := Lookup("claude")
	codex, _ := Lookup("codex")
	url := "http://supervise:8080/mcp"
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"claude add", claude.MCPAddArgv("supervise", url), []string{"claude", "mcp", "add", "--scope", "user", "--transport", "http", "supervise", url}},
		{"claude remove", claude.MCPRemoveArgv("supervise"), []string{"claude", "mcp", "remove", "--scope", "user", "supervise"}},
		{"codex add", codex.MCPAddArgv("docs", url), []string{"codex", "mcp", "add", "docs", "--url", url}},
		{"codex remove", codex.MCPRemoveArgv("docs"), []string{"codex", "mcp", "remove", "docs"}},
		{"a name that looks like a placeholder", claude.MCPAddArgv("{url}", url), []string{"claude", "mcp", "add", "--scope", "user", "--transport", "http", "{url}", url}},
		{"no command", (&Provider{}).MCPAddArgv("x", url), nil},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if slices.Contains(claude.MCPAdd, "supervise") {
		t.Error("filling the template changed it")
	}
}

// TestTokenScheme: the routes inject the real credential with the scheme
// the CLI sends its placeholder with.
func TestTokenScheme(t *testing.T) {
	for _, name := range Names() {
		p, _ := Lookup(name)
		if p.TokenScheme != "Bearer" {
			t.Errorf("%s: TokenScheme %q; claude's CLAUDE_CODE_OAUTH_TOKEN and codex's access token are both sent as Bearer", name, p.TokenScheme)
		}
	}
}

// TestRunAgent runs the script with sh, a stand-in CLI on PATH that
// prints its arguments, and a HOME with and without a prompt.
func TestRunAgent(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	tests := []struct {
		provider string
		prompt   string
		args     []string
		want     []string
	}{
		{"claude", "Be careful.\n", []string{"-p", "hi there"}, []string{"claude", "--dangerously-skip-permissions", "--append-system-prompt-file", "HOME/.bottleform/prompt.md", "-p", "hi there"}},
		{"claude", "", []string{"-p", "x"}, []string{"claude", "--dangerously-skip-permissions", "-p", "x"}},
		{"claude", "none", nil, []string{"claude", "--dangerously-skip-permissions"}},
		{"codex", "Be careful.\n", []string{"exec", "go"}, []string{"codex", "--dangerously-bypass-approvals-and-sandbox", "exec", "go"}},
	}
	for _, tt := range tests {
		t.Run(tt.provider+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			p, _ := Lookup(tt.provider)
			home := t.TempDir()
			bin := filepath.Join(home, "bin")
			must(t, os.MkdirAll(filepath.Join(home, ".bottleform"), 0o755))
			must(t, os.MkdirAll(bin, 0o755))
			must(t, os.WriteFile(filepath.Join(home, ".bottleform", "env"), []byte("export FROM_ENV=yes\n"), 0o644))
			if tt.prompt != "none" {
				must(t, os.WriteFile(filepath.Join(home, ".bottleform", "prompt.md"), []byte(tt.prompt), 0o644))
			}
			cli := "#!/bin/sh\necho \"$FROM_ENV\"\necho " + p.Command + "\nfor a; do printf '%s\\n' \"$a\"; done\n"
			must(t, os.WriteFile(filepath.Join(bin, p.Command), []byte(cli), 0o755))
			script := filepath.Join(home, "run-agent")
			must(t, os.WriteFile(script, []byte(p.RunAgent(".bottleform/env", ".bottleform/prompt.md")), 0o755))
			cmd := exec.Command(sh, append([]string{script}, tt.args...)...)
			cmd.Env = []string{"HOME=" + home, "PATH=" + bin + ":/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if lines[0] != "yes" {
				t.Errorf("the env file was not loaded: %q", out)
			}
			want := slices.Clone(tt.want)
			for i := range want {
				want[i] = strings.Replace(want[i], "HOME", home, 1)
			}
			if !slices.Equal(lines[1:], want) {
				t.Errorf("argv %q, want %q", lines[1:], want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
