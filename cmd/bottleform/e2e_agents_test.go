package main

// TestE2EAgents proves that a claude bottle and a codex bottle come up
// ready to work, on the Docker engine of this machine: the provider's MCP
// registrations made with its CLI as the agent user, the env and flags the
// agent's CLI starts with (through run-agent), claude's ~/.claude.json,
// codex's placeholder sign-in and CA variable, the skills; and that no real
// credential (the claude token, the codex access, refresh and id tokens)
// is anywhere in the agents, the state, the plan or the logs.
//
// The real CLIs cannot be installed here, so the agent image is
// bottleform-agent:test with stand-in claude and codex executables
// (standinScript) committed on top (standinImage). The host's codex login
// is a fake ~/.codex/auth.json in a HOME made for the test.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottleform/bottleform/resource"
)

// standinScript stands in for both CLIs (its name is how it was called).
// Every run appends one record to /tmp/standin-<name>.log: NUL-separated
// fields "begin", uid=, user=, cwd=, one arg= per argument, "env", the
// whole environment as `env -0` prints it, "end". `mcp add`, `mcp remove`
// and `mcp list` keep a registry in ~/.standin-<name>-mcp with the
// argument rules of the real CLIs (reference agents-egress-git.md 6.5):
// claude takes options before the name and refuses a name twice; removing
// a name that is not there fails. While /tmp/standin-fail exists, `mcp
// add` fails.
const standinScript = `#!/bin/sh
name=${0##*/}
{
	printf 'begin\0uid=%s\0user=%s\0cwd=%s\0' "$(id -u)" "$(id -un)" "$PWD"
	for a in "$@"; do printf 'arg=%s\0' "$a"; done
	printf 'env\0'
	env -0
	printf 'end\0'
} >> "/tmp/standin-$name.log"
[ "$1" = mcp ] || { echo "stand-in $name: $*"; exit 0; }
reg="$HOME/.standin-$name-mcp"
touch "$reg"
sub=$2
shift 2
pos=
url=
while [ $# -gt 0 ]; do
	case $1 in
	--scope | -s | --transport | -t)
		[ "$name" = claude ] || { echo "$name: unexpected $1" >&2; exit 2; }
		[ -z "$pos" ] || { echo "$name: options must come before the name" >&2; exit 2; }
		shift 2 ;;
	--url)
		[ "$name" = codex ] || { echo "$name: unexpected $1" >&2; exit 2; }
		url=$2
		shift 2 ;;
	-*) echo "$name: unknown option $1" >&2; exit 2 ;;
	*) pos="$pos $1"; shift ;;
	esac
done
set -- $pos
case $sub in
add)
	[ ! -e /tmp/standin-fail ] || { echo "$name: the configuration is locked" >&2; exit 3; }
	if [ "$name" = claude ]; then [ $# -eq 2 ] && url=$2; else [ $# -eq 1 ]; fi || { echo "$name: mcp add needs a name and a URL" >&2; exit 2; }
	[ -n "$url" ] || { echo "$name: mcp add needs a URL" >&2; exit 2; }
	if grep -q "^$1 " "$reg"; then echo "MCP server $1 already exists" >&2; exit 1; fi
	echo "$1 $url" >> "$reg"
	echo "Added MCP server $1" ;;
remove)
	grep -q "^$1 " "$reg" || { echo "No MCP server found with name: $1" >&2; exit 1; }
	grep -v "^$1 " "$reg" > "$reg.new"; mv "$reg.new" "$reg"
	echo "Removed MCP server $1" ;;
list)
	while read -r n u; do echo "$n: $u (HTTP)"; done < "$reg" ;;
*)
	echo "$name: unknown mcp command $sub" >&2; exit 2 ;;
esac
`

// standinClaudeJSON is the agent's own ~/.claude.json in the image: its
// keys must survive bottleform's merge.
const standinClaudeJSON = `{"theme": "dark", "numStartups": 3, "projects": {"/home/agent": {"allowedTools": ["Bash(ls)"]}}}` + "\n"

