package applier_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/backends/backendtest"
	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

const secretDecls = `
secret "gh" {
  env = "GH_TOKEN"
}
secret "gitea_admin" {
  env = "GITEA_TOKEN"
}
`

// fullBottle uses every kind of object: egress routes (declared, the
// provider's and an MCP server's), a git entry with a minted deploy key,
// auth, the agent, a prompt, a skill and two MCP registrations.
func fullBottle(name, image string) string {
	return fmt.Sprintf(`
bottle %q {
  image = %q
  agent "claude" {}
  egress "api.github.com" {
    auth {
      scheme = "Bearer"
      token  = secret.gh
    }
  }
  git "app" {
    upstream = "ssh://git@gitea.acme.dev:2222/acme/app.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "gitea" {
      api_url = "https://gitea.acme.dev"
      token   = secret.gitea_admin
    }
    push = ["refs/heads/agent/*"]
  }
  supervise = true
  mcp "docs" {
    url = "https://mcp.acme.dev/mcp"
  }
  prompt = "review the open pull requests\n"
  skills = ["skills/review"]
}
`, name, image)
}

// smallBottle has a network, a sidecar, the provider's route, auth, the
// agent and a prompt.
func smallBottle(name, image string) string {
	return fmt.Sprintf(`
bottle %q {
  image  = %q
  agent "claude" {}
  prompt = "hello\n"
}
`, name, image)
}

// fullAddrs are the addresses of fullBottle(name), in address order.
func fullAddrs(name string) []string {
	return prefixed(name,
		"network", "sidecar",
		`egress["api.anthropic.com"]`, `egress["api.github.com"]`, `egress["mcp.acme.dev"]`,
		`git["app"]`, `git["app"].deploy_key`,
		"auth", "agent", "prompt", `skill["review"]`, `mcp["docs"]`, `mcp["supervise"]`)
}

// smallAddrs are the addresses of smallBottle(name), in address order.
func smallAddrs(name string) []string {
	return prefixed(name, "network", "sidecar", `egress["api.anthropic.com"]`, "auth", "agent", "prompt")
}

func prefixed(bottle string, rest ...string) []string {
	out := make([]string, len(rest))
	for i, r := range rest {
		out[i] = "bottle." + bottle + "." + r
	}
	return out
}

func calls(op string, addrs ...string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = op + " " + a
	}
	return out
}

// harness is one configuration directory (with its state file) and the
// fake runtime its bottles live on.
type harness struct {
	t    *testing.T
	dir  string
	mgr  *state.Manager
	fake *backendtest.Fake
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "skills", "review", "SKILL.md"), "# Review\n")
	return &harness{t: t, dir: dir, mgr: state.Open(dir), fake: &backendtest.Fake{}}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// load writes src as main.hcl in the harness's directory and loads it, as
