package config

import (
	"os"
	"sort"
	"strings"

	"github.com/bottleform/bottleform/resource"
)

// merge resolves `extends` and returns the bottles to run.
//
// Merge rules, parent first, then the child on top:
//   - backend, image, supervise, prompt, upstream_ca: the child's value
//     wins when set;
//   - agent: the child's block replaces the parent's whole;
//   - env: merged by name, the child's entry wins;
//   - egress, git, mcp: merged by label, the child's block replaces the
//     parent's block of the same label whole;
//   - git_user, resources: merged field by field, the child's fields win;
//   - skills: the child's list replaces the parent's;
//   - abstract is never inherited.
func (d *decoder) merge(decls map[string]*bottleDecl, order []string) map[string]*resource.Bottle {
	resolved := map[string]*bottleDecl{}
	failed := map[string]bool{}
	// resolve returns name merged with its ancestors, or nil when it or an
	// ancestor is broken; chain holds the bottles that led here.
	var resolve func(name string, chain []string) *bottleDecl
	resolve = func(name string, chain []string) *bottleDecl {
		if r, ok := resolved[name]; ok {
			return r
		}
		if failed[name] {
			return nil
		}
		bd := decls[name]
		chain = append(chain, name)
		var m *bottleDecl
		switch {
		case bd.broken:
		case bd.extends == "":
			m = bd
		case inChain(chain, bd.extends) >= 0:
			cycle := append(append([]string{}, chain[inChain(chain, bd.extends):]...), bd.extends)
			d.errorf(bd.extendsRange, "Cycle in extends", "The bottles extend each other in a cycle: %s. Remove one of these extends.", strings.Join(cycle, " extends "))
			for _, c := range cycle {
				failed[c] = true
			}
		case decls[bd.extends] == nil:
			detail := "No bottle named \"" + bd.extends + "\" is defined."
			if s := suggest(bd.extends, keys(decls)); s != "" {
				detail += " Did you mean \"" + s + "\"?"
			} else {
				detail += " Define it, or remove extends."
			}
			d.errorf(bd.extendsRange, "Unknown parent bottle", "%s", detail)
		default:
			if p := resolve(bd.extends, chain); p != nil {
				m = overlay(p, bd)
			}
		}
		if m == nil {
			failed[name] = true
			return nil
		}
		resolved[name] = m
		return m
	}
	bottles := map[string]*resource.Bottle{}
	for _, name := range order {
		bd := resolve(name, nil)
		if bd == nil || bd.abstract {
			continue
		}
		if b := d.finish(bd); b != nil {
			bottles[name] = b
		}
	}
	return bottles
}

// overlay returns parent with child's settings on top.
func overlay(parent, child *bottleDecl) *bottleDecl {
	m := *child
	m.extends = ""
	if m.backend == nil {
		m.backend = parent.backend
	}
	if m.image == nil {
		m.image, m.imageRange = parent.image, parent.imageRange
	}
	if m.agent == nil {
		m.agent = parent.agent
	}
	m.env = mergeMap(parent.env, child.env)
	m.egress = mergeMap(parent.egress, child.egress)
	m.egressTLS = mergeMap(parent.egressTLS, child.egressTLS)
	m.git = mergeMap(parent.git, child.git)
	m.mcp = mergeMap(parent.mcp, child.mcp)
	if parent.gitUser != nil || child.gitUser != nil {
		u := resource.GitUser{}
		for _, src := range []*resource.GitUser{parent.gitUser, child.gitUser} {
			if src == nil {
				continue
			}
			if src.Name != "" {
				u.Name = src.Name
			}
			if src.Email != "" {
				u.Email = src.Email
			}
		}
		m.gitUser = &u
	}
	if m.supervise == nil {
		m.supervise = parent.supervise
	}
	if m.prompt == nil {
		m.prompt, m.promptFile = parent.prompt, parent.promptFile
	}
	if m.upstreamCA == nil {
		m.upstreamCA, m.upstreamCAFile = parent.upstreamCA, parent.upstreamCAFile
	}
	if !m.skillsSet {
		m.skills, m.skillsSet = parent.skills, parent.skillsSet
	}
	if m.cpus == nil {
		m.cpus = parent.cpus
	}
	if m.memory == nil {
		m.memory, m.memoryText = parent.memory, parent.memoryText
	}
	return &m
}

func mergeMap[V any](parent, child map[string]V) map[string]V {
	if parent == nil {
		return child
	}
	out := make(map[string]V, len(parent)+len(child))
	for k, v := range parent {
		out[k] = v
	}
	for k, v := range child {
		out[k] = v
	}
	return out
}

