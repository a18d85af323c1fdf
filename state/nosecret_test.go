package state

import (
	"reflect"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/internal/secrettest"

	"github.com/bottleform/bottleform/resource"
)

func TestNoSecretReachable(t *testing.T) {
	for _, root := range []reflect.Type{
		reflect.TypeFor[State](),
		reflect.TypeFor[fileV1](),
		reflect.TypeFor[LockInfo](),
		reflect.TypeFor[LockedError](),
	} {
		t.Run(root.String(), func(t *testing.T) {
			if paths := secrettest.Paths(root); len(paths) > 0 {
				t.Errorf("a secret can reach the state:\n  %s", strings.Join(paths, "\n  "))
			}
		})
	}
}

// TestSecretPathsFindsSecrets is the positive control: the walker does
// find a Secret however deeply it is buried.
func TestSecretPathsFindsSecrets(t *testing.T) {
	type inner struct {
		token resource.Secret
	}
	type buried struct {
		Name  string
		Items []map[string]*[2]inner
	}
	type loose struct {
		Extra any
	}
	tests := []struct {
		name string
		typ  reflect.Type
		want string
	}{
		{"direct", reflect.TypeFor[resource.Secret](), "resource.Secret is resource.Secret"},
		{"buried", reflect.TypeFor[buried](), "state.buried.Items[]{value}[][].token is resource.Secret"},
		{"map key", reflect.TypeFor[map[resource.Secret]string](), "{key} is resource.Secret"},
		{"interface", reflect.TypeFor[loose](), "state.loose.Extra is interface {}, which could hold a secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := secrettest.Paths(tt.typ)
			if len(paths) != 1 || !strings.HasSuffix(paths[0], tt.want) {
				t.Errorf("secrettest.Paths(%s) = %q, want one path ending in %q", tt.typ, paths, tt.want)
			}
		})
	}
}