// planner/diff_test.go's load does in a temp dir. The directory stays the
// same across loads so that paths in the configuration do not move.
func (h *harness) load(src string) *config.File {
	h.t.Helper()
	writeFile(h.t, filepath.Join(h.dir, "main.hcl"), src)
	env := map[string]string{"GH_TOKEN": "gh-value", "GITEA_TOKEN": "gitea-value", "HOME": h.dir}
	cfg, _, diags := config.Load(h.dir, config.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if diags.HasErrors() {
		h.t.Fatalf("load: %s", diags.Error())
	}
	return cfg
}

// state reads the state file, as the next process would.
func (h *harness) state() *state.State {
	h.t.Helper()
	s, err := h.mgr.Load()
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// plan observes the fake and diffs, as `bottleform plan` does. cfg nil
// plans a destroy.
func (h *harness) plan(cfg *config.File) *planner.Plan {
	h.t.Helper()
	s := h.state()
	obs, err := h.fake.Observe(context.Background(), s)
	if err != nil {
		h.t.Fatal(err)
	}
	mode := planner.ModeNormal
	if cfg == nil {
		mode = planner.ModeDestroy
	}
	p, err := planner.Diff(cfg, s, obs, planner.Options{Mode: mode})
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) backends() map[string]applier.Backend {
	return map[string]applier.Backend{resource.BackendDocker: h.fake}
}

// run applies p from the state file with opts (the fake as the backend
// unless opts names one, the state manager as the store unless store is
// set).
func (h *harness) run(ctx context.Context, p *planner.Plan, store applier.Store, opts applier.Options) (*state.State, error) {
	h.t.Helper()
	if opts.Backends == nil {
		opts.Backends = h.backends()
	}
	if k, ok := opts.Backends[resource.BackendDocker].(applier.Keys); ok && opts.Keys == nil {
		// The fake (or a wrapper of it) mints deploy keys too.
		opts.Keys = k
	}
	if store == nil {
		store = h.mgr
	}
	return applier.Apply(ctx, p, h.state(), store, opts)
}

// converge plans and applies src (nil: destroy), failing on any error.
func (h *harness) converge(cfg *config.File) {
	h.t.Helper()
	if _, err := h.run(context.Background(), h.plan(cfg), nil, applier.Options{}); err != nil {
		h.t.Fatalf("apply: %v", err)
	}
}

// assertConverged checks that a new plan has nothing to do and that the
// runtime holds exactly the objects the state records.
func (h *harness) assertConverged(cfg *config.File) {
	h.t.Helper()
	if p := h.plan(cfg); p.HasChanges() {
		h.t.Errorf("not converged; the next plan is:\n%s", p)
	}
	s := h.state()
	if s == nil {
		h.t.Fatal("no state file")
	}
	if got, want := strs(h.fake.Objects(s.Lineage)), stateAddrs(s, ""); !reflect.DeepEqual(got, want) {
		h.t.Errorf("runtime objects:\n%s\nstate:\n%s", lines(got), lines(want))
	}
}

// stateAddrs lists the state's addresses (of one bottle, or all with ""),
// in address order.
func stateAddrs(s *state.State, bottle string) []string {
	out := []string{}
	for _, r := range s.Resources() {
		if bottle == "" || r.Addr.Bottle == bottle {
			out = append(out, r.Addr.String())
		}
	}
	return out
}

func strs(as []resource.Address) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func lines(ss []string) string { return "  " + strings.Join(ss, "\n  ") }

// backendCalls is the fake's call log from index from on, without observes
// (planning observes; applying never does).
func backendCalls(f *backendtest.Fake, from int) []string {
	out := []string{}
	for _, c := range f.Calls()[from:] {
		if c != backendtest.OpObserve {
			out = append(out, c)
		}
	}
	return out
}

// wrapped is a Backend that runs every Create, Update and Delete through
// around, which must call call exactly once to reach the inner backend (or
// return without calling it to refuse the call).
type wrapped struct {
	applier.Backend
	around func(name string, op *applier.Op, call func() error) error
}

func (w *wrapped) Create(ctx context.Context, op *applier.Op) (ids map[string]string, err error) {
	err = w.around(backendtest.OpCreate, op, func() (e error) {
		ids, e = w.Backend.Create(ctx, op)
		return e
	})
	return ids, err
}

func (w *wrapped) Update(ctx context.Context, op *applier.Op) (ids map[string]string, err error) {
	err = w.around(backendtest.OpUpdate, op, func() (e error) {
		ids, e = w.Backend.Update(ctx, op)
		return e
	})
	return ids, err
}

func (w *wrapped) Delete(ctx context.Context, op *applier.Op) error {
	return w.around(backendtest.OpDelete, op, func() error { return w.Backend.Delete(ctx, op) })
}

// Mint and Revoke make a wrapped fake the applier's Keys too, through
// around like every other call.
func (w *wrapped) Mint(ctx context.Context, op *applier.Op) (ids map[string]string, priv resource.Secret, err error) {
	err = w.around(backendtest.OpCreate, op, func() (e error) {
		ids, priv, e = w.Backend.(applier.Keys).Mint(ctx, op)
		return e
	})
	return ids, priv, err
}

func (w *wrapped) Revoke(ctx context.Context, op *applier.Op) error {
	return w.around(backendtest.OpDelete, op, func() error { return w.Backend.(applier.Keys).Revoke(ctx, op) })
}

func TestApplyOrder(t *testing.T) {
	full := secretDecls + fullBottle("rev", "agent:1")
	tests := []struct {
		name   string
		before string // applied first; "" for none
		src    string // "" plans a destroy
		calls  []string
		state  []string
	}{
		{
			name: "first apply creates in dependency order",
			src:  full,
			calls: calls("create", prefixed("rev",
				"network", "sidecar", `git["app"].deploy_key`,
				`egress["api.anthropic.com"]`, `egress["api.github.com"]`, `egress["mcp.acme.dev"]`,
				`git["app"]`, "auth", "agent", "prompt", `skill["review"]`, `mcp["docs"]`, `mcp["supervise"]`)...),
			state: fullAddrs("rev"),
		},
		{
			// What lives in the agent goes with it, what lives in the
			// sidecar goes with it: no call for either. The deploy key is
			// revoked only once both containers that used it are gone.
			name:   "destroy stops the containers before revoking the deploy key",
			before: full,
			calls:  calls("delete", prefixed("rev", "agent", "sidecar", `git["app"].deploy_key`, "network")...),
			state:  []string{},
		},
		{
			name:   "a prompt removed from a running agent is deleted from it",
			before: full,
			src:    strings.Replace(full, "prompt = \"review the open pull requests\\n\"", "", 1),
			calls:  []string{"delete bottle.rev.prompt"},
			state:  without(fullAddrs("rev"), "bottle.rev.prompt"),
		},
		{
			name:   "an image change replaces the agent and provisions it again",
			before: full,
			src:    secretDecls + fullBottle("rev", "agent:2"),
			calls: append([]string{"delete bottle.rev.agent", "update bottle.rev.auth", "create bottle.rev.agent"},
				calls("update", prefixed("rev", "prompt", `skill["review"]`, `mcp["docs"]`, `mcp["supervise"]`)...)...),
			state: fullAddrs("rev"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.before != "" {
				h.converge(h.load(tt.before))
			}
			var cfg *config.File
			if tt.src != "" {
				cfg = h.load(tt.src)
			}
			p := h.plan(cfg)
			n := len(h.fake.Calls())
			if _, err := h.run(context.Background(), p, nil, applier.Options{}); err != nil {
				t.Fatal(err)
			}
			if got := backendCalls(h.fake, n); !reflect.DeepEqual(got, tt.calls) {
				t.Errorf("backend calls:\n%s\nwant:\n%s", lines(got), lines(tt.calls))
			}
			s := h.state()
			if got := stateAddrs(s, ""); !reflect.DeepEqual(got, tt.state) {
				t.Errorf("state:\n%s\nwant:\n%s", lines(got), lines(tt.state))
			}
			h.assertConverged(cfg)
		})
	}
}

func without(ss []string, drop ...string) []string {
	out := []string{}
	for _, s := range ss {
		keep := true
		for _, d := range drop {
			keep = keep && s != d
		}
		if keep {
			out = append(out, s)
		}
	}
	return out
}

// countingStore records, at every save, how many objects the state holds.
type countingStore struct {
	mgr    *state.Manager
	mu     sync.Mutex
	counts []int
}

func (c *countingStore) Save(s *state.State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = append(c.counts, len(s.Resources()))
	return c.mgr.Save(s)
}

func TestApplySavesAfterEveryStep(t *testing.T) {
	small := smallBottle("a", "agent:1")
	tests := []struct {
		name   string
		before string
		src    string // "" plans a destroy
		// counts is the number of objects in the state at each save. A
		// first apply saves the new lineage before the first backend call,
		// so that an object made under it is never orphaned.
		counts []int
	}{
		{name: "first apply", src: small, counts: []int{0, 1, 2, 3, 4, 5, 6}},
		// delete agent; update auth; create agent; update prompt.
		{name: "replace", before: small, src: smallBottle("a", "agent:2"), counts: []int{5, 5, 6, 6}},
		// prompt (with the agent), agent, auth (with the agent), route
		// (with the sidecar), sidecar, network.
		{name: "destroy", before: small, counts: []int{5, 4, 3, 2, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.before != "" {
				h.converge(h.load(tt.before))
			}
			prior := h.state()
			var cfg *config.File
			if tt.src != "" {
				cfg = h.load(tt.src)
			}
			p := h.plan(cfg)
			steps := 0
			for _, c := range p.Changes {
				switch c.Action {
				case planner.NoOp:
				case planner.Replace:
					steps += 2
				default:
					steps++
				}
			}
			wantSaves := steps
			if prior == nil {
				wantSaves++
			}
			if len(tt.counts) != wantSaves {
				t.Fatalf("test case lists %d saves, the plan has %d steps", len(tt.counts), steps)
			}

			// At the first backend call the state file already records the
			// lineage the call is made under.
			var mu sync.Mutex
			var lineages, onDisk []string
			b := &wrapped{Backend: h.fake, around: func(_ string, op *applier.Op, call func() error) error {
				mu.Lock()
				if len(lineages) == 0 {
					s, err := h.mgr.Load()
					if err != nil {
						t.Error(err)
					}
					if s != nil {
						onDisk = append(onDisk, s.Lineage)
					}
				}
				lineages = append(lineages, op.Lineage)
				mu.Unlock()
				return call()
			}}
			store := &countingStore{mgr: h.mgr}
			final, err := h.run(context.Background(), p, store, applier.Options{Backends: map[string]applier.Backend{resource.BackendDocker: b}})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(store.counts, tt.counts) {
				t.Errorf("objects at each save = %v, want %v", store.counts, tt.counts)
			}
			s := h.state()
			var priorSerial uint64
			if prior != nil {
				priorSerial = prior.Serial
				if s.Lineage != prior.Lineage {
					t.Errorf("lineage changed from %s to %s", prior.Lineage, s.Lineage)
				}
			}
			if s.Serial != priorSerial+uint64(len(store.counts)) {
				t.Errorf("serial %d after %d saves from serial %d", s.Serial, len(store.counts), priorSerial)
			}
			if final.Serial != s.Serial || final.Lineage != s.Lineage {
				t.Errorf("Apply returned serial %d lineage %s, the file has %d %s", final.Serial, final.Lineage, s.Serial, s.Lineage)
			}
			if len(onDisk) != 1 || onDisk[0] != s.Lineage {
				t.Errorf("state file lineage at the first backend call = %q, want %q", onDisk, s.Lineage)
			}
			for _, l := range lineages {
				if l != s.Lineage {
					t.Errorf("a backend call was made under lineage %q, the state's is %q", l, s.Lineage)
					break
				}
			}
		})
	}
}

type failingStore struct{ err error }

func (f failingStore) Save(*state.State) error { return f.err }

func TestApplyUnsavableLineageChangesNothing(t *testing.T) {
	h := newHarness(t)
	full := errors.New("disk full")
	_, err := h.run(context.Background(), h.plan(h.load(smallBottle("a", "agent:1"))), failingStore{full}, applier.Options{})
	if !errors.Is(err, full) {
		t.Fatalf("err = %v, want %v", err, full)
	}
	if got := backendCalls(h.fake, 0); len(got) != 0 {
		t.Errorf("backend calls made with a lineage that could not be saved: %q", got)
	}
}

func TestApplyConverges(t *testing.T) {
	h := newHarness(t)
	cfg := h.load(secretDecls + fullBottle("rev", "agent:1"))
	h.converge(cfg)
	h.assertConverged(cfg)
	lineage := h.state().Lineage
	agent := resource.Address{Bottle: "rev", Kind: resource.KindAgent}

	countAgents := func() int {
		n := 0
		for _, a := range h.fake.Objects(lineage) {
			if a.Kind == resource.KindAgent {
				n++
			}
		}
		return n
	}
	steps := []struct {
		name     string
		src      string // "" keeps the configuration
		outOfBnd func() error
		plan     string // planned actions, reasons left out
	}{
		{
			name: "image changed",
			src:  secretDecls + fullBottle("rev", "agent:2"),
			plan: `update bottle.rev.auth
replace bottle.rev.agent
update bottle.rev.prompt
update bottle.rev.skill["review"]
update bottle.rev.mcp["docs"]
update bottle.rev.mcp["supervise"]
`,
		},
		{
			name:     "agent stopped out of band",
			outOfBnd: func() error { return h.fake.Stop(lineage, agent) },
			plan:     "update bottle.rev.agent\n",
		},
		{
			name:     "agent removed out of band",
			outOfBnd: func() error { return h.fake.Remove(lineage, agent) },
			plan: `create bottle.rev.auth
create bottle.rev.agent
create bottle.rev.prompt
create bottle.rev.skill["review"]
create bottle.rev.mcp["docs"]
create bottle.rev.mcp["supervise"]
`,
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			h.t = t
			if st.src != "" {
				cfg = h.load(st.src)
			}
			if st.outOfBnd != nil {
				if err := st.outOfBnd(); err != nil {
					t.Fatal(err)
				}
			}
			p := h.plan(cfg)
			var got strings.Builder
			for _, c := range p.Changes {
				if c.Action.Changes() {
					fmt.Fprintf(&got, "%s %s\n", c.Action, c.Addr)
					if st.outOfBnd != nil && c.Addr == agent && !c.Drift {
						t.Errorf("%s %s is not marked as drift", c.Action, c.Addr)
					}
				}
			}
			if got.String() != st.plan {
				t.Errorf("plan:\n%s\nwant:\n%s", got.String(), st.plan)
			}
			if _, err := h.run(context.Background(), p, nil, applier.Options{}); err != nil {
				t.Fatal(err)
			}
			h.assertConverged(cfg)
			if n := countAgents(); n != 1 {
				t.Errorf("the runtime has %d agents, want 1", n)
			}
			if s := h.state(); s.Lineage != lineage {
				t.Errorf("lineage changed from %s to %s", lineage, s.Lineage)
			}
		})
	}
}

func TestApplyFailureStopsOnlyThatBottle(t *testing.T) {
	h := newHarness(t)
	cfg := h.load(secretDecls + fullBottle("a", "agent:1") + fullBottle("b", "agent:1"))
	boom := errors.New("image pull failed")
	// FailNext names a kind, not a bottle: inject it right before bottle
	// a's agent create, with the calls serialised so that bottle b's agent
	// create cannot take the fault.
	var mu sync.Mutex
	b := &wrapped{Backend: h.fake, around: func(name string, op *applier.Op, call func() error) error {
		mu.Lock()
		defer mu.Unlock()
		if name == backendtest.OpCreate && op.Addr == (resource.Address{Bottle: "a", Kind: resource.KindAgent}) {
			h.fake.FailNext(resource.KindAgent, backendtest.OpCreate, boom)
		}
		return call()
	}}
	_, err := h.run(context.Background(), h.plan(cfg), nil, applier.Options{Backends: map[string]applier.Backend{resource.BackendDocker: b}})
	if err == nil {
		t.Fatal("apply succeeded")
	}
	if !strings.Contains(err.Error(), "create bottle.a.agent") || !errors.Is(err, boom) {
		t.Errorf("error = %v, want one naming create bottle.a.agent and wrapping %v", err, boom)
	}
	s := h.state()
	if got, want := stateAddrs(s, "b"), fullAddrs("b"); !reflect.DeepEqual(got, want) {
		t.Errorf("bottle b in the state:\n%s\nwant all of it:\n%s", lines(got), lines(want))
	}
	wantA := without(fullAddrs("a"), prefixed("a", "agent", "prompt", `skill["review"]`, `mcp["docs"]`, `mcp["supervise"]`)...)
	if got := stateAddrs(s, "a"); !reflect.DeepEqual(got, wantA) {
		t.Errorf("bottle a in the state:\n%s\nwant what comes before the agent:\n%s", lines(got), lines(wantA))
	}
	var last string
	for _, c := range h.fake.Calls() {
		if strings.Contains(c, "bottle.a.") {
			last = c
		}
	}
	if last != "create bottle.a.agent" {
		t.Errorf("bottle a's last backend call = %q, want the failed agent create", last)
	}
	if got, want := strs(h.fake.Objects(s.Lineage)), stateAddrs(s, ""); !reflect.DeepEqual(got, want) {
		t.Errorf("runtime objects:\n%s\nstate:\n%s", lines(got), lines(want))
	}

	p := h.plan(cfg)
	for _, c := range p.Changes {
		if c.Action.Changes() && c.Addr.Bottle != "a" {
			t.Errorf("the retry plans %s %s", c.Action, c.Addr)
		}
	}
	if _, err := h.run(context.Background(), p, nil, applier.Options{}); err != nil {
		t.Fatal(err)
	}
	h.assertConverged(cfg)
}

// hookFunc is a Hook made of functions; nil ones do nothing.
type hookFunc struct {
	begin func(addr resource.Address, action planner.Action)
	end   func(addr resource.Address, action planner.Action, ids map[string]string, err error)
	warn  func(addr resource.Address, msg string)
}

func (h hookFunc) Begin(addr resource.Address, action planner.Action) {
	if h.begin != nil {
		h.begin(addr, action)
	}
}

func (h hookFunc) End(addr resource.Address, action planner.Action, ids map[string]string, _ time.Duration, err error) {
	if h.end != nil {
		h.end(addr, action, ids, err)
	}
}

func (h hookFunc) Warn(addr resource.Address, msg string) {
	if h.warn != nil {
		h.warn(addr, msg)
	}
}

func TestApplyInterrupted(t *testing.T) {
	h := newHarness(t)
	cfg := h.load(smallBottle("a", "agent:1") + smallBottle("b", "agent:1"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hook := hookFunc{end: func(addr resource.Address, _ planner.Action, _ map[string]string, _ error) {
		if addr == (resource.Address{Bottle: "a", Kind: resource.KindSidecar}) {
			cancel()
		}
	}}
	// One bottle at a time, so that bottle b cannot be half way through
	// when a is interrupted: it is not started at all, or finished.
	_, err := h.run(ctx, h.plan(cfg), nil, applier.Options{Hook: hook, Parallelism: 1})
	if !errors.Is(err, applier.ErrInterrupted) {
		t.Fatalf("err = %v, want %v", err, applier.ErrInterrupted)
	}
	s := h.state()
	if got, want := stateAddrs(s, "a"), prefixed("a", "network", "sidecar"); !reflect.DeepEqual(got, want) {
		t.Errorf("bottle a in the state:\n%s\nwant:\n%s", lines(got), lines(want))
	}
	var gotA []string
	for _, c := range backendCalls(h.fake, 0) {
		if strings.Contains(c, "bottle.a.") {
			gotA = append(gotA, c)
		}
	}
	if want := calls("create", prefixed("a", "network", "sidecar")...); !reflect.DeepEqual(gotA, want) {
		t.Errorf("bottle a's backend calls:\n%s\nwant:\n%s", lines(gotA), lines(want))
	}
	if b := stateAddrs(s, "b"); len(b) != 0 && !reflect.DeepEqual(b, smallAddrs("b")) {
		t.Errorf("bottle b was left half done:\n%s", lines(b))
	}
	if got, want := strs(h.fake.Objects(s.Lineage)), stateAddrs(s, ""); !reflect.DeepEqual(got, want) {
		t.Errorf("runtime objects:\n%s\nstate:\n%s", lines(got), lines(want))
	}
	h.converge(cfg)
	h.assertConverged(cfg)
}

// crashWorld models a bottleform process that dies at one checkpoint.
//
// The crash is modelled in the test process rather than by killing a child:
// the Fake is in memory, and it stands for the runtime (the Docker daemon),
// which outlives the bottleform process; a child's Fake would die with the
// child. From the moment the process "dies" it has no effect on the world
// any more: every later backend call fails before it reaches the Fake, and
// every later save fails before it touches the disk. Whatever the dead
// process holds in memory (Apply's state, its return value) is thrown away.
// What is left is exactly what a SIGKILL leaves: the objects the runtime
// made, and the last state file state.Manager wrote atomically. The resumed
// apply starts from those two only, as a new process does.
type crashWorld struct {
	h    *harness
	dead atomic.Bool
	mu   sync.Mutex
	// lineages are those of every backend call made, dead or alive.
	lineages map[string]bool
	points   []string
}

var errDead = errors.New("the process is dead")

func (w *crashWorld) backend() applier.Backend {
	return &wrapped{Backend: w.h.fake, around: func(_ string, op *applier.Op, call func() error) error {
		if w.dead.Load() {
			return errDead
		}
		w.mu.Lock()
		w.lineages[op.Lineage] = true
		w.mu.Unlock()
		return call()
	}}
}

func (w *crashWorld) Save(s *state.State) error {
	if w.dead.Load() {
		return errDead
	}
	return w.h.mgr.Save(s)
}

// apply runs p, dying at checkpoint k (0: never), and returns the
// checkpoints reached.
func (w *crashWorld) apply(p *planner.Plan, k int) []string {
	w.points = nil
	_, _ = w.h.run(context.Background(), p, w, applier.Options{
		Backends: map[string]applier.Backend{resource.BackendDocker: w.backend()},
		// One bottle at a time: the k-th checkpoint is the same in every run.
		Parallelism: 1,
		Checkpoint: func(point string) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.dead.Load() {
				// The dead process goes on in memory (a delete that needs
				// no backend call), but none of it reaches the world.
				return
			}
			w.points = append(w.points, point)
			if len(w.points) == k {
				w.dead.Store(true)
			}
		},
	})
	return w.points
}

func TestApplyResumesAfterCrashAtEveryCheckpoint(t *testing.T) {
	// Every scenario changes one bottle only, so that its checkpoints come
	// in the same order in every run and the k-th is the same point.
	full := secretDecls + fullBottle("rev", "agent:1")
	scenarios := []struct {
		name   string
		before string
		src    string // "" plans a destroy
	}{
		{name: "first apply", src: full},
		{name: "replace", before: full, src: strings.Replace(secretDecls+fullBottle("rev", "agent:2"), "review the", "triage the", 1)},
		{name: "destroy", before: full},
		{name: "bottle removed", before: full + smallBottle("small", "agent:1"), src: smallBottle("small", "agent:1")},
	}
	covered := 0
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			setup := func(t *testing.T) (*crashWorld, *config.File) {
				w := &crashWorld{h: newHarness(t), lineages: map[string]bool{}}
				if sc.before != "" {
					w.h.converge(w.h.load(sc.before))
				}
				var cfg *config.File
				if sc.src != "" {
					cfg = w.h.load(sc.src)
				}
				return w, cfg
			}
			w, cfg := setup(t)
			all := w.apply(w.h.plan(cfg), 0)
			w.h.assertConverged(cfg)
			steps := 0
			for _, pt := range all {
				if strings.HasPrefix(pt, "after ") {
					steps++
				}
			}
			if steps == 0 || len(all) != 2*steps {
				t.Fatalf("checkpoints %q: want an after and a saved point per step", all)
			}
			covered += len(all)
			for k := 1; k <= len(all); k++ {
				t.Run(fmt.Sprintf("%02d %s", k, all[k-1]), func(t *testing.T) {
					w, cfg := setup(t)
					if got := w.apply(w.h.plan(cfg), k); !reflect.DeepEqual(got, all[:k]) {
						t.Fatalf("checkpoints reached before dying:\n%s\nwant:\n%s", lines(got), lines(all[:k]))
					}
					// A new process: plan from what is left, and apply.
					w.dead.Store(false)
					w.apply(w.h.plan(cfg), 0)
					w.h.assertConverged(cfg)
					final := w.h.state().Lineage
					for l := range w.lineages {
						if objs := w.h.fake.Objects(l); l != final && len(objs) > 0 {
							t.Errorf("orphans under lineage %s, which no state file records: %v", l, objs)
						}
					}
				})
			}
		})
	}
	t.Logf("crash injection points covered: %d", covered)
}

