package applier

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// Hook is told about progress. Calls for one bottle come in order; calls
// for different bottles may interleave and come from several goroutines.
type Hook interface {
	Begin(addr resource.Address, action planner.Action)
	End(addr resource.Address, action planner.Action, ids map[string]string, elapsed time.Duration, err error)
	Warn(addr resource.Address, msg string)
}

// Store persists the state; *state.Manager is one.
type Store interface {
	Save(*state.State) error
}

// Options configure an apply.
type Options struct {
	// Backends by name ("docker", "smolmachines").
	Backends map[string]Backend
	// Keys mints and revokes deploy keys; a plan with deploy keys fails
	// without it.
	Keys Keys
	// Parallelism is how many bottles are worked on at once; 0 means 4.
	Parallelism int
	Hook        Hook
	Secrets     Secrets
	// Checkpoint, when set, is called at every point an apply can be
	// interrupted: "after <action> <addr>" right after a backend call and
	// before the state is saved, and "saved <action> <addr>" right after.
	// Tests kill the process there to prove an apply can be resumed.
	Checkpoint func(point string)
}

// ErrInterrupted is returned when the context was cancelled: the step in
// flight was finished and saved, and nothing more was started.
var ErrInterrupted = errors.New("interrupted")

// createOrder and deleteOrder are the dependency orders within a bottle:
// networks, then the sidecar, keys, grants, the agent and what is
// provisioned into it; deletion runs the other way, except that minted
// keys are revoked only once the containers that used them are gone.
var (
	createOrder = []resource.Kind{
		resource.KindNetwork, resource.KindSidecar, resource.KindDeployKey, resource.KindEgress,
		resource.KindGit, resource.KindAuth, resource.KindAgent, resource.KindPrompt,
		resource.KindSkill, resource.KindMCP,
	}
	deleteOrder = []resource.Kind{
		resource.KindMCP, resource.KindSkill, resource.KindPrompt, resource.KindAgent,
		resource.KindAuth, resource.KindEgress, resource.KindGit, resource.KindSidecar,
		resource.KindDeployKey, resource.KindNetwork,
	}
)

func rank(order []resource.Kind, k resource.Kind) int {
	for i, o := range order {
		if o == k {
			return i
		}
	}
	return len(order)
}

// step is one backend call.
type step struct {
	change planner.Change
	delete bool // the delete half of a replace, or a delete
}

// Apply carries out p, starting from prior (nil: empty), and saves the
// state to store after every completed step. It returns the final state
// and every error joined; a bottle whose step failed stops there while the
// others go on.
func Apply(ctx context.Context, p *planner.Plan, prior *state.State, store Store, opts Options) (*state.State, error) {
	s := prior
	if s == nil {
		s = &state.State{}
	}
	if s.Lineage == "" {
		s.Lineage = uuid.NewString()
		// Backends name and label objects with the lineage: it must be on
		// disk before the first object is made under it, or an apply killed
		// before its first save leaves objects no state will ever find.
		if p.HasChanges() {
			if err := store.Save(s); err != nil {
				return s, err
			}
		}
	}
	r := &run{plan: p, st: s, store: store, opts: opts, minted: map[string]map[string]resource.Secret{}}
	if r.opts.Parallelism <= 0 {
		r.opts.Parallelism = 4
	}
	byBottle := map[string][]planner.Change{}
	for _, c := range p.Changes {
		if c.Action.Changes() {
			byBottle[c.Addr.Bottle] = append(byBottle[c.Addr.Bottle], c)
		}
	}
	names := make([]string, 0, len(byBottle))
	for n := range byBottle {
		names = append(names, n)
	}
	sort.Strings(names)

	sem := make(chan struct{}, r.opts.Parallelism)
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = r.bottle(ctx, name, byBottle[name])
		}()
	}
	wg.Wait()
	return s, errors.Join(errs...)
}

type run struct {
	plan  *planner.Plan
	opts  Options
	store Store
	mu    sync.Mutex // guards st, store and minted
	st    *state.State
	// minted holds the private keys minted in this run, by bottle and git
	// entry name, in memory only.
	minted map[string]map[string]resource.Secret
}

