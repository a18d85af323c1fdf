package planner

import (
	"reflect"
	"testing"

	"github.com/bottleform/bottleform/internal/secrettest"
	"github.com/bottleform/bottleform/resource"
)

// TestPlanHoldsNoSecret proves that no type reachable from a Plan can hold
// a secret value: a plan holds references only.
func TestPlanHoldsNoSecret(t *testing.T) {
	if paths := secrettest.Paths(reflect.TypeOf(Plan{})); len(paths) > 0 {
		t.Fatalf("a secret is reachable from Plan through %v", paths)
	}
}

// TestWalkerFindsSecret is the positive control: the walker does find a
// Secret hidden a few levels down.
func TestWalkerFindsSecret(t *testing.T) {
	type inner struct{ S map[string][]*resource.Secret }
	type outer struct {
		A int
		B []inner
	}
	paths := secrettest.Paths(reflect.TypeOf(outer{}))
	if len(paths) != 1 || paths[0] != "planner.outer.B[].S{value}[][] is resource.Secret" {
		t.Fatalf("paths = %v", paths)
	}
}
