package resource

import "strings"

// Labels every backend puts on the objects it creates. Observe finds a
// state's objects by LabelLineage; the digest label is how drift in a spec
// is seen.
const (
	LabelManagedBy = "dev.bottleform.managed-by" // always ManagedBy
	LabelLineage   = "dev.bottleform.lineage"    // the state's lineage
	LabelBottle    = "dev.bottleform.bottle"     // the bottle's name
	LabelComponent = "dev.bottleform.component"  // network-internal, network-egress, sidecar, agent
	LabelAddress   = "dev.bottleform.address"    // the object's address
	LabelDigest    = "dev.bottleform.spec-digest"
	ManagedBy      = "bottleform"
)

// ShortLineage is the part of a lineage that object names carry.
func ShortLineage(lineage string) string {
	s := strings.ReplaceAll(lineage, "-", "")
	if len(s) > 8 {
		s = s[:8]
	}
	return s
}

// ObjectName names a backend object: bf-<short lineage>-<bottle>-<component>.
// Two states never collide, and a rerun after a crash finds the object by
// the same name.
func ObjectName(lineage, bottle, component string) string {
	return "bf-" + ShortLineage(lineage) + "-" + bottle + "-" + component
}
