package smolmachines

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/backends/docker"
	"github.com/bottleform/bottleform/backends/smolmachines/smolvmfake"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fixture is one bottle of a fresh lineage on an env, with the state an
// apply would keep and secret values that are canaries.
type fixture struct {
	e        *env
	lineage  string
	spec     *resource.Bottle
	attrs    map[resource.Address]resource.Attrs
	secrets  applier.Secrets
	canaries []string
	st       *state.State
}

var createOrder = []resource.Kind{
	resource.KindNetwork, resource.KindSidecar, resource.KindEgress, resource.KindGit,
	resource.KindAuth, resource.KindAgent, resource.KindPrompt, resource.KindSkill, resource.KindMCP,
}

func newFixture(e *env, image string) *fixture {
	f := &fixture{e: e, lineage: uuid.NewString()}
	token, canary := "canary-token-"+randomHex(8), "canary-env-"+randomHex(8)
	f.canaries = []string{token, canary}
	f.secrets = applier.Secrets{
		{Secret: "github"}: resource.NewSecret(token),
		{Secret: "canary"}: resource.NewSecret(canary),
	}
	f.setSpec(image, []resource.EnvVar{
		{Name: "CANARY", Ref: resource.Ref{Secret: "canary"}},
		{Name: "TZ", Literal: "UTC"},
		{Name: "GONE", Literal: "soon"},
	}, resource.Resources{})
	f.st = &state.State{Lineage: f.lineage, Bottles: map[string]*state.Bottle{}}
	e.t.Cleanup(f.down)
	return f
}

func (f *fixture) setSpec(image string, env []resource.EnvVar, res resource.Resources) {
	f.spec, _ = planner.Effective(&resource.Bottle{
		Name: "vm", Backend: resource.BackendSmolmachines, Image: image,
		Agent: resource.AgentSpec{Provider: resource.ProviderClaude},
		Env:   env,
		Egress: []resource.Route{
			{Host: "api.github.com", TLS: resource.TLSIntercept, Auth: &resource.RouteAuth{Scheme: "token", Token: resource.Ref{Secret: "github"}}},
		},
		Supervise: true,
		Prompt:    "You are tested.\n",
		Resources: res,
	})
	f.attrs = map[resource.Address]resource.Attrs{}
	for _, o := range planner.Objects(f.spec) {
		f.attrs[o.Addr] = o.Attrs
	}
}

func (f *fixture) addrs() []resource.Address {
	var out []resource.Address
	for a := range f.attrs {
		out = append(out, a)
	}
	sort.SliceStable(out, func(i, j int) bool {
		return slices.Index(createOrder, out[i].Kind) < slices.Index(createOrder, out[j].Kind)
	})
	return out
}

func (f *fixture) op(addr resource.Address) *applier.Op {
	op := &applier.Op{
		Addr: addr, Lineage: f.lineage, Bottle: f.spec, Attrs: f.attrs[addr], Secrets: f.secrets,
		Prior: f.st.Lookup(addr),
		Warn:  func(msg string) { f.e.t.Logf("warning from %s: %s", addr, msg) },
	}
	if sb := f.st.Bottles[f.spec.Name]; sb != nil {
		op.Resources = sb.Resources
	}
	return op
}

func (f *fixture) record(addr resource.Address, ids map[string]string) {
	f.st.Set(resource.BackendSmolmachines, &state.Resource{Addr: addr, Attrs: f.attrs[addr], Digest: f.attrs[addr].Digest(), IDs: ids})
}

// up creates every object in create order, as an apply would.
func (f *fixture) up() error {
	for _, a := range f.addrs() {
		ids, err := f.e.b.Create(context.Background(), f.op(a))
		if err != nil {
			return err
		}
		f.record(a, ids)
	}
	return nil
}

func (f *fixture) update(addr resource.Address) error {
	ids, err := f.e.b.Update(context.Background(), f.op(addr))
	if err == nil {
		f.record(addr, ids)
	}
	return err
}

