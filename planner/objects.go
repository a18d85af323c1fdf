package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"

	"github.com/bottleform/bottleform/agent"
	"github.com/bottleform/bottleform/resource"
)

// SidecarImage is the sidecar's image reference; set by the CLI to carry
// bottleform's version, since the sidecar is built from the same binary.
var SidecarImage = "bottleform-sidecar:dev"

// SuperviseURL is the supervise server's URL inside a Docker bottle.
const SuperviseURL = "http://supervise:9100/mcp"

// Effective returns b with the provider's routes merged into its egress
// routes and token slots assigned, and the declared routes the provider
// took over.
//
// An external MCP server gets a route to its host unless one is declared:
// the agent reaches it through the gateway like any other host.
func Effective(b *resource.Bottle) (*resource.Bottle, []resource.Route) {
	e := *b
	declared := append([]resource.Route(nil), b.Egress...)
	for _, m := range b.MCP {
		host := mcpHost(m.URL)
		if host == "" || hasRoute(declared, host) {
			continue
		}
		declared = append(declared, resource.Route{Host: host, TLS: resource.TLSIntercept, Owner: "mcp." + m.Name})
	}
	var dropped []resource.Route
	e.Egress, dropped = agent.Merge(declared, b.Agent)
	return &e, dropped
}

func mcpHost(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Hostname()
}

func hasRoute(routes []resource.Route, host string) bool {
	for _, r := range routes {
		if r.Host == host {
			return true
		}
	}
	return false
}