var standinBuild struct {
	once sync.Once
	tag  string
	err  error
}

// standinImage returns bottleform-agent:standins: bottleform-agent:test
// (never rebuilt here) with the stand-ins as /usr/local/bin/claude and
// /usr/local/bin/codex and the agent's own ~/.claude.json, made with
// docker create, cp and commit. It is labelled with a digest of the base
// image and what was added, kept for the next run, and made again when the
// digest changes; the container it was made in is removed.
func standinImage(t *testing.T) string {
	t.Helper()
	b := &standinBuild
	b.once.Do(func() {
		const tag, label = "bottleform-agent:standins", "dev.bottleform.standins"
		base, err := dockerRun("image", "inspect", "--format", "{{.Id}}", e2eAgentImage)
		if err != nil {
			b.err = err
			return
		}
		layer, err := standinLayer()
		if err != nil {
			b.err = err
			return
		}
		sum := sha256.Sum256(append([]byte(base+"\n"), layer...))
		digest := hex.EncodeToString(sum[:])
		old, _ := dockerRun("image", "inspect", "--format", "{{.Id}} {{index .Config.Labels \""+label+"\"}}", tag)
		oldID, oldDigest, _ := strings.Cut(old, " ")
		if oldDigest == digest {
			b.tag = tag
			return
		}
		ctr := "bf-standins-" + randomHex(6)
		if _, err := dockerRun("create", "--name", ctr, e2eAgentImage); err != nil {
			b.err = err
			return
		}
		defer dockerRun("rm", "-f", ctr)
		if err := dockerStdin(layer, "cp", "-", ctr+":/"); err != nil {
			b.err = err
			return
		}
		if _, err := dockerRun("commit", "--change", "LABEL "+label+"="+digest, ctr, tag); err != nil {
			b.err = err
			return
		}
		if oldID != "" {
			_, _ = dockerRun("rmi", oldID) // the stale build, now untagged
		}
		b.tag = tag
	})
	if b.err != nil {
		t.Fatalf("build the stand-in agent image: %v", b.err)
	}
	return b.tag
}

