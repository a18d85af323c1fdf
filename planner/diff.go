package planner

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// Options are the planning options the user chose.
type Options struct {
	Mode Mode
	// Targets limit the plan to these objects and what they need.
	Targets []resource.Address
	// Replace forces these objects to be replaced.
	Replace []resource.Address
}

// replaceOn lists, per kind, the attributes whose change cannot be made in
// place. A kind not listed is always updated in place; nil means every
// attribute forces a replace.
var replaceOn = map[resource.Kind][]string{
	resource.KindNetwork:   {"backend"},
	resource.KindSidecar:   {"backend", "image"},
	resource.KindAgent:     nil,
	resource.KindDeployKey: {"api_url", "repository"},
}

// smolvmInPlace are the agent attributes smolvm's `machine update` changes
// on a stopped VM (-e/--remove-env, --cpus, --mem): on smolmachines they
// update the agent in place, stopping and starting it, where Docker would
// make a new container. The image and the provider make a new VM.
var smolvmInPlace = []string{"env", "cpus", "memory"}

// smolvmReason is how the plan says it.
const smolvmReason = " (smolvm: stop, update, start)"

// onSmolmachines reports whether an agent's attributes, before and after,
// both put it on the smolmachines backend.
func onSmolmachines(before, after resource.Attrs) bool {
	return before["backend"].Str == resource.BackendSmolmachines && after["backend"].Str == resource.BackendSmolmachines
}

func forcesReplace(k resource.Kind, attr string) bool {
	names, ok := replaceOn[k]
	if !ok {
		return false
	}
	if names == nil {
		return true
	}
	for _, n := range names {
		if n == attr {
			return true
		}
	}
	return false
}

// Diff compares the desired configuration with the prior state and what the
// backends observed, and returns the plan. cfg may be nil in destroy mode.
// It fails only on options that name nothing.
func Diff(cfg *config.File, prior *state.State, observed resource.Observed, opts Options) (*Plan, error) {
	p := &Plan{Mode: opts.Mode, Targets: opts.Targets, Replace: opts.Replace}
	if prior != nil {
		p.Lineage, p.Serial = prior.Lineage, prior.Serial
	}
	desired := map[resource.Address]resource.Attrs{}
	if cfg != nil {
		p.ConfigDigest = cfg.Digest
	}
	if cfg != nil && opts.Mode == ModeNormal {
		p.Bottles = map[string]*resource.Bottle{}
		p.Secrets = map[string]resource.SecretSource{}
		for _, name := range sortedKeys(cfg.Bottles) {
			eff, dropped := Effective(cfg.Bottles[name])
			p.Bottles[name] = eff
			for _, r := range dropped {
				p.Warnings = append(p.Warnings, Warning{
					Bottle:  name,
					Summary: fmt.Sprintf("Declared egress route for %s is replaced by the %s provider's route", r.Host, eff.Agent.Provider),
					Detail:  fmt.Sprintf("The %s provider owns %s and brings its own route for it; the route bottle %q declares is dropped. Remove the egress %q block to silence this warning.", eff.Agent.Provider, r.Host, name, r.Host),
				})
			}
			for _, o := range Objects(eff) {
				if o.Addr.Kind == resource.KindDeployKey {
					tokenSource(o.Attrs, cfg.Secrets)
				}
				desired[o.Addr] = o.Attrs
			}
			for _, ref := range eff.Refs() {
				if src, ok := cfg.Secrets[ref.Secret]; ok {
					p.Secrets[ref.Secret] = src
				}
			}
		}
	}
	priorAttrs := map[resource.Address]*state.Resource{}
	for _, r := range prior.Resources() {
		priorAttrs[r.Addr] = r
	}
	if err := checkAddrs(opts, desired, priorAttrs); err != nil {
		return nil, err
	}

	byAddr := map[resource.Address]*Change{}
	for addr, after := range desired {
		c := &Change{Addr: addr, After: after}
		if r, ok := priorAttrs[addr]; ok {
			c.Before = r.Attrs
			c.Action = NoOp
			for _, attr := range r.Attrs.Changed(after) {
				reason := attr + " changed"
				switch {
				case addr.Kind == resource.KindAgent && onSmolmachines(r.Attrs, after) && slices.Contains(smolvmInPlace, attr):
					reason += smolvmReason
					if c.Action == NoOp {
						c.Action = Update
					}
				case forcesReplace(addr.Kind, attr):
					c.Action = Replace
					c.ReplacePaths = append(c.ReplacePaths, attr)
				case c.Action == NoOp:
					c.Action = Update
				}
				c.Reasons = append(c.Reasons, reason)
			}
		} else {
			c.Action = Create
		}
		byAddr[addr] = c
	}
	for addr, r := range priorAttrs {
		if _, ok := desired[addr]; ok {
			continue
		}
		reason := "no longer in the configuration"
		if opts.Mode == ModeDestroy {
			reason = "destroy requested"
		} else if _, ok := p.Bottles[addr.Bottle]; !ok {
			reason = fmt.Sprintf("bottle %s is no longer in the configuration", addr.Bottle)
		}
		byAddr[addr] = &Change{Addr: addr, Action: Delete, Before: r.Attrs, Reasons: []string{reason}}
	}
	applyObserved(byAddr, observed)
	applyReplace(byAddr, opts.Replace)
	propagate(byAddr)
	revokeSecrets(p, byAddr)

	for _, c := range byAddr {
		p.Changes = append(p.Changes, *c)
	}
	sort.Slice(p.Changes, func(i, j int) bool { return p.Changes[i].Addr.Less(p.Changes[j].Addr) })
	if len(opts.Targets) > 0 {
		p.Changes = target(p.Changes, opts)
		p.Warnings = append(p.Warnings, Warning{
			Summary: "Resource targeting is in effect",
			Detail:  "This plan covers only " + addrList(opts.Targets) + " and what they need; other changes are left out. Targeting is for repairs, not routine use: run a full plan afterwards.",
		})
	}
	for i := range p.Changes {
		sort.Strings(p.Changes[i].Reasons)
		p.Changes[i].Reasons = dedupe(p.Changes[i].Reasons)
	}
	p.Security = security(p)
	return p, nil
}