// steps orders a bottle's changes: every delete (and the delete half of
// every replace) in delete order, then every create and update (and the
// create half of every replace) in create order.
func steps(changes []planner.Change) []step {
	var dels, puts []step
	for _, c := range changes {
		switch c.Action {
		case planner.Delete:
			dels = append(dels, step{change: c, delete: true})
		case planner.Replace:
			dels = append(dels, step{change: c, delete: true})
			puts = append(puts, step{change: c})
		default:
			puts = append(puts, step{change: c})
		}
	}
	sort.SliceStable(dels, func(i, j int) bool {
		return rank(deleteOrder, dels[i].change.Addr.Kind) < rank(deleteOrder, dels[j].change.Addr.Kind)
	})
	sort.SliceStable(puts, func(i, j int) bool {
		return rank(createOrder, puts[i].change.Addr.Kind) < rank(createOrder, puts[j].change.Addr.Kind)
	})
	return append(dels, puts...)
}

func (r *run) bottle(ctx context.Context, name string, changes []planner.Change) error {
	gone := map[resource.Kind]bool{} // containers deleted in this plan
	for _, c := range changes {
		if c.Action == planner.Delete || c.Action == planner.Replace {
			gone[c.Addr.Kind] = true
		}
	}
	for _, st := range steps(changes) {
		if ctx.Err() != nil {
			return fmt.Errorf("bottle %s: %w before %s %s", name, ErrInterrupted, st.change.Action, st.change.Addr)
		}
		if err := r.step(context.WithoutCancel(ctx), st, gone); err != nil {
			return err
		}
	}
	return nil
}

// hostedBy says which container an object lives in: deleting it needs no
// backend call when that container goes away in the same plan.
func hostedBy(k resource.Kind) resource.Kind {
	switch {
	case k.InAgent():
		return resource.KindAgent
	case k == resource.KindEgress || k == resource.KindGit:
		return resource.KindSidecar
	}
	return 0
}

func (r *run) step(ctx context.Context, st step, gone map[resource.Kind]bool) error {
	c := st.change
	action := c.Action
	if st.delete {
		action = planner.Delete
	}
	b, err := r.backend(c.Addr.Bottle)
	if err != nil {
		return err
	}
	op := r.op(c)
	hook := r.opts.Hook
	if hook != nil {
		hook.Begin(c.Addr, action)
		op.Warn = func(msg string) { hook.Warn(c.Addr, msg) }
	} else {
		op.Warn = func(string) {}
	}
	start := time.Now()
	var ids map[string]string
	switch {
	case c.Addr.Kind == resource.KindDeployKey:
		ids, err = r.deployKey(ctx, op, st.delete, action)
	case st.delete && gone[hostedBy(c.Addr.Kind)]:
		// Its container is deleted in this plan, and it goes with it.
	case st.delete:
		err = b.Delete(ctx, op)
	case action == planner.Update && c.Before != nil:
		ids, err = b.Update(ctx, op)
	default:
		ids, err = b.Create(ctx, op)
	}
	if err == nil {
		r.checkpoint("after", action, c.Addr)
		err = r.record(c, st.delete, ids)
		if err == nil {
			r.checkpoint("saved", action, c.Addr)
		}
	}
	if hook != nil {
		hook.End(c.Addr, action, ids, time.Since(start), err)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb(action), c.Addr, err)
	}
	return nil
}

func verb(a planner.Action) string {
	switch a {
	case planner.Create, planner.Replace:
		return "create"
	case planner.Update:
		return "update"
	case planner.Delete:
		return "delete"
	}
	return a.String()
}

func (r *run) checkpoint(when string, a planner.Action, addr resource.Address) {
	if r.opts.Checkpoint != nil {
		r.opts.Checkpoint(when + " " + verb(a) + " " + addr.String())
	}
}