// standinLayer is the tar docker cp puts into the image: byte-stable, so
// its digest names it.
func standinLayer() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1_700_000_000, 0)
	for _, f := range []struct {
		name     string
		mode     int64
		uid, gid int
		data     string
	}{
		{"usr/local/bin/claude", 0o755, 0, 0, standinScript},
		{"usr/local/bin/codex", 0o755, 0, 0, standinScript},
		{"home/agent/.claude.json", 0o600, 1000, 1000, standinClaudeJSON},
	} {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, Size: int64(len(f.data)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(f.data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dockerStdin runs the docker CLI with stdin.
func dockerStdin(stdin []byte, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), e2eCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// standinRun is one run of a stand-in CLI, as its log records it.
type standinRun struct {
	uid, user, cwd string
	args           []string
	env            map[string]string
}

func (r standinRun) String() string {
	return fmt.Sprintf("%s (uid %s) in %s: %q", r.user, r.uid, r.cwd, r.args)
}

// standinLog reads the runs of the stand-in CLI name in container ctr.
func standinLog(t *testing.T, ctr, name string) []standinRun {
	t.Helper()
	out := dockerRunStdin(t, "", "exec", ctr, "cat", "/tmp/standin-"+name+".log")
	if out.code != 0 {
		t.Fatalf("read the %s stand-in's log in %s: %s", name, ctr, out)
	}
	var runs []standinRun
	var cur *standinRun
	inEnv := false
	for _, f := range strings.Split(out.stdout, "\x00") {
		switch {
		case f == "begin":
			runs = append(runs, standinRun{env: map[string]string{}})
			cur, inEnv = &runs[len(runs)-1], false
		case cur == nil:
			if f != "" {
				t.Fatalf("the %s stand-in's log has %q outside a record", name, f)
			}
		case f == "end":
			cur = nil
		case f == "env":
			inEnv = true
		case inEnv:
			k, v, _ := strings.Cut(f, "=")
			cur.env[k] = v
		case strings.HasPrefix(f, "arg="):
			cur.args = append(cur.args, f[len("arg="):])
		case strings.HasPrefix(f, "uid="):
			cur.uid = f[len("uid="):]
		case strings.HasPrefix(f, "user="):
			cur.user = f[len("user="):]
		case strings.HasPrefix(f, "cwd="):
			cur.cwd = f[len("cwd="):]
		}
	}
	return runs
}

// agMain is the configuration: a claude bottle with a token, an MCP
// server, a prompt and a skill, and a codex bottle that forwards the
// host's codex login, with an MCP server and the same skill. supervise is
// off in both.
const agMain = `secret "claude" {
  env = "E2E_CLAUDE_TOKEN"
}

bottle "claude" {
  image = "bottleform-agent:standins"

  agent "claude" {
    auth_token = secret.claude
  }

  mcp "docs" {
    url = "https://mcp.example.test/mcp"
  }

  prompt = "You review code in a bottle.\n"
  skills = ["skills/review"]
}

bottle "codex" {
  image = "bottleform-agent:standins"

  agent "codex" {
    forward_host_credentials = true
  }

  mcp "tracker" {
    url = "https://tracker.example.test/mcp"
  }

  skills = ["skills/review"]
}
`

const agSkill = "# Review\nRead the diff twice.\n"

// agFixture is the directory, the fake host HOME and the credentials.
type agFixture struct {
	dir, home string
	env       []string
	lineage   string
	// claudeToken is the claude secret's value; access, refresh and id are
	// the codex login's tokens; account and exp what the agent may keep.
	claudeToken, access, refresh, id string
	account                          string
	exp                              int64
	outputs                          map[string]string
}

func (f *agFixture) bf(t *testing.T, args ...string) bfResult {
	t.Helper()
	return bfKeep(t, f.dir, f.env, f.outputs, args...)
}

func (f *agFixture) name(bottle, component string) string {
	return resource.ObjectName(f.lineage, bottle, component)
}

// in runs a shell script in bottle's agent through attach (as the agent
// user, with the provider's env loaded) and returns its stdout.
func (f *agFixture) in(t *testing.T, bottle, script string) string {
	t.Helper()
	r := f.bf(t, "attach", bottle, "--", "sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("attach %s -- sh -c %q: %s", bottle, script, r)
	}
	return r.stdout
}

// fakeJWT is shaped like an OpenAI token: an RS256 header, the claims
// given with a random jti, a random signature.
func fakeJWT(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "e2e-" + randomHex(4)})
	claims["jti"] = randomHex(16)
	p, _ := json.Marshal(claims)
	sig := make([]byte, 256)
	_, _ = rand.Read(sig)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "." + enc.EncodeToString(sig)
}

func TestE2EAgents(t *testing.T) {
	e2eRequire(t)
	standinImage(t)
	began := time.Now()
	f := &agFixture{dir: t.TempDir(), home: t.TempDir(), outputs: map[string]string{}}
	f.claudeToken = "sk-ant-oat01-canary-" + randomHex(16)
	f.account = "acct-e2e-" + randomHex(4)
	f.exp = time.Now().Add(72 * time.Hour).Unix()
	auth := func(exp int64) map[string]any {
		return map[string]any{"exp": exp, "email": "dev@example.test",
			"https://api.openai.com/auth": map[string]any{"chatgpt_account_id": f.account, "chatgpt_plan_type": "plus"}}
	}
	f.access = fakeJWT(auth(f.exp))
	f.id = fakeJWT(auth(time.Now().Add(time.Hour).Unix()))
	f.refresh = "rt_" + randomHex(24)
	f.env = []string{"E2E_CLAUDE_TOKEN=" + f.claudeToken, "HOME=" + f.home, "CODEX_HOME="}
	write := func(p, data string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(f.dir, "main.hcl"), agMain, 0o644)
	write(filepath.Join(f.dir, "skills", "review", "SKILL.md"), agSkill, 0o644)
	t.Cleanup(func() {
		if f.lineage == "" {
			return
		}
		if r := bfRun(t, f.dir, f.env, "destroy", "--auto-approve", "--lock-timeout", "60s"); r.code != 0 {
			t.Errorf("cleanup: bottleform destroy: %s", r)
		}
		if left := sweep(f.lineage); len(left) > 0 {
			t.Errorf("cleanup: destroy left %v (removed them)", left)
		}
	})

	// Without a codex login on the host, apply stops before it changes
	// anything and names the file.
	authFile := filepath.Join(f.home, ".codex", "auth.json")
	r := f.bf(t, "apply", "--auto-approve")
	wantCode(t, "apply without a codex login", r, 1)
	if !strings.Contains(r.stderr, `resolve secrets (nothing was changed): host_credentials("codex"): `+authFile+" does not exist") {
		t.Errorf("apply without a codex login: %s", r)
	}
	if lineageOf(f.dir) != "" {
		t.Error("apply without a codex login saved a state")
	}

	login, _ := json.Marshal(map[string]any{
		"OPENAI_API_KEY": nil,
		"tokens":         map[string]any{"id_token": f.id, "access_token": f.access, "refresh_token": f.refresh, "account_id": f.account},
		"last_refresh":   time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339),
	})
	write(authFile, string(login), 0o600)
	r = f.bf(t, "apply", "--auto-approve")
	wantCode(t, "apply", r, 0)
	// Per bottle: network, sidecar, auth, agent, skill, MCP and the MCP
	// server's route; claude adds its API route and the prompt, codex its
	// two API routes.
	wantLines(t, "apply", r.stdout, "Apply complete! Objects: 18 added, 0 changed, 0 destroyed.")
	f.lineage = lineageOf(f.dir)
	if f.lineage == "" {
		t.Fatal("apply saved no state")
	}
	t.Logf("lineage %s; up in %s", f.lineage, time.Since(began).Round(100*time.Millisecond))

	t.Run("registration", func(t *testing.T) { agRegistration(t, f) })
	t.Run("claude", func(t *testing.T) { agClaude(t, f) })
	t.Run("codex", func(t *testing.T) { agCodex(t, f) })
	t.Run("failing-cli", func(t *testing.T) { agFailingCLI(t, f) })
	t.Run("canary", func(t *testing.T) { agCanary(t, f) })
	t.Logf("total %s", time.Since(began).Round(100*time.Millisecond))
}

