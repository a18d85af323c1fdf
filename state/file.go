package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/bottleform/bottleform/resource"
)

// The state file is JSON, versioned by its top-level "version" field.
// Write emits only the current Version. Read sniffs the version and brings
// older files up to date through upgrades before decoding the current
// format, so the model never sees an old layout.
//
// To introduce version 2: bump Version, add fileV2 (keep fileV1 as it is,
// it describes files on disk forever), make decodeCurrent and toFile use
// fileV2, and register upgrades[1], a step that decodes a v1 file strictly
// and re-encodes it as v2. Files of any older version then reach v2 by
// applying one step after another.

// minVersion is the oldest format Read accepts.
const minVersion = 1

// upgrades maps format version N to the step that rewrites a version-N
// file as version N+1. Read applies steps from the file's version up to
// Version.
var upgrades = map[int]func([]byte) ([]byte, error){}

// fileV1 is version 1 of the file format. Field order is the order written.
type fileV1 struct {
	Version           int                 `json:"version"`
	Lineage           string              `json:"lineage"`
	Serial            uint64              `json:"serial"`
	BottleformVersion string              `json:"bottleform_version"`
	Bottles           map[string]bottleV1 `json:"bottles"`
}

type bottleV1 struct {
	Backend   string       `json:"backend"`
	Resources []resourceV1 `json:"resources"`
}

type resourceV1 struct {
	Address    string             `json:"address"`
	Attributes map[string]valueV1 `json:"attributes,omitempty"`
	Digest     string             `json:"digest,omitempty"`
	IDs        map[string]string  `json:"ids,omitempty"`
}

// valueV1 is one attribute value on disk, independent of resource.Value's
// own JSON form: a literal string is a JSON string, a list a JSON array, an
// expression {"expr": "secret.github"} and a map {"map": {...}}.
type valueV1 struct {
	v   resource.Value  // what Write encodes
	raw json.RawMessage // what Read decoded, parsed by fromFile
}

// Write encodes s in the current format. The encoding is deterministic:
// map keys and resources are sorted, indented by two spaces, with a
// trailing newline, so the same state always gives the same bytes. A nil
// s is written as an empty state. Write refuses a state Read would refuse.
func Write(w io.Writer, s *State) error {
	b, err := encode(s)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// Read decodes a state file of any version up to Version. Unknown fields,
// invalid addresses, duplicate resources, a resource filed under another
// bottle and unknown backends are errors.
func Read(r io.Reader) (*State, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	s, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return s, nil
}

func encode(s *State) ([]byte, error) {
	if err := validate(s); err != nil {
		return nil, err
	}
	f := toFile(s)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decode(data []byte) (*State, error) {
	version, err := sniff(data)
	if err != nil {
		return nil, err
	}
	if data, err = upgrade(data, version, Version); err != nil {
		return nil, err
	}
	return decodeCurrent(data)
}

// upgrade applies the upgrade steps that take data from version from to
// version to.
func upgrade(data []byte, from, to int) ([]byte, error) {
	for v := from; v < to; v++ {
		step, ok := upgrades[v]
		if !ok {
			panic(fmt.Sprintf("state: no upgrade step from version %d", v))
		}
		var err error
		if data, err = step(data); err != nil {
			return nil, fmt.Errorf("upgrade from version %d to %d: %w", v, v+1, err)
		}
	}
	return data, nil
}

// sniff returns the format version of data, or an error saying why data
// is not a state file this build can read.
func sniff(data []byte) (int, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return 0, errors.New("not a bottleform state file: the file is empty")
	}
	var hdr struct {
		Version           json.RawMessage `json:"version"`
		BottleformVersion any             `json:"bottleform_version"`
	}
	if err := json.Unmarshal(data, &hdr); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "" {
			return 0, fmt.Errorf("not a bottleform state file: want a JSON object, found a JSON %s", typeErr.Value)
		}
		return 0, fmt.Errorf("not a bottleform state file: %s", jsonError(data, err))
	}
	if len(hdr.Version) == 0 || string(hdr.Version) == "null" {
		return 0, errors.New(`not a bottleform state file: no "version" field`)
	}
	var version int
	if err := json.Unmarshal(hdr.Version, &version); err != nil {
		return 0, fmt.Errorf("unsupported state format version %s: want a whole number", hdr.Version)
	}
	if version > Version {
		by := "a newer bottleform"
		if v, ok := hdr.BottleformVersion.(string); ok && v != "" {
			by += " (" + v + ")"
		}
		return 0, fmt.Errorf("state format version %d was written by %s; this bottleform (%s) reads versions up to %d: upgrade bottleform", version, by, BottleformVersion, Version)
	}
	if version < minVersion {
		return 0, fmt.Errorf("unsupported state format version %d: bottleform writes versions %d to %d", version, minVersion, Version)
	}
	return version, nil
}

