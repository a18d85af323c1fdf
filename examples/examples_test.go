package examples_test

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
	"github.com/bottleform/bottleform/views"
)

var update = flag.Bool("update", false, "rewrite golden files")

// exampleDirs lists the example directories: every directory here except
// testdata and hidden ones, so a new example is covered without a change
// to this file.
func exampleDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") {
			continue
		}
		dirs = append(dirs, n)
	}
	if len(dirs) == 0 {
		t.Fatal("no example directories found")
	}
	return dirs
}

// fakeEnv answers every variable with a fixed, non-secret value, and HOME
// with home, so the host checks of plan pass without touching the real
// environment.
func fakeEnv(home string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if name == "HOME" {
			return home, true
		}
		return "not-a-secret", true
	}
}

func load(t *testing.T, dir string) *config.File {
	t.Helper()
	cfg, _, diags := config.Load(dir, config.Options{LookupEnv: fakeEnv(t.TempDir())})
	for _, d := range diags {
		t.Logf("%s", d)
	}
	if diags.HasErrors() {
		t.Fatalf("load %s: %s", dir, diags.Error())
	}
	if cfg == nil {
		t.Fatalf("load %s: nil configuration without an error diagnostic", dir)
	}
	return cfg
}

// applied returns the state an apply of p would leave, starting from prior.
func applied(p *planner.Plan, prior *state.State) *state.State {
	s := &state.State{Lineage: "examples-test-lineage", Serial: 1}
	if prior != nil {
		s.Lineage, s.Serial = prior.Lineage, prior.Serial+1
		for _, r := range prior.Resources() {
			s.Set(prior.Bottles[r.Addr.Bottle].Backend, r)
		}
	}
	for _, c := range p.Changes {
		switch c.Action {
		case planner.Delete:
			s.Remove(c.Addr)
		case planner.Create, planner.Update, planner.Replace, planner.NoOp:
			backend := resource.BackendDocker
			if b := p.Bottles[c.Addr.Bottle]; b != nil {
				backend = b.Backend
			}
			s.Set(backend, &state.Resource{Addr: c.Addr, Attrs: c.After, Digest: c.After.Digest()})
		}
	}
	return s
}

// withFirstBottle returns a copy of cfg whose alphabetically first bottle
// has been changed by edit; cfg itself is left alone.
func withFirstBottle(cfg *config.File, edit func(b *resource.Bottle)) (*config.File, string) {
	names := make([]string, 0, len(cfg.Bottles))
	for n := range cfg.Bottles {
		names = append(names, n)
	}
	sort.Strings(names)
	first := names[0]
	c := *cfg
	c.Bottles = map[string]*resource.Bottle{}
	for n, b := range cfg.Bottles {
		c.Bottles[n] = b
	}
	b := *cfg.Bottles[first]
	b.Egress = slices.Clone(b.Egress)
	edit(&b)
	c.Bottles[first] = &b
	return &c, first
}

func diff(t *testing.T, cfg *config.File, prior *state.State, opts planner.Options) *planner.Plan {
	t.Helper()
	p, err := planner.Diff(cfg, prior, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func golden(t *testing.T, example, name string, p *planner.Plan) {
	t.Helper()
	var buf bytes.Buffer
	if err := views.Plan(&buf, p, views.Options{Color: false}); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", example, name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./examples -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run go test ./examples -update and review the diff)\n--- got:\n%s", path, got)
	}
}

// stateSeed keeps the state an apply of the example leaves as a seed of the
// state reader's fuzz target (state/testdata/examples), so that target is
// seeded from the examples and its seeds follow them.
func stateSeed(t *testing.T, example string, s *state.State) {
	t.Helper()
	var buf bytes.Buffer
	if err := state.Write(&buf, s); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "state", "testdata", "examples", example+".state.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s is not the state the example leaves (run go test ./examples -update): %v", path, err)
	}
}

