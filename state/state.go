package state

import (
	"sort"

	"github.com/bottleform/bottleform/resource"
)

// Version is the state file format this build writes.
const Version = 1

// State is what bottleform knows to be live. A nil *State is an empty state.
type State struct {
	// Lineage is set once, when the state is first written, and never
	// changes; a saved plan from another lineage is refused.
	Lineage string
	// Serial is incremented on every write.
	Serial uint64
	// BottleformVersion is the version of the binary that last wrote it.
	BottleformVersion string
	Bottles           map[string]*Bottle
}

// Bottle is one live bottle.
type Bottle struct {
	Backend   string
	Resources []*Resource
}

// Resource is one live object.
type Resource struct {
	Addr resource.Address
	// Attrs are the attributes the object was last applied with.
	Attrs resource.Attrs
	// Digest is Attrs.Digest() at that time; backends label objects with it.
	Digest string
	// IDs are the backend's identifiers: container, network, VM, deploy key
	// id, repository and API URL, published ports. Never a secret.
	IDs map[string]string
}

// Lookup returns the resource at addr, or nil.
func (s *State) Lookup(addr resource.Address) *Resource {
	if s == nil {
		return nil
	}
	b := s.Bottles[addr.Bottle]
	if b == nil {
		return nil
	}
	for _, r := range b.Resources {
		if r.Addr == addr {
			return r
		}
	}
	return nil
}

// Resources returns every resource, sorted by address.
func (s *State) Resources() []*Resource {
	if s == nil {
		return nil
	}
	var all []*Resource
	for _, b := range s.Bottles {
		all = append(all, b.Resources...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Addr.Less(all[j].Addr) })
	return all
}

// Set records r, replacing any resource at the same address, and keeps the
// bottle's resources sorted. It creates the bottle with the given backend
// if needed.
func (s *State) Set(backend string, r *Resource) {
	if s.Bottles == nil {
		s.Bottles = map[string]*Bottle{}
	}
	b := s.Bottles[r.Addr.Bottle]
	if b == nil {
		b = &Bottle{Backend: backend}
		s.Bottles[r.Addr.Bottle] = b
	}
	for i, old := range b.Resources {
		if old.Addr == r.Addr {
			b.Resources[i] = r
			return
		}
	}
	b.Resources = append(b.Resources, r)
	sort.Slice(b.Resources, func(i, j int) bool { return b.Resources[i].Addr.Less(b.Resources[j].Addr) })
}

// Remove forgets the resource at exactly addr (a git entry's deploy key is
// a resource of its own), and the bottle once it is empty. It reports
// whether anything was removed.
func (s *State) Remove(addr resource.Address) bool {
	if s == nil {
		return false
	}
	b := s.Bottles[addr.Bottle]
	if b == nil {
		return false
	}
	kept := b.Resources[:0]
	removed := false
	for _, r := range b.Resources {
		if r.Addr == addr {
			removed = true
			continue
		}
		kept = append(kept, r)
	}
	b.Resources = kept
	if len(b.Resources) == 0 {
		delete(s.Bottles, addr.Bottle)
	}
	return removed
}
