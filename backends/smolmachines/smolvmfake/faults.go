package smolvmfake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Faults is faults.json (§8.5), plus the exec engine's responders and
// fake image defaults (§8.4).
type Faults struct {
	Rules             []Rule               `json:"rules"`
	UnresolvableHosts []string             `json:"unresolvable_hosts"`
	Responders        []Responder          `json:"responders"`
	Images            map[string]ImageConf `json:"images"`
}

// Rule is one fault. Command and Machine match the subcommand (canonical
// name: delete, not rm) and the machine; empty matches any. Count is how
// many times it fires; 0 means always.
type Rule struct {
	Command string `json:"command"`
	Machine string `json:"machine"`
	Count   int    `json:"count"`

	Fail                *Fail  `json:"fail,omitempty"`
	DelayMs             int    `json:"delay_ms,omitempty"`
	StateOverride       string `json:"state_override,omitempty"`
	StartFailsAfterBoot bool   `json:"start_fails_after_boot,omitempty"`
	ExecNotRunningOnce  bool   `json:"exec_not_running_once,omitempty"`
	CrashAfterStart     bool   `json:"crash_after_start,omitempty"`
}

// Fail makes the command print Stderr and exit with Exit.
type Fail struct {
	Exit   int    `json:"exit"`
	Stderr string `json:"stderr"`
}

// Responder answers an exec in responder mode (§8.4). ArgvPrefix matches
// the start of the guest argv; Machine, Workdir and Env (K=V entries that
// must all be present) narrow it.
type Responder struct {
	Machine    string   `json:"machine"`
	ArgvPrefix []string `json:"argv_prefix"`
	Workdir    string   `json:"workdir"`
	Env        []string `json:"env"`
	Stdout     string   `json:"stdout"`
	Stderr     string   `json:"stderr"`
	Exit       int      `json:"exit"`
	DelayMs    int      `json:"delay_ms"`
}

// ImageConf is a fake image's defaults, applied at first start and exec.
type ImageConf struct {
	Env        []string `json:"env"`
	Workdir    string   `json:"workdir"`
	Entrypoint []string `json:"entrypoint"`
	Cmd        []string `json:"cmd"`
}

func loadFaults(root string) (*Faults, error) {
	f := &Faults{}
	b, err := os.ReadFile(filepath.Join(root, "faults.json"))
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("faults.json: %w", err)
	}
	return f, nil
}

// firing tracks how often each rule fired, in faults.fired.json.
// Counts are keyed by the rule's index and content, so rewriting
// faults.json starts fresh counts for new rules.
type firing struct {
	root  string
	fired map[string]int
}

func ruleKey(i int, r Rule) string {
	b, _ := json.Marshal(r)
	h := sha256.Sum256(b)
	return fmt.Sprintf("%d:%s", i, hex.EncodeToString(h[:8]))
}

func loadFiring(root string) *firing {
	f := &firing{root: root, fired: map[string]int{}}
	if b, err := os.ReadFile(filepath.Join(root, "faults.fired.json")); err == nil {
		_ = json.Unmarshal(b, &f.fired)
	}
	return f
}

func (f *firing) save() {
	b, _ := json.Marshal(f.fired)
	_ = os.WriteFile(filepath.Join(f.root, "faults.fired.json"), b, 0o644)
}

// take returns the first rule that matches cmd and machine, has pred true
// and has not used up its count, and counts it as fired.
func (s *session) take(cmd, machine string, pred func(Rule) bool) *Rule {
	for i, r := range s.faults.Rules {
		if r.Command != "" && r.Command != cmd {
			continue
		}
		if r.Machine != "" && r.Machine != machine {
			continue
		}
		if !pred(r) {
			continue
		}
		k := ruleKey(i, r)
		if r.Count > 0 && s.firing.fired[k] >= r.Count {
			continue
		}
		s.firing.fired[k]++
		s.firing.save()
		return &s.faults.Rules[i]
	}
	return nil
}

func (s *session) unresolvable(host string) bool {
	for _, h := range s.faults.UnresolvableHosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}
