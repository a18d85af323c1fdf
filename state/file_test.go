package state

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/resource"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const goldenPath = "testdata/v1.state.json"

func addr(bottle string, kind resource.Kind, key string) resource.Address {
	return resource.Address{Bottle: bottle, Kind: kind, Key: key}
}

func res(a resource.Address, attrs resource.Attrs, ids map[string]string) *Resource {
	return &Resource{Addr: a, Attrs: attrs, Digest: attrs.Digest(), IDs: ids}
}

// goldenState is a realistic state: a docker bottle with every kind of
// object and a smolmachines bottle.
func goldenState() *State {
	s := &State{
		Lineage:           "6f1c2b8e-4d3a-4f7b-9e21-0c5d8a7b3e10",
		Serial:            7,
		BottleformVersion: "0.1.0",
	}
	const r = "reviewer"
	s.Set(resource.BackendDocker, res(addr(r, resource.KindNetwork, ""), resource.Attrs{
		"internal": resource.String("bf-6f1c2b8e-reviewer-internal"),
		"egress":   resource.String("bf-6f1c2b8e-reviewer-egress"),
	}, map[string]string{
		"internal_network_id": "4b1f0c6e2d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c",
		"egress_network_id":   "9c0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100",
	}))
	s.Set(resource.BackendDocker, res(addr(r, resource.KindSidecar, ""), resource.Attrs{
		"image":   resource.String("bottleform-sidecar:0.1.0"),
		"aliases": resource.Strings([]string{"egress", "git-gate", "supervise"}),
	}, map[string]string{
		"container_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
	}))
	s.Set(resource.BackendDocker, res(addr(r, resource.KindEgress, "api.github.com"), resource.Attrs{
		"tls":   resource.String(resource.TLSIntercept),
		"paths": resource.Strings([]string{"/repos/acme/app/"}),
		"auth": resource.MapOf(map[string]resource.Value{
			"scheme": resource.String("Bearer"),
			"token":  resource.Expr("secret.github"),
		}),
		"slot": resource.String("EGRESS_TOKEN_1"),
	}, nil))
	s.Set(resource.BackendDocker, res(addr(r, resource.KindEgress, "registry.npmjs.org"), resource.Attrs{
		"tls": resource.String(resource.TLSIntercept),
	}, nil))
	s.Set(resource.BackendDocker, res(addr(r, resource.KindGit, "app"), resource.Attrs{
		"upstream": resource.String("ssh://git@gitea.acme.dev:2222/acme/app.git"),
		"host_key": resource.String("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"),
		"push":     resource.Strings([]string{"refs/heads/agent/*"}),
	}, nil))
	s.Set(resource.BackendDocker, res(addr(r, resource.KindDeployKey, "app"), resource.Attrs{
		"kind":    resource.String(resource.KeyGitea),
		"api_url": resource.String("https://gitea.acme.dev"),
		"token":   resource.Expr("secret.gitea_admin"),
	}, map[string]string{
		"deploy_key_id": "42",
		"repo":          "acme/app",
		"api_url":       "https://gitea.acme.dev",
	}))
	s.Set(resource.BackendDocker, res(addr(r, resource.KindAuth, ""), resource.Attrs{
		"provider":   resource.String(resource.ProviderClaude),
		"auth_token": resource.Expr("secret.claude"),
	}, nil))
	s.Set(resource.BackendDocker, res(addr(r, resource.KindMCP, "docs"), resource.Attrs{
		"url": resource.String("https://mcp.acme.dev/mcp"),
	}, nil))
	s.Set(resource.BackendDocker, res(addr(r, resource.KindAgent, ""), resource.Attrs{
		"image": resource.String("ghcr.io/acme/claude-agent:2.1"),
		"env": resource.MapOf(map[string]resource.Value{
			"TZ":          resource.String("UTC"),
			"HOST_USER":   resource.Expr(`host_env("USER")`),
			"DB_PASSWORD": resource.Expr("secret.db"),
		}),
		"cpus":   resource.Int(2),
		"memory": resource.String("4GiB"),
	}, map[string]string{
		"container_id": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	}))
	s.Set(resource.BackendDocker, res(addr(r, resource.KindPrompt, ""), resource.Attrs{
		"file": resource.String("prompts/reviewer.md"),
		"text": resource.String("You review pull requests for acme/app.\n\n" +
			"- Reply in <details> blocks & keep it short.\n" +
			"- Never push to \"main\".\n"),
	}, nil))
	s.Set(resource.BackendDocker, res(addr(r, resource.KindSkill, "code-review"), resource.Attrs{
		"dir":    resource.String("skills/code-review"),
		"digest": resource.String("sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"),
	}, nil))

	const sc = "scratch"
	s.Set(resource.BackendSmolmachines, res(addr(sc, resource.KindNetwork, ""), resource.Attrs{
		"egress": resource.String("bf-6f1c2b8e-scratch-egress"),
	}, map[string]string{
		"egress_network_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
	}))
	s.Set(resource.BackendSmolmachines, res(addr(sc, resource.KindSidecar, ""), resource.Attrs{
		"image": resource.String("bottleform-sidecar:0.1.0"),
	}, map[string]string{
		"container_id": "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6",
		"egress_port":  "127.0.0.1:41234",
	}))
	s.Set(resource.BackendSmolmachines, res(addr(sc, resource.KindEgress, "registry.npmjs.org"), resource.Attrs{
		"tls": resource.String(resource.TLSPassthrough),
	}, nil))
	s.Set(resource.BackendSmolmachines, res(addr(sc, resource.KindAgent, ""), resource.Attrs{
		"image": resource.String("ghcr.io/acme/codex-agent:1.4"),
		"env":   resource.MapOf(map[string]resource.Value{}),
	}, map[string]string{
		"vm": "bf-6f1c2b8e-scratch",
	}))
	return s
}