func (r *run) backend(bottle string) (Backend, error) {
	name := ""
	if b := r.plan.Bottles[bottle]; b != nil {
		name = b.Backend
	} else {
		r.mu.Lock()
		if sb := r.st.Bottles[bottle]; sb != nil {
			name = sb.Backend
		}
		r.mu.Unlock()
	}
	if name == "" {
		name = resource.BackendDocker
	}
	b, ok := r.opts.Backends[name]
	if !ok {
		return nil, fmt.Errorf("bottle %s: the %s backend is not available in this build", bottle, name)
	}
	return b, nil
}

// deployKey carries out a deploy key's step through opts.Keys: revoke on
// delete, mint on create (keeping the private key in memory for the steps
// that deliver it), nothing on an update, which changes only what the
// state records. A failed mint first revokes the keys this run minted for
// the bottle, so that no key outlives a failed apply unrecorded.
func (r *run) deployKey(ctx context.Context, op *Op, del bool, action planner.Action) (map[string]string, error) {
	if r.opts.Keys == nil {
		return nil, errors.New("no forge client to mint or revoke deploy keys (applier bug)")
	}
	switch {
	case del:
		return nil, r.opts.Keys.Revoke(ctx, op)
	case action == planner.Update && op.Prior != nil:
		return op.Prior.IDs, nil
	}
	ids, priv, err := r.opts.Keys.Mint(ctx, op)
	if err != nil {
		return nil, errors.Join(append([]error{err}, r.rollback(ctx, op.Addr.Bottle)...)...)
	}
	r.mu.Lock()
	if r.minted[op.Addr.Bottle] == nil {
		r.minted[op.Addr.Bottle] = map[string]resource.Secret{}
	}
	r.minted[op.Addr.Bottle][op.Addr.Key] = priv
	r.mu.Unlock()
	return ids, nil
}

// rollback revokes the keys this run minted for bottle and removes them
// from the state. A key it cannot revoke stays in the state, so that a
// later apply or destroy finishes the job; the error names it.
func (r *run) rollback(ctx context.Context, bottle string) []error {
	r.mu.Lock()
	names := make([]string, 0, len(r.minted[bottle]))
	for n := range r.minted[bottle] {
		names = append(names, n)
	}
	r.mu.Unlock()
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		addr := resource.Address{Bottle: bottle, Kind: resource.KindDeployKey, Key: n}
		op := r.op(planner.Change{Addr: addr})
		if err := r.opts.Keys.Revoke(ctx, op); err != nil {
			errs = append(errs, fmt.Errorf("rollback: revoke %s: %w (it stays in the state; run bottleform destroy or apply again)", addr, err))
			continue
		}
		r.mu.Lock()
		delete(r.minted[bottle], n)
		r.st.Remove(addr)
		err := r.store.Save(r.st)
		r.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// op builds the backend's view of a step from the plan and the state as it
// is now.
func (r *run) op(c planner.Change) *Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	op := &Op{
		Addr:    c.Addr,
		Lineage: r.st.Lineage,
		Bottle:  r.plan.Bottles[c.Addr.Bottle],
		Attrs:   c.After,
		Secrets: r.opts.Secrets,
		Minted:  maps.Clone(r.minted[c.Addr.Bottle]),
	}
	if prior := r.st.Lookup(c.Addr); prior != nil {
		cp := *prior
		op.Prior = &cp
	}
	if sb := r.st.Bottles[c.Addr.Bottle]; sb != nil {
		for _, res := range sb.Resources {
			cp := *res
			op.Resources = append(op.Resources, &cp)
		}
	}
	return op
}

// record updates the state after a completed step and saves it.
func (r *run) record(c planner.Change, deleted bool, ids map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if deleted {
		r.st.Remove(c.Addr)
	} else {
		if ids == nil {
			if prior := r.st.Lookup(c.Addr); prior != nil {
				ids = prior.IDs
			}
		}
		backend := resource.BackendDocker
		if b := r.plan.Bottles[c.Addr.Bottle]; b != nil {
			backend = b.Backend
		}
		r.st.Set(backend, &state.Resource{Addr: c.Addr, Attrs: c.After, Digest: c.After.Digest(), IDs: ids})
		// A bottle's backend is the configured one once anything of it is
		// created again.
		r.st.Bottles[c.Addr.Bottle].Backend = backend
	}
	return r.store.Save(r.st)
}
