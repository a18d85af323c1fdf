package backendtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// fakeHarness runs the conformance suite against a Fake: out-of-band
// actions are the fake's own controls.
type fakeHarness struct{ f *Fake }

func (h fakeHarness) Backend() applier.Backend { return h.f }
func (h fakeHarness) NewLineage() string       { return uuid.NewString() }

func (h fakeHarness) Stop(t testing.TB, lineage string, addr resource.Address) {
	t.Helper()
	if err := h.f.Stop(lineage, addr); err != nil {
		t.Fatal(err)
	}
}

func (h fakeHarness) Remove(t testing.TB, lineage string, addr resource.Address) {
	t.Helper()
	if err := h.f.Remove(lineage, addr); err != nil {
		t.Fatal(err)
	}
}

func (h fakeHarness) Objects(t testing.TB, lineage string) []string {
	var out []string
	for _, a := range h.f.Objects(lineage) {
		out = append(out, a.String())
	}
	return out
}

func (h fakeHarness) Bottle(name string) *resource.Bottle {
	return MinimalBottle(name, resource.BackendDocker, "bottleform-agent:test")
}

func TestConformance(t *testing.T) {
	Run(t, fakeHarness{f: &Fake{}})
}

// The fake's own rules, beyond what the suite asks of every backend.

const lin = "6f1c0a52-0000-4000-8000-000000000001"

func addr(kind resource.Kind) resource.Address {
	return resource.Address{Bottle: "x", Kind: kind}
}

func op(lineage string, a resource.Address) *applier.Op {
	return &applier.Op{Addr: a, Lineage: lineage, Attrs: resource.Attrs{"kind": resource.String(a.Kind.String())}}
}