func writeBytes(t *testing.T, s *State) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, s); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func TestGoldenRoundTrip(t *testing.T) {
	want := goldenState()
	written := writeBytes(t, want)
	if *update {
		if err := os.WriteFile(goldenPath, written, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run go test ./state -run TestGoldenRoundTrip -update)", err)
	}
	if !bytes.Equal(written, golden) {
		t.Errorf("Write(goldenState()) differs from %s (rerun with -update and review):\n%s", goldenPath, firstDiff(written, golden))
	}

	got, err := Read(bytes.NewReader(golden))
	if err != nil {
		t.Fatalf("Read(%s): %v", goldenPath, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read(%s) differs from goldenState()", goldenPath)
		for _, r := range want.Resources() {
			if g := got.Lookup(r.Addr); g == nil || !reflect.DeepEqual(g, r) {
				t.Errorf("  %s: got %+v, want %+v", r.Addr, g, r)
			}
		}
	}
	if again := writeBytes(t, got); !bytes.Equal(again, golden) {
		t.Errorf("Read then Write of %s changed it:\n%s", goldenPath, firstDiff(again, golden))
	}

	// The file is meant to be read by people: secret references and HTML
	// characters are shown as written.
	for _, want := range []string{
		`"expr": "secret.github"`,
		`<details> blocks & keep it short`,
		`"address": "bottle.reviewer.git[\"app\"].deploy_key"`,
		`"deploy_key_id": "42"`,
	} {
		if !bytes.Contains(golden, []byte(want)) {
			t.Errorf("%s does not contain %q", goldenPath, want)
		}
	}
}

func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n  got:  " + gl + "\n  want: " + wl
		}
	}
	return "(no line differs)"
}

