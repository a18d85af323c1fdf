package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"

	"github.com/bottleform/bottleform/resource"
)

func TestAgent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "agent")
	f.up()
	name := f.name("agent")

	c, raw, err := cli.ContainerInspectWithRaw(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	if !c.State.Running {
		t.Fatalf("agent not running: %+v", c.State)
	}
	if nets := keys(c.NetworkSettings.Networks); !slices.Equal(nets, []string{f.name("internal")}) {
		t.Errorf("agent networks = %v, want only %s", nets, f.name("internal"))
	}
	hc := c.HostConfig
	if c.Config.User != "agent" {
		t.Errorf("user = %q, want the image's user agent", c.Config.User)
	}
	if !slices.Equal(hc.CapDrop, []string{"ALL"}) || !slices.Contains(hc.SecurityOpt, "no-new-privileges") {
		t.Errorf("cap drop %v, security opt %v", hc.CapDrop, hc.SecurityOpt)
	}
	if hc.NanoCPUs != 500_000_000 || hc.Memory != 128<<20 {
		t.Errorf("nano cpus %d, memory %d; want 5e8 and 128MiB", hc.NanoCPUs, hc.Memory)
	}
	if hc.Init == nil || !*hc.Init || !slices.Equal(c.Config.Entrypoint, []string{"sleep"}) || !slices.Equal(c.Config.Cmd, []string{"infinity"}) {
		t.Errorf("init %v, entrypoint %q, cmd %q", hc.Init, c.Config.Entrypoint, c.Config.Cmd)
	}
	for _, kv := range ProxyEnv(DockerEndpoints) {
		if !slices.Contains(c.Config.Env, kv) {
			t.Errorf("env lacks %s", kv)
		}
	}

	agent := f.b.AgentHandle(f.lineage, "agent")
	run := func(argv ...string) string {
		t.Helper()
		out, errb, code, err := agent.Exec(ctx, argv, "", nil)
		if err != nil || code != 0 {
			t.Fatalf("%q: exit %d, %v: %s", argv, code, err, errb)
		}
		return strings.TrimSpace(string(out))
	}
	// The limits hold inside (cgroup v1 here; v2 elsewhere).
	if got := run("sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"); got != "134217728" {
		t.Errorf("memory limit inside the agent = %q, want 134217728", got)
	}
	if uid := run("id", "-u"); uid != "1000" {
		t.Errorf("the agent runs as uid %s, want 1000", uid)
	}
	// The canary granted to the agent reaches it, and nothing else does.
	canary := f.canaries[1]
	if got := run("printenv", "CANARY"); got != canary {
		t.Errorf("printenv CANARY = %q, want the granted value", got)
	}
	if bytes.Contains(raw, []byte(f.canaries[0])) {
		t.Error("the claude token, a gateway credential, is in the agent's container config")
	}

	// The prompt, readable by the agent user and owned by it.
	f.create(f.addr(resource.KindPrompt, ""))
	if got := run("cat", "/home/agent/.bottleform/prompt.md"); got != strings.TrimSpace(f.spec.Prompt) {
		t.Errorf("prompt = %q", got)
	}
	if got := run("stat", "-c", "%u:%g %a", "/home/agent/.bottleform/prompt.md", "/home/agent/.bottleform"); got != "1000:1000 644\n1000:1000 700" {
		t.Errorf("prompt ownership and modes = %q", got)
	}

	// A skill, replaced whole by an update, removed by a delete.
	skillDir := "/home/agent/.claude/skills/code-review"
	skill := f.addr(resource.KindSkill, "code-review")
	f.create(skill)
	if got := run("cat", skillDir+"/SKILL.md", skillDir+"/refs/style.md"); got != "# Code review\nRead the diff.\nBe kind." {
		t.Errorf("skill files = %q", got)
	}
	if got := run("stat", "-c", "%u:%g", skillDir+"/refs/style.md", "/home/agent/.claude"); got != "1000:1000\n1000:1000" {
		t.Errorf("skill ownership = %q", got)
	}
	_, _, _, _ = agent.Exec(ctx, []string{"sh", "-c", "echo stale > " + skillDir + "/stale.md"}, "", nil)
	if _, err := f.b.Update(ctx, f.op(skill)); err != nil {
		t.Fatal(err)
	}
	if got := run("ls", skillDir); got != "SKILL.md\nrefs" {
		t.Errorf("after update, the skill holds %q; want exactly the source's files", got)
	}
	if err := f.b.Delete(ctx, f.op(skill)); err != nil {
		t.Fatal(err)
	}
	if _, _, code, _ := agent.Exec(ctx, []string{"ls", skillDir}, "", nil); code == 0 {
		t.Error("the skill is still there after delete")
	}

	// Auth: the provider's placeholder and flags, and a warning that git is
	// not in the image for git_user.
	f.create(f.addr(resource.KindAuth, ""))
	env := run("cat", "/home/agent/.bottleform/env")
	for _, want := range []string{"export CLAUDE_CODE_OAUTH_TOKEN=bottleform-placeholder", "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1"} {
		if !strings.Contains(env, want) {
			t.Errorf("auth env lacks %q:\n%s", want, env)
		}
	}
	if !f.warned("git is not in the image") {
		t.Errorf("no warning about git: %q", f.warnings)
	}
	if strings.Contains(env, "IS_SANDBOX") {
		t.Errorf("the agent user is not root, yet the env sets IS_SANDBOX:\n%s", env)
	}
	// run-agent is on the PATH the env file sets, and runs the claude CLI
	// with its flags and the prompt.
	if got := run("sh", "-c", `. "$HOME/.bottleform/env"; command -v run-agent`); got != "/home/agent/.bottleform/bin/run-agent" {
		t.Errorf("run-agent on the env's PATH = %q", got)
	}
	if got := run("cat", "/home/agent/.bottleform/bin/run-agent"); !strings.Contains(got, "exec claude --dangerously-skip-permissions \"$@\"") || !strings.Contains(got, "--append-system-prompt-file") {
		t.Errorf("run-agent:\n%s", got)
	}
	// ~/.claude.json: onboarding done, the placeholder approved, the
	// working directory (the image sets none: /) trusted; the agent's own
	// keys kept when it is written again.
	var cj struct {
		Onboarded bool                       `json:"hasCompletedOnboarding"`
		Responses map[string][]string        `json:"customApiKeyResponses"`
		Projects  map[string]map[string]bool `json:"projects"`
		Theme     string                     `json:"theme"`
	}
	readClaudeJSON := func() {
		t.Helper()
		if err := json.Unmarshal([]byte(run("cat", "/home/agent/.claude.json")), &cj); err != nil {
			t.Fatal(err)
		}
	}
	readClaudeJSON()
	if !cj.Onboarded || !slices.Equal(cj.Responses["approved"], []string{"ttleform-placeholder"}) || !cj.Projects["/"]["hasTrustDialogAccepted"] {
		t.Errorf("~/.claude.json = %+v", cj)
	}
	if got := run("stat", "-c", "%u:%g %a", "/home/agent/.claude.json"); got != "1000:1000 600" {
		t.Errorf("~/.claude.json ownership and mode = %q", got)
	}
	run("sh", "-c", `sed 's/^{/{"theme": "dark",/' ~/.claude.json > /tmp/cj && cat /tmp/cj > ~/.claude.json`)
	if _, err := f.b.Update(ctx, f.op(f.addr(resource.KindAuth, ""))); err != nil {
		t.Fatal(err)
	}
	readClaudeJSON()
	if cj.Theme != "dark" || !cj.Onboarded {
		t.Errorf("after auth was written again, ~/.claude.json = %+v; want the agent's theme kept", cj)
	}
	// The container env: NODE_USE_SYSTEM_CA for every agent, codex's CA
	// variable only for codex.
	if got := run("printenv", "NODE_USE_SYSTEM_CA"); got != "1" {
		t.Errorf("NODE_USE_SYSTEM_CA = %q", got)
	}
	if _, _, code, _ := agent.Exec(ctx, []string{"printenv", "CODEX_CA_CERTIFICATE"}, "", nil); code == 0 {
		t.Error("a claude agent has CODEX_CA_CERTIFICATE")
	}

	// MCP: the claude CLI is not in the image, so a warning, not a failure.
	if _, err := f.b.Create(ctx, f.op(f.addr(resource.KindMCP, "supervise"))); err != nil {
		t.Errorf("MCP registration without the CLI: %v, want a warning only", err)
	}
	if !f.warned("the claude CLI is not in the agent's image: MCP server supervise was not registered") {
		t.Errorf("no warning about the missing CLI: %q", f.warnings)
	}
	if err := f.b.Delete(ctx, f.op(f.addr(resource.KindMCP, "supervise"))); err != nil {
		t.Errorf("MCP removal without the CLI: %v", err)
	}

	// With a claude CLI that works, the registration runs as the agent
	// user: a removal of the name first, then the add. A CLI that fails is
	// an error (the step is not done); its removal failing is a warning.
	standin := "#!/bin/sh\necho \"$(id -un): $*\" >> /tmp/claude.log\n" +
		"[ \"$2\" = remove ] && { echo 'No MCP server found' >&2; exit 1; }\n" +
		"[ -e /tmp/claude-fail ] && { echo 'config locked' >&2; exit 2; }\nexit 0\n"
	archive, err := tarOf([]tarEntry{{Name: "claude", Mode: 0o755, Data: []byte(standin)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.CopyIn(ctx, "/bin", bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	mcp := f.addr(resource.KindMCP, "docs")
	if _, err := f.b.Create(ctx, f.op(mcp)); err != nil {
		t.Fatalf("MCP registration with a working CLI: %v", err)
	}
	want := "agent: mcp remove --scope user docs\nagent: mcp add --scope user --transport http docs https://mcp.example.dev/mcp"
	if got := run("cat", "/tmp/claude.log"); got != want {
		t.Errorf("the CLI ran\n%s\nwant\n%s", got, want)
	}
	run("sh", "-c", "touch /tmp/claude-fail")
	_, err = f.b.Create(ctx, f.op(mcp))
	if err == nil || !strings.Contains(err.Error(), "register MCP server docs: `claude mcp add --scope user --transport http docs https://mcp.example.dev/mcp` exited 2") || !strings.Contains(err.Error(), "config locked") {
		t.Errorf("MCP registration with a failing CLI: %v", err)
	}
	if err := f.b.Delete(ctx, f.op(mcp)); err != nil || !f.warned("`claude mcp remove --scope user docs` exited 1: No MCP server found; MCP server docs was not removed") {
		t.Errorf("MCP removal with a failing CLI: %v, warnings %q", err, f.warnings)
	}

	// Removing the auth removes bottleform's files; ~/.claude.json, the
	// agent's own with settings merged in, stays.
	if err := f.b.Delete(ctx, f.op(f.addr(resource.KindAuth, ""))); err != nil {
		t.Fatal(err)
	}
	if got := run("sh", "-c", "ls -A /home/agent /home/agent/.bottleform"); got != "/home/agent:\n.bottleform\n.claude\n.claude.json\n\n/home/agent/.bottleform:\nprompt.md" {
		t.Errorf("after the auth was deleted:\n%s", got)
	}

	// Deploy keys are the applier's (its Keys), never a backend's.
	if _, err := f.b.Create(ctx, f.op(resource.Address{Bottle: "agent", Kind: resource.KindDeployKey, Key: "app"})); !errors.Is(err, errDeployKey) {
		t.Errorf("deploy key: %v", err)
	}

	// Deleting the prompt removes it; deleting it from an agent that is gone
	// is fine.
	if err := f.b.Delete(ctx, f.op(f.addr(resource.KindPrompt, ""))); err != nil {
		t.Fatal(err)
	}
	if _, _, code, _ := agent.Exec(ctx, []string{"cat", "/home/agent/.bottleform/prompt.md"}, "", nil); code == 0 {
		t.Error("the prompt is still there after delete")
	}

	// Attach runs a command as the agent user, wired to the given streams.
	var out, errw bytes.Buffer
	code, err := f.b.Attach(ctx, f.lineage, "agent", []string{"sh", "-c", "cat; id -un; echo oops >&2; exit 3"}, false, strings.NewReader("from stdin\n"), &out, &errw)
	if err != nil || code != 3 || out.String() != "from stdin\nagent\n" || errw.String() != "oops\n" {
		t.Errorf("attach = %d, %v, stdout %q, stderr %q", code, err, out.String(), errw.String())
	}

	// No secret value in any label of any object of the lineage.
	objs, err := f.b.Objects(ctx, f.lineage)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 4 {
		t.Errorf("objects = %v, want two networks and two containers", objs)
	}
	for _, o := range objs {
		var labels map[string]string
		if o.Type == "container" {
			c, err := cli.ContainerInspect(ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			labels = c.Config.Labels
		} else {
			n, err := cli.NetworkInspect(ctx, o.ID, network.InspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			labels = n.Labels
		}
		b, _ := json.Marshal(labels)
		for _, v := range f.canaries {
			if strings.Contains(string(b), v) {
				t.Errorf("%s has a secret value in its labels: %s", o, b)
			}
		}
		if labels[resource.LabelLineage] != f.lineage || labels[resource.LabelDigest] == "" {
			t.Errorf("%s labels = %v", o, labels)
		}
	}

	// Deleted: the agent is gone; in-agent deletes then do nothing.
	del := f.op(f.addr(resource.KindAgent, ""))
	del.Bottle, del.Attrs = nil, nil
	if err := f.b.Delete(ctx, del); err != nil {
		t.Fatal(err)
	}
	for _, a := range []resource.Address{f.addr(resource.KindPrompt, ""), f.addr(resource.KindAuth, ""), skill, f.addr(resource.KindMCP, "docs")} {
		op := f.op(a)
		op.Bottle, op.Attrs = nil, nil
		if err := f.b.Delete(ctx, op); err != nil {
			t.Errorf("delete %s from a removed agent: %v", a, err)
		}
	}
	if _, err := f.b.Attach(ctx, f.lineage, "agent", []string{"true"}, false, nil, &out, &errw); err == nil || !strings.Contains(err.Error(), "has no agent container") {
		t.Errorf("attach to a removed agent: %v", err)
	}
}

func TestAgentImageMissing(t *testing.T) {
	f := newFixture(t, "noimage")
	f.create(f.addr(resource.KindNetwork, ""))
	f.spec.Image = "bottleform-testagent:absent-" + randomHex(4)
	_, err := f.b.Create(context.Background(), f.op(f.addr(resource.KindAgent, "")))
	want := "image " + f.spec.Image + " is not present on this machine and bottleform pulls nothing: build or load it first (docker load / docker import)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}