// steps runs "create network"-style steps and fails on the first error.
func steps(t *testing.T, f *Fake, lineage string, list ...string) {
	t.Helper()
	for _, s := range list {
		if err := step(f, lineage, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func step(f *Fake, lineage, s string) error {
	var verb, kind string
	if _, err := fmt.Sscan(s, &verb, &kind); err != nil {
		panic(err)
	}
	var k resource.Kind
	for c := resource.KindNetwork; c <= resource.KindMCP; c++ {
		if c.String() == kind {
			k = c
		}
	}
	a := addr(k)
	if k.Keyed() {
		a.Key = "k"
	}
	ctx := context.Background()
	var err error
	switch verb {
	case OpCreate:
		_, err = f.Create(ctx, op(lineage, a))
	case OpUpdate:
		_, err = f.Update(ctx, op(lineage, a))
	case OpDelete:
		err = f.Delete(ctx, op(lineage, a))
	default:
		panic(verb)
	}
	return err
}

var errAny = errors.New("any error")

func TestFakeRules(t *testing.T) {
	tests := []struct {
		name    string
		setup   []string
		step    string
		wantErr error // nil: must succeed; errAny: must fail
	}{
		{"prompt without agent", []string{"create network", "create sidecar"}, "create prompt", ErrNotFound},
		{"skill without agent", []string{"create network", "create sidecar"}, "create skill", ErrNotFound},
		{"mcp without agent", []string{"create network", "create sidecar"}, "create mcp", ErrNotFound},
		{"prompt update without agent", []string{"create network", "create sidecar"}, "update prompt", ErrNotFound},
		{"prompt with agent", []string{"create network", "create agent"}, "create prompt", nil},
		{"agent without network", nil, "create agent", ErrNotFound},
		{"sidecar without network", nil, "create sidecar", ErrNotFound},
		{"egress without sidecar", []string{"create network"}, "create egress", ErrNotFound},
		{"auth without sidecar", []string{"create network"}, "create auth", ErrNotFound},
		// The applier writes auth before it creates the agent.
		{"auth before agent", []string{"create network", "create sidecar"}, "create auth", nil},
		{"update missing agent", []string{"create network"}, "update agent", ErrNotFound},
		{"update missing network", nil, "update network", ErrNotFound},
		{"update egress without a sidecar", []string{"create network"}, "update egress", ErrNotFound},
		// The planner asks for this once a sidecar is new: its configuration is delivered whole.
		{"update egress gone with its sidecar", []string{"create network", "create sidecar", "create egress", "delete sidecar", "create sidecar"}, "update egress", nil},
		// The planner asks for this once an agent is new: files are written whole.
		{"update prompt gone with its agent", []string{"create network", "create agent", "create prompt", "delete agent", "create agent"}, "update prompt", nil},
		{"delete missing", nil, "delete agent", nil},
		{"delete network with containers", []string{"create network", "create sidecar"}, "delete network", errAny},
		{"create again", []string{"create network", "create network"}, "create network", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &Fake{}
			steps(t, f, lin, tc.setup...)
			err := step(f, lin, tc.step)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("%s: %v", tc.step, err)
			case tc.wantErr == errAny && err == nil:
				t.Fatalf("%s succeeded, want an error", tc.step)
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("%s: got %v, want %v", tc.step, err, tc.wantErr)
			}
		})
	}
}

func TestFakeCreateAdopts(t *testing.T) {
	f := &Fake{}
	steps(t, f, lin, "create network", "create sidecar", "create agent", "create prompt")
	ctx := context.Background()
	first, err := f.Create(ctx, op(lin, addr(resource.KindAgent)))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(lin, addr(resource.KindAgent)); err != nil {
		t.Fatal(err)
	}
	again := op(lin, addr(resource.KindAgent))
	again.Attrs = resource.Attrs{"image": resource.String("new")}
	second, err := f.Create(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if first["id"] == "" || first["id"] != second["id"] {
		t.Errorf("ids: first %v, again %v; want the same object adopted", first, second)
	}
	want := []resource.Address{addr(resource.KindNetwork), addr(resource.KindSidecar), addr(resource.KindAgent), addr(resource.KindPrompt)}
	if got := f.Objects(lin); !slices.Equal(got, want) {
		t.Errorf("objects = %v, want %v", got, want)
	}
	st := &state.State{Lineage: lin}
	st.Set(resource.BackendDocker, &state.Resource{Addr: addr(resource.KindAgent), Digest: again.Attrs.Digest()})
	obs, err := f.Observe(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if ob := obs[addr(resource.KindAgent)]; ob.Status != resource.StatusPresent {
		t.Errorf("adopted agent is %v (%s), want present and running", ob.Status, ob.Reason)
	}
}

func TestFakeObserve(t *testing.T) {
	ctx := context.Background()
	f := &Fake{Backend: resource.BackendDocker}
	steps(t, f, lin, "create network", "create sidecar", "create egress", "create auth", "create agent", "create prompt")
	st := &state.State{Lineage: lin}
	for _, a := range f.Objects(lin) {
		st.Set(resource.BackendDocker, &state.Resource{Addr: a, Digest: op(lin, a).Attrs.Digest()})
	}
	// A bottle on another backend is not this fake's to observe.
	st.Set(resource.BackendSmolmachines, &state.Resource{Addr: resource.Address{Bottle: "vm", Kind: resource.KindAgent}})

	if err := f.Tamper(lin, addr(resource.KindSidecar)); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(lin, addr(resource.KindAgent)); err != nil {
		t.Fatal(err)
	}
	obs, err := f.Observe(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]resource.ObjectStatus{
		`bottle.x.network`:     resource.StatusPresent,
		`bottle.x.sidecar`:     resource.StatusChanged,
		`bottle.x.egress["k"]`: resource.StatusPresent,
		`bottle.x.auth`:        resource.StatusPresent,
		`bottle.x.agent`:       resource.StatusStopped,
		`bottle.x.prompt`:      resource.StatusPresent,
	}
	checkObserved(t, obs, want)

	if err := f.Remove(lin, addr(resource.KindAgent)); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(lin, addr(resource.KindNetwork)); err == nil {
		t.Error("removing a network with the sidecar attached succeeded")
	}
	obs, err = f.Observe(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	want[`bottle.x.agent`] = resource.StatusMissing
	want[`bottle.x.auth`] = resource.StatusMissing
	want[`bottle.x.prompt`] = resource.StatusMissing
	checkObserved(t, obs, want)

	// The sidecar takes its routes with it.
	if err := f.Delete(ctx, op(lin, addr(resource.KindSidecar))); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Objects(lin), []resource.Address{addr(resource.KindNetwork)}; !slices.Equal(got, want) {
		t.Errorf("objects after deleting the sidecar = %v, want %v", got, want)
	}

	for _, control := range []func(string, resource.Address) error{f.Stop, f.Remove, f.Tamper} {
		if err := control(lin, addr(resource.KindAgent)); !errors.Is(err, ErrNotFound) {
			t.Errorf("out-of-band action on a missing agent: %v, want ErrNotFound", err)
		}
	}
	if err := f.Stop(lin, addr(resource.KindNetwork)); err == nil {
		t.Error("stopping a network succeeded")
	}
}

func checkObserved(t *testing.T, obs resource.Observed, want map[string]resource.ObjectStatus) {
	t.Helper()
	if len(obs) != len(want) {
		t.Errorf("observed %d objects, want %d: %v", len(obs), len(want), obs)
	}
	for a, ob := range obs {
		if w := want[a.String()]; ob.Status != w {
			t.Errorf("%s: %v (%s), want %v", a, ob.Status, ob.Reason, w)
		}
	}
}

func TestFakeFailNext(t *testing.T) {
	ctx := context.Background()
	f := &Fake{}
	boom := errors.New("boom")
	f.FailNext(resource.KindAgent, OpCreate, boom)
	f.FailNext(0, OpObserve, boom)

	steps(t, f, lin, "create network", "create sidecar", "update sidecar")
	if err := step(f, lin, "create agent"); !errors.Is(err, boom) {
		t.Fatalf("create agent: %v, want the injected error", err)
	}
	if slices.Contains(f.Objects(lin), addr(resource.KindAgent)) {
		t.Fatal("a failed create left an agent behind")
	}
	steps(t, f, lin, "create agent") // the fault was used up
	if _, err := f.Observe(ctx, nil); !errors.Is(err, boom) {
		t.Fatalf("observe: %v, want the injected error", err)
	}
	if _, err := f.Observe(ctx, nil); err != nil {
		t.Fatalf("observe again: %v", err)
	}

	// Any kind, and faults queue.
	f.FailNext(0, OpDelete, boom)
	f.FailNext(0, OpDelete, boom)
	for i := range 2 {
		if err := step(f, lin, "delete agent"); !errors.Is(err, boom) {
			t.Fatalf("delete %d: %v, want the injected error", i, err)
		}
	}
	steps(t, f, lin, "delete agent")
}

func TestFakeCallLog(t *testing.T) {
	f := &Fake{}
	// The applier's replace of an agent: delete it (its files go with
	// it), write auth, create it, provision the prompt again.
	steps(t, f, lin,
		"create network", "create sidecar", "create auth", "create agent", "create prompt",
		"delete agent", "update auth", "create agent", "update prompt")
	_ = step(f, lin, "create mcp")
	f.FailNext(resource.KindNetwork, OpDelete, errors.New("boom"))
	_ = step(f, lin, "delete network")
	if _, err := f.Observe(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"create bottle.x.network", "create bottle.x.sidecar", "create bottle.x.auth",
		"create bottle.x.agent", "create bottle.x.prompt", "delete bottle.x.agent",
		"update bottle.x.auth", "create bottle.x.agent", "update bottle.x.prompt",
		`create bottle.x.mcp["k"]`, "delete bottle.x.network", "observe",
	}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls:\n got %q\nwant %q", got, want)
	}
	wantObjects := []resource.Address{addr(resource.KindNetwork), addr(resource.KindSidecar), addr(resource.KindAuth),
		addr(resource.KindAgent), addr(resource.KindPrompt), {Bottle: "x", Kind: resource.KindMCP, Key: "k"}}
	if got := f.Objects(lin); !slices.Equal(got, wantObjects) {
		t.Errorf("objects = %v, want %v", got, wantObjects)
	}
}

func TestFakeBadOps(t *testing.T) {
	ctx := context.Background()
	f := &Fake{}
	if _, err := f.Create(ctx, op("", addr(resource.KindNetwork))); err == nil {
		t.Error("create without a lineage succeeded")
	}
	if _, err := f.Create(ctx, op(lin, resource.BottleAddr("x"))); err == nil {
		t.Error("create of a whole bottle succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Create(cancelled, op(lin, addr(resource.KindNetwork))); !errors.Is(err, context.Canceled) {
		t.Errorf("create with a cancelled context: %v", err)
	}
	if len(f.Objects(lin)) != 0 {
		t.Errorf("bad ops created %v", f.Objects(lin))
	}
}

// TestFakeParallel is for -race: bottles of several lineages brought up,
// disturbed, observed and torn down at once, as the applier does.
func TestFakeParallel(t *testing.T) {
	f := &Fake{}
	h := fakeHarness{f: f}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lineage := uuid.NewString()
			name := fmt.Sprintf("b%d", i)
			spec := h.Bottle(name)
			b := &bottle{t: t, h: h, be: f, lineage: lineage, spec: spec, objs: orderedObjects(spec),
				st: &state.State{Lineage: lineage}, last: map[resource.Address]*state.Resource{}}
			for range 20 {
				if err := upErr(b); err != nil {
					t.Error(err)
					return
				}
				_ = f.Stop(lineage, b.addr(resource.KindAgent))
				_ = f.Tamper(lineage, b.addr(resource.KindSidecar))
				if _, err := f.Observe(context.Background(), b.st); err != nil {
					t.Error(err)
				}
				_ = f.Calls()
				_ = f.Objects(lineage)
				for j := len(b.objs) - 1; j >= 0; j-- {
					if err := f.Delete(context.Background(), b.op(b.objs[j].Addr)); err != nil {
						t.Error(err)
					}
				}
				if left := f.Objects(lineage); len(left) > 0 {
					t.Errorf("lineage %s left %v", lineage, left)
				}
			}
		}()
	}
	wg.Wait()
}

func upErr(b *bottle) error {
	for _, o := range b.objs {
		op := b.op(o.Addr)
		op.Attrs = o.Attrs
		if _, err := b.be.Create(context.Background(), op); err != nil {
			return fmt.Errorf("create %s: %w", o.Addr, err)
		}
	}
	return nil
}
