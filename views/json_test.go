package views_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/views"
)

func renderJSON(t *testing.T, p *planner.Plan) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := views.PlanJSON(&buf, p); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPlanJSONGolden(t *testing.T) {
	for _, tc := range plans {
		t.Run(tc.name, func(t *testing.T) {
			out := renderJSON(t, tc.plan())
			if !json.Valid(out) {
				t.Fatalf("invalid JSON:\n%s", out)
			}
			if again := renderJSON(t, tc.plan()); !bytes.Equal(again, out) {
				t.Fatal("second rendering differs")
			}
			golden(t, tc.name+".json.golden", out)
		})
	}
}

// jsonDoc is the part of the format the tests inspect.
type jsonDoc struct {
	FormatVersion   string `json:"format_version"`
	Mode            string `json:"mode"`
	Applyable       bool   `json:"applyable"`
	ResourceChanges []struct {
		Address      string `json:"address"`
		ActionReason string `json:"action_reason"`
		Change       struct {
			Actions      []string       `json:"actions"`
			Before       map[string]any `json:"before"`
			After        map[string]any `json:"after"`
			ReplacePaths []string       `json:"replace_paths"`
		} `json:"change"`
		Drift bool `json:"drift"`
	} `json:"resource_changes"`
	Summary map[string]int `json:"summary"`
}

func decode(t *testing.T, p *planner.Plan) jsonDoc {
	t.Helper()
	var d jsonDoc
	if err := json.Unmarshal(renderJSON(t, p), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPlanJSONActions(t *testing.T) {
	cases := []struct {
		name    string
		plan    func() *planner.Plan
		address string
		actions []string
		reason  string
	}{
		{"create", createPlan, `bottle.reviewer.network`, []string{"create"}, ""},
		{"noop", func() *planner.Plan { return prior(nil) }, `bottle.reviewer.agent`, []string{"no-op"}, ""},
		{"update", updateEgressPlan, `bottle.reviewer.egress["api.github.com"]`, []string{"update"}, ""},
		{"replace", replaceAgentPlan, `bottle.reviewer.agent`, []string{"delete", "create"}, "replace_because_cannot_update"},
		{"drift", driftPlan, `bottle.reviewer.agent`, []string{"update"}, "update_because_drift"},
		{"destroy", destroyPlan, `bottle.reviewer.git["app"].deploy_key`, []string{"delete"}, ""},
		{"requested", func() *planner.Plan {
			p := replaceAgentPlan()
			p.Replace = []resource.Address{resource.BottleAddr("reviewer")}
			return p
		}, `bottle.reviewer.agent`, []string{"delete", "create"}, "replace_by_request"},
		{"removed", func() *planner.Plan {
			p := destroyPlan()
			p.Mode = planner.ModeNormal
			return p
		}, `bottle.reviewer.network`, []string{"delete"}, "delete_because_no_configuration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := decode(t, tc.plan())
			if d.FormatVersion != planner.FormatVersion {
				t.Errorf("format_version = %q", d.FormatVersion)
			}
			for _, rc := range d.ResourceChanges {
				if rc.Address != tc.address {
					continue
				}
				if !reflect.DeepEqual(rc.Change.Actions, tc.actions) {
					t.Errorf("actions = %q, want %q", rc.Change.Actions, tc.actions)
				}
				if rc.ActionReason != tc.reason {
					t.Errorf("action_reason = %q, want %q", rc.ActionReason, tc.reason)
				}
				return
			}
			t.Fatalf("no resource change for %s", tc.address)
		})
	}
}

func TestPlanJSONValues(t *testing.T) {
	d := decode(t, createPlan())
	if !d.Applyable || d.Mode != "normal" || d.Summary["add"] != 11 {
		t.Errorf("applyable %v, mode %q, summary %v", d.Applyable, d.Mode, d.Summary)
	}
	for _, rc := range d.ResourceChanges {
		if rc.Change.Before != nil {
			t.Errorf("%s: before on create = %v, want null", rc.Address, rc.Change.Before)
		}
		if rc.Address != `bottle.reviewer.egress["api.github.com"]` {
			continue
		}
		want := map[string]any{"scheme": "Bearer", "token": map[string]any{"expr": "secret.github"}}
		if got := rc.Change.After["auth"]; !reflect.DeepEqual(got, want) {
			t.Errorf("auth = %#v, want %#v", got, want)
		}
		if got := rc.Change.After["paths"]; !reflect.DeepEqual(got, []any{"/repos/acme/app/"}) {
			t.Errorf("paths = %#v", got)
		}
	}
	for _, rc := range d.ResourceChanges {
		if rc.Address != "bottle.reviewer.agent" {
			continue
		}
		a := rc.Change.After
		if a["cpus"] != 2.0 || a["supervise"] != true || !reflect.DeepEqual(a["env"].(map[string]any)["HOST_USER"], map[string]any{"expr": `host_env("USER")`}) {
			t.Errorf("agent after = %#v: want cpus 2, supervise true, HOST_USER an expr", a)
		}
	}

	r := decode(t, replaceAgentPlan())
	for _, rc := range r.ResourceChanges {
		if rc.Address == "bottle.reviewer.agent" && !reflect.DeepEqual(rc.Change.ReplacePaths, []string{"image"}) {
			t.Errorf("replace_paths = %q", rc.Change.ReplacePaths)
		}
	}

	x := decode(t, destroyPlan())
	for _, rc := range x.ResourceChanges {
		if rc.Change.After != nil || rc.Change.Before == nil {
			t.Errorf("%s: destroy has before %v, after %v", rc.Address, rc.Change.Before, rc.Change.After)
		}
	}
}