// decodeCurrent strictly decodes a file in the current format.
func decodeCurrent(data []byte) (*State, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileV1
	if err := dec.Decode(&f); err != nil {
		return nil, jsonError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the state object")
	}
	s, err := fromFile(&f)
	if err != nil {
		return nil, err
	}
	if err := validate(s); err != nil {
		return nil, err
	}
	return s, nil
}

// jsonError rewrites a decoding error in the user's terms: positions as
// line and column, without the "json: " prefix.
func jsonError(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line, col := position(data, syn.Offset)
		return fmt.Errorf("invalid JSON at line %d, column %d: %s", line, col, syn.Error())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: unexpected end of file")
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		line, _ := position(data, typ.Offset)
		return fmt.Errorf("field %q on line %d: want %s, found a JSON %s", typ.Field, line, typ.Type, typ.Value)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return fmt.Errorf("%s (check the spelling; the state file is not meant to be edited by hand)", msg)
	}
	return errors.New(msg)
}

// position converts the offset encoding/json reports (the number of bytes
// read, up to and including the offending one) into a 1-based line and
// column.
func position(data []byte, off int64) (line, col int) {
	off--
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

func toFile(s *State) *fileV1 {
	f := &fileV1{Version: Version, Bottles: map[string]bottleV1{}}
	if s == nil {
		return f
	}
	f.Lineage = s.Lineage
	f.Serial = s.Serial
	f.BottleformVersion = s.BottleformVersion
	for name, b := range s.Bottles {
		rs := make([]*Resource, len(b.Resources))
		copy(rs, b.Resources)
		sort.Slice(rs, func(i, j int) bool { return rs[i].Addr.Less(rs[j].Addr) })
		fb := bottleV1{Backend: b.Backend, Resources: make([]resourceV1, 0, len(rs))}
		for _, r := range rs {
			fr := resourceV1{Address: r.Addr.String(), Digest: r.Digest, IDs: r.IDs}
			if len(r.Attrs) > 0 {
				fr.Attributes = make(map[string]valueV1, len(r.Attrs))
				for k, v := range r.Attrs {
					fr.Attributes[k] = valueV1{v: v}
				}
			}
			fb.Resources = append(fb.Resources, fr)
		}
		f.Bottles[name] = fb
	}
	return f
}

func fromFile(f *fileV1) (*State, error) {
	s := &State{
		Lineage:           f.Lineage,
		Serial:            f.Serial,
		BottleformVersion: f.BottleformVersion,
	}
	if len(f.Bottles) > 0 {
		s.Bottles = make(map[string]*Bottle, len(f.Bottles))
	}
	for name, fb := range f.Bottles {
		b := &Bottle{Backend: fb.Backend}
		for _, fr := range fb.Resources {
			addr, err := resource.ParseAddress(fr.Address)
			if err != nil {
				return nil, fmt.Errorf("bottle %q: %w", name, err)
			}
			r := &Resource{Addr: addr, Digest: fr.Digest, IDs: fr.IDs}
			if fr.Attributes != nil {
				r.Attrs = make(resource.Attrs, len(fr.Attributes))
				for _, k := range sortedKeys(fr.Attributes) {
					v, err := parseValue(fr.Attributes[k].raw)
					if err != nil {
						return nil, fmt.Errorf("resource %s: attribute %q: %w", addr, k, err)
					}
					r.Attrs[k] = v
				}
			}
			b.Resources = append(b.Resources, r)
		}
		sort.SliceStable(b.Resources, func(i, j int) bool { return b.Resources[i].Addr.Less(b.Resources[j].Addr) })
		s.Bottles[name] = b
	}
	return s, nil
}

// validate checks the invariants every state file holds, so that Write
// never produces a file Read refuses.
func validate(s *State) error {
	if s == nil {
		return nil
	}
	for name, b := range s.Bottles {
		if a, err := resource.ParseAddress("bottle." + name); err != nil || !a.IsBottle() {
			return fmt.Errorf("invalid bottle name %q: want lower-case letters, digits and dashes, starting with a letter", name)
		}
		if b == nil {
			return fmt.Errorf("bottle %q: no bottle", name)
		}
		switch b.Backend {
		case resource.BackendDocker, resource.BackendSmolmachines:
		default:
			return fmt.Errorf("bottle %q: unknown backend %q (want %q or %q)", name, b.Backend, resource.BackendDocker, resource.BackendSmolmachines)
		}
		seen := make(map[resource.Address]bool, len(b.Resources))
		for i, r := range b.Resources {
			if r == nil {
				return fmt.Errorf("bottle %q: resource %d: no resource", name, i)
			}
			if err := validAddress(r.Addr); err != nil {
				return fmt.Errorf("bottle %q: resource %d: %w", name, i, err)
			}
			if r.Addr.Bottle != name {
				return fmt.Errorf("bottle %q: resource %s belongs to bottle %q", name, r.Addr, r.Addr.Bottle)
			}
			if seen[r.Addr] {
				return fmt.Errorf("bottle %q: duplicate resource %s", name, r.Addr)
			}
			seen[r.Addr] = true
			for _, k := range r.Attrs.Names() {
				if err := validValue(r.Attrs[k]); err != nil {
					return fmt.Errorf("resource %s: attribute %q: %w", r.Addr, k, err)
				}
			}
		}
	}
	return nil
}

// validAddress reports whether a names one object and survives the trip
// through its String form.
func validAddress(a resource.Address) error {
	if a.IsBottle() {
		return fmt.Errorf("address %s names a whole bottle, not an object", a)
	}
	p, err := resource.ParseAddress(a.String())
	if err != nil {
		return err
	}
	if p != a {
		return fmt.Errorf("invalid address %s (kind %s, key %q)", a, a.Kind, a.Key)
	}
	return nil
}

func validValue(v resource.Value) error { return validValueDepth(v, 1) }

func validValueDepth(v resource.Value, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested more than %d levels deep", maxDepth)
	}
	switch v.Kind {
	case resource.ValueString, resource.ValueExpr:
	case resource.ValueList:
		for i, e := range v.List {
			if err := validValueDepth(e, depth+1); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	case resource.ValueMap:
		for _, k := range sortedKeys(v.Map) {
			if err := validValueDepth(v.Map[k], depth+1); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
	default:
		return fmt.Errorf("invalid value kind %d", v.Kind)
	}
	return nil
}

// tree converts v to the generic form encoding/json writes.
func (x valueV1) tree() any {
	v := x.v
	switch v.Kind {
	case resource.ValueExpr:
		return map[string]any{"expr": v.Str}
	case resource.ValueList:
		l := make([]any, len(v.List))
		for i, e := range v.List {
			l[i] = valueV1{v: e}.tree()
		}
		return l
	case resource.ValueMap:
		m := make(map[string]any, len(v.Map))
		for k, e := range v.Map {
			m[k] = valueV1{v: e}.tree()
		}
		return map[string]any{"map": m}
	}
	return v.Str
}

// MarshalJSON writes the on-disk form of the value.
func (x valueV1) MarshalJSON() ([]byte, error) {
	if err := validValue(x.v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x.tree()); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// maxDepth bounds how deeply attribute values nest (lists and maps in
// lists and maps). Real attributes nest two or three levels; the bound
// keeps a hostile file from costing quadratic time.
const maxDepth = 32

const valueForms = `a string, a list, {"expr": "..."} or {"map": {...}}`

// UnmarshalJSON keeps the raw value; fromFile parses it with parseValue,
// where an error can say which attribute it is about.
func (x *valueV1) UnmarshalJSON(b []byte) error {
	x.raw = append(json.RawMessage(nil), b...)
	return nil
}

// parseValue reads the on-disk form of a value, strictly.
func parseValue(b []byte) (resource.Value, error) { return parseValueDepth(b, 1) }

func parseValueDepth(b []byte, depth int) (resource.Value, error) {
	if depth > maxDepth {
		return resource.Value{}, fmt.Errorf("nested more than %d levels deep", maxDepth)
	}
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return resource.Value{}, fmt.Errorf("no value; want %s", valueForms)
	}
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return resource.Value{}, err
		}
		return resource.String(s), nil
	case '[':
		var raws []json.RawMessage
		if err := json.Unmarshal(b, &raws); err != nil {
			return resource.Value{}, err
		}
		l := make([]resource.Value, len(raws))
		for i, raw := range raws {
			e, err := parseValueDepth(raw, depth+1)
			if err != nil {
				return resource.Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			l[i] = e
		}
		return resource.Value{Kind: resource.ValueList, List: l}, nil
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			return resource.Value{}, err
		}
		if raw, ok := obj["expr"]; ok && len(obj) == 1 {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return resource.Value{}, errors.New(`"expr" must be a string`)
			}
			return resource.Expr(s), nil
		}
		if raw, ok := obj["map"]; ok && len(obj) == 1 {
			var raws map[string]json.RawMessage
			if err := json.Unmarshal(raw, &raws); err != nil || raws == nil {
				return resource.Value{}, errors.New(`"map" must be an object`)
			}
			m := make(map[string]resource.Value, len(raws))
			for _, k := range sortedKeys(raws) {
				e, err := parseValueDepth(raws[k], depth+1)
				if err != nil {
					return resource.Value{}, fmt.Errorf("key %q: %w", k, err)
				}
				m[k] = e
			}
			return resource.Value{Kind: resource.ValueMap, Map: m}, nil
		}
		for _, k := range sortedKeys(obj) {
			if k != "expr" && k != "map" {
				return resource.Value{}, fmt.Errorf("unknown field %q; want %s", k, valueForms)
			}
		}
		return resource.Value{}, fmt.Errorf("an object with both \"expr\" and \"map\" (or neither); want %s", valueForms)
	}
	return resource.Value{}, fmt.Errorf("found %s; want %s", jsonKind(b[0]), valueForms)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func jsonKind(c byte) string {
	switch c {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}