// applyObserved turns what the backends saw into drift changes.
func applyObserved(byAddr map[resource.Address]*Change, observed resource.Observed) {
	for addr, o := range observed {
		c, ok := byAddr[addr]
		if !ok || c.Action == Delete {
			continue
		}
		reason := o.Reason
		if reason == "" {
			reason = fmt.Sprintf("%s %s out of band", addr.Kind, o.Status)
		}
		switch o.Status {
		case resource.StatusMissing:
			if c.Action != Create {
				c.Action, c.Drift = Create, true
				c.Reasons = append(c.Reasons, reason)
				c.ReplacePaths = nil
			}
		case resource.StatusChanged:
			if c.Action != Create {
				c.Action, c.Drift = Replace, true
				c.Reasons = append(c.Reasons, reason)
			}
		case resource.StatusStopped, resource.StatusDegraded:
			if c.Action == NoOp || c.Action == Update {
				c.Action, c.Drift = Update, true
				c.Reasons = append(c.Reasons, reason)
			}
		}
	}
}

func applyReplace(byAddr map[resource.Address]*Change, replace []resource.Address) {
	for _, want := range replace {
		for addr, c := range byAddr {
			if want.Contains(addr) && (c.Action == NoOp || c.Action == Update) {
				c.Action = Replace
				c.Reasons = append(c.Reasons, "replacement requested with --replace")
			}
		}
	}
}