func TestWriteDeterministic(t *testing.T) {
	want := writeBytes(t, goldenState())
	for i := range 20 {
		if got := writeBytes(t, goldenState()); !bytes.Equal(got, want) {
			t.Fatalf("write %d differs:\n%s", i, firstDiff(got, want))
		}
	}
	// Resources out of order in the model are written sorted.
	s := goldenState()
	rs := s.Bottles["reviewer"].Resources
	for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
		rs[i], rs[j] = rs[j], rs[i]
	}
	if got := writeBytes(t, s); !bytes.Equal(got, want) {
		t.Fatalf("unsorted resources change the output:\n%s", firstDiff(got, want))
	}
	if !bytes.HasSuffix(want, []byte("}\n")) || bytes.HasSuffix(want, []byte("\n\n")) {
		t.Errorf("output does not end in exactly one newline")
	}
}

func TestWriteNil(t *testing.T) {
	got := string(writeBytes(t, nil))
	want := "{\n  \"version\": 1,\n  \"lineage\": \"\",\n  \"serial\": 0,\n  \"bottleform_version\": \"\",\n  \"bottles\": {}\n}\n"
	if got != want {
		t.Errorf("Write(nil) =\n%s\nwant\n%s", got, want)
	}
	s, err := Read(strings.NewReader(got))
	if err != nil || len(s.Resources()) != 0 {
		t.Errorf("Read(Write(nil)) = %+v, %v", s, err)
	}
}

