package backendtest

import (
	"context"
	"sort"
	"testing"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// Harness is what the conformance suite needs of one runtime: the backend
// under test, and out-of-band access to the runtime behind it.
type Harness interface {
	// Backend is the backend under test.
	Backend() applier.Backend
	// NewLineage returns a lineage no call returned before (a UUID), so
	// that subtests never see each other's objects.
	NewLineage() string
	// Stop stops a container (the sidecar or the agent) out of band.
	Stop(t testing.TB, lineage string, addr resource.Address)
	// Remove removes an object out of band, as `docker rm -f` would.
	Remove(t testing.TB, lineage string, addr resource.Address)
	// Objects lists what exists on the runtime with lineage's labels
	// (networks, containers, VMs: whatever the backend creates), for leak
	// checks and counts; the strings are only compared and printed.
	Objects(t testing.TB, lineage string) []string
	// Bottle returns a minimal valid effective bottle called name that the
	// runtime can run: an image it has, at least one egress route, a
	// prompt (see MinimalBottle).
	Bottle(name string) *resource.Bottle
}

// MinimalBottle is the bottle a harness can return from Bottle: a claude
// agent on backend running image, one declared egress route, a prompt,
// with the provider's routes merged in as planner.Effective does.
func MinimalBottle(name, backend, image string) *resource.Bottle {
	b, _ := planner.Effective(&resource.Bottle{
		Name:    name,
		Backend: backend,
		Image:   image,
		Agent:   resource.AgentSpec{Provider: resource.ProviderClaude},
		Egress:  []resource.Route{{Host: "deb.debian.org", TLS: resource.TLSIntercept}},
		Prompt:  "You are a conformance test. Do nothing.\n",
	})
	return b
}

// createOrder is the order the suite creates a bottle's objects in: the
// applier's. Deletion runs the other way.
var createOrder = []resource.Kind{
	resource.KindNetwork, resource.KindSidecar, resource.KindDeployKey, resource.KindEgress,
	resource.KindGit, resource.KindAuth, resource.KindAgent, resource.KindPrompt,
	resource.KindSkill, resource.KindMCP,
}

func rank(k resource.Kind) int {
	for i, o := range createOrder {
		if o == k {
			return i
		}
	}
	return len(createOrder)
}

// Run is the conformance suite: every backend passes it. Each subtest
// brings up its own bottle under a new lineage, and deletes it at the end,
// failing if the runtime is left with anything of that lineage.
func Run(t *testing.T, h Harness) {
	t.Run("CreateInOrder", func(t *testing.T) {
		b := newBottle(t, h)
		b.up()
		if len(b.runtime()) == 0 {
			t.Fatal("nothing exists on the runtime after every object was created")
		}
		b.wantClean(b.observe())
	})

	t.Run("CreateIsIdempotent", func(t *testing.T) {
		b := newBottle(t, h)
		b.up()
		before := b.runtime()
		// An apply interrupted before its state was saved repeats every
		// call: each object is adopted or recreated, never duplicated.
		for _, o := range b.objs {
			b.create(o.Addr)
		}
		if after := b.runtime(); len(after) != len(before) {
			t.Fatalf("creating every object again changed what exists on the runtime\nbefore: %v\nafter:  %v", before, after)
		}
		b.wantClean(b.observe())
	})

	t.Run("StoppedAgentIsStartedByUpdate", func(t *testing.T) {
		b := newBottle(t, h)
		b.up()
		agent := b.addr(resource.KindAgent)
		h.Stop(t, b.lineage, agent)
		obs := b.observe()
		b.wantStatus(obs, agent, resource.StatusStopped)
		b.wantClean(obs, resource.KindNetwork, resource.KindSidecar)
		b.update(agent)
		b.wantClean(b.observe())
	})

	t.Run("RemovedAgentIsCreatedAgain", func(t *testing.T) {
		b := newBottle(t, h)
		b.up()
		agent := b.addr(resource.KindAgent)
		h.Remove(t, b.lineage, agent)
		obs := b.observe()
		b.wantStatus(obs, agent, resource.StatusMissing)
		b.wantClean(obs, resource.KindNetwork, resource.KindSidecar)
		// What lived in the agent went with it: a backend may leave it out
		// of Observe, but must not call it present.
		for _, o := range b.objs {
			if ob, ok := obs[o.Addr]; ok && o.Addr.Kind.InAgent() && ob.Status == resource.StatusPresent {
				t.Errorf("Observe says %s is present, but the agent it lives in was removed", o.Addr)
			}
		}
		// As the applier would: create the agent and what lives in it, in
		// create order.
		for _, o := range b.objs {
			if o.Addr.Kind == resource.KindAgent || o.Addr.Kind.InAgent() {
				b.create(o.Addr)
			}
		}
		b.wantClean(b.observe())
	})

	t.Run("DigestMismatchIsChanged", func(t *testing.T) {
		b := newBottle(t, h)
		b.up()
		agent := b.addr(resource.KindAgent)
		// The state says the agent was made from another image than the
		// live one was: a backend labels what it made with a digest of
		// (at least) the attributes that replace it.
		r := b.st.Lookup(agent)
		attrs := resource.Attrs{}
		for k, v := range r.Attrs {
			attrs[k] = v
		}
		attrs["image"] = resource.String("not-what-was-applied")
		r.Attrs, r.Digest = attrs, attrs.Digest()
		obs := b.observe()
		b.wantStatus(obs, agent, resource.StatusChanged)
		b.wantClean(obs, resource.KindNetwork, resource.KindSidecar)
	})

	t.Run("DeleteInReverseOrder", func(t *testing.T) {
		b := newBottle(t, h)
		b.up()
		prior := b.st.Resources()
		b.down()
		if left := b.runtime(); len(left) > 0 {
			t.Fatalf("after deleting every object, the runtime still has %v", left)
		}
		if rs := b.st.Resources(); len(rs) > 0 {
			t.Fatalf("suite bug: state still has %d resources", len(rs))
		}
		// An apply interrupted after the delete but before the state save
		// deletes again.
		sortDeleteOrder(prior)
		for _, r := range prior {
			op := b.op(r.Addr)
			op.Bottle, op.Attrs, op.Prior = nil, nil, r
			if err := b.be.Delete(context.Background(), op); err != nil {
				t.Errorf("delete %s again: %v", r.Addr, err)
			}
		}
		if left := b.runtime(); len(left) > 0 {
			t.Fatalf("after deleting every object twice, the runtime still has %v", left)
		}
	})

	t.Run("LineagesAreSeparate", func(t *testing.T) {
		one, two := newBottle(t, h), newBottle(t, h)
		if one.lineage == two.lineage {
			t.Fatalf("NewLineage returned %q twice", one.lineage)
		}
		one.up()
		two.up()
		twoObjects := two.runtime()
		one.wantClean(one.observe())
		two.wantClean(two.observe())

		// Another lineage's state naming the same addresses sees nothing.
		other := &state.State{Lineage: h.NewLineage(), Bottles: map[string]*state.Bottle{}}
		for _, r := range two.st.Resources() {
			cp := *r
			other.Set(two.spec.Backend, &cp)
		}
		obs, err := two.be.Observe(context.Background(), other)
		if err != nil {
			t.Fatalf("observe: %v", err)
		}
		for _, r := range other.Resources() {
			if ob, ok := obs[r.Addr]; ok && ob.Status == resource.StatusPresent {
				t.Errorf("Observe of lineage %s says %s is present, but only lineage %s has it", other.Lineage, r.Addr, two.lineage)
			}
		}
		if ob := obs[two.addr(resource.KindAgent)]; ob.Status != resource.StatusMissing {
			t.Errorf("Observe of a lineage with nothing: %s is %v, want missing", two.addr(resource.KindAgent), ob.Status)
		}

		// What happens to one lineage leaves the other alone.
		h.Remove(t, one.lineage, one.addr(resource.KindAgent))
		one.wantStatus(one.observe(), one.addr(resource.KindAgent), resource.StatusMissing)
		two.wantClean(two.observe())
		one.down()
		if after := two.runtime(); len(after) != len(twoObjects) {
			t.Fatalf("deleting lineage %s changed lineage %s's objects\nbefore: %v\nafter:  %v", one.lineage, two.lineage, twoObjects, after)
		}
		two.wantClean(two.observe())
	})
}

// bottle is one bottle of one lineage, with the state the suite keeps of
// it as an apply would.
type bottle struct {
	t       testing.TB
	h       Harness
	be      applier.Backend
	lineage string
	spec    *resource.Bottle
	objs    []resource.Object // in create order
	st      *state.State
	// last is every resource ever recorded, for the cleanup.
	last map[resource.Address]*state.Resource
}

func newBottle(t testing.TB, h Harness) *bottle {
	t.Helper()
	spec := h.Bottle("suite")
	if spec == nil {
		t.Fatal("harness returned no bottle")
	}
	b := &bottle{
		t: t, h: h, be: h.Backend(), lineage: h.NewLineage(), spec: spec, objs: orderedObjects(spec),
		last: map[resource.Address]*state.Resource{},
	}
	b.st = &state.State{Lineage: b.lineage, Bottles: map[string]*state.Bottle{}}
	t.Cleanup(func() {
		var all []*state.Resource
		for _, r := range b.last {
			all = append(all, r)
		}
		sortDeleteOrder(all)
		for _, r := range all {
			op := b.op(r.Addr)
			op.Bottle, op.Attrs, op.Prior = nil, nil, r
			if err := b.be.Delete(context.Background(), op); err != nil {
				t.Errorf("cleanup: delete %s: %v", r.Addr, err)
			}
		}
		if left := h.Objects(t, b.lineage); len(left) > 0 {
			t.Errorf("lineage %s leaked %v", b.lineage, left)
		}
	})
	return b
}

// orderedObjects returns the objects of spec in create order.
func orderedObjects(spec *resource.Bottle) []resource.Object {
	objs := planner.Objects(spec)
	sort.SliceStable(objs, func(i, j int) bool { return rank(objs[i].Addr.Kind) < rank(objs[j].Addr.Kind) })
	return objs
}

func sortDeleteOrder(rs []*state.Resource) {
	sort.SliceStable(rs, func(i, j int) bool { return rank(rs[i].Addr.Kind) > rank(rs[j].Addr.Kind) })
}

func (b *bottle) addr(k resource.Kind) resource.Address {
	return resource.Address{Bottle: b.spec.Name, Kind: k}
}

func (b *bottle) attrs(addr resource.Address) resource.Attrs {
	for _, o := range b.objs {
		if o.Addr == addr {
			return o.Attrs
		}
	}
	b.t.Fatalf("suite bug: %s is not an object of the bottle", addr)
	return nil
}

// op builds the step an apply would send for addr, with the state as it
// is now.
func (b *bottle) op(addr resource.Address) *applier.Op {
	op := &applier.Op{
		Addr:    addr,
		Lineage: b.lineage,
		Bottle:  b.spec,
		Warn:    func(msg string) { b.t.Logf("warning from %s: %s", addr, msg) },
	}
	if r := b.st.Lookup(addr); r != nil {
		cp := *r
		op.Prior = &cp
	}
	if sb := b.st.Bottles[addr.Bottle]; sb != nil {
		for _, r := range sb.Resources {
			cp := *r
			op.Resources = append(op.Resources, &cp)
		}
	}
	return op
}

func (b *bottle) record(addr resource.Address, attrs resource.Attrs, ids map[string]string) {
	if ids == nil {
		if prior := b.st.Lookup(addr); prior != nil {
			ids = prior.IDs
		}
	}
	r := &state.Resource{Addr: addr, Attrs: attrs, Digest: attrs.Digest(), IDs: ids}
	b.st.Set(b.spec.Backend, r)
	b.last[addr] = r
}

// create creates addr as an apply whose state has no record of it would
// (a first apply, or one repeating a step its state save never followed).
func (b *bottle) create(addr resource.Address) {
	b.t.Helper()
	op := b.op(addr)
	op.Attrs = b.attrs(addr)
	op.Prior = nil
	ids, err := b.be.Create(context.Background(), op)
	if err != nil {
		b.t.Fatalf("create %s: %v", addr, err)
	}
	b.record(addr, op.Attrs, ids)
}

func (b *bottle) update(addr resource.Address) {
	b.t.Helper()
	op := b.op(addr)
	op.Attrs = b.attrs(addr)
	ids, err := b.be.Update(context.Background(), op)
	if err != nil {
		b.t.Fatalf("update %s: %v", addr, err)
	}
	b.record(addr, op.Attrs, ids)
}

// delete deletes addr as a destroy would: no desired bottle or attrs.
func (b *bottle) delete(addr resource.Address) {
	b.t.Helper()
	op := b.op(addr)
	op.Bottle = nil
	if err := b.be.Delete(context.Background(), op); err != nil {
		b.t.Fatalf("delete %s: %v", addr, err)
	}
	b.st.Remove(addr)
}

// up creates every object in create order.
func (b *bottle) up() {
	b.t.Helper()
	for _, o := range b.objs {
		b.create(o.Addr)
	}
}

// down deletes every object in reverse create order.
func (b *bottle) down() {
	b.t.Helper()
	for i := len(b.objs) - 1; i >= 0; i-- {
		b.delete(b.objs[i].Addr)
	}
}

func (b *bottle) runtime() []string {
	b.t.Helper()
	return b.h.Objects(b.t, b.lineage)
}

func (b *bottle) observe() resource.Observed {
	b.t.Helper()
	obs, err := b.be.Observe(context.Background(), b.st)
	if err != nil {
		b.t.Fatalf("observe: %v", err)
	}
	for addr, ob := range obs {
		if ob.Addr != addr {
			b.t.Errorf("Observe keyed an observation of %s under %s", ob.Addr, addr)
		}
		if b.st.Lookup(addr) == nil {
			b.t.Errorf("Observe reported %s (%v), which the state does not record", addr, ob.Status)
		}
	}
	return obs
}

// wantClean fails if any observation (of the given kinds, or of every kind
// when none are given) is other than present.
func (b *bottle) wantClean(obs resource.Observed, kinds ...resource.Kind) {
	b.t.Helper()
	addrs := make([]resource.Address, 0, len(obs))
	for a := range obs {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, a := range addrs {
		if len(kinds) > 0 && !hasKind(kinds, a.Kind) {
			continue
		}
		if ob := obs[a]; ob.Status != resource.StatusPresent {
			b.t.Errorf("Observe: %s is %v (%s), want present", a, ob.Status, ob.Reason)
		}
	}
}

func (b *bottle) wantStatus(obs resource.Observed, addr resource.Address, want resource.ObjectStatus) {
	b.t.Helper()
	ob, ok := obs[addr]
	if !ok {
		b.t.Errorf("Observe said nothing of %s, want %v", addr, want)
		return
	}
	if ob.Status != want {
		b.t.Errorf("Observe: %s is %v (%s), want %v", addr, ob.Status, ob.Reason, want)
	}
}

func hasKind(ks []resource.Kind, k resource.Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}
