// Package secrettest finds resource.Secret in types, for the tests that
// prove no secret value can reach a plan or a state file.
package secrettest

import (
	"reflect"

	"github.com/bottleform/bottleform/resource"
)

var secretType = reflect.TypeFor[resource.Secret]()

// Paths walks every type reachable from t (struct fields, exported
// or not, elements, map keys and values, pointers) and returns the paths
// that reach resource.Secret, and those that reach an interface or a func,
// which could hold anything and so cannot be proven free of secrets.
func Paths(t reflect.Type) []string {
	var found []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		if t == secretType {
			found = append(found, path+" is resource.Secret")
			return
		}
		if seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				walk(f.Type, path+"."+f.Name)
			}
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Chan:
			walk(t.Elem(), path+"[]")
		case reflect.Map:
			walk(t.Key(), path+"{key}")
			walk(t.Elem(), path+"{value}")
		case reflect.Interface, reflect.Func, reflect.UnsafePointer:
			found = append(found, path+" is "+t.String()+", which could hold a secret")
		}
	}
	walk(t, t.String())
	return found
}
