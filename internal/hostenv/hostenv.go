// Package hostenv gives the host programs bottleform runs (git, smolvm)
// only the environment they need, not bottleform's own: that holds the
// values of every env secret the definitions read.
package hostenv

import (
	"os"
	"strings"
)

// Base are the variables every child keeps: where programs and the home
// are, the locale, the temporary directory.
var Base = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ"}

// Env returns bottleform's environment reduced to Base, the names given and
// the names that start with one of prefixes.
func Env(names []string, prefixes ...string) []string {
	keep := map[string]bool{}
	for _, n := range append(append([]string{}, Base...), names...) {
		keep[n] = true
	}
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		ok := keep[name]
		for _, p := range prefixes {
			ok = ok || strings.HasPrefix(name, p)
		}
		if ok {
			out = append(out, kv)
		}
	}
	return out
}