// propagate adds the changes that follow from others: objects attached to
// a replaced network are replaced with it, and whatever apply provisions
// into the agent is provisioned again into a new agent.
func propagate(byAddr map[resource.Address]*Change) {
	recreated := func(c *Change) bool {
		return c != nil && (c.Action == Replace || (c.Action == Create && c.Before != nil) || (c.Action == Create && c.Drift))
	}
	for addr, c := range byAddr {
		if addr.Kind != resource.KindNetwork || !recreated(c) {
			continue
		}
		for _, k := range []resource.Kind{resource.KindSidecar, resource.KindAgent} {
			dep := byAddr[resource.Address{Bottle: addr.Bottle, Kind: k}]
			if dep != nil && (dep.Action == NoOp || dep.Action == Update) {
				dep.Action = Replace
				dep.Reasons = append(dep.Reasons, "its network is replaced")
			}
		}
	}
	for addr, c := range byAddr {
		if !recreated(c) {
			continue
		}
		for daddr, dep := range byAddr {
			if daddr.Bottle != addr.Bottle || dep.Action != NoOp {
				continue
			}
			switch {
			case addr.Kind == resource.KindAgent && daddr.Kind.InAgent():
				dep.Action = Update
				dep.Reasons = append(dep.Reasons, "provisioned again into the new agent")
			case addr.Kind == resource.KindSidecar && (daddr.Kind == resource.KindEgress || daddr.Kind == resource.KindGit):
				dep.Action = Update
				dep.Reasons = append(dep.Reasons, "delivered again to the new sidecar")
			}
		}
	}
	// A smolmachines agent reaches its sidecar at published ports and
	// trusts its CA: a sidecar started again has a new CA, and other ports
	// if its own were taken; the VM is stopped and updated only then.
	for addr, c := range byAddr {
		if addr.Kind != resource.KindSidecar || !(recreated(c) || (c.Action == Update && c.Drift)) {
			continue
		}
		ag := byAddr[resource.Address{Bottle: addr.Bottle, Kind: resource.KindAgent}]
		if ag != nil && ag.Action == NoOp && ag.After["backend"].Str == resource.BackendSmolmachines {
			ag.Action = Update
			ag.Reasons = append(ag.Reasons, "its sidecar is started again: the VM gets its new CA, and its new ports if they changed"+smolvmReason)
		}
	}
	// A minted key's private half lives only in its sidecar's memory: a
	// sidecar that is created again, or that restarted (a drift update),
	// has lost it, so the key is revoked and a new one minted.
	for addr, c := range byAddr {
		if addr.Kind != resource.KindSidecar || !(recreated(c) || (c.Action == Update && c.Drift)) {
			continue
		}
		for daddr, dep := range byAddr {
			if daddr.Bottle == addr.Bottle && daddr.Kind == resource.KindDeployKey && (dep.Action == NoOp || dep.Action == Update) && dep.Before != nil {
				dep.Action = Replace
				dep.Reasons = append(dep.Reasons, "its private key lived only in the sidecar, which is started again")
				if g := byAddr[resource.Address{Bottle: daddr.Bottle, Kind: resource.KindGit, Key: daddr.Key}]; g != nil && g.Action == NoOp {
					g.Action = Update
					g.Reasons = append(g.Reasons, "delivered again with its new deploy key")
				}
			}
		}
	}
}

// tokenSource records, in a deploy key's attributes, where its token's
// declared secret comes from (never the value): destroy revokes the key
// from the state alone, without the configuration.
func tokenSource(attrs resource.Attrs, decls map[string]resource.SecretSource) {
	ref, err := resource.ParseRef(attrs["token"].Str)
	if err != nil || ref.Secret == "" {
		return
	}
	if d, ok := decls[ref.Secret]; ok {
		attrs["token_source"] = resource.MapOf(map[string]resource.Value{
			"kind":   resource.String(d.Kind.String()),
			"source": resource.String(d.Source),
		})
	}
}

// revokeSecrets adds to p.Secrets the declarations of the tokens that the
// deploy keys deleted or replaced in p need for their revocation, from the
// state when the configuration no longer declares them.
func revokeSecrets(p *Plan, byAddr map[resource.Address]*Change) {
	for addr, c := range byAddr {
		if addr.Kind != resource.KindDeployKey || (c.Action != Delete && c.Action != Replace) || c.Before == nil {
			continue
		}
		ref, err := resource.ParseRef(c.Before["token"].Str)
		if err != nil || ref.Secret == "" {
			continue
		}
		if _, ok := p.Secrets[ref.Secret]; ok {
			continue
		}
		src := c.Before["token_source"].Map
		kind := map[string]resource.SecretKind{"env": resource.SecretEnv, "file": resource.SecretFile, "prompt": resource.SecretPrompt}[src["kind"].Str]
		if kind == 0 {
			continue
		}
		if p.Secrets == nil {
			p.Secrets = map[string]resource.SecretSource{}
		}
		p.Secrets[ref.Secret] = resource.SecretSource{Name: ref.Secret, Kind: kind, Source: src["source"].Str}
	}
}

