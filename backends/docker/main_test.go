package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/google/uuid"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/internal/testimage"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// These tests run against the Docker engine on this machine. They never
// pull, and every container they start talks only to containers and
// networks they created, or to a listener of the test on this host.

const testAgentImage = "bottleform-testagent:busybox"

var (
	cli          *client.Client
	sidecarBin   string // a static bottleform binary
	sidecarImage string // its SidecarTag("dev", ...)
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "backends/docker tests: "+format+"\n", args...)
		return 1
	}
	var err error
	if cli, err = testimage.Engine("the backend under test"); err != nil {
		return fail("%v", err)
	}
	defer cli.Close()
	tmp, err := os.MkdirTemp("", "bf-docker-test")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(tmp)
	if sidecarBin, err = testimage.SidecarBinary(tmp); err != nil {
		return fail("a static bottleform for the sidecar image: %v", err)
	}
	if out, _ := exec.Command(sidecarBin, "sidecar", "health", "--control-socket", filepath.Join(tmp, "none.sock")).CombinedOutput(); strings.Contains(string(out), "unknown command") {
		return fail("%s has no `sidecar` command: register newSidecar(g) in cmd/bottleform/root.go", sidecarBin)
	}
	if sidecarImage, err = SidecarTag("dev", sidecarBin); err != nil {
		return fail("%v", err)
	}
	if err := testimage.Busybox(context.Background(), cli, testAgentImage, "agent"); err != nil {
		return fail("%v", err)
	}
	code := m.Run()
	// The sidecar image is specific to this build; leave no trace of it.
	_, _ = cli.ImageRemove(context.Background(), sidecarImage, image.RemoveOptions{})
	return code
}