// agRegistration: each bottle's MCP server was registered with the exact
// commands of its CLI, as the agent user (uid 1000), a removal of the name
// first; the CLI lists it.
func agRegistration(t *testing.T, f *agFixture) {
	tests := []struct {
		bottle, cli string
		want        [][]string
		list        string
	}{
		{"claude", "claude", [][]string{
			{"mcp", "remove", "--scope", "user", "docs"},
			{"mcp", "add", "--scope", "user", "--transport", "http", "docs", "https://mcp.example.test/mcp"},
		}, "docs: https://mcp.example.test/mcp (HTTP)\n"},
		{"codex", "codex", [][]string{
			{"mcp", "remove", "tracker"},
			{"mcp", "add", "tracker", "--url", "https://tracker.example.test/mcp"},
		}, "tracker: https://tracker.example.test/mcp (HTTP)\n"},
	}
	for _, tt := range tests {
		runs := standinLog(t, f.name(tt.bottle, "agent"), tt.cli)
		if len(runs) != len(tt.want) {
			t.Fatalf("%s ran %d times, want %d: %v", tt.cli, len(runs), len(tt.want), runs)
		}
		for i, run := range runs {
			if !slices.Equal(run.args, tt.want[i]) || run.user != "agent" || run.uid != "1000" {
				t.Errorf("%s run %d: %s, want agent (uid 1000): %q", tt.cli, i, run, tt.want[i])
			}
		}
		if got := f.in(t, tt.bottle, tt.cli+" mcp list"); got != tt.list {
			t.Errorf("%s mcp list = %q, want %q", tt.cli, got, tt.list)
		}
	}
}