// target keeps the changes the targets select and the changes those need.
func target(changes []Change, opts Options) []Change {
	selected := func(a resource.Address) bool {
		for _, t := range opts.Targets {
			if t.Contains(a) {
				return true
			}
		}
		return false
	}
	keep := map[resource.Address]bool{}
	for _, c := range changes {
		if !selected(c.Addr) {
			continue
		}
		keep[c.Addr] = true
		for _, dep := range needs(c.Addr, opts.Mode) {
			keep[dep] = true
		}
	}
	// An object that is created again takes along what lives on it: a new
	// network needs the sidecar and agent attached again, a new agent needs
	// its prompt, skills, auth and MCP registrations provisioned again.
	byAddr := map[resource.Address]Change{}
	for _, c := range changes {
		byAddr[c.Addr] = c
	}
	for _, c := range changes {
		if !c.Action.Changes() {
			continue
		}
		for _, dep := range needs(c.Addr, ModeNormal) {
			d := byAddr[dep]
			if keep[dep] && opts.Mode == ModeNormal && (d.Action == Replace || d.Action == Create) && d.Before != nil {
				keep[c.Addr] = true
			}
		}
	}
	if opts.Mode == ModeDestroy {
		// Destroying an object destroys what cannot live without it.
		for _, c := range changes {
			for _, dep := range needs(c.Addr, ModeNormal) {
				if keep[dep] && selected(dep) {
					keep[c.Addr] = true
				}
			}
		}
	}
	var out []Change
	for _, c := range changes {
		if keep[c.Addr] && (c.Action.Changes() || selected(c.Addr)) {
			out = append(out, c)
		}
	}
	return out
}

// needs lists what an object cannot exist without. In destroy mode nothing
// is needed to delete an object.
func needs(a resource.Address, mode Mode) []resource.Address {
	if mode == ModeDestroy {
		return nil
	}
	b := func(k resource.Kind, key string) resource.Address {
		return resource.Address{Bottle: a.Bottle, Kind: k, Key: key}
	}
	switch {
	case a.Kind == resource.KindNetwork:
		return nil
	case a.Kind == resource.KindSidecar || a.Kind == resource.KindAgent:
		return []resource.Address{b(resource.KindNetwork, "")}
	case a.Kind == resource.KindDeployKey:
		return []resource.Address{b(resource.KindNetwork, ""), b(resource.KindSidecar, ""), b(resource.KindGit, a.Key)}
	case a.Kind.InAgent():
		return []resource.Address{b(resource.KindNetwork, ""), b(resource.KindSidecar, ""), b(resource.KindAgent, "")}
	}
	return []resource.Address{b(resource.KindNetwork, ""), b(resource.KindSidecar, "")}
}

func checkAddrs(opts Options, desired map[resource.Address]resource.Attrs, prior map[resource.Address]*state.Resource) error {
	matches := func(t resource.Address) bool {
		for a := range desired {
			if t.Contains(a) {
				return true
			}
		}
		for a := range prior {
			if t.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, list := range []struct {
		flag  string
		addrs []resource.Address
	}{{"--target", opts.Targets}, {"--replace", opts.Replace}} {
		for _, t := range list.addrs {
			if !matches(t) {
				return fmt.Errorf("%s %s matches no object in the configuration or the state; run `bottleform state list` to see the addresses", list.flag, t)
			}
		}
	}
	if opts.Mode == ModeDestroy && len(opts.Replace) > 0 {
		return fmt.Errorf("--replace cannot be used with --destroy")
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func dedupe(ss []string) []string {
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func addrList(as []resource.Address) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
