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
	// TokenScheme is the Authorization scheme the CLI sends its credential
	// with (the placeholder in TokenEnv, or the access token of its
	// credentials file); the provider's routes inject the real credential
	// with the same scheme, so the request upstream looks like one the CLI
	// made with the real credential.
	TokenScheme string
	// Flags are env vars always set in the agent (presence is what counts).
	Flags map[string]string
	// RootEnv are env vars set as well when the agent user is root.
	RootEnv map[string]string
	// HiddenEnv are env names never listed in summaries.
	HiddenEnv []string
	// CACertEnv are provider-specific variables pointing at the bottle CA.
	CACertEnv []string
	// SkillsDir is where skills go, relative to the agent user's home.
	SkillsDir string
	// Command is the provider's CLI; Args are the flags RunAgent passes
	// before the caller's arguments (the bottle is the sandbox, so the
	// CLI's own approval prompts are bypassed).
	Command string
	Args    []string
	// PromptFlag, when set, is the flag that takes the path of the
	// provisioned prompt; RunAgent passes it when the prompt is not empty.
	PromptFlag string
	// MCPAdd and MCPRemove are the CLI's commands that register and remove
	// an HTTP MCP server for the agent user, with {name} and {url} in
	// place of the server's name and URL.
	MCPAdd, MCPRemove []string
	// Files are the files in the agent user's home that the provider's
	// auth writes (see File).
	Files []File
	// ReadHostCredential reads the credential forward_host_credentials
	// forwards from the host; nil when the provider forwards none.
	ReadHostCredential func(Host) (resource.Secret, error)
}

var providers = map[string]*Provider{
	resource.ProviderClaude: {
		Name:        resource.ProviderClaude,
		APIHosts:    []string{"api.anthropic.com"},
		TokenEnv:    "CLAUDE_CODE_OAUTH_TOKEN",
		TokenScheme: "Bearer",
		Flags:       map[string]string{"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
		// claude refuses --dangerously-skip-permissions as root unless it is
		// told it runs in a sandbox.
		RootEnv:    map[string]string{"IS_SANDBOX": "1"},
		HiddenEnv:  []string{"CLAUDE_CODE_OAUTH_TOKEN"},
		SkillsDir:  ".claude/skills",
		Command:    "claude",
		Args:       []string{"--dangerously-skip-permissions"},
		PromptFlag: "--append-system-prompt-file",
		MCPAdd:     []string{"claude", "mcp", "add", "--scope", "user", "--transport", "http", "{name}", "{url}"},
		MCPRemove:  []string{"claude", "mcp", "remove", "--scope", "user", "{name}"},
		Files:      []File{{Path: ".claude.json", Mode: 0o600, Build: claudeJSON}},
	},
	resource.ProviderCodex: {
		Name:        resource.ProviderCodex,
		APIHosts:    []string{"api.openai.com", "chatgpt.com"},
		TokenScheme: "Bearer",
		CACertEnv:   []string{"CODEX_CA_CERTIFICATE"},
		SkillsDir:   ".codex/skills",
		Command:     "codex",
		Args:        []string{"--dangerously-bypass-approvals-and-sandbox"},
		MCPAdd:      []string{"codex", "mcp", "add", "{name}", "--url", "{url}"},
		MCPRemove:   []string{"codex", "mcp", "remove", "{name}"},
		Files:       []File{{Path: ".codex/auth.json", Mode: 0o600, Build: codexAgentAuth}},
		ReadHostCredential: func(h Host) (resource.Secret, error) {
			a, err := ReadCodexAuth(h)
			if err != nil {
				return resource.Secret{}, err
			}
			return a.AccessToken, nil
		},
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
			r.Auth = &resource.RouteAuth{Scheme: p.TokenScheme, Token: tok}
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

// AgentEnv is Env as the agent gets it: with RootEnv when the agent user
// is root. The planner records Env; the backend, which knows the agent
// user, writes AgentEnv.
func AgentEnv(spec resource.AgentSpec, root bool) map[string]string {
	env := Env(spec)
	if p, err := Lookup(spec.Provider); err == nil && root {
		for k, v := range p.RootEnv {
			env[k] = v
		}
	}
	return env
}

// MCPAddArgv is the command that registers the HTTP MCP server name at
// url with the provider's CLI; nil when the provider has none.
func (p *Provider) MCPAddArgv(name, url string) []string {
	return fill(p.MCPAdd, name, url)
}

// MCPRemoveArgv is the command that removes the MCP server name.
func (p *Provider) MCPRemoveArgv(name string) []string {
	return fill(p.MCPRemove, name, "")
}

func fill(tmpl []string, name, url string) []string {
	if len(tmpl) == 0 {
		return nil
	}
	out := make([]string, len(tmpl))
	for i, a := range tmpl {
		switch a {
		case "{name}":
			a = name
		case "{url}":
			a = url
		}
		out[i] = a
	}
	return out
}

// ReadHostCredential reads provider's host credential for
// forward_host_credentials. Errors name the file read and what to do,
// never a credential value.
func ReadHostCredential(provider string, h Host) (resource.Secret, error) {
	p, err := Lookup(provider)
	if err != nil {
		return resource.Secret{}, err
	}
	if p.ReadHostCredential == nil {
		return resource.Secret{}, fmt.Errorf("the %s provider forwards no host credentials", provider)
	}
	return p.ReadHostCredential(h)
}