func TestExamples(t *testing.T) {
	for _, example := range exampleDirs(t) {
		t.Run(example, func(t *testing.T) {
			cfg := load(t, example)
			if len(cfg.Bottles) == 0 {
				t.Fatal("the example defines no bottle")
			}

			create := diff(t, cfg, nil, planner.Options{})
			if len(create.Changes) == 0 {
				t.Fatal("create plan is empty")
			}
			for _, c := range create.Changes {
				if c.Action != planner.Create {
					t.Errorf("create: %s is %s, want create", c.Addr, c.Action)
				}
			}
			golden(t, example, "create", create)
			live := applied(create, nil)
			stateSeed(t, example, live)
			if got, want := len(live.Resources()), len(create.Changes); got != want {
				t.Fatalf("applied state has %d resources, the create plan %d changes", got, want)
			}

			noop := diff(t, cfg, live, planner.Options{})
			if noop.HasChanges() {
				t.Errorf("noop plan has changes:\n%s", noop)
			}
			golden(t, example, "noop", noop)

			added, first := withFirstBottle(cfg, func(b *resource.Bottle) {
				b.Egress = append(b.Egress, resource.Route{Host: "pypi.org", TLS: resource.TLSIntercept})
				sort.Slice(b.Egress, func(i, j int) bool { return b.Egress[i].Host < b.Egress[j].Host })
			})
			egress := diff(t, added, live, planner.Options{})
			want := resource.Address{Bottle: first, Kind: resource.KindEgress, Key: "pypi.org"}
			if changed := changes(egress); len(changed) != 1 || changed[0].Addr != want || changed[0].Action != planner.Create {
				t.Errorf("egress_added: want exactly one change, create %s; got:\n%s", want, egress)
			}
			golden(t, example, "egress_added", egress)

			bumped, first := withFirstBottle(cfg, func(b *resource.Bottle) { b.Image += "-next" })
			image := diff(t, bumped, live, planner.Options{})
			agentAddr := resource.Address{Bottle: first, Kind: resource.KindAgent}
			var sawAgent bool
			for _, c := range changes(image) {
				switch c.Addr.Kind {
				case resource.KindNetwork, resource.KindSidecar, resource.KindEgress, resource.KindGit, resource.KindDeployKey:
					t.Errorf("image_changed: %s %s, want no change", c.Action, c.Addr)
				}
				if c.Addr.Bottle != first {
					t.Errorf("image_changed: %s %s in another bottle", c.Action, c.Addr)
				}
				if c.Addr != agentAddr {
					continue
				}
				sawAgent = true
				if c.Action != planner.Replace || !slices.Equal(c.ReplacePaths, []string{"image"}) || !slices.Contains(c.Reasons, "image changed") {
					t.Errorf("image_changed: agent is %s with replace paths %q and reasons %q, want replace on [image] because \"image changed\"", c.Action, c.ReplacePaths, c.Reasons)
				}
			}
			if !sawAgent {
				t.Errorf("image_changed: no change to %s:\n%s", agentAddr, image)
			}
			golden(t, example, "image_changed", image)

			destroy := diff(t, nil, live, planner.Options{Mode: planner.ModeDestroy})
			resources := live.Resources()
			if len(destroy.Changes) != len(resources) {
				t.Errorf("destroy: %d changes for %d resources in the state", len(destroy.Changes), len(resources))
			}
			for i, c := range destroy.Changes {
				if c.Action != planner.Delete {
					t.Errorf("destroy: %s is %s, want delete", c.Addr, c.Action)
				}
				if i < len(resources) && c.Addr != resources[i].Addr {
					t.Errorf("destroy: change %d is for %s, want %s", i, c.Addr, resources[i].Addr)
				}
			}
			golden(t, example, "destroy", destroy)
		})
	}
}

func changes(p *planner.Plan) []planner.Change {
	var out []planner.Change
	for _, c := range p.Changes {
		if c.Action.Changes() {
			out = append(out, c)
		}
	}
	return out
}

// TestExamplesFormatted: `bottleform fmt --check` passes on every example.
func TestExamplesFormatted(t *testing.T) {
	var n int
	for _, example := range exampleDirs(t) {
		err := filepath.WalkDir(example, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(path) != ".hcl" {
				return err
			}
			n++
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if got := hclwrite.Format(src); !bytes.Equal(got, src) {
				t.Errorf("%s is not formatted; run bottleform fmt. Formatted:\n%s", path, got)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 {
		t.Fatal("no *.hcl file found in the examples")
	}
}
