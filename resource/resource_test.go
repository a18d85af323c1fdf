package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestAddressRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		addr Address
		want string
	}{
		{"bottle", Address{Bottle: "x"}, `bottle.x`},
		{"network", Address{Bottle: "x", Kind: KindNetwork}, `bottle.x.network`},
		{"sidecar", Address{Bottle: "x", Kind: KindSidecar}, `bottle.x.sidecar`},
		{"egress", Address{Bottle: "x", Kind: KindEgress, Key: "api.github.com"}, `bottle.x.egress["api.github.com"]`},
		{"git", Address{Bottle: "x", Kind: KindGit, Key: "app"}, `bottle.x.git["app"]`},
		{"deploy key", Address{Bottle: "x", Kind: KindDeployKey, Key: "a.b_c-1"}, `bottle.x.git["a.b_c-1"].deploy_key`},
		{"auth", Address{Bottle: "x", Kind: KindAuth}, `bottle.x.auth`},
		{"agent", Address{Bottle: "x", Kind: KindAgent}, `bottle.x.agent`},
		{"prompt", Address{Bottle: "x", Kind: KindPrompt}, `bottle.x.prompt`},
		{"skill", Address{Bottle: "x", Kind: KindSkill, Key: "code-review"}, `bottle.x.skill["code-review"]`},
		{"mcp", Address{Bottle: "x", Kind: KindMCP, Key: "supervise"}, `bottle.x.mcp["supervise"]`},
		{"bottle name with digits and dashes", Address{Bottle: "a-1-b", Kind: KindAgent}, `bottle.a-1-b.agent`},
		{"empty key", Address{Bottle: "x", Kind: KindEgress}, `bottle.x.egress[""]`},
		{"key with quote", Address{Bottle: "x", Kind: KindMCP, Key: `a"b`}, `bottle.x.mcp["a\"b"]`},
		{"key with backslash", Address{Bottle: "x", Kind: KindSkill, Key: `a\b`}, `bottle.x.skill["a\\b"]`},
		{"key with backslash before quote", Address{Bottle: "x", Kind: KindGit, Key: `\"`}, `bottle.x.git["\\\""]`},
		{"key ending in backslash", Address{Bottle: "x", Kind: KindDeployKey, Key: `k\`}, `bottle.x.git["k\\"].deploy_key`},
		{"key that looks like an address", Address{Bottle: "x", Kind: KindGit, Key: `a"].deploy_key["b`}, `bottle.x.git["a\"].deploy_key[\"b"]`},
		{"key with newline and NUL", Address{Bottle: "x", Kind: KindEgress, Key: "a\nb\x00"}, `bottle.x.egress["a\nb\x00"]`},
		{"key with unicode", Address{Bottle: "x", Kind: KindSkill, Key: "résumé"}, `bottle.x.skill["résumé"]`},
	}
	kinds := map[Kind]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kinds[tt.addr.Kind] = true
			if got := tt.addr.String(); got != tt.want {
				t.Errorf("String() = %s, want %s", got, tt.want)
			}
			back, err := ParseAddress(tt.addr.String())
			if err != nil {
				t.Fatalf("ParseAddress(%s): %v", tt.addr, err)
			}
			if back != tt.addr {
				t.Errorf("ParseAddress(%s) = %#v, want %#v", tt.addr, back, tt.addr)
			}
			// Addresses are stored as their String form in JSON.
			b, err := json.Marshal(tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			var fromJSON Address
			if err := json.Unmarshal(b, &fromJSON); err != nil {
				t.Fatalf("unmarshal %s: %v", b, err)
			}
			if fromJSON != tt.addr {
				t.Errorf("JSON round trip of %s gave %#v", tt.addr, fromJSON)
			}
		})
	}
	for k := range kindNames {
		if !kinds[k] {
			t.Errorf("kind %s has no round-trip case", k)
		}
	}
}

func TestParseAddressErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // a substring of the error
	}{
		{"unknown kind", `bottle.x.volume`, `unknown kind "volume"`},
		{"deploy_key is not a kind of its own", `bottle.x.deploy_key["a"]`, `unknown kind "deploy_key"`},
		{"keyed kind without key", `bottle.x.egress`, `egress needs a key`},
		{"git without key", `bottle.x.git`, `git needs a key`},
		{"deploy_key on git without key", `bottle.x.git.deploy_key`, `git needs a key`},
		{"unkeyed kind with key", `bottle.x.agent["a"]`, `agent takes no key`},
		{"network with key", `bottle.x.network["n"]`, `network takes no key`},
		{"deploy_key on egress", `bottle.x.egress["h"].deploy_key`, `only a git entry has a deploy_key`},
		{"deploy_key on agent", `bottle.x.agent.deploy_key`, `only a git entry has a deploy_key`},
		{"upper-case bottle name", `bottle.X.agent`, `invalid address`},
		{"bottle name starting with digit", `bottle.9x`, `invalid address`},
		{"bottle name with underscore", `bottle.a_b`, `invalid address`},
		{"no bottle name", `bottle.`, `invalid address`},
		{"empty", ``, `invalid address`},
		{"wrong prefix", `bottles.x`, `invalid address`},
		{"unquoted key", `bottle.x.egress[api.github.com]`, `invalid address`},
		{"unterminated key", `bottle.x.egress["a]`, `invalid address`},
		{"trailing text", `bottle.x.agent.extra`, `invalid address`},
		{"invalid escape in key", `bottle.x.egress["\q"]`, `invalid address`},
		{"trailing space", `bottle.x.agent `, `invalid address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAddress(tt.in)
			if err == nil {
				t.Fatalf("ParseAddress(%q) = %#v, want an error", tt.in, a)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseAddress(%q) error %q does not contain %q", tt.in, err, tt.want)
			}
			if a != (Address{}) {
				t.Errorf("ParseAddress(%q) returned %#v with its error", tt.in, a)
			}
			var u Address
			if err := u.UnmarshalText([]byte(tt.in)); err == nil {
				t.Errorf("UnmarshalText(%q) accepted it", tt.in)
			}
		})
	}
}

func TestAddressLess(t *testing.T) {
	a := func(bottle string, k Kind, key string) Address { return Address{Bottle: bottle, Kind: k, Key: key} }
	// In the order the planner lists and the applier creates them.
	ordered := []Address{
		a("a", 0, ""),
		a("a", KindNetwork, ""),
		a("a", KindSidecar, ""),
		a("a", KindEgress, "a.example"),
		a("a", KindEgress, "b.example"),
		a("a", KindGit, "app"),
		a("a", KindDeployKey, "app"),
		a("a", KindGit, "lib"),
		a("a", KindDeployKey, "lib"),
		a("a", KindAuth, ""),
		a("a", KindAgent, ""),
		a("a", KindPrompt, ""),
		a("a", KindSkill, "review"),
		a("a", KindMCP, "docs"),
		a("a", KindMCP, "supervise"),
		a("b", 0, ""),
		a("b", KindNetwork, ""),
		a("b", KindMCP, "docs"),
	}
	for i := range ordered {
		if ordered[i].Less(ordered[i]) {
			t.Errorf("%s < itself", ordered[i])
		}
		for j := i + 1; j < len(ordered); j++ {
			if !ordered[i].Less(ordered[j]) {
				t.Errorf("want %s < %s", ordered[i], ordered[j])
			}
			if ordered[j].Less(ordered[i]) {
				t.Errorf("want not %s < %s", ordered[j], ordered[i])
			}
		}
	}
	shuffled := slices.Clone(ordered)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, func(x, y Address) int {
		switch {
		case x.Less(y):
			return -1
		case y.Less(x):
			return 1
		}
		return 0
	})
	if !slices.Equal(shuffled, ordered) {
		t.Errorf("sorting gave %v", shuffled)
	}
}

func TestAddressContains(t *testing.T) {
	a := func(bottle string, k Kind, key string) Address { return Address{Bottle: bottle, Kind: k, Key: key} }
	objects := func(bottle string) []Address {
		return []Address{
			a(bottle, KindNetwork, ""), a(bottle, KindSidecar, ""), a(bottle, KindEgress, "h"),
			a(bottle, KindGit, "app"), a(bottle, KindDeployKey, "app"), a(bottle, KindAuth, ""),
			a(bottle, KindAgent, ""), a(bottle, KindPrompt, ""), a(bottle, KindSkill, "s"), a(bottle, KindMCP, "m"),
		}
	}
	for _, o := range objects("x") {
		if !BottleAddr("x").Contains(o) {
			t.Errorf("bottle.x does not contain %s", o)
		}
		if !o.Contains(o) {
			t.Errorf("%s does not contain itself", o)
		}
		if o.Contains(BottleAddr("x")) {
			t.Errorf("%s contains its bottle", o)
		}
		for _, other := range objects("y") {
			if o.Contains(other) || other.Contains(o) {
				t.Errorf("%s and %s cross bottles", o, other)
			}
		}
		if BottleAddr("y").Contains(o) || BottleAddr("xx").Contains(o) {
			t.Errorf("another bottle contains %s", o)
		}
		for _, p := range objects("x") {
			want := o == p || (o.Kind == KindGit && p.Kind == KindDeployKey && o.Key == p.Key)
			if got := o.Contains(p); got != want {
				t.Errorf("%s.Contains(%s) = %v, want %v", o, p, got, want)
			}
		}
	}
	if a("x", KindGit, "app").Contains(a("x", KindDeployKey, "lib")) {
		t.Error("git app contains the deploy key of git lib")
	}
	if a("x", KindDeployKey, "app").Contains(a("x", KindGit, "app")) {
		t.Error("a deploy key contains its git entry")
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const value = "hunter2-very-secret"
	s := NewSecret(value)
	type holder struct {
		Name  string
		Token Secret
		Ptr   *Secret
	}
	h := holder{Name: "n", Token: s, Ptr: &s}
	outputs := map[string]string{
		"String":      s.String(),
		"GoString":    s.GoString(),
		"%v":          fmt.Sprintf("%v", s),
		"%+v":         fmt.Sprintf("%+v", s),
		"%#v":         fmt.Sprintf("%#v", s),
		"%s":          fmt.Sprintf("%s", s),
		"%q":          fmt.Sprintf("%q", s),
		"%x":          fmt.Sprintf("%x", s),
		"%d":          fmt.Sprintf("%d", s),
		"%10.3s":      fmt.Sprintf("%10.3s", s),
		"Sprint":      fmt.Sprint(s),
		"Sprintln":    fmt.Sprintln(s),
		"pointer %v":  fmt.Sprintf("%v", &s),
		"pointer %s":  fmt.Sprintf("%s", &s),
		"struct %v":   fmt.Sprintf("%v", h),
		"struct %+v":  fmt.Sprintf("%+v", h),
		"struct %#v":  fmt.Sprintf("%#v", h),
		"slice %v":    fmt.Sprintf("%v", []Secret{s}),
		"map %v":      fmt.Sprintf("%v", map[string]Secret{"k": s}),
		"error chain": fmt.Errorf("wrapped: %v", s).Error(),
	}
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("secret", "token", s, slog.Any("any", s), slog.Group("g", "inner", s))
	logger.Info("pointer", "token", &s)
	outputs["slog json"] = buf.String()
	var text bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("secret", "token", s)
	outputs["slog text"] = text.String()

	for name, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, "hunter2") {
			t.Errorf("%s leaks the value: %s", name, out)
		}
		if !strings.Contains(out, "(sensitive)") {
			t.Errorf("%s = %q, want (sensitive)", name, out)
		}
	}
	if got := strings.Count(outputs["slog json"], `"(sensitive)"`); got != 4 {
		t.Errorf("slog json shows (sensitive) %d times, want 4: %s", got, outputs["slog json"])
	}
	if s.Reveal() != value {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
}

func TestSecretRefusesMarshal(t *testing.T) {
	s := NewSecret("hunter2")
	values := map[string]any{
		"secret":         s,
		"pointer":        &s,
		"struct field":   struct{ Token Secret }{s},
		"struct pointer": struct{ Token *Secret }{&s},
		"omitempty": struct {
			Token Secret `json:"t,omitempty"`
		}{s},
		"slice":            []Secret{s},
		"map value":        map[string]Secret{"k": s},
		"nested in struct": struct{ Inner struct{ S []Secret } }{struct{ S []Secret }{[]Secret{s}}},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(v)
			if !errors.Is(err, ErrSensitive) {
				t.Errorf("json.Marshal = %s, %v; want ErrSensitive", b, err)
			}
			if bytes.Contains(b, []byte("hunter2")) {
				t.Errorf("json.Marshal leaked the value: %s", b)
			}
		})
	}
	// encoding/json reports a failing map key without wrapping the
	// error, so only its text is left to check.
	if b, err := json.Marshal(map[Secret]string{s: "v"}); err == nil || !strings.Contains(err.Error(), ErrSensitive.Error()) {
		t.Errorf("json.Marshal of a map keyed by Secret = %s, %v; want ErrSensitive's message", b, err)
	}
	if _, err := s.MarshalText(); !errors.Is(err, ErrSensitive) {
		t.Errorf("MarshalText: %v", err)
	}
	if _, err := s.MarshalBinary(); !errors.Is(err, ErrSensitive) {
		t.Errorf("MarshalBinary: %v", err)
	}
	var into struct{ Token Secret }
	if err := json.Unmarshal([]byte(`{"Token":"x"}`), &into); !errors.Is(err, ErrSensitive) {
		t.Errorf("json.Unmarshal into a Secret: %v, want ErrSensitive", err)
	}
}

func TestAttrs(t *testing.T) {
	base := func() Attrs {
		return Attrs{
			"image": String("agent:1"),
			"cpus":  Expr("2"),
			"env": MapOf(map[string]Value{
				"TZ":    String("UTC"),
				"TOKEN": RefValue(Ref{Secret: "gh"}),
			}),
			"push": Strings([]string{"refs/heads/a/*", "refs/heads/b/*"}),
		}
	}
	tests := []struct {
		name string
		edit func(a Attrs)
		want []string // Changed
	}{
		{"same", func(Attrs) {}, nil},
		{"string changed", func(a Attrs) { a["image"] = String("agent:2") }, []string{"image"}},
		{"string to expression", func(a Attrs) { a["image"] = Expr("agent:1") }, []string{"image"}},
		{"attribute added", func(a Attrs) { a["memory"] = String("4GiB") }, []string{"memory"}},
		{"attribute removed", func(a Attrs) { delete(a, "cpus") }, []string{"cpus"}},
		{"list element changed", func(a Attrs) { a["push"] = Strings([]string{"refs/heads/a/*", "refs/heads/c/*"}) }, []string{"push"}},
		{"list reordered", func(a Attrs) { a["push"] = Strings([]string{"refs/heads/b/*", "refs/heads/a/*"}) }, []string{"push"}},
		{"list shortened", func(a Attrs) { a["push"] = Strings([]string{"refs/heads/a/*"}) }, []string{"push"}},
		{"map value changed", func(a Attrs) { a["env"].Map["TZ"] = String("CET") }, []string{"env"}},
		{"map key renamed", func(a Attrs) {
			m := a["env"].Map
			m["TZ2"] = m["TZ"]
			delete(m, "TZ")
		}, []string{"env"}},
		{"map reference changed", func(a Attrs) { a["env"].Map["TOKEN"] = RefValue(Ref{HostEnv: "gh"}) }, []string{"env"}},
		{"several", func(a Attrs) {
			a["image"] = String("agent:2")
			delete(a, "push")
			a["b"] = Bool(true)
		}, []string{"b", "image", "push"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := base(), base()
			tt.edit(b)
			if got := a.Changed(b); !slices.Equal(got, tt.want) {
				t.Errorf("a.Changed(b) = %q, want %q", got, tt.want)
			}
			if got := b.Changed(a); !slices.Equal(got, tt.want) {
				t.Errorf("b.Changed(a) = %q, want %q", got, tt.want)
			}
			same := len(tt.want) == 0
			if a.Equal(b) != same || b.Equal(a) != same {
				t.Errorf("Equal = %v, %v; want %v", a.Equal(b), b.Equal(a), same)
			}
			if (a.Digest() == b.Digest()) != same {
				t.Errorf("digests equal = %v, want %v (%s, %s)", a.Digest() == b.Digest(), same, a.Digest(), b.Digest())
			}
		})
	}

	// The digest does not depend on the order maps were filled in.
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	var digests []string
	for round := 0; round < 8; round++ {
		order := slices.Clone(keys)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		a := Attrs{}
		inner := map[string]Value{}
		for _, k := range order {
			a[k] = String(k)
			inner[k] = Expr(k)
		}
		a["m"] = MapOf(inner)
		digests = append(digests, a.Digest())
	}
	for _, d := range digests[1:] {
		if d != digests[0] {
			t.Fatalf("digests differ across map orders: %q", digests)
		}
	}
	if d := base().Digest(); !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 {
		t.Errorf("Digest() = %q, want sha256:<64 hex>", d)
	}
	if !slices.Equal(base().Names(), slices.Sorted(maps.Keys(base()))) {
		t.Errorf("Names() = %q, not sorted", base().Names())
	}
}

func TestValueEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b Value
		want bool
	}{
		{"same string", String("x"), String("x"), true},
		{"string vs expression", String("x"), Expr("x"), false},
		{"bool", Bool(true), Expr("true"), true},
		{"int", Int(2), Expr("2"), true},
		{"nil and empty list", Strings(nil), Strings([]string{}), true},
		{"list vs string", Strings([]string{"x"}), String("x"), false},
		{"nested maps", MapOf(map[string]Value{"a": MapOf(map[string]Value{"b": String("c")})}), MapOf(map[string]Value{"a": MapOf(map[string]Value{"b": String("c")})}), true},
		{"nested maps differ", MapOf(map[string]Value{"a": MapOf(map[string]Value{"b": String("c")})}), MapOf(map[string]Value{"a": MapOf(map[string]Value{"b": String("d")})}), false},
		{"maps with different keys", MapOf(map[string]Value{"a": String("x")}), MapOf(map[string]Value{"b": String("x")}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Equal(tt.b); got != tt.want {
				t.Errorf("a.Equal(b) = %v, want %v", got, tt.want)
			}
			if got := tt.b.Equal(tt.a); got != tt.want {
				t.Errorf("b.Equal(a) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValueMultiLine(t *testing.T) {
	tests := []struct {
		name string
		v    Value
		want bool
	}{
		{"empty", String(""), false},
		{"one line", String("hello"), false},
		{"one line with newline", String("hello\n"), false},
		{"two lines", String("a\nb"), true},
		{"two lines with newline", String("a\nb\n"), true},
		{"CRLF", String("a\r\nb"), true},
		{"lone newline", String("\n"), false},
		{"blank line then newline", String("\n\n"), true},
		{"expression with newline", Expr("a\nb"), false},
		{"list", Strings([]string{"a\nb"}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.MultiLine(); got != tt.want {
				t.Errorf("MultiLine(%q) = %v, want %v", tt.v.Str, got, tt.want)
			}
		})
	}
}
