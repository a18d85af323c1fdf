package backendtest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// ErrNotFound is returned when an operation needs an object that does not
// exist: an update of a missing object, a file written into a missing
// agent, an out-of-band action on nothing.
var ErrNotFound = errors.New("no such object")

// Operations, as FailNext and the call log name them.
const (
	OpCreate  = "create"
	OpUpdate  = "update"
	OpDelete  = "delete"
	OpObserve = "observe"
)

// Fake is an in-memory applier.Backend that keeps the rules a real runtime
// keeps, so that a test of the applier fails where a real apply would. The
// zero value is ready to use. It is safe for concurrent use.
//
//   - Objects are kept per (lineage, address) with the digest of the attrs
//     they were last created or updated with; Observe compares it with the
//     state's Digest. Two lineages never see each other's objects.
//   - The network holds the containers (sidecar, agent): creating one needs
//     it, and deleting it while a container is attached fails.
//   - Egress routes and git entries are configuration of the sidecar's
//     gateway: writing one needs the sidecar, and they go when it goes.
//   - Prompt, skills and MCP registrations are files in the agent: writing
//     one needs the agent (like exec into a missing container), and they go
//     when it goes. Auth goes with the agent too, but it is written before
//     the agent is created (the applier's order: its placeholders are part
//     of the agent's spec, its token goes to the gateway), so writing it
//     needs the sidecar, not the agent.
//   - Create is idempotent: an object left by an interrupted run is adopted
//     (new digest, started, same id, contents kept), never duplicated.
//     Delete of a missing object is nil.
//   - Update starts a stopped container. Update of a missing network,
//     container or deploy key fails with ErrNotFound. A file in the agent,
//     or a route or git entry in the sidecar's configuration, is written
//     whole, so updating one that went with its host provisions it again,
//     as the planner asks once the agent or the sidecar is new.
type Fake struct {
	// Backend, if set, is the backend name this fake stands for: Observe
	// looks only at state bottles whose Backend is this. Empty looks at all.
	Backend string

	mu      sync.Mutex
	objects map[objectKey]*object
	calls   []string
	faults  []fault
	nextID  int
}

var _ applier.Backend = (*Fake)(nil)

type objectKey struct {
	lineage string
	addr    resource.Address
}

type object struct {
	digest  string
	running bool // containers only
	ids     map[string]string
}

type fault struct {
	kind resource.Kind // 0: any kind
	op   string
	err  error
}

// container reports whether objects of kind k run (and can be stopped).
func container(k resource.Kind) bool {
	return k == resource.KindSidecar || k == resource.KindAgent
}

// host is the object that objects of kind k live in and go away with, or
// 0 for an object that stands on its own.
func host(k resource.Kind) resource.Kind {
	switch {
	case k.InAgent():
		return resource.KindAgent
	case k == resource.KindEgress || k == resource.KindGit:
		return resource.KindSidecar
	}
	return 0
}

// needs is the object that must exist to create or update one of kind k.
func needs(k resource.Kind) resource.Kind {
	switch {
	case container(k):
		return resource.KindNetwork
	case k == resource.KindAuth:
		return resource.KindSidecar
	}
	return host(k)
}

// FailNext makes the next op ("create", "update", "delete" or "observe")
// on an object of kind k fail with err, changing nothing. Kind 0 matches
// any kind (and observe ignores it). Faults queue up: each fails one call.
func (f *Fake) FailNext(k resource.Kind, op string, err error) {
	switch op {
	case OpCreate, OpUpdate, OpDelete, OpObserve:
	default:
		panic("backendtest: FailNext: unknown op " + strconv.Quote(op))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fault{kind: k, op: op, err: err})
}