// runAgent runs `run-agent ARGS` in bottle through attach and returns the
// stand-in's record of it.
func (f *agFixture) runAgent(t *testing.T, bottle, cli string, args ...string) standinRun {
	t.Helper()
	before := len(standinLog(t, f.name(bottle, "agent"), cli))
	r := f.bf(t, append([]string{"attach", bottle, "--", "run-agent"}, args...)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "stand-in "+cli+": ") {
		t.Fatalf("attach %s -- run-agent: %s", bottle, r)
	}
	runs := standinLog(t, f.name(bottle, "agent"), cli)
	if len(runs) != before+1 {
		t.Fatalf("run-agent made %d runs of %s, want 1", len(runs)-before, cli)
	}
	return runs[len(runs)-1]
}

func agClaude(t *testing.T, f *agFixture) {
	const prompt = "/home/agent/.bottleform/prompt.md"
	run := f.runAgent(t, "claude", "claude", "-p", "review the diff")
	want := []string{"--dangerously-skip-permissions", "--append-system-prompt-file", prompt, "-p", "review the diff"}
	if !slices.Equal(run.args, want) || run.user != "agent" || run.cwd != "/home/agent" {
		t.Errorf("run-agent ran claude as %s, want agent in /home/agent: %q", run, want)
	}
	wantEnv := map[string]string{
		"CLAUDE_CODE_OAUTH_TOKEN":                  "bottleform-placeholder",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
		"NODE_USE_SYSTEM_CA":                       "1",
		"NODE_EXTRA_CA_CERTS":                      "/etc/bottleform/ca.pem",
		"SSL_CERT_FILE":                            "/etc/bottleform/ca-bundle.pem",
		"HTTPS_PROXY":                              "http://egress:9099",
		"NODE_USE_ENV_PROXY":                       "1",
		"HOME":                                     "/home/agent",
	}
	for k, v := range wantEnv {
		if run.env[k] != v {
			t.Errorf("claude's env %s = %q, want %q", k, run.env[k], v)
		}
	}
	for _, k := range []string{"IS_SANDBOX", "CODEX_CA_CERTIFICATE", "ANTHROPIC_API_KEY", "E2E_CLAUDE_TOKEN"} {
		if v, ok := run.env[k]; ok {
			t.Errorf("claude's env has %s=%q (the agent user is not root; this is not codex; no key is granted)", k, v)
		}
	}
	if got := f.in(t, "claude", "cat "+prompt); got != "You review code in a bottle.\n" {
		t.Errorf("the prompt run-agent passes holds %q", got)
	}

	// ~/.claude.json: the image's own keys kept; onboarding done, the
	// placeholder's last 20 characters approved, the working directory
	// trusted.
	var cj struct {
		Theme       string                    `json:"theme"`
		NumStartups int                       `json:"numStartups"`
		Onboarded   bool                      `json:"hasCompletedOnboarding"`
		Responses   map[string][]string       `json:"customApiKeyResponses"`
		Projects    map[string]map[string]any `json:"projects"`
	}
	text := f.in(t, "claude", "cat ~/.claude.json")
	if err := json.Unmarshal([]byte(text), &cj); err != nil {
		t.Fatalf("~/.claude.json: %v:\n%s", err, text)
	}
	p := cj.Projects["/home/agent"]
	if cj.Theme != "dark" || cj.NumStartups != 3 || !cj.Onboarded || !slices.Equal(cj.Responses["approved"], []string{"ttleform-placeholder"}) ||
		p["hasTrustDialogAccepted"] != true || fmt.Sprint(p["allowedTools"]) != "[Bash(ls)]" {
		t.Errorf("~/.claude.json:\n%s", text)
	}

	if got := f.in(t, "claude", "cat ~/.claude/skills/review/SKILL.md; stat -c '%U %a' ~/.claude/skills/review/SKILL.md"); got != agSkill+"agent 644\n" {
		t.Errorf("claude's skill: %q", got)
	}
}

