package planner_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// examplePlans returns, for every example, its create plan and the destroy
// plan of the state that create plan leaves.
func examplePlans(tb testing.TB) []*planner.Plan {
	tb.Helper()
	root := filepath.Join("..", "examples")
	entries, err := os.ReadDir(root)
	if err != nil {
		tb.Fatal(err)
	}
	env := func(name string) (string, bool) {
		if name == "HOME" {
			return os.TempDir(), true
		}
		return "not-a-secret", true
	}
	var plans []*planner.Plan
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "testdata" {
			continue
		}
		cfg, _, diags := config.Load(filepath.Join(root, e.Name()), config.Options{LookupEnv: env})
		if diags.HasErrors() {
			tb.Fatalf("load example %s: %s", e.Name(), diags.Error())
		}
		create, err := planner.Diff(cfg, nil, nil, planner.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		s := &state.State{Lineage: "fuzz-lineage", Serial: 3}
		for _, c := range create.Changes {
			s.Set(create.Bottles[c.Addr.Bottle].Backend, &state.Resource{Addr: c.Addr, Attrs: c.After, Digest: c.After.Digest()})
		}
		first := create.Changes[0].Addr
		destroy, err := planner.Diff(nil, s, nil, planner.Options{Mode: planner.ModeDestroy, Targets: []resource.Address{resource.BottleAddr(first.Bottle)}})
		if err != nil {
			tb.Fatal(err)
		}
		plans = append(plans, create, destroy)
	}
	if len(plans) == 0 {
		tb.Fatal("no examples found")
	}
	return plans
}

// FuzzReadPlanFile: ReadFile never panics, and a plan it accepts writes
// back to bytes that read back to the same plan.
func FuzzReadPlanFile(f *testing.F) {
	for _, p := range examplePlans(f) {
		var buf bytes.Buffer
		if err := planner.WriteFile(&buf, p, "0.1.0-fuzz"); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	for _, s := range []string{
		``,
		`{}`,
		`null`,
		`{"format_version":"2.0","mode":"normal","changes":[]}`,
		`{"format_version":"1.0","mode":"sideways","changes":[]}`,
		`{"format_version":"1.0","mode":"normal","changes":[{"address":"bottle.x.agent","action":"explode"}]}`,
		`{"format_version":"1.0","mode":"normal","changes":[{"address":"bottle.X","action":"create"}]}`,
		`{"format_version":"1.0","mode":"normal","unknown":1}`,
		`{"format_version":"1.0","mode":"destroy","serial":18446744073709551615,"changes":[{"address":"bottle.x.git[\"a\\\"b\"].deploy_key","action":"delete","before":{"k":{"k":4,"m":{"a":{"k":3,"l":[{"k":1,"s":"x"}]}}}}}]}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		p, version, err := planner.ReadFile(bytes.NewReader(data))
		if err != nil {
			if p != nil {
				t.Fatalf("ReadFile returned a plan with its error %v", err)
			}
			return
		}
		var first bytes.Buffer
		if err := planner.WriteFile(&first, p, version); err != nil {
			t.Fatalf("an accepted plan does not write: %v", err)
		}
		p2, version2, err := planner.ReadFile(bytes.NewReader(first.Bytes()))
		if err != nil {
			t.Fatalf("a written plan does not read back: %v\n%s", err, first.Bytes())
		}
		if version2 != version {
			t.Fatalf("version %q read back as %q", version, version2)
		}
		var second bytes.Buffer
		if err := planner.WriteFile(&second, p2, version2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatalf("plan changed on a round trip:\n%s\n---\n%s", first.Bytes(), second.Bytes())
		}
		if p.String() != p2.String() || p.HasChanges() != p2.HasChanges() || p.Mode != p2.Mode {
			t.Fatalf("plan means something else after a round trip:\n%s\n---\n%s", p, p2)
		}
	})
}