// Calls returns the calls made so far, in order, one per call whether it
// failed or not: "create bottle.x.network", "delete bottle.x.agent",
// "observe".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Objects returns the addresses of the objects that exist for lineage,
// sorted.
func (f *Fake) Objects(lineage string) []resource.Address {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []resource.Address
	for k := range f.objects {
		if k.lineage == lineage {
			out = append(out, k.addr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// Stop stops a container out of band, as `docker stop` would.
func (f *Fake) Stop(lineage string, addr resource.Address) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.objects[objectKey{lineage, addr}]
	if o == nil {
		return fmt.Errorf("stop %s: %w", addr, ErrNotFound)
	}
	if !container(addr.Kind) {
		return fmt.Errorf("stop %s: only the sidecar and the agent run", addr)
	}
	o.running = false
	return nil
}

// Remove removes an object out of band, as `docker rm -f` would, with
// what lives in it. It refuses a network that a container is attached to.
func (f *Fake) Remove(lineage string, addr resource.Address) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.objects[objectKey{lineage, addr}] == nil {
		return fmt.Errorf("remove %s: %w", addr, ErrNotFound)
	}
	if err := f.remove(lineage, addr); err != nil {
		return fmt.Errorf("remove %s: %w", addr, err)
	}
	return nil
}

// Tamper changes the digest an object is labelled with, as an edit made
// out of band would.
func (f *Fake) Tamper(lineage string, addr resource.Address) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.objects[objectKey{lineage, addr}]
	if o == nil {
		return fmt.Errorf("tamper %s: %w", addr, ErrNotFound)
	}
	o.digest = "tampered:" + o.digest
	return nil
}

// Observe reports, for every resource of s (of the bottles on this
// backend), Present, Missing, Stopped or Changed.
func (f *Fake) Observe(ctx context.Context, s *state.State) (resource.Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, OpObserve)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := f.fault(0, OpObserve); err != nil {
		return nil, err
	}
	obs := resource.Observed{}
	if s == nil {
		return obs, nil
	}
	for _, b := range s.Bottles {
		if f.Backend != "" && b.Backend != f.Backend {
			continue
		}
		for _, r := range b.Resources {
			obs[r.Addr] = f.observe(s.Lineage, r)
		}
	}
	return obs, nil
}

func (f *Fake) observe(lineage string, r *state.Resource) resource.Observation {
	o := f.objects[objectKey{lineage, r.Addr}]
	ob := resource.Observation{Addr: r.Addr, Status: resource.StatusPresent}
	switch {
	case o == nil && host(r.Addr.Kind) == resource.KindAgent:
		ob.Status, ob.Reason = resource.StatusMissing, r.Addr.Kind.String()+" is not in the agent"
	case o == nil:
		ob.Status, ob.Reason = resource.StatusMissing, r.Addr.Kind.String()+" removed out of band"
	case o.digest != r.Digest:
		ob.Status, ob.Reason = resource.StatusChanged, r.Addr.Kind.String()+" changed out of band"
	case container(r.Addr.Kind) && !o.running:
		ob.Status, ob.Reason = resource.StatusStopped, "container stopped out of band"
	}
	return ob
}

// Create makes the object, or adopts the one an interrupted run left.
func (f *Fake) Create(ctx context.Context, op *applier.Op) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(ctx, OpCreate, op); err != nil {
		return nil, err
	}
	if err := f.needs(op); err != nil {
		return nil, err
	}
	k := objectKey{op.Lineage, op.Addr}
	o := f.objects[k]
	if o == nil {
		f.nextID++
		o = &object{ids: map[string]string{"id": "fake-" + strconv.Itoa(f.nextID)}}
		if f.objects == nil {
			f.objects = map[objectKey]*object{}
		}
		f.objects[k] = o
	}
	o.digest = op.Attrs.Digest()
	o.running = container(op.Addr.Kind)
	return clone(o.ids), nil
}