func TestApplyParallelism(t *testing.T) {
	var src strings.Builder
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		src.WriteString(smallBottle(n, "agent:1"))
	}
	for _, limit := range []int{1, 2} {
		t.Run(fmt.Sprintf("parallelism %d", limit), func(t *testing.T) {
			h := newHarness(t)
			cfg := h.load(src.String())
			var mu sync.Mutex
			inFlight := map[string]int{}
			maxBottles := 0
			b := &wrapped{Backend: h.fake, around: func(name string, op *applier.Op, call func() error) error {
				mu.Lock()
				inFlight[op.Addr.Bottle]++
				if inFlight[op.Addr.Bottle] > 1 {
					t.Errorf("two steps of bottle %s at once", op.Addr.Bottle)
				}
				maxBottles = max(maxBottles, len(inFlight))
				mu.Unlock()
				if name == backendtest.OpCreate {
					time.Sleep(2 * time.Millisecond) // long enough for bottles to overlap
				}
				err := call()
				mu.Lock()
				if inFlight[op.Addr.Bottle]--; inFlight[op.Addr.Bottle] == 0 {
					delete(inFlight, op.Addr.Bottle)
				}
				mu.Unlock()
				return err
			}}
			if _, err := h.run(context.Background(), h.plan(cfg), nil, applier.Options{
				Backends:    map[string]applier.Backend{resource.BackendDocker: b},
				Parallelism: limit,
			}); err != nil {
				t.Fatal(err)
			}
			if maxBottles > limit {
				t.Errorf("%d bottles were worked on at once, the limit is %d", maxBottles, limit)
			}
			if limit > 1 && maxBottles < 2 {
				t.Errorf("bottles never overlapped with parallelism %d", limit)
			}
			h.assertConverged(cfg)
		})
	}
}

