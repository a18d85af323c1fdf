package resource

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Kind is the type of one addressable object of a bottle.
type Kind int

// Kinds, in the order the applier creates them. Values are stable: they
// are never written to disk (addresses are stored as strings) but tests
// and sorting rely on the order.
const (
	KindNetwork   Kind = 1
	KindSidecar   Kind = 2
	KindEgress    Kind = 3
	KindGit       Kind = 4
	KindDeployKey Kind = 5
	KindAuth      Kind = 6
	KindAgent     Kind = 7
	KindPrompt    Kind = 8
	KindSkill     Kind = 9
	KindMCP       Kind = 10
)

var kindNames = map[Kind]string{
	KindNetwork:   "network",
	KindSidecar:   "sidecar",
	KindEgress:    "egress",
	KindGit:       "git",
	KindDeployKey: "deploy_key",
	KindAuth:      "auth",
	KindAgent:     "agent",
	KindPrompt:    "prompt",
	KindSkill:     "skill",
	KindMCP:       "mcp",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Keyed reports whether addresses of this kind carry a key
// (egress["HOST"], git["N"], skill["S"], mcp["N"], git["N"].deploy_key).
func (k Kind) Keyed() bool {
	switch k {
	case KindEgress, KindGit, KindDeployKey, KindSkill, KindMCP:
		return true
	}
	return false
}

// InAgent reports whether objects of this kind live inside the agent
// container or VM, so that replacing the agent must provision them again.
func (k Kind) InAgent() bool {
	switch k {
	case KindAuth, KindPrompt, KindSkill, KindMCP:
		return true
	}
	return false
}

// Address names one object of one bottle. Its String form is what plans,
// the state file and --target use: bottle.NAME.KIND, bottle.NAME.KIND["KEY"]
// or, for a deploy key, bottle.NAME.git["KEY"].deploy_key.
type Address struct {
	Bottle string
	Kind   Kind
	Key    string
}

// BottleAddr is the address of a whole bottle; it matches every object of
// it in --target and --replace.
func BottleAddr(name string) Address { return Address{Bottle: name} }

// IsBottle reports whether a names a whole bottle rather than one object.
func (a Address) IsBottle() bool { return a.Kind == 0 }

func (a Address) String() string {
	var b strings.Builder
	b.WriteString("bottle.")
	b.WriteString(a.Bottle)
	if a.IsBottle() {
		return b.String()
	}
	if a.Kind == KindDeployKey {
		fmt.Fprintf(&b, ".git[%s].deploy_key", strconv.Quote(a.Key))
		return b.String()
	}
	b.WriteString(".")
	b.WriteString(a.Kind.String())
	if a.Kind.Keyed() {
		fmt.Fprintf(&b, "[%s]", strconv.Quote(a.Key))
	}
	return b.String()
}

// Less orders addresses by bottle, then kind (dependency order), then key.
// A deploy key sorts right after its git entry.
func (a Address) Less(b Address) bool {
	if a.Bottle != b.Bottle {
		return a.Bottle < b.Bottle
	}
	ak, bk := a.sortKind(), b.sortKind()
	if ak != bk {
		return ak < bk
	}
	if a.Key != b.Key {
		return a.Key < b.Key
	}
	return a.Kind < b.Kind
}

func (a Address) sortKind() Kind {
	if a.Kind == KindDeployKey {
		return KindGit
	}
	return a.Kind
}

// Contains reports whether a selects b for --target and --replace: equal
// addresses, a whole bottle selecting its objects, and a git entry
// selecting its deploy key.
func (a Address) Contains(b Address) bool {
	if a == b {
		return true
	}
	if a.Bottle != b.Bottle {
		return false
	}
	if a.IsBottle() {
		return true
	}
	return a.Kind == KindGit && b.Kind == KindDeployKey && a.Key == b.Key
}

var addrRe = regexp.MustCompile(`^bottle\.([a-z][a-z0-9-]*)(?:\.([a-z_]+)(?:\[("(?:[^"\\]|\\.)*")\])?(\.deploy_key)?)?$`)

// ParseAddress parses the String form of an address.
func ParseAddress(s string) (Address, error) {
	m := addrRe.FindStringSubmatch(s)
	if m == nil {
		return Address{}, fmt.Errorf("invalid address %q: want bottle.NAME, bottle.NAME.KIND or bottle.NAME.KIND[\"KEY\"]", s)
	}
	a := Address{Bottle: m[1]}
	if m[2] == "" {
		return a, nil
	}
	var kind Kind
	for k, n := range kindNames {
		if n == m[2] && k != KindDeployKey {
			kind = k
		}
	}
	if kind == 0 {
		return Address{}, fmt.Errorf("invalid address %q: unknown kind %q (one of network, sidecar, egress, git, auth, agent, prompt, skill, mcp)", s, m[2])
	}
	a.Kind = kind
	if m[3] != "" {
		key, err := strconv.Unquote(m[3])
		if err != nil {
			return Address{}, fmt.Errorf("invalid address %q: %v", s, err)
		}
		a.Key = key
	}
	if kind.Keyed() != (m[3] != "") {
		if kind.Keyed() {
			return Address{}, fmt.Errorf("invalid address %q: %s needs a key, as in %s[\"KEY\"]", s, kind, kind)
		}
		return Address{}, fmt.Errorf("invalid address %q: %s takes no key", s, kind)
	}
	if m[4] != "" {
		if kind != KindGit {
			return Address{}, fmt.Errorf("invalid address %q: only a git entry has a deploy_key", s)
		}
		a.Kind = KindDeployKey
	}
	return a, nil
}

// MarshalText stores an address in its String form.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses the String form.
func (a *Address) UnmarshalText(b []byte) error {
	p, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}
