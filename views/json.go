package views

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
)

// PlanJSON writes p in the machine format documented in docs/plan-json.md,
// indented by two spaces. The same plan always gives the same bytes. The
// format holds references to secrets (as {"expr": "secret.NAME"}), never
// their values; the plan has none to give. The only error is w's.
func PlanJSON(w io.Writer, p *planner.Plan) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(planDoc(p)); err != nil {
		panic("views: encode plan: " + err.Error()) // every field is plain data
	}
	_, err := w.Write(buf.Bytes())
	return err
}

type jsonPlan struct {
	FormatVersion   string        `json:"format_version"`
	Mode            string        `json:"mode"`
	Lineage         string        `json:"lineage"`
	Serial          uint64        `json:"serial"`
	ConfigDigest    string        `json:"config_digest"`
	Targets         []string      `json:"targets"`
	Replace         []string      `json:"replace"`
	Applyable       bool          `json:"applyable"`
	ResourceChanges []jsonChange  `json:"resource_changes"`
	SecuritySummary []string      `json:"security_summary"`
	Warnings        []jsonWarning `json:"warnings"`
	Summary         jsonSummary   `json:"summary"`
}

type jsonChange struct {
	Address      string   `json:"address"`
	Bottle       string   `json:"bottle"`
	Kind         string   `json:"kind"`
	Key          string   `json:"key"`
	ActionReason string   `json:"action_reason,omitempty"`
	Change       jsonDiff `json:"change"`
	Reasons      []string `json:"reasons"`
	Drift        bool     `json:"drift"`
}

type jsonDiff struct {
	Actions      []string  `json:"actions"`
	Before       jsonAttrs `json:"before"`
	After        jsonAttrs `json:"after"`
	ReplacePaths []string  `json:"replace_paths"`
}

type jsonWarning struct {
	Bottle  string `json:"bottle"`
	Summary string `json:"summary"`
	Detail  string `json:"detail"`
}

type jsonSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
}

func planDoc(p *planner.Plan) jsonPlan {
	add, change, destroy := p.Count()
	doc := jsonPlan{
		FormatVersion:   planner.FormatVersion,
		Mode:            p.Mode.String(),
		Lineage:         p.Lineage,
		Serial:          p.Serial,
		ConfigDigest:    p.ConfigDigest,
		Targets:         addrStrings(p.Targets),
		Replace:         addrStrings(p.Replace),
		Applyable:       p.HasChanges(),
		ResourceChanges: []jsonChange{},
		SecuritySummary: orEmpty(p.Security),
		Warnings:        []jsonWarning{},
		Summary:         jsonSummary{Add: add, Change: change, Destroy: destroy},
	}
	for _, c := range p.Changes {
		doc.ResourceChanges = append(doc.ResourceChanges, changeDoc(p, c))
	}
	for _, w := range p.Warnings {
		doc.Warnings = append(doc.Warnings, jsonWarning(w))
	}
	return doc
}

func changeDoc(p *planner.Plan, c planner.Change) jsonChange {
	d := jsonDiff{
		Actions:      jsonActions[c.Action],
		Before:       jsonAttrs(c.Before),
		After:        jsonAttrs(c.After),
		ReplacePaths: orEmpty(c.ReplacePaths),
	}
	switch c.Action {
	case planner.Create:
		d.Before = nil
	case planner.Delete:
		d.After = nil
	}
	return jsonChange{
		Address:      c.Addr.String(),
		Bottle:       c.Addr.Bottle,
		Kind:         c.Addr.Kind.String(),
		Key:          c.Addr.Key,
		ActionReason: actionReason(p, c),
		Change:       d,
		Reasons:      orEmpty(c.Reasons),
		Drift:        c.Drift,
	}
}

// jsonActions are Terraform's action arrays: a consumer that looks for
// "delete" finds every object that goes away, replacements included.
var jsonActions = map[planner.Action][]string{
	planner.NoOp:    {"no-op"},
	planner.Create:  {"create"},
	planner.Update:  {"update"},
	planner.Replace: {"delete", "create"},
	planner.Delete:  {"delete"},
}

// Action reason codes; docs/plan-json.md lists them.
const (
	reasonReplaceByRequest      = "replace_by_request"
	reasonReplaceBecauseDrift   = "replace_because_drift"
	reasonReplaceCannotUpdate   = "replace_because_cannot_update"
	reasonCreateBecauseDrift    = "create_because_drift"
	reasonUpdateBecauseDrift    = "update_because_drift"
	reasonDeleteNoConfiguration = "delete_because_no_configuration"
)

// actionReason derives a reason code from the change and the plan; it is
// empty where the action needs no explaining (create, update, no-op, and
// every delete of a destroy plan).
func actionReason(p *planner.Plan, c planner.Change) string {
	switch c.Action {
	case planner.Replace:
		for _, r := range p.Replace {
			if r.Contains(c.Addr) {
				return reasonReplaceByRequest
			}
		}
		if c.Drift {
			return reasonReplaceBecauseDrift
		}
		return reasonReplaceCannotUpdate
	case planner.Create:
		if c.Drift {
			return reasonCreateBecauseDrift
		}
	case planner.Update:
		if c.Drift {
			return reasonUpdateBecauseDrift
		}
	case planner.Delete:
		if p.Mode == planner.ModeNormal && !c.Drift {
			return reasonDeleteNoConfiguration
		}
	}
	return ""
}

// jsonAttrs writes attributes as a JSON object with sorted keys, or null
// when there are none to show (before a create, after a delete).
type jsonAttrs resource.Attrs

func (a jsonAttrs) MarshalJSON() ([]byte, error) {
	if a == nil {
		return []byte("null"), nil
	}
	m := make(map[string]jsonValue, len(a))
	for k, v := range a {
		m[k] = jsonValue(v)
	}
	return marshalNoEscape(m)
}

// jsonValue writes a value as natural JSON: a string, an array, an object;
// the expressions true, false and number literals as JSON booleans and
// numbers; any other expression (secret.x, host_env("X")) as
// {"expr": "..."}, so that a reference never reads as a literal string.
type jsonValue resource.Value

var jsonNumberRe = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func (v jsonValue) MarshalJSON() ([]byte, error) {
	switch v.Kind {
	case resource.ValueString:
		return marshalNoEscape(v.Str)
	case resource.ValueExpr:
		if v.Str == "true" || v.Str == "false" || jsonNumberRe.MatchString(v.Str) {
			return []byte(v.Str), nil
		}
		return marshalNoEscape(map[string]string{"expr": v.Str})
	case resource.ValueList:
		l := make([]jsonValue, len(v.List))
		for i, e := range v.List {
			l[i] = jsonValue(e)
		}
		return marshalNoEscape(l)
	case resource.ValueMap:
		m := make(map[string]jsonValue, len(v.Map))
		for k, e := range v.Map {
			m[k] = jsonValue(e)
		}
		return marshalNoEscape(m)
	}
	return []byte("null"), nil
}

func marshalNoEscape(x any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func addrStrings(as []resource.Address) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// orEmpty makes a nil slice encode as [] rather than null.
func orEmpty(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