// newBackend returns a backend on the test engine, building the sidecar
// from the test's static binary.
func newBackend(t testing.TB, configDir string) *Backend {
	t.Helper()
	b, err := New(Options{Client: cli, SidecarBinary: sidecarBin, SidecarImage: sidecarImage, ConfigDir: configDir, Log: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture is one bottle of one fresh lineage, with the state a run of
// apply would keep, and secret values that are canaries.
type fixture struct {
	t       *testing.T
	b       *Backend
	lineage string
	spec    *resource.Bottle
	attrs   map[resource.Address]resource.Attrs
	secrets applier.Secrets
	st      *state.State
	// canaries are the secret values; none may appear in a label.
	canaries []string

	mu       sync.Mutex
	warnings []string
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newFixture prepares a bottle called name: a claude agent with a token,
// a credentialed route whose secret is empty, an env entry granted a
// secret, a git user, an external MCP server and supervise, a prompt, one
// skill and resource limits. Cleanup deletes everything of its lineage
// and fails if anything is left.
func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	dir := t.TempDir()
	skill := filepath.Join(dir, "skills", "code-review")
	if err := os.MkdirAll(filepath.Join(skill, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, s := range map[string]string{"SKILL.md": "# Code review\nRead the diff.\n", "refs/style.md": "Be kind.\n"} {
		if err := os.WriteFile(filepath.Join(skill, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{t: t, b: newBackend(t, dir), lineage: uuid.NewString()}
	claude, canary := "canary-claude-"+randomHex(8), "canary-env-"+randomHex(8)
	f.canaries = []string{claude, canary}
	f.secrets = applier.Secrets{
		{Secret: "claude"}: resource.NewSecret(claude),
		{Secret: "github"}: resource.NewSecret(""),
		{Secret: "canary"}: resource.NewSecret(canary),
	}
	f.spec, _ = planner.Effective(&resource.Bottle{
		Name: name, Backend: resource.BackendDocker, Image: testAgentImage,
		Agent: resource.AgentSpec{Provider: resource.ProviderClaude, AuthToken: resource.Ref{Secret: "claude"}},
		Env: []resource.EnvVar{
			{Name: "CANARY", Ref: resource.Ref{Secret: "canary"}},
			{Name: "TZ", Literal: "UTC"},
		},
		Egress: []resource.Route{
			{Host: "api.github.com", TLS: resource.TLSIntercept, Auth: &resource.RouteAuth{Scheme: "token", Token: resource.Ref{Secret: "github"}}},
			{Host: "registry.npmjs.org", TLS: resource.TLSPassthrough},
		},
		GitUser:   &resource.GitUser{Name: "Review Bot", Email: "bot@example.dev"},
		Supervise: true,
		MCP:       []resource.MCP{{Name: "docs", URL: "https://mcp.example.dev/mcp"}},
		Prompt:    "You review code.\nBe brief.\n",
		Skills:    []resource.Skill{{Name: "code-review", Dir: "skills/code-review", Digest: "sha256:test"}},
		Resources: resource.Resources{CPUs: 0.5, Memory: 128 << 20, MemoryText: "128MiB"},
	})
	f.attrs = map[resource.Address]resource.Attrs{}
	for _, o := range planner.Objects(f.spec) {
		f.attrs[o.Addr] = o.Attrs
	}
	f.st = &state.State{Lineage: f.lineage, Bottles: map[string]*state.Bottle{}}
	t.Cleanup(f.destroy)
	return f
}

func (f *fixture) addr(k resource.Kind, key string) resource.Address {
	return resource.Address{Bottle: f.spec.Name, Kind: k, Key: key}
}

func (f *fixture) name(component string) string {
	return resource.ObjectName(f.lineage, f.spec.Name, component)
}

// op is the step an apply would send for addr, with the state as it is.
func (f *fixture) op(addr resource.Address) *applier.Op {
	op := &applier.Op{
		Addr: addr, Lineage: f.lineage, Bottle: f.spec, Attrs: f.attrs[addr], Secrets: f.secrets,
		Prior: f.st.Lookup(addr),
		Warn: func(msg string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.warnings = append(f.warnings, msg)
		},
	}
	if sb := f.st.Bottles[f.spec.Name]; sb != nil {
		op.Resources = sb.Resources
	}
	return op
}

func (f *fixture) create(addr resource.Address) map[string]string {
	f.t.Helper()
	ids, err := f.b.Create(context.Background(), f.op(addr))
	if err != nil {
		f.t.Fatalf("%v", err)
	}
	f.st.Set(resource.BackendDocker, &state.Resource{Addr: addr, Attrs: f.attrs[addr], Digest: f.attrs[addr].Digest(), IDs: ids})
	return ids
}

// up creates the network, the sidecar and the agent.
func (f *fixture) up() {
	f.t.Helper()
	for _, k := range []resource.Kind{resource.KindNetwork, resource.KindSidecar, resource.KindAgent} {
		f.create(f.addr(k, ""))
	}
}

func (f *fixture) warned(substr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.warnings, func(w string) bool { return strings.Contains(w, substr) })
}

// destroy deletes the bottle as a destroy would (agent, sidecar, network,
// with no desired bottle), then fails if anything of the lineage is left.
func (f *fixture) destroy() {
	ctx := context.Background()
	for _, k := range []resource.Kind{resource.KindAgent, resource.KindSidecar, resource.KindNetwork} {
		op := f.op(f.addr(k, ""))
		op.Bottle, op.Attrs = nil, nil
		if err := f.b.Delete(ctx, op); err != nil {
			f.t.Errorf("destroy: %v", err)
		}
	}
	objs, err := f.b.Objects(ctx, f.lineage)
	if err != nil {
		f.t.Errorf("destroy: %v", err)
	}
	if len(objs) > 0 {
		f.t.Errorf("destroy left %v", objs)
		forceClean(f.lineage)
	}
}

// forceClean removes whatever carries lineage's label, for a test that
// failed half way.
func forceClean(lineage string) {
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", resource.LabelLineage+"="+lineage))
	cs, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	for _, c := range cs {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
	ns, _ := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	for _, n := range ns {
		_ = cli.NetworkRemove(ctx, n.ID)
	}
}

// execIn runs argv in a container and fails the test if it cannot run.
func execIn(t *testing.T, b *Backend, ctr string, argv []string, stdin string) (string, string, int) {
	t.Helper()
	var in *bytes.Reader
	if stdin != "" {
		in = bytes.NewReader([]byte(stdin))
	}
	var out, errb []byte
	var code int
	var err error
	if in != nil {
		out, errb, code, err = b.exec(context.Background(), ctr, argv, "", in)
	} else {
		out, errb, code, err = b.exec(context.Background(), ctr, argv, "", nil)
	}
	if err != nil {
		t.Fatalf("exec %q in %s: %v", argv, ctr, err)
	}
	return string(out), string(errb), code
}

// waitHealth waits, at most 15 s, for the container's health status to be
// want, and returns the status it saw last. Docker runs the first check a
// second after start.
func waitHealth(t *testing.T, name, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := cli.ContainerInspect(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		got := "none"
		if c.State.Health != nil {
			got = string(c.State.Health.Status)
		}
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// buildSidecarImage builds a sidecar image under a fresh tag with the test
// binary, removes it at cleanup, and returns the tag, its inspection and the
// backend that built it. log receives the backend's log lines (nil: t.Log).
func buildSidecarImage(t *testing.T, prefix string, log func(string)) (string, image.InspectResponse, *Backend) {
	t.Helper()
	ctx := context.Background()
	tag := "bottleform-sidecar:" + prefix + randomHex(6)
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{}) })
	if log == nil {
		log = func(s string) { t.Log(s) }
	}
	b, err := New(Options{Client: cli, SidecarBinary: sidecarBin, SidecarImage: tag, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureSidecarImage(ctx); err != nil {
		t.Fatal(err)
	}
	img, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	return tag, img, b
}
