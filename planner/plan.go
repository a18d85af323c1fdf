package planner

import (
	"fmt"
	"strings"

	"github.com/bottleform/bottleform/resource"
)

// Action is what apply will do to one object.
type Action int

const (
	NoOp    Action = 1
	Create  Action = 2
	Update  Action = 3 // in place: the object keeps running
	Replace Action = 4 // delete, then create
	Delete  Action = 5
)

func (a Action) String() string {
	switch a {
	case NoOp:
		return "no-op"
	case Create:
		return "create"
	case Update:
		return "update"
	case Replace:
		return "replace"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Changes reports whether the action changes anything.
func (a Action) Changes() bool { return a != NoOp }

// Mode is the kind of plan.
type Mode int

const (
	ModeNormal  Mode = 0 // converge to the configuration
	ModeDestroy Mode = 1 // delete everything in the state
)

func (m Mode) String() string {
	if m == ModeDestroy {
		return "destroy"
	}
	return "normal"
}

// Change is the planned action for one object.
type Change struct {
	Addr   resource.Address
	Action Action
	// Before are the attributes recorded in the state (nil on create);
	// After the attributes the configuration asks for (nil on delete).
	Before, After resource.Attrs
	// Reasons say why, in plain words: "image changed", "container stopped
	// out of band", "no longer in the configuration".
	Reasons []string
	// ReplacePaths are the attributes whose change forces a replace.
	ReplacePaths []string
	// Drift is set when the action comes from what a backend observed
	// rather than from the configuration.
	Drift bool
}

// Warning is something the user should know that does not stop the plan.
type Warning struct {
	Bottle  string
	Summary string
	Detail  string
}

// FormatVersion is the version of the saved plan and of `plan --json`.
const FormatVersion = "1.0"

// Plan is the outcome of Diff. It holds references, never secret values,
// so it can be saved and shown.
type Plan struct {
	Mode Mode
	// Lineage and Serial of the state the plan was made from (empty and 0
	// when there was none); apply refuses the plan if either moved.
	Lineage string
	Serial  uint64
	// ConfigDigest is a digest of the configuration files the plan was made
	// from; apply refuses the plan if it moved.
	ConfigDigest string
	Targets      []resource.Address
	Replace      []resource.Address
	// Changes holds one entry per object, no-ops included, sorted by address.
	Changes []Change
	// Bottles are the desired bottles by name (empty in destroy mode).
	Bottles map[string]*resource.Bottle
	// Secrets are the declarations of every secret the desired bottles use.
	Secrets map[string]resource.SecretSource
	// Security lists, in plain words, what the plan grants and revokes.
	Security []string
	Warnings []Warning
}

// HasChanges reports whether applying the plan would change anything.
func (p *Plan) HasChanges() bool {
	for _, c := range p.Changes {
		if c.Action.Changes() {
			return true
		}
	}
	return false
}

// Count returns how many objects are created, updated in place and deleted;
// a replace counts as one created and one deleted.
func (p *Plan) Count() (add, change, destroy int) {
	for _, c := range p.Changes {
		switch c.Action {
		case Create:
			add++
		case Update:
			change++
		case Replace:
			add++
			destroy++
		case Delete:
			destroy++
		}
	}
	return
}

// String prints one line per change, no-ops left out, for tests and logs.
func (p *Plan) String() string {
	var b strings.Builder
	for _, c := range p.Changes {
		if !c.Action.Changes() {
			continue
		}
		fmt.Fprintf(&b, "%s %s", c.Action, c.Addr)
		if len(c.Reasons) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(c.Reasons, "; "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}