// finish checks a merged bottle for completeness and builds its spec.
func (d *decoder) finish(bd *bottleDecl) *resource.Bottle {
	if bd.image == nil {
		d.errorf(bd.labelRange, "Missing image", "The bottle %q has no image: set image = \"REF\" in it or in the bottle it extends. (A bottle that only serves as a template for extends can say abstract = true.)", bd.name)
		return nil
	}
	b := &resource.Bottle{
		Name:    bd.name,
		Backend: resource.BackendDocker,
		Image:   *bd.image,
		Agent:   resource.AgentSpec{Provider: resource.ProviderClaude},
		GitUser: bd.gitUser,
	}
	if bd.backend != nil {
		b.Backend = *bd.backend
	}
	if bd.agent != nil {
		b.Agent = *bd.agent
	}
	for _, name := range keys(bd.env) {
		b.Env = append(b.Env, bd.env[name])
	}
	for _, host := range keys(bd.egress) {
		b.Egress = append(b.Egress, bd.egress[host])
	}
	for _, name := range keys(bd.git) {
		b.Git = append(b.Git, bd.git[name])
	}
	for _, name := range keys(bd.mcp) {
		b.MCP = append(b.MCP, bd.mcp[name])
	}
	if bd.supervise != nil {
		b.Supervise = *bd.supervise
	}
	if bd.prompt != nil {
		b.Prompt, b.PromptFile = *bd.prompt, bd.promptFile
	}
	if bd.upstreamCA != nil {
		b.UpstreamCA, b.UpstreamCAFile = *bd.upstreamCA, bd.upstreamCAFile
	}
	b.Skills = append(b.Skills, bd.skills...)
	sort.Slice(b.Skills, func(i, j int) bool { return b.Skills[i].Name < b.Skills[j].Name })
	if bd.cpus != nil {
		b.Resources.CPUs = *bd.cpus
	}
	if bd.memory != nil {
		b.Resources.Memory, b.Resources.MemoryText = *bd.memory, bd.memoryText
	}
	d.checkHost(bd, b)
	d.checkForgeRoutes(bd, b)
	return b
}

// checkForgeRoutes refuses a passthrough route to a host that is a git
// upstream of the bottle (a forge host): the gateway keeps writes to a
// forge's HTTP API out by their method, which it cannot see in a tunnel it
// does not decrypt, and the git gate is to be the only way to write.
func (d *decoder) checkForgeRoutes(bd *bottleDecl, b *resource.Bottle) {
	forge := map[string]string{} // host key -> git entry name
	for _, g := range b.Git {
		if _, ok := forge[hostKey(g.Host)]; !ok {
			forge[hostKey(g.Host)] = g.Name
		}
	}
	for _, r := range b.Egress {
		name, ok := forge[hostKey(r.Host)]
		if !ok || r.TLS != resource.TLSPassthrough {
			continue
		}
		d.errorf(bd.egressTLS[r.Host], "Passthrough to a forge host",
			"%s is the upstream of git %q, and a passthrough route would let the agent write to the forge through its HTTP API, bypassing the git gate's push policy and secret scan: the gateway cannot see the methods of requests it does not decrypt. Remove tls = \"passthrough\" (the route then forwards GET, HEAD and OPTIONS only), and grant writes with methods = [...] if the agent needs them.",
			r.Host, name)
	}
}

// checkHost checks, when asked to, that the host has what the bottle's
// references need: env secrets set, file secrets present.
func (d *decoder) checkHost(bd *bottleDecl, b *resource.Bottle) {
	if d.opts.LookupEnv == nil {
		return
	}
	for _, ref := range b.Refs() {
		src, ok := d.secrets[ref.Secret]
		if !ok {
			continue
		}
		rng := d.secretRanges[ref.Secret]
		switch src.Kind {
		case resource.SecretEnv:
			if _, ok := d.opts.LookupEnv(src.Source); !ok {
				d.errorf(rng, "Secret not set", "The secret %q reads the environment variable %s, which is not set (bottle %q uses it). Export it and run the command again.", src.Name, src.Source, b.Name)
			}
		case resource.SecretFile:
			if _, err := os.Stat(expandHome(d.path(src.Source), d.opts.LookupEnv)); err != nil {
				d.errorf(rng, "Secret file not found", "The secret %q reads %s: %s (bottle %q uses it). Create the file or fix the path.", src.Name, src.Source, err, b.Name)
			}
		}
	}
}

func inChain(chain []string, name string) int {
	for i, c := range chain {
		if c == name {
			return i
		}
	}
	return -1
}