// down deletes everything the state records, in reverse create order.
func (f *fixture) down() {
	rs := f.st.Resources()
	sort.SliceStable(rs, func(i, j int) bool {
		return slices.Index(createOrder, rs[i].Addr.Kind) > slices.Index(createOrder, rs[j].Addr.Kind)
	})
	for _, r := range rs {
		op := f.op(r.Addr)
		op.Bottle, op.Attrs = nil, nil
		if err := f.e.b.Delete(context.Background(), op); err != nil {
			f.e.t.Errorf("delete %s: %v", r.Addr, err)
		}
		f.st.Remove(r.Addr)
	}
	// The sidecar and network too, if a failed create left them unrecorded.
	for _, k := range []resource.Kind{resource.KindSidecar, resource.KindNetwork} {
		op := f.op(resource.Address{Bottle: "vm", Kind: k})
		op.Bottle, op.Attrs = nil, nil
		_ = f.e.b.Delete(context.Background(), op)
	}
}

func (f *fixture) agentAddr() resource.Address {
	return resource.Address{Bottle: "vm", Kind: resource.KindAgent}
}

func (f *fixture) machine() string { return resource.ObjectName(f.lineage, "vm", "agent") }

// inAgent runs a shell command in the VM as bottleform's attach would
// (the agent's env file read first) and returns its stdout.
func (f *fixture) inAgent(script string) string {
	f.e.t.Helper()
	out, err := f.e.smolvm("machine", "exec", "--name", f.machine(), "--", "/bin/sh", "-c", `. "$HOME/.bottleform/env"; `+script)
	if err != nil {
		f.e.t.Fatalf("exec %q: %v\n%s", script, err, out)
	}
	return strings.TrimSpace(out)
}