// Update changes the object in place and starts it if it is a stopped
// container.
func (f *Fake) Update(ctx context.Context, op *applier.Op) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(ctx, OpUpdate, op); err != nil {
		return nil, err
	}
	if err := f.needs(op); err != nil {
		return nil, err
	}
	k := objectKey{op.Lineage, op.Addr}
	o := f.objects[k]
	if o == nil {
		if host(op.Addr.Kind) == 0 {
			return nil, ErrNotFound
		}
		// A file written whole into the agent, or a route or git entry in
		// the sidecar's configuration (delivered whole): provisioned again
		// into a new host.
		f.nextID++
		o = &object{ids: map[string]string{"id": "fake-" + strconv.Itoa(f.nextID)}}
		f.objects[k] = o
	}
	o.digest = op.Attrs.Digest()
	o.running = container(op.Addr.Kind)
	return clone(o.ids), nil
}

// Delete removes the object and what lives in it; a missing object is not
// an error.
func (f *Fake) Delete(ctx context.Context, op *applier.Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(ctx, OpDelete, op); err != nil {
		return err
	}
	return f.remove(op.Lineage, op.Addr)
}

// begin logs the call and returns what stops it before it starts: a done
// context, an injected fault, an op a caller should never send.
func (f *Fake) begin(ctx context.Context, name string, op *applier.Op) error {
	if op == nil {
		panic("backendtest: " + name + " with a nil op")
	}
	f.calls = append(f.calls, name+" "+op.Addr.String())
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.fault(op.Addr.Kind, name); err != nil {
		return err
	}
	if op.Lineage == "" {
		return errors.New("op has no lineage")
	}
	if op.Addr.IsBottle() {
		return fmt.Errorf("%s is a bottle, not an object", op.Addr)
	}
	return nil
}

// fault takes the first queued fault that matches.
func (f *Fake) fault(k resource.Kind, op string) error {
	for i, ft := range f.faults {
		if ft.op == op && (ft.kind == 0 || op == OpObserve || ft.kind == k) {
			f.faults = append(f.faults[:i], f.faults[i+1:]...)
			return ft.err
		}
	}
	return nil
}

// needs checks that what op's object is written into exists.
func (f *Fake) needs(op *applier.Op) error {
	n := needs(op.Addr.Kind)
	if n == 0 {
		return nil
	}
	dep := resource.Address{Bottle: op.Addr.Bottle, Kind: n}
	if f.objects[objectKey{op.Lineage, dep}] == nil {
		return fmt.Errorf("%s does not exist: %w", dep, ErrNotFound)
	}
	return nil
}

// remove deletes the object at addr and everything hosted in it.
func (f *Fake) remove(lineage string, addr resource.Address) error {
	if addr.Kind == resource.KindNetwork {
		for _, c := range []resource.Kind{resource.KindSidecar, resource.KindAgent} {
			attached := resource.Address{Bottle: addr.Bottle, Kind: c}
			if f.objects[objectKey{lineage, attached}] != nil {
				return fmt.Errorf("network has active endpoints: %s is still attached", attached)
			}
		}
	}
	delete(f.objects, objectKey{lineage, addr})
	if !container(addr.Kind) {
		return nil
	}
	for k := range f.objects {
		if k.lineage == lineage && k.addr.Bottle == addr.Bottle && host(k.addr.Kind) == addr.Kind {
			delete(f.objects, k)
		}
	}
	return nil
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var _ applier.Keys = (*Fake)(nil)

// Mint is the fake's applier.Keys: a deploy key is an object like the
// others, and its calls are logged as creates, in the same log. The
// private key is a fixed string derived from the object's id.
func (f *Fake) Mint(ctx context.Context, op *applier.Op) (map[string]string, resource.Secret, error) {
	ids, err := f.Create(ctx, op)
	if err != nil {
		return nil, resource.Secret{}, err
	}
	return ids, resource.NewSecret("fake-private-key-" + ids["id"]), nil
}

// Revoke deletes the fake's deploy key, logged as a delete.
func (f *Fake) Revoke(ctx context.Context, op *applier.Op) error {
	return f.Delete(ctx, op)
}