func TestWriteRefusesInvalidState(t *testing.T) {
	net := func(b string) *Resource { return &Resource{Addr: addr(b, resource.KindNetwork, "")} }
	tests := []struct {
		name string
		s    *State
		want string
	}{
		{"unknown backend", &State{Bottles: map[string]*Bottle{"a": {Backend: "podman", Resources: []*Resource{net("a")}}}}, `unknown backend "podman"`},
		{"misfiled resource", &State{Bottles: map[string]*Bottle{"a": {Backend: "docker", Resources: []*Resource{net("b")}}}}, `resource bottle.b.network belongs to bottle "b"`},
		{"duplicate", &State{Bottles: map[string]*Bottle{"a": {Backend: "docker", Resources: []*Resource{net("a"), net("a")}}}}, `duplicate resource bottle.a.network`},
		{"whole bottle address", &State{Bottles: map[string]*Bottle{"a": {Backend: "docker", Resources: []*Resource{{Addr: resource.BottleAddr("a")}}}}}, `names a whole bottle`},
		{"keyed kind without key brackets", &State{Bottles: map[string]*Bottle{"a": {Backend: "docker", Resources: []*Resource{{Addr: addr("a", resource.KindNetwork, "x")}}}}}, `invalid address bottle.a.network`},
		{"bad bottle name", &State{Bottles: map[string]*Bottle{"A b": {Backend: "docker"}}}, `invalid bottle name "A b"`},
		{"nested too deep", &State{Bottles: map[string]*Bottle{"a": {Backend: "docker", Resources: []*Resource{{Addr: addr("a", resource.KindNetwork, ""), Attrs: resource.Attrs{"x": nest(33)}}}}}}, `nested more than 32 levels deep`},
		{"zero value", &State{Bottles: map[string]*Bottle{"a": {Backend: "docker", Resources: []*Resource{{Addr: addr("a", resource.KindNetwork, ""), Attrs: resource.Attrs{"x": {}}}}}}}, `attribute "x": invalid value kind 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tt.s)
			if err == nil {
				t.Fatalf("Write succeeded:\n%s", buf.String())
			}
			if !strings.HasPrefix(err.Error(), "write state: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func nest(depth int) resource.Value {
	v := resource.String("leaf")
	for range depth - 1 {
		v = resource.Value{Kind: resource.ValueList, List: []resource.Value{v}}
	}
	return v
}

func TestNestingLimit(t *testing.T) {
	s := &State{}
	s.Set(resource.BackendDocker, &Resource{Addr: addr("a", resource.KindNetwork, ""), Attrs: resource.Attrs{"x": nest(32)}})
	got, err := Read(bytes.NewReader(writeBytes(t, s)))
	if err != nil {
		t.Fatalf("32 levels: %v", err)
	}
	if !got.Lookup(addr("a", resource.KindNetwork, "")).Attrs["x"].Equal(nest(32)) {
		t.Error("32 levels did not round-trip")
	}
}

// minimal returns a valid v1 file whose one resource has the given JSON
// fields, to be varied by the read error cases.
func minimal(resourceFields string) string {
	return `{"version": 1, "lineage": "l", "serial": 1, "bottleform_version": "dev", "bottles": {"reviewer": {"backend": "docker", "resources": [` + resourceFields + `]}}}`
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"newer version", `{"version": 2, "bottleform_version": "0.9.0", "lineage": "l", "everything": "else"}`,
			[]string{"state format version 2 was written by a newer bottleform (0.9.0)", "this bottleform (dev) reads versions up to 1", "upgrade bottleform"}},
		{"newer version without bottleform_version", `{"version": 3}`,
			[]string{"state format version 3 was written by a newer bottleform;", "reads versions up to 1"}},
		{"missing version", `{"lineage": "l", "serial": 1, "bottles": {}}`, []string{`not a bottleform state file: no "version" field`}},
		{"null version", `{"version": null}`, []string{`no "version" field`}},
		{"version zero", `{"version": 0, "bottles": {}}`, []string{"unsupported state format version 0", "versions 1 to 1"}},
		{"version not a number", `{"version": "1"}`, []string{`unsupported state format version "1": want a whole number`}},
		{"version fraction", `{"version": 1.5}`, []string{`unsupported state format version 1.5`}},
		{"empty", "", []string{"not a bottleform state file: the file is empty"}},
		{"garbage", "PK\x03\x04 this is a zip", []string{"not a bottleform state file: invalid JSON at line 1, column 1: invalid character 'P'"}},
		{"truncated", "{\n  \"version\": 1,\n  \"bottles\": {", []string{"not a bottleform state file: invalid JSON"}},
		{"syntax error position", "{\n  \"version\": 1,\n  \"serial\": 1,,\n}", []string{"invalid JSON at line 3, column 15"}},
		{"array", `[{"version": 1}]`, []string{"not a bottleform state file: want a JSON object, found a JSON array"}},
		{"trailing data", `{"version": 1} {"version": 1}`, []string{"after top-level value"}},
		{"unknown top-level field", `{"version": 1, "lineage": "l", "seriall": 2}`, []string{`unknown field "seriall"`, "check the spelling"}},
		{"unknown bottle field", `{"version": 1, "bottles": {"reviewer": {"backend": "docker", "backnd": "x"}}}`, []string{`unknown field "backnd"`}},
		{"unknown resource field", minimal(`{"adress": "bottle.reviewer.network"}`), []string{`unknown field "adress"`}},
		{"wrong type", `{"version": 1, "serial": "7"}`, []string{`field "serial" on line 1: want uint64, found a JSON string`}},
		{"negative serial", `{"version": 1, "serial": -1}`, []string{`field "serial"`, "want uint64"}},
		{"bad address", minimal(`{"address": "bottle.reviewer.firewall"}`), []string{`bottle "reviewer": invalid address "bottle.reviewer.firewall": unknown kind "firewall"`}},
		{"address without key", minimal(`{"address": "bottle.reviewer.egress"}`), []string{`egress needs a key`}},
		{"whole bottle address", minimal(`{"address": "bottle.reviewer"}`), []string{`address bottle.reviewer names a whole bottle, not an object`}},
		{"resource under another bottle", minimal(`{"address": "bottle.other.network"}`), []string{`bottle "reviewer": resource bottle.other.network belongs to bottle "other"`}},
		{"duplicate address", minimal(`{"address": "bottle.reviewer.egress[\"a.example\"]"}, {"address": "bottle.reviewer.network"}, {"address": "bottle.reviewer.egress[\"a.example\"]"}`),
			[]string{`bottle "reviewer": duplicate resource bottle.reviewer.egress["a.example"]`}},
		{"unknown backend", `{"version": 1, "bottles": {"reviewer": {"backend": "podman", "resources": []}}}`, []string{`bottle "reviewer": unknown backend "podman" (want "docker" or "smolmachines")`}},
		{"missing backend", `{"version": 1, "bottles": {"reviewer": {"resources": []}}}`, []string{`bottle "reviewer": unknown backend ""`}},
		{"bad bottle name", `{"version": 1, "bottles": {"Reviewer": {"backend": "docker"}}}`, []string{`invalid bottle name "Reviewer"`}},
		{"number attribute", minimal(`{"address": "bottle.reviewer.agent", "attributes": {"cpus": 2}}`),
			[]string{`resource bottle.reviewer.agent: attribute "cpus": found a number; want a string, a list, {"expr": "..."} or {"map": {...}}`}},
		{"null attribute", minimal(`{"address": "bottle.reviewer.agent", "attributes": {"image": null}}`), []string{`attribute "image": found null`}},
		{"unknown value field", minimal(`{"address": "bottle.reviewer.auth", "attributes": {"auth_token": {"exp": "secret.claude"}}}`),
			[]string{`attribute "auth_token": unknown field "exp"`}},
		{"expr not a string", minimal(`{"address": "bottle.reviewer.auth", "attributes": {"auth_token": {"expr": ["secret.claude"]}}}`),
			[]string{`attribute "auth_token": "expr" must be a string`}},
		{"nested too deep", minimal(`{"address": "bottle.reviewer.agent", "attributes": {"x": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`),
			[]string{`attribute "x": element 0: element 0:`, "nested more than 32 levels deep"}},
		{"nested bad value", minimal(`{"address": "bottle.reviewer.agent", "attributes": {"env": {"map": {"A": ["x", true]}}}}`),
			[]string{`attribute "env": key "A": element 1: found a boolean`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Read(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Read succeeded: %+v", s)
			}
			if !strings.HasPrefix(err.Error(), "read state: ") {
				t.Errorf("error %q does not start with %q", err, "read state: ")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// TestUpgradeChain shows how a future format is reached: one step per
// version, applied in order.
func TestUpgradeChain(t *testing.T) {
	defer func() { delete(upgrades, 100); delete(upgrades, 101) }()
	upgrades[100] = func(b []byte) ([]byte, error) { return append(b, " 100→101"...), nil }
	upgrades[101] = func(b []byte) ([]byte, error) { return append(b, " 101→102"...), nil }
	tests := []struct {
		name     string
		from, to int
		want     string
	}{
		{"current", 102, 102, "v"},
		{"one step", 101, 102, "v 101→102"},
		{"two steps", 100, 102, "v 100→101 101→102"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := upgrade([]byte("v"), tt.from, tt.to)
			if err != nil || string(got) != tt.want {
				t.Errorf("upgrade = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	upgrades[101] = func([]byte) ([]byte, error) { return nil, errors.New("no good") }
	if _, err := upgrade([]byte("v"), 100, 102); err == nil || err.Error() != "upgrade from version 101 to 102: no good" {
		t.Errorf("failing step: %v", err)
	}
}

func TestReadSortsResources(t *testing.T) {
	s, err := Read(strings.NewReader(minimal(`{"address": "bottle.reviewer.agent"}, {"address": "bottle.reviewer.git[\"app\"].deploy_key"}, {"address": "bottle.reviewer.network"}, {"address": "bottle.reviewer.git[\"app\"]"}`)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range s.Bottles["reviewer"].Resources {
		got = append(got, r.Addr.String())
	}
	want := []string{`bottle.reviewer.network`, `bottle.reviewer.git["app"]`, `bottle.reviewer.git["app"].deploy_key`, `bottle.reviewer.agent`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resources %q, want %q", got, want)
	}
}
