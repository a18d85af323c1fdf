package resource

import "strconv"

// ObjectStatus is what a backend saw of an object the state records.
type ObjectStatus int

const (
	// StatusPresent: the object exists as the state says.
	StatusPresent ObjectStatus = 1
	// StatusMissing: the object is gone; it must be created again.
	StatusMissing ObjectStatus = 2
	// StatusStopped: the object exists but is not running; an in-place
	// update starts it.
	StatusStopped ObjectStatus = 3
	// StatusChanged: the object was changed out of band (spec digest,
	// networks); it must be replaced.
	StatusChanged ObjectStatus = 4
	// StatusDegraded: the object runs but lost something apply delivers
	// (a sidecar restarted without its secrets); an in-place update
	// delivers it again.
	StatusDegraded ObjectStatus = 5
)

func (s ObjectStatus) String() string {
	switch s {
	case StatusPresent:
		return "present"
	case StatusMissing:
		return "missing"
	case StatusStopped:
		return "stopped"
	case StatusChanged:
		return "changed"
	case StatusDegraded:
		return "degraded"
	}
	return "ObjectStatus(" + strconv.Itoa(int(s)) + ")"
}

// Observation is one backend's view of one object.
type Observation struct {
	Addr   Address      `json:"address"`
	Status ObjectStatus `json:"status"`
	// Reason says in plain words what was seen, e.g. "container stopped out
	// of band"; the plan shows it.
	Reason string `json:"reason,omitempty"`
}

// Observed is one snapshot of every backend. A nil Observed means nothing
// was observed, and the planner takes the state at its word.
type Observed map[Address]Observation
