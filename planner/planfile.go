package planner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/bottleform/bottleform/resource"
)

// planFile is the saved plan's wire format (plan --out). It holds what the
// Plan holds: references and attributes, never a secret value.
type planFile struct {
	FormatVersion     string                           `json:"format_version"`
	BottleformVersion string                           `json:"bottleform_version"`
	Mode              string                           `json:"mode"`
	Lineage           string                           `json:"lineage"`
	Serial            uint64                           `json:"serial"`
	ConfigDigest      string                           `json:"config_digest"`
	Targets           []resource.Address               `json:"targets,omitempty"`
	Replace           []resource.Address               `json:"replace,omitempty"`
	Changes           []changeWire                     `json:"changes"`
	Bottles           map[string]*resource.Bottle      `json:"bottles,omitempty"`
	Secrets           map[string]resource.SecretSource `json:"secrets,omitempty"`
	Security          []string                         `json:"security,omitempty"`
	Warnings          []Warning                        `json:"warnings,omitempty"`
}

type changeWire struct {
	Address      resource.Address `json:"address"`
	Action       string           `json:"action"`
	Before       resource.Attrs   `json:"before,omitempty"`
	After        resource.Attrs   `json:"after,omitempty"`
	Reasons      []string         `json:"reasons,omitempty"`
	ReplacePaths []string         `json:"replace_paths,omitempty"`
	Drift        bool             `json:"drift,omitempty"`
}

var actionNames = map[string]Action{"no-op": NoOp, "create": Create, "update": Update, "replace": Replace, "delete": Delete}

// WriteFile writes p in the saved-plan format, stamped with the version of
// bottleform that made it.
func WriteFile(w io.Writer, p *Plan, version string) error {
	f := planFile{
		FormatVersion: FormatVersion, BottleformVersion: version, Mode: p.Mode.String(),
		Lineage: p.Lineage, Serial: p.Serial, ConfigDigest: p.ConfigDigest,
		Targets: p.Targets, Replace: p.Replace, Bottles: p.Bottles, Secrets: p.Secrets,
		Security: p.Security, Warnings: p.Warnings, Changes: []changeWire{},
	}
	for _, c := range p.Changes {
		f.Changes = append(f.Changes, changeWire{c.Addr, c.Action.String(), c.Before, c.After, c.Reasons, c.ReplacePaths, c.Drift})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// ReadFile reads a saved plan and the version of bottleform that made it.
func ReadFile(r io.Reader) (*Plan, string, error) {
	var f planFile
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, "", fmt.Errorf("read plan: not a bottleform plan file: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "", fmt.Errorf("read plan: not a bottleform plan file: data after the plan")
	}
	for _, list := range [][]resource.Address{f.Targets, f.Replace} {
		for _, a := range list {
			if a.Bottle == "" {
				return nil, "", fmt.Errorf("read plan: a target or replace address is empty")
			}
		}
	}
	if major(f.FormatVersion) != major(FormatVersion) {
		return nil, "", fmt.Errorf("read plan: format version %q is not supported by this bottleform (reads %s); make the plan again with this version", f.FormatVersion, FormatVersion)
	}
	p := &Plan{
		Lineage: f.Lineage, Serial: f.Serial, ConfigDigest: f.ConfigDigest,
		Targets: f.Targets, Replace: f.Replace, Bottles: f.Bottles, Secrets: f.Secrets,
		Security: f.Security, Warnings: f.Warnings,
	}
	switch f.Mode {
	case "normal":
	case "destroy":
		p.Mode = ModeDestroy
	default:
		return nil, "", fmt.Errorf("read plan: unknown mode %q", f.Mode)
	}
	for _, c := range f.Changes {
		if c.Address.Bottle == "" || c.Address.IsBottle() {
			return nil, "", fmt.Errorf("read plan: a change has no object address")
		}
		a, ok := actionNames[c.Action]
		if !ok {
			return nil, "", fmt.Errorf("read plan: %s: unknown action %q", c.Address, c.Action)
		}
		p.Changes = append(p.Changes, Change{c.Address, a, c.Before, c.After, c.Reasons, c.ReplacePaths, c.Drift})
	}
	return p, f.BottleformVersion, nil
}

func major(v string) string {
	m, _, _ := strings.Cut(v, ".")
	return m
}

// Stale says why a saved plan no longer fits the current state and
// configuration, or returns "" when it still does.
func Stale(p *Plan, lineage string, serial uint64, configDigest string) string {
	var why []string
	if p.Lineage != "" && p.Lineage != lineage {
		why = append(why, fmt.Sprintf("the state's lineage is %q, the plan was made for %q", lineage, p.Lineage))
	}
	if p.Serial != serial {
		why = append(why, fmt.Sprintf("the state moved from serial %d to %d since the plan was made", p.Serial, serial))
	}
	if p.Mode == ModeNormal && p.ConfigDigest != configDigest {
		why = append(why, "the configuration changed since the plan was made")
	}
	return strings.Join(why, "; ")
}