func TestApplyHook(t *testing.T) {
	small := smallBottle("a", "agent:1") + smallBottle("b", "agent:1")
	tests := []struct {
		name   string
		before string
		src    string
		events func(bottle string) []string
	}{
		{
			name: "first apply",
			src:  small,
			events: func(n string) []string {
				var out []string
				for _, a := range smallAddrs(n) {
					out = append(out, "begin create "+a, "end create "+a+" id")
				}
				return out
			},
		},
		{
			name:   "replace",
			before: small,
			src:    smallBottle("a", "agent:2") + smallBottle("b", "agent:2"),
			events: func(n string) []string {
				return []string{
					"begin delete bottle." + n + ".agent", "end delete bottle." + n + ".agent",
					"begin update bottle." + n + ".auth", "end update bottle." + n + ".auth id",
					"begin replace bottle." + n + ".agent", "end replace bottle." + n + ".agent id",
					"begin update bottle." + n + ".prompt", "end update bottle." + n + ".prompt id",
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.before != "" {
				h.converge(h.load(tt.before))
			}
			cfg := h.load(tt.src)
			var mu sync.Mutex
			events := map[string][]string{}
			hook := hookFunc{
				begin: func(addr resource.Address, action planner.Action) {
					mu.Lock()
					defer mu.Unlock()
					events[addr.Bottle] = append(events[addr.Bottle], fmt.Sprintf("begin %s %s", action, addr))
				},
				end: func(addr resource.Address, action planner.Action, ids map[string]string, err error) {
					mu.Lock()
					defer mu.Unlock()
					e := fmt.Sprintf("end %s %s", action, addr)
					if ids["id"] != "" {
						e += " id"
					}
					if err != nil {
						e += " error: " + err.Error()
					}
					events[addr.Bottle] = append(events[addr.Bottle], e)
				},
			}
			if _, err := h.run(context.Background(), h.plan(cfg), nil, applier.Options{Hook: hook}); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"a", "b"} {
				if got, want := events[n], tt.events(n); !reflect.DeepEqual(got, want) {
					t.Errorf("bottle %s events:\n%s\nwant:\n%s", n, lines(got), lines(want))
				}
			}
		})
	}

	t.Run("failed step", func(t *testing.T) {
		h := newHarness(t)
		cfg := h.load(smallBottle("a", "agent:1"))
		h.fake.FailNext(resource.KindSidecar, backendtest.OpCreate, errors.New("port in use"))
		var ends []string
		hook := hookFunc{end: func(addr resource.Address, action planner.Action, _ map[string]string, err error) {
			ends = append(ends, fmt.Sprintf("%s %s %v", action, addr, err))
		}}
		if _, err := h.run(context.Background(), h.plan(cfg), nil, applier.Options{Hook: hook}); err == nil {
			t.Fatal("apply succeeded")
		}
		want := []string{"create bottle.a.network <nil>", "create bottle.a.sidecar port in use"}
		if !reflect.DeepEqual(ends, want) {
			t.Errorf("ends:\n%s\nwant:\n%s", lines(ends), lines(want))
		}
	})

	t.Run("warning", func(t *testing.T) {
		mcp := resource.Address{Bottle: "rev", Kind: resource.KindMCP, Key: "docs"}
		for _, withHook := range []bool{true, false} {
			h := newHarness(t)
			cfg := h.load(secretDecls + fullBottle("rev", "agent:1"))
			b := &wrapped{Backend: h.fake, around: func(_ string, op *applier.Op, call func() error) error {
				if op.Addr == mcp {
					op.Warn("the MCP server did not answer; registered anyway")
				}
				return call()
			}}
			var warns []string
			opts := applier.Options{Backends: map[string]applier.Backend{resource.BackendDocker: b}}
			if withHook {
				opts.Hook = hookFunc{warn: func(addr resource.Address, msg string) {
					warns = append(warns, addr.String()+": "+msg)
				}}
			}
			if _, err := h.run(context.Background(), h.plan(cfg), nil, opts); err != nil {
				t.Fatal(err)
			}
			if want := []string{`bottle.rev.mcp["docs"]: the MCP server did not answer; registered anyway`}; withHook && !reflect.DeepEqual(warns, want) {
				t.Errorf("warnings = %q, want %q", warns, want)
			}
			h.assertConverged(cfg)
		}
	})
}