// TestArgvAndEnv brings a bottle up, changes its env and resources in
// place and tears it down, then checks smolvm's recorded invocations: no
// secret value in any argv, `exec` never with -n, `delete` always with
// -f; and that the agent got the Docker contract's env.
func TestArgvAndEnv(t *testing.T) {
	e := newEnv(t, "1.14.0")
	f := newFixture(e, testImage)
	if err := f.up(); err != nil {
		t.Fatal(err)
	}
	pub, err := e.d.SidecarPublished(context.Background(), f.lineage, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if pub.HostIP.String() != "127.0.0.1" {
		t.Errorf("sidecar published on %s, want 127.0.0.1 on Linux", pub.HostIP)
	}
	proxy := "http://100.96.0.1:" + strconv.Itoa(pub.Ports[docker.PortEgress])
	if got := f.inAgent(`printenv HTTPS_PROXY`); got != proxy {
		t.Errorf("HTTPS_PROXY in the VM = %q, want %q (the sidecar's published port through smolvm's gateway)", got, proxy)
	}
	sup := f.st.Lookup(resource.Address{Bottle: "vm", Kind: resource.KindMCP, Key: "supervise"})
	if want := "http://100.96.0.1:" + strconv.Itoa(pub.Ports[docker.PortSupervise]) + "/mcp"; sup == nil || sup.IDs["url"] != want {
		t.Errorf("the supervise registration's ids = %v, want url %s (known after apply)", sup, want)
	}
	if got := f.inAgent(`printenv CANARY`); got != f.canaries[1] {
		t.Errorf("the secret env granted to the agent did not reach it: CANARY = %q", got)
	}
	if got := f.inAgent(`printenv TZ; id -u`); got != "UTC\n1000" {
		t.Errorf("TZ and uid in the VM = %q, want UTC and the image's user 1000", got)
	}
	if got := f.inAgent(`test -s /etc/bottleform/ca.pem && grep -c BEGIN /etc/bottleform/ca.pem`); got != "1" {
		t.Errorf("the gateway's CA is not installed in the VM: %q", got)
	}
	if got := f.inAgent(`grep -c "insteadOf\|url" "$HOME/.bottleform/gitconfig" || true`); got != "0" {
		t.Logf("gitconfig: %s", got)
	}

	// In place: a literal changed, one removed, resources set.
	f.setSpec(testImage, []resource.EnvVar{
		{Name: "CANARY", Ref: resource.Ref{Secret: "canary"}},
		{Name: "TZ", Literal: "CET"},
	}, resource.Resources{CPUs: 1.5, Memory: 256 << 20, MemoryText: "256MiB"})
	if err := f.update(f.agentAddr()); err != nil {
		t.Fatal(err)
	}
	if got := f.inAgent(`printenv TZ; printenv GONE || echo unset; printenv CANARY`); got != "CET\nunset\n"+f.canaries[1] {
		t.Errorf("after the update, TZ, GONE and CANARY in the VM = %q", got)
	}
	st, err := e.b.cli.status(context.Background(), f.machine())
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUs != 2 || st.MemoryMiB != 256 || st.State != StateRunning {
		t.Errorf("after the update the VM has %d CPUs, %d MiB, %s; want 2, 256, running", st.CPUs, st.MemoryMiB, st.State)
	}
	f.down()
	if left, err := e.b.Objects(context.Background(), f.lineage); err != nil || len(left) > 0 {
		t.Errorf("after delete: %v %v", left, err)
	}

	var sawCreate, sawUpdate, sawDelete bool
	for _, inv := range e.invocations() {
		line := strings.Join(inv.Argv, " ")
		for _, c := range f.canaries {
			if strings.Contains(line, c) {
				t.Errorf("a secret value is on smolvm's argv: %s", line)
			}
		}
		argv := inv.Argv[1:] // smolvm's own name first
		if len(argv) < 2 || argv[0] != "machine" {
			continue
		}
		args := argv[2:]
		if i := slices.Index(args, "--"); i >= 0 {
			args = args[:i]
		}
		switch argv[1] {
		case "exec":
			if slices.Contains(args, "-n") || !slices.Contains(args, "--name") {
				t.Errorf("exec without --name, or with -n: %s", line)
			}
		case "delete", "rm":
			sawDelete = true
			if !slices.Contains(args, "-f") && !slices.Contains(args, "--force") {
				t.Errorf("delete without -f (smolvm would ask, and cancel at EOF): %s", line)
			}
		case "create":
			sawCreate = true
			if !strings.Contains(line, "--allow-cidr 100.96.0.1/32") || strings.Count(line, "--allow-cidr") != 1 {
				t.Errorf("the VM's allow-list is not the sidecar's address alone: %s", line)
			}
			if strings.Contains(line, "--net ") || strings.Contains(line, "--allow-host") {
				t.Errorf("create opens more network than the sidecar's address: %s", line)
			}
		case "update":
			sawUpdate = true
			for _, w := range []string{"-e TZ=CET", "--remove-env GONE", "--cpus 2", "--mem 256"} {
				if !strings.Contains(line, w) {
					t.Errorf("update lacks %q: %s", w, line)
				}
			}
		}
	}
	if !sawCreate || !sawUpdate || !sawDelete {
		t.Errorf("invocations: create %v, update %v, delete %v; want all three", sawCreate, sawUpdate, sawDelete)
	}
}

// TestVersionRange: the backend refuses a smolvm outside the range it was
// checked against, and on 1.9.2 (no exec --user) it needs an image whose
// user is root to install the CA.
func TestVersionRange(t *testing.T) {
	for _, v := range []string{"1.8.0", "1.15.0", "2.0.1"} {
		e := newEnv(t, v)
		_, err := e.b.Objects(context.Background(), "")
		if err == nil || !strings.Contains(err.Error(), "smolvm "+v+" is not supported") {
			t.Errorf("smolvm %s: err = %v, want a refusal naming the range", v, err)
		}
	}
	e := newEnv(t, "1.9.2")
	f := newFixture(e, testImage)
	err := f.up()
	if err == nil || !strings.Contains(err.Error(), "no `exec --user`") {
		t.Fatalf("1.9.2 with a non-root image: err = %v, want the --user explanation", err)
	}
	f.down()
	f = newFixture(e, testRootImage)
	if err := f.up(); err != nil {
		t.Fatalf("1.9.2 with a root image: %v", err)
	}
	for _, inv := range e.invocations() {
		if slices.Contains(inv.Argv, "--user") {
			t.Errorf("--user used with smolvm 1.9.2, which has none: %v", inv.Argv)
		}
	}
}

// TestFaults: each of smolvm's failure modes ends in a recovery or a
// clear error, within its deadline.
func TestFaults(t *testing.T) {
	e := newEnv(t, "1.14.0")
	e.b.startTimeout, e.b.readyTimeout = 2*time.Second, 2*time.Second
	agent := func(f *fixture) string { return f.machine() }

	t.Run("SlowFirstStart", func(t *testing.T) {
		f := newFixture(e, testImage)
		e.faults(smolvmfake.Faults{Rules: []smolvmfake.Rule{{Command: "start", DelayMs: 5000, Count: 1}}})
		start := time.Now()
		err := f.up()
		if err == nil || !strings.Contains(err.Error(), "did not finish within 2s") {
			t.Fatalf("a start slower than the deadline: err = %v", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("the slow start took %s to fail", d)
		}
		if ms, _ := e.b.Objects(context.Background(), f.lineage); len(ms) > 0 {
			t.Errorf("a failed start left %v", ms)
		}
		// A start under the deadline is only slow.
		e.faults(smolvmfake.Faults{Rules: []smolvmfake.Rule{{Command: "start", DelayMs: 500, Count: 1}}})
		if err := f.update(f.agentAddr()); err != nil {
			t.Fatalf("after the slow start: %v", err)
		}
	})

	t.Run("ExecNotReadyRace", func(t *testing.T) {
		f := newFixture(e, testImage)
		var waits []time.Duration
		e.b.sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return sleepCtx(ctx, d) }
		defer func() { e.b.sleep = sleepCtx }()
		e.faults(smolvmfake.Faults{Rules: []smolvmfake.Rule{{Command: "exec", ExecNotRunningOnce: true, Count: 3}}})
		if err := f.up(); err != nil {
			t.Fatalf("an exec that finds the machine not running just after start: %v", err)
		}
		if len(waits) != 3 || !(waits[0] < waits[1] && waits[1] < waits[2]) {
			t.Errorf("waits between readiness polls = %v, want 3, each longer than the last", waits)
		}
	})

	t.Run("NeverReady", func(t *testing.T) {
		f := newFixture(e, testImage)
		e.faults(smolvmfake.Faults{Rules: []smolvmfake.Rule{{Command: "exec", ExecNotRunningOnce: true}}})
		start := time.Now()
		err := f.up()
		var nr *NotReadyError
		if !errors.As(err, &nr) || !strings.Contains(err.Error(), "within 2s") {
			t.Fatalf("a machine that never runs commands: err = %v, want a NotReadyError naming the timeout", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %s to give up", d)
		}
		e.faults(smolvmfake.Faults{})
	})

	t.Run("Unreachable", func(t *testing.T) {
		f := newFixture(e, testImage)
		if err := f.up(); err != nil {
			t.Fatal(err)
		}
		e.faults(smolvmfake.Faults{Rules: []smolvmfake.Rule{{Command: "ls", Machine: agent(f), StateOverride: "unreachable", Count: 1}}})
		obs, err := e.b.Observe(context.Background(), f.st)
		if err != nil {
			t.Fatal(err)
		}
		if o := obs[f.agentAddr()]; o.Status != resource.StatusDegraded {
			t.Fatalf("an unreachable machine is observed %v (%s), want degraded", o.Status, o.Reason)
		}
		// The plan's repair is an update; smolvm's start recovers it.
		e.faults(smolvmfake.Faults{Rules: []smolvmfake.Rule{{Command: "status", Machine: agent(f), StateOverride: "unreachable", Count: 1}}})
		if err := f.update(f.agentAddr()); err != nil {
			t.Fatalf("update of an unreachable machine: %v", err)
		}
		obs, _ = e.b.Observe(context.Background(), f.st)
		if o := obs[f.agentAddr()]; o.Status != resource.StatusPresent {
			t.Errorf("after the update the machine is %v (%s)", o.Status, o.Reason)
		}
	})

	t.Run("StartFails", func(t *testing.T) {
		f := newFixture(e, testImage)
		e.faults(smolvmfake.Faults{Rules: []smolvmfake.Rule{{Command: "start", Count: 1, Fail: &smolvmfake.Fail{Exit: 1, Stderr: "Error: agent operation failed: start machine: krun_start_enter returned: -22\n"}}}})
		err := f.up()
		var se *Error
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "krun_start_enter returned: -22") {
			t.Fatalf("a failing start: err = %v, want smolvm's message", err)
		}
		if ms, _ := e.b.Objects(context.Background(), f.lineage); len(ms) > 0 {
			t.Errorf("a failed start left %v", ms)
		}
		if err := f.update(f.agentAddr()); err != nil {
			t.Fatalf("the next apply: %v", err)
		}
		e.faults(smolvmfake.Faults{Rules: []smolvmfake.Rule{{Command: "start", StartFailsAfterBoot: true, Count: 1}}})
		op := f.op(f.agentAddr())
		op.Prior = nil
		if _, err := e.b.Create(context.Background(), op); err == nil || !strings.Contains(err.Error(), "never became ready") {
			t.Fatalf("a start that fails after boot: err = %v", err)
		}
		if err := f.update(f.agentAddr()); err != nil {
			t.Fatalf("the next apply after a failed boot: %v", err)
		}
	})
}

// TestSidecarPortsTaken: a sidecar made again asks for its old ports; when
// someone holds one meanwhile it publishes on new ones, and the agent's
// update (which the plan schedules) stops the VM, gives it the new proxy
// URL with `machine update` and starts it.
func TestSidecarPortsTaken(t *testing.T) {
	e := newEnv(t, "1.14.0")
	f := newFixture(e, testImage)
	if err := f.up(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sc := resource.Address{Bottle: "vm", Kind: resource.KindSidecar}
	old, err := e.d.SidecarPublished(ctx, f.lineage, "vm")
	if err != nil {
		t.Fatal(err)
	}
	// Made again with its ports free: the same ports.
	op := f.op(sc)
	if err := e.d.RemoveSidecar(ctx, op); err != nil {
		t.Fatal(err)
	}
	if err := f.update(sc); err != nil {
		t.Fatal(err)
	}
	if again, _ := e.d.SidecarPublished(ctx, f.lineage, "vm"); again.Ports[docker.PortEgress] != old.Ports[docker.PortEgress] {
		t.Errorf("a sidecar made again moved from port %d to %d", old.Ports[docker.PortEgress], again.Ports[docker.PortEgress])
	}
	// Made again while its egress port is taken.
	if err := e.d.RemoveSidecar(ctx, f.op(sc)); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(old.Ports[docker.PortEgress]))
	if err != nil {
		t.Fatalf("take the old port: %v", err)
	}
	defer l.Close()
	if err := f.update(sc); err != nil {
		t.Fatalf("a sidecar whose port is taken: %v", err)
	}
	moved, err := e.d.SidecarPublished(ctx, f.lineage, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if moved.Ports[docker.PortEgress] == old.Ports[docker.PortEgress] {
		t.Fatalf("the sidecar kept port %d, which the test holds", old.Ports[docker.PortEgress])
	}
	if err := f.update(f.agentAddr()); err != nil {
		t.Fatal(err)
	}
	want := "http://100.96.0.1:" + strconv.Itoa(moved.Ports[docker.PortEgress])
	if got := f.inAgent(`printenv HTTPS_PROXY`); got != want {
		t.Errorf("after the agent's update HTTPS_PROXY = %q, want %q", got, want)
	}
	var updates int
	for _, inv := range e.invocations() {
		if len(inv.Argv) > 2 && inv.Argv[2] == "update" {
			updates++
			if !strings.Contains(strings.Join(inv.Argv, " "), "-e HTTPS_PROXY="+want) {
				t.Errorf("update without the new proxy: %v", inv.Argv)
			}
		}
	}
	if updates != 1 {
		t.Errorf("%d machine updates, want 1 (the ports changed once)", updates)
	}
}
