package agent

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/bottleform/bottleform/resource"
)

// Placeholder is the non-secret value the agent holds where a provider
// expects its token; the gateway strips it and injects the real one.
const Placeholder = "bottleform-placeholder"

// Provider is one agent provider.
type Provider struct {
	Name string
	// APIHosts are the hosts the provider's CLI talks to; the provider owns
	// their routes.
	APIHosts []string
	// TokenEnv is the env var the CLI reads its token from; it holds
	// Placeholder when the bottle grants a token.
	TokenEnv string
	// Flags are env vars always set in the agent (presence is what counts).
	Flags map[string]string
	// HiddenEnv are env names never listed in summaries.
	HiddenEnv []string
	// CACertEnv are provider-specific variables pointing at the bottle CA.
	CACertEnv []string
	// SkillsDir is where skills go, relative to the agent user's home.
	SkillsDir string
}

var providers = map[string]*Provider{
	resource.ProviderClaude: {
		Name:      resource.ProviderClaude,
		APIHosts:  []string{"api.anthropic.com"},
		TokenEnv:  "CLAUDE_CODE_OAUTH_TOKEN",
		Flags:     map[string]string{"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
		HiddenEnv: []string{"CLAUDE_CODE_OAUTH_TOKEN"},
		SkillsDir: ".claude/skills",
	},
	resource.ProviderCodex: {
		Name:      resource.ProviderCodex,
		APIHosts:  []string{"api.openai.com", "chatgpt.com"},
		CACertEnv: []string{"CODEX_CA_CERTIFICATE"},
		SkillsDir: ".codex/skills",
	},
}

// Names returns the known provider names, sorted.
func Names() []string {
	names := make([]string, 0, len(providers))
	for n := range providers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the provider called name.
func Lookup(name string) (*Provider, error) {
	if p, ok := providers[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("unknown agent provider %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Token returns the reference to the credential the gateway injects for
// the provider's API, or the zero Ref when the bottle grants none.
func Token(spec resource.AgentSpec) resource.Ref {
	if !spec.AuthToken.IsZero() {
		return spec.AuthToken
	}
	if spec.ForwardHostCredentials {
		return resource.Ref{HostCredential: spec.Provider}
	}
	return resource.Ref{}
}

// Routes returns the routes the provider owns for this agent. With a token,
// its API hosts are intercepted so the gateway can swap the placeholder
// for the real credential; without one, they pass through untouched, so a
// token the user sets later inside the agent still works.
func Routes(spec resource.AgentSpec) []resource.Route {
	p, err := Lookup(spec.Provider)
	if err != nil {
		return nil
	}
	tok := Token(spec)
	routes := make([]resource.Route, 0, len(p.APIHosts))
	for _, h := range p.APIHosts {
		r := resource.Route{Host: h, TLS: resource.TLSPassthrough, Owner: p.Name}
		if !tok.IsZero() {
			r.TLS = resource.TLSIntercept
			r.Auth = &resource.RouteAuth{Scheme: "Bearer", Token: tok}
		}
		routes = append(routes, r)
	}
	return routes
}

// Merge merges the provider's routes with the declared ones. The provider
// wins its hosts: a declared route for a provider host is dropped and
// returned in dropped, so the plan can warn about it. The result is sorted
// by host, and every authenticated route gets a token slot EGRESS_TOKEN_<n>
// numbered in that order, so an unchanged configuration keeps its slots.
func Merge(declared []resource.Route, spec resource.AgentSpec) (merged, dropped []resource.Route) {
	owned := Routes(spec)
	claimed := map[string]bool{}
	for _, r := range owned {
		claimed[r.Host] = true
	}
	merged = append(merged, owned...)
	for _, r := range declared {
		if claimed[r.Host] {
			dropped = append(dropped, r)
			continue
		}
		merged = append(merged, r)
	}
	sort.Slice(merged, func(i, j int) bool { return merged[i].Host < merged[j].Host })
	n := 0
	for i := range merged {
		merged[i].Slot = ""
		if merged[i].Auth != nil {
			merged[i].Slot = "EGRESS_TOKEN_" + strconv.Itoa(n)
			n++
		}
	}
	return merged, dropped
}

// Env returns the env the provider sets in the agent: its flags, and the
// placeholder for its token when the bottle grants one. Values are never
// secret.
func Env(spec resource.AgentSpec) map[string]string {
	p, err := Lookup(spec.Provider)
	if err != nil {
		return nil
	}
	env := map[string]string{}
	for k, v := range p.Flags {
		env[k] = v
	}
	if p.TokenEnv != "" && !Token(spec).IsZero() {
		env[p.TokenEnv] = Placeholder
	}
	return env
}
