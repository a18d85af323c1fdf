package resource

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ValueKind is the shape of an attribute value.
type ValueKind int

const (
	ValueString ValueKind = 1 // a literal string, shown quoted (multi-line strings as heredocs)
	ValueExpr   ValueKind = 2 // an expression shown as is: secret.x, host_env("X"), true, 2
	ValueList   ValueKind = 3 // an ordered list of values
	ValueMap    ValueKind = 4 // a map from string keys to values, shown sorted
)

// Value is one attribute value of an object, as the plan shows and diffs it
// and the state records it. A Value never holds a secret: a sensitive
// attribute is recorded as the expression that refers to it.
type Value struct {
	Kind ValueKind        `json:"k"`
	Str  string           `json:"s,omitempty"`
	List []Value          `json:"l,omitempty"`
	Map  map[string]Value `json:"m,omitempty"`
}

// String returns a literal string value.
func String(s string) Value { return Value{Kind: ValueString, Str: s} }

// Expr returns an expression value, shown unquoted.
func Expr(s string) Value { return Value{Kind: ValueExpr, Str: s} }

// Bool returns true or false as an expression.
func Bool(b bool) Value { return Expr(strconv.FormatBool(b)) }

// Int returns an integer as an expression.
func Int(n int) Value { return Expr(strconv.Itoa(n)) }

// RefValue returns the expression for a reference to a sensitive value.
func RefValue(r Ref) Value { return Expr(r.String()) }

// Strings returns a list of literal strings.
func Strings(ss []string) Value {
	l := make([]Value, len(ss))
	for i, s := range ss {
		l[i] = String(s)
	}
	return Value{Kind: ValueList, List: l}
}

// MapOf returns a map value.
func MapOf(m map[string]Value) Value { return Value{Kind: ValueMap, Map: m} }

// Equal reports whether two values are the same.
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind || v.Str != w.Str || len(v.List) != len(w.List) || len(v.Map) != len(w.Map) {
		return false
	}
	for i := range v.List {
		if !v.List[i].Equal(w.List[i]) {
			return false
		}
	}
	for k, x := range v.Map {
		y, ok := w.Map[k]
		if !ok || !x.Equal(y) {
			return false
		}
	}
	return true
}

// MultiLine reports whether v is a string of more than one line.
func (v Value) MultiLine() bool {
	return v.Kind == ValueString && strings.Contains(strings.TrimSuffix(v.Str, "\n"), "\n")
}

// Attrs are the attributes of one object, keyed by name.
type Attrs map[string]Value

// Names returns the attribute names, sorted.
func (a Attrs) Names() []string {
	names := make([]string, 0, len(a))
	for n := range a {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Equal reports whether two attribute sets are the same.
func (a Attrs) Equal(b Attrs) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !v.Equal(w) {
			return false
		}
	}
	return true
}

// Changed returns the sorted names of attributes that differ between a and b.
func (a Attrs) Changed(b Attrs) []string {
	var names []string
	for k, v := range a {
		if w, ok := b[k]; !ok || !v.Equal(w) {
			names = append(names, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// Digest returns a stable digest of the attributes. Attributes hold only
// references, so the digest reveals no secret.
func (a Attrs) Digest() string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// encoding/json sorts map keys, so the encoding is canonical.
	if err := enc.Encode(a); err != nil {
		panic("resource: attrs digest: " + err.Error())
	}
	sum := sha256.Sum256(buf.Bytes())
	return "sha256:" + hex.EncodeToString(sum[:])
}