func agCodex(t *testing.T, f *agFixture) {
	run := f.runAgent(t, "codex", "codex", "exec", "fix the build")
	if want := []string{"--dangerously-bypass-approvals-and-sandbox", "exec", "fix the build"}; !slices.Equal(run.args, want) || run.user != "agent" {
		t.Errorf("run-agent ran codex as %s, want agent: %q", run, want)
	}
	if got := run.env["CODEX_CA_CERTIFICATE"]; got != "/etc/bottleform/ca.pem" {
		t.Errorf("codex's env CODEX_CA_CERTIFICATE = %q, want the bottle's CA file", got)
	}
	for _, k := range []string{"IS_SANDBOX", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "CODEX_API_KEY", "CODEX_ACCESS_TOKEN"} {
		if v, ok := run.env[k]; ok {
			t.Errorf("codex's env has %s=%q", k, v)
		}
	}
	// The CA file is the gateway's CA, the one the sidecar reports.
	ca := f.in(t, "codex", "cat /etc/bottleform/ca.pem")
	if !strings.HasPrefix(ca, "-----BEGIN CERTIFICATE-----") || strings.Count(ca, "BEGIN CERTIFICATE") != 1 {
		t.Errorf("/etc/bottleform/ca.pem is not one certificate:\n%s", ca)
	}

	// The placeholder sign-in: the real exp and account, nothing of the
	// real tokens (the canary check below searches the whole agent).
	text := f.in(t, "codex", "cat ~/.codex/auth.json")
	if owner := f.in(t, "codex", "stat -c '%U %a' ~/.codex/auth.json"); owner != "agent 600\n" {
		t.Errorf("~/.codex/auth.json is owned and moded %q, want agent 600", owner)
	}
	var a struct {
		APIKey *string `json:"OPENAI_API_KEY"`
		Tokens struct {
			ID      string `json:"id_token"`
			Access  string `json:"access_token"`
			Refresh string `json:"refresh_token"`
			Account string `json:"account_id"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		t.Fatalf("~/.codex/auth.json: %v:\n%s", err, text)
	}
	if a.APIKey != nil || a.Tokens.Account != f.account || a.Tokens.Refresh != "bottleform-placeholder" {
		t.Errorf("~/.codex/auth.json:\n%s", text)
	}
	for _, tok := range []string{a.Tokens.ID, a.Tokens.Access} {
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("placeholder %q is not a JWT", tok)
		}
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		acct, _ := claims["https://api.openai.com/auth"].(map[string]any)
		if len(claims) != 2 || claims["exp"] != float64(f.exp) || len(acct) != 1 || acct["chatgpt_account_id"] != f.account {
			t.Errorf("placeholder claims %s, want exactly exp %d and account %s", payload, f.exp, f.account)
		}
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		if string(sig) != "bottleform placeholder, not signed" {
			t.Errorf("placeholder signature decodes to %q", sig)
		}
	}

	if got := f.in(t, "codex", "cat ~/.codex/skills/review/SKILL.md"); got != agSkill {
		t.Errorf("codex's skill: %q", got)
	}
}

// agFailingCLI: a registration the CLI refuses fails the apply, is not
// recorded, and the next apply makes it.
func agFailingCLI(t *testing.T, f *agFixture) {
	f.in(t, "claude", "touch /tmp/standin-fail")
	editFile(t, f.dir, "main.hcl", `  prompt = "You review`, "  mcp \"extra\" {\n    url = \"https://mcp.example.test/extra\"\n  }\n\n  prompt = \"You review")
	r := f.bf(t, "apply", "--auto-approve")
	wantCode(t, "apply with a failing CLI", r, 1)
	if !strings.Contains(r.stderr, "register MCP server extra: `claude mcp add --scope user --transport http extra https://mcp.example.test/extra` exited 3") ||
		!strings.Contains(r.stderr, "the configuration is locked") {
		t.Errorf("apply with a failing CLI: %s", r)
	}
	r = f.bf(t, "plan")
	wantCode(t, "plan after the failed registration", r, 0)
	wantLines(t, "plan after the failed registration", r.stdout, `  # bottle.claude.mcp["extra"] will be created`)

	f.in(t, "claude", "rm /tmp/standin-fail")
	r = f.bf(t, "apply", "--auto-approve")
	wantCode(t, "apply again", r, 0)
	if got := f.in(t, "claude", "claude mcp list"); got != "docs: https://mcp.example.test/mcp (HTTP)\nextra: https://mcp.example.test/extra (HTTP)\n" {
		t.Errorf("claude mcp list after the retry = %q", got)
	}
}

func agCanary(t *testing.T, f *agFixture) {
	needles := map[string]string{
		"the claude token":                   f.claudeToken,
		"the codex access token":             f.access,
		"the codex refresh token":            f.refresh,
		"the codex id token":                 f.id,
		"the codex access token's claims":    strings.Split(f.access, ".")[1],
		"the codex access token's signature": strings.Split(f.access, ".")[2],
		"the codex id token's claims":        strings.Split(f.id, ".")[1],
	}
	places := map[string]string{}
	look := func(where, text string) { places[where] = text }

	// The control: the gateway holds both credentials (its health check
	// fails while a credential slot has no value).
	r := f.bf(t, "status")
	wantCode(t, "status", r, 0)
	if strings.Contains(r.stdout, "drifted") {
		t.Errorf("status: %s", r)
	}

	for _, bottle := range []string{"claude", "codex"} {
		agentName := f.name(bottle, "agent")
		look(bottle+": the agent's environment (attach -- env)", f.in(t, bottle, "env"))
		procs, err := dockerRun("exec", "-u", "0", agentName, "sh", "-c", `for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null; echo; done`)
		if err != nil {
			t.Fatal(err)
		}
		look(bottle+": the environ and cmdline of every process in the agent", procs)
		control := "control-" + randomHex(8)
		f.in(t, bottle, "echo "+control+" > $HOME/.control")
		all := []string{control}
		for _, v := range needles {
			all = append(all, v)
		}
		hits, files := exportSearch(t, agentName, all...)
		if !slices.Contains(hits[control], "home/agent/.control") {
			t.Errorf("%s: the control is not found in docker export of the agent (found in %q)", bottle, hits[control])
		}
		for what, v := range needles {
			for _, p := range hits[v] {
				t.Errorf("%s: %s is in the agent's file %s", bottle, what, p)
			}
		}
		t.Logf("%s: searched docker export of the agent (%d files)", bottle, files)
		for _, c := range []string{"sidecar", "agent"} {
			look(bottle+": docker inspect of the "+c, dockerCLI(t, "inspect", f.name(bottle, c)))
			r := dockerRunStdin(t, "", "logs", f.name(bottle, c))
			look(bottle+": docker logs of the "+c, r.stdout+r.stderr)
		}
		look(bottle+": bottleform logs --json", bfOK(t, f.dir, f.env, "logs", bottle, "--json"))
	}
	for _, name := range []string{"state.json", "state.json.backup"} {
		data, err := os.ReadFile(filepath.Join(f.dir, ".bottleform", name))
		if err != nil {
			t.Fatal(err)
		}
		look(name, string(data))
	}
	look("show --json of the state", bfOK(t, f.dir, f.env, "show", "--json"))
	planFile := filepath.Join(t.TempDir(), "agents.tfplan")
	r = f.bf(t, "plan", "--destroy", "--out", planFile)
	wantCode(t, "plan --destroy --out", r, 0)
	data, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	look("the saved plan file", string(data))
	look("show --json of the saved plan", bfOK(t, f.dir, f.env, "show", "--json", planFile))
	r = f.bf(t, "plan", "--json")
	wantCode(t, "plan --json", r, 0)
	for where, text := range f.outputs {
		look(where, text)
	}

	var found []string
	for where, text := range places {
		for what, v := range needles {
			if strings.Contains(text, v) {
				found = append(found, what+" in "+where)
			}
		}
	}
	slices.Sort(found)
	for _, s := range found {
		t.Errorf("%s", s)
	}
	t.Logf("no credential is in any of %d places", len(places))
}
