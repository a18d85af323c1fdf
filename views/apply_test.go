package views

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
)

func TestApplyHuman(t *testing.T) {
	var out strings.Builder
	v := &ApplyHuman{W: &out}
	agent := resource.Address{Bottle: "b", Kind: resource.KindAgent}
	mcp := resource.Address{Bottle: "b", Kind: resource.KindMCP, Key: "docs"}
	v.Begin(agent, planner.Create)
	v.End(agent, planner.Create, map[string]string{"container": strings.Repeat("0123456789abcdef", 4)}, 1234*time.Millisecond, nil)
	v.End(agent, planner.Create, map[string]string{"machine": "bf-2cd39b08-smol-agent"}, 1234*time.Millisecond, nil)
	v.Begin(mcp, planner.Delete)
	v.Warn(mcp, "the claude CLI is not in the image\x1b[31m")
	v.End(mcp, planner.Delete, nil, 5*time.Millisecond, errors.New("boom"))
	want := "bottle.b.agent: Creating...\n" +
		"bottle.b.agent: Creation complete after 1.2s [container=0123456789ab]\n" +
		"bottle.b.agent: Creation complete after 1.2s [machine=bf-2cd39b08-smol-agent]\n" +
		"bottle.b.mcp[\"docs\"]: Destroying...\n" +
		"bottle.b.mcp[\"docs\"]: warning: the claude CLI is not in the image\\x1b[31m\n" +
		"bottle.b.mcp[\"docs\"]: failed after 5ms\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestApplyJSON(t *testing.T) {
	var out strings.Builder
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	v := &ApplyJSON{W: &out, Now: func() time.Time { return now }}
	addr := resource.Address{Bottle: "b", Kind: resource.KindSidecar}
	v.Begin(addr, planner.Replace)
	v.End(addr, planner.Replace, map[string]string{"container": "c1"}, 1500*time.Millisecond, nil)
	v.End(addr, planner.Update, map[string]string{"container": "c1"}, time.Second, errors.New("refused"))
	v.Event("summary", "Apply complete!")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want one per event:\n%s", len(lines), out.String())
	}
	var evs []map[string]any
	for _, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		evs = append(evs, e)
	}
	if evs[0]["type"] != "apply_start" || evs[0]["address"] != "bottle.b.sidecar" || evs[0]["action"] != "replace" || evs[0]["@timestamp"] != "2026-11-27T12:00:00Z" {
		t.Errorf("start event: %v", evs[0])
	}
	if evs[1]["type"] != "apply_complete" || evs[1]["elapsed_ms"] != float64(1500) || evs[1]["ids"].(map[string]any)["container"] != "c1" {
		t.Errorf("complete event: %v", evs[1])
	}
	if evs[2]["type"] != "apply_errored" || evs[2]["error"] != "refused" || evs[2]["ids"] != nil {
		t.Errorf("errored event: %v", evs[2])
	}
	if evs[3]["type"] != "summary" || evs[3]["message"] != "Apply complete!" {
		t.Errorf("summary event: %v", evs[3])
	}
}
