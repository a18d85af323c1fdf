// Package secrettest finds resource.Secret in types, for the tests that
// prove no secret value can reach a plan or a state file.
package secrettest

import (
	"reflect"

	"github.com/bottleform/bottleform/resource"
)

var secretType = reflect.TypeOf(resource.Secret{})

// Paths returns the paths (Type.Field[].Map{}...) through which a
// resource.Secret is reachable from t: struct fields, pointers, slices,
// arrays, map keys and values. Interface-typed fields are reported too,
// since anything could hide behind them.
func Paths(t reflect.Type) []string {
	var out []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		if t == secretType {
			out = append(out, path)
			return
		}
		if seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(t.Elem(), path+"[]")
		case reflect.Map:
			walk(t.Key(), path+"{key}")
			walk(t.Elem(), path+"{}")
		case reflect.Struct:
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				walk(f.Type, path+"."+f.Name)
			}
		case reflect.Interface:
			out = append(out, path+" (interface: could hold a secret)")
		}
	}
	walk(t, t.String())
	return out
}
