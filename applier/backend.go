package applier

import (
	"context"

	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// Backend makes bottles real on one runtime (Docker, smolmachines).
//
// Create, Update and Delete act on one object and must be idempotent: an
// apply killed between a backend call and the state save that follows it
// repeats the call. Create must therefore succeed when the object already
// exists from an interrupted run (adopting or recreating it, never
// duplicating it), and Delete must succeed when the object is already gone.
type Backend interface {
	// Observe reports, in one snapshot, what is live of the objects the
	// state records for this backend: missing, stopped, changed out of band
	// or degraded. Objects it has nothing to say about may be left out.
	Observe(ctx context.Context, s *state.State) (resource.Observed, error)
	// Create makes the object and returns its identifiers for the state.
	Create(ctx context.Context, op *Op) (map[string]string, error)
	// Update changes the object in place (or starts it again) and returns
	// its identifiers.
	Update(ctx context.Context, op *Op) (map[string]string, error)
	// Delete removes the object; an object already gone is not an error.
	Delete(ctx context.Context, op *Op) error
}

// Op is one step of an apply, with what the backend needs to carry it out.
type Op struct {
	Addr resource.Address
	// Lineage is the state's lineage; backends put it in object names and
	// labels so that two states never collide.
	Lineage string
	// Bottle is the desired bottle (with provider routes merged). It is nil
	// when the bottle is being destroyed.
	Bottle *resource.Bottle
	// Attrs are the desired attributes (nil on delete); their digest is the
	// spec digest backends label objects with.
	Attrs resource.Attrs
	// Prior is the object as the state records it (nil on create).
	Prior *state.Resource
	// Resources are the bottle's objects as the state records them right
	// now, for ids a step needs from another object (a network's id).
	Resources []*state.Resource
	// Secrets holds the values of the references the bottle uses, resolved
	// once before the first step. Backends send each value only to where
	// it belongs: the sidecar's control socket, the agent's granted env.
	Secrets Secrets
	// Minted holds the private keys of the deploy keys minted earlier in
	// this run for this bottle, by git entry name. A git entry whose key
	// was minted by an earlier run is not in it: its sidecar keeps the key
	// it holds (it lives nowhere else).
	Minted map[string]resource.Secret
	// Warn reports something the user should know that does not fail the
	// step (a failed MCP registration).
	Warn func(msg string)
}

// Keys mints and revokes git entries' deploy keys on their forge. A deploy
// key is not a runtime's object: the applier calls Keys for it, never a
// Backend.
type Keys interface {
	// Mint generates a key pair, registers its public half as a deploy key
	// of op's git entry, and returns the ids the state records (never the
	// private key) with the private key, which the applier hands on only
	// to the steps that deliver it to the sidecar.
	Mint(ctx context.Context, op *Op) (ids map[string]string, private resource.Secret, err error)
	// Revoke deletes the deploy key op.Prior records. A key that is
	// already gone is not an error.
	Revoke(ctx context.Context, op *Op) error
}

// Secrets maps references to their resolved values.
type Secrets map[resource.Ref]resource.Secret

// Value returns the value of r, or false if it was not resolved.
func (s Secrets) Value(r resource.Ref) (resource.Secret, bool) {
	v, ok := s[r]
	return v, ok
}

// Lookup returns the resource at addr among rs, or nil.
func Lookup(rs []*state.Resource, addr resource.Address) *state.Resource {
	for _, r := range rs {
		if r.Addr == addr {
			return r
		}
	}
	return nil
}