// Objects returns the objects of one effective bottle, sorted by address.
func Objects(b *resource.Bottle) []resource.Object {
	addr := func(k resource.Kind, key string) resource.Address {
		return resource.Address{Bottle: b.Name, Kind: k, Key: key}
	}
	var objs []resource.Object
	add := func(a resource.Address, attrs resource.Attrs) {
		objs = append(objs, resource.Object{Addr: a, Attrs: attrs})
	}
	add(addr(resource.KindNetwork, ""), resource.Attrs{
		"backend": resource.String(b.Backend),
	})
	sidecar := resource.Attrs{
		"backend":   resource.String(b.Backend),
		"image":     resource.String(SidecarImage),
		"supervise": resource.Bool(b.Supervise),
	}
	if b.UpstreamCA != "" {
		sum := sha256.Sum256([]byte(b.UpstreamCA))
		ca := "sha256:" + hex.EncodeToString(sum[:])
		if b.UpstreamCAFile != "" {
			ca = b.UpstreamCAFile + " (" + ca + ")"
		}
		sidecar["upstream_ca"] = resource.String(ca)
	}
	add(addr(resource.KindSidecar, ""), sidecar)
	for _, r := range b.Egress {
		attrs := resource.Attrs{"tls": resource.String(r.TLS)}
		if len(r.Paths) > 0 {
			attrs["paths"] = resource.Strings(r.Paths)
		}
		if len(r.Methods) > 0 {
			attrs["methods"] = resource.Strings(r.Methods)
		}
		if r.Auth != nil {
			// The slot is wiring, not meaning: it is left out so that
			// adding a route never shows as a change to another.
			attrs["auth"] = resource.MapOf(map[string]resource.Value{
				"scheme": resource.String(r.Auth.Scheme),
				"token":  resource.RefValue(r.Auth.Token),
			})
		}
		if r.Owner != "" {
			attrs["owner"] = resource.String(r.Owner)
		}
		if r.AllowPrivate {
			attrs["allow_private_ip"] = resource.Bool(true)
		}
		add(addr(resource.KindEgress, r.Host), attrs)
	}
	for _, g := range b.Git {
		attrs := resource.Attrs{
			"upstream": resource.String(g.Upstream),
			"host_key": resource.String(g.HostKey),
			"key":      resource.String(g.Key.Kind),
			"push":     resource.Strings(g.Push),
		}
		if g.Key.Kind == resource.KeyFile {
			attrs["key_file"] = resource.String(g.Key.Path)
		}
		add(addr(resource.KindGit, g.Name), attrs)
		if g.Key.Kind == resource.KeyGitea {
			add(addr(resource.KindDeployKey, g.Name), resource.Attrs{
				"api_url":    resource.String(g.Key.APIURL),
				"repository": resource.String(ownerRepo(g.Path)),
				"token":      resource.RefValue(g.Key.Token),
				"read_only":  resource.Bool(false),
			})
		}
	}
	authAttrs := resource.Attrs{"provider": resource.String(b.Agent.Provider)}
	if tok := agent.Token(b.Agent); !tok.IsZero() {
		authAttrs["token"] = resource.RefValue(tok)
	}
	if env := agent.Env(b.Agent); len(env) > 0 {
		m := map[string]resource.Value{}
		for k, v := range env {
			m[k] = resource.String(v)
		}
		authAttrs["env"] = resource.MapOf(m)
	}
	if b.GitUser != nil {
		authAttrs["git_user"] = resource.String(b.GitUser.Name + " <" + b.GitUser.Email + ">")
	}
	if len(b.Git) > 0 {
		// The agent's git rewrites each upstream to the gate: adding or
		// removing a git entry rewrites its git configuration in place.
		m := map[string]resource.Value{}
		for _, g := range b.Git {
			m[g.Name] = resource.String(agent.GateURL(g.Name) + " instead of " + g.Upstream)
		}
		authAttrs["git"] = resource.MapOf(m)
	}
	add(addr(resource.KindAuth, ""), authAttrs)
	agentAttrs := resource.Attrs{
		"backend":  resource.String(b.Backend),
		"image":    resource.String(b.Image),
		"provider": resource.String(b.Agent.Provider),
	}
	if len(b.Env) > 0 {
		m := map[string]resource.Value{}
		for _, e := range b.Env {
			if e.Ref.IsZero() {
				m[e.Name] = resource.String(e.Literal)
			} else {
				m[e.Name] = resource.RefValue(e.Ref)
			}
		}
		agentAttrs["env"] = resource.MapOf(m)
	}
	if b.Resources.CPUs > 0 {
		agentAttrs["cpus"] = resource.Expr(strconv.FormatFloat(b.Resources.CPUs, 'f', -1, 64))
	}
	if b.Resources.Memory > 0 {
		agentAttrs["memory"] = resource.String(b.Resources.MemoryText)
	}
	add(addr(resource.KindAgent, ""), agentAttrs)
	if b.Prompt != "" {
		attrs := resource.Attrs{"content": resource.String(b.Prompt)}
		if b.PromptFile != "" {
			attrs["file"] = resource.String(b.PromptFile)
		}
		add(addr(resource.KindPrompt, ""), attrs)
	}
	for _, s := range b.Skills {
		add(addr(resource.KindSkill, s.Name), resource.Attrs{
			"dir":    resource.String(s.Dir),
			"digest": resource.String(s.Digest),
		})
	}
	if b.Supervise {
		add(addr(resource.KindMCP, "supervise"), resource.Attrs{"url": resource.String(superviseURL(b.Backend))})
	}
	for _, m := range b.MCP {
		add(addr(resource.KindMCP, m.Name), resource.Attrs{"url": resource.String(m.URL)})
	}
	sortObjects(objs)
	return objs
}

func superviseURL(backend string) string {
	if backend == resource.BackendSmolmachines {
		// The sidecar's port on the host loopback is allocated at apply.
		return "(known after apply)"
	}
	return SuperviseURL
}

func ownerRepo(p string) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) != 2 {
		return ""
	}
	return parts[0] + "/" + strings.TrimSuffix(parts[1], ".git")
}

func sortObjects(objs []resource.Object) {
	for i := 1; i < len(objs); i++ {
		for j := i; j > 0 && objs[j].Addr.Less(objs[j-1].Addr); j-- {
			objs[j], objs[j-1] = objs[j-1], objs[j]
		}
	}
}
