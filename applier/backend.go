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
	// Warn reports something the user should know that does not fail the
	// step (a failed MCP registration).
	Warn func(msg string)
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
