package agent

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/resource"
)

var (
	claudeToken = resource.Ref{Secret: "claude"}
	codexCreds  = resource.Ref{HostCredential: "codex"}
)

func bearer(r resource.Ref) *resource.RouteAuth {
	return &resource.RouteAuth{Scheme: "Bearer", Token: r}
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		name string
		spec resource.AgentSpec
		want []resource.Route
	}{
		{
			name: "claude with auth_token",
			spec: resource.AgentSpec{Provider: "claude", AuthToken: claudeToken},
			want: []resource.Route{
				{Host: "api.anthropic.com", TLS: resource.TLSIntercept, Auth: bearer(claudeToken), Owner: "claude"},
			},
		},
		{
			name: "claude without token",
			spec: resource.AgentSpec{Provider: "claude"},
			want: []resource.Route{
				{Host: "api.anthropic.com", TLS: resource.TLSPassthrough, Owner: "claude"},
			},
		},
		{
			name: "codex forwarding host credentials",
			spec: resource.AgentSpec{Provider: "codex", ForwardHostCredentials: true},
			want: []resource.Route{
				{Host: "api.openai.com", TLS: resource.TLSIntercept, Auth: bearer(codexCreds), Owner: "codex"},
				{Host: "chatgpt.com", TLS: resource.TLSIntercept, Auth: bearer(codexCreds), Owner: "codex"},
			},
		},
		{
			name: "codex without credentials",
			spec: resource.AgentSpec{Provider: "codex"},
			want: []resource.Route{
				{Host: "api.openai.com", TLS: resource.TLSPassthrough, Owner: "codex"},
				{Host: "chatgpt.com", TLS: resource.TLSPassthrough, Owner: "codex"},
			},
		},
		{
			name: "unknown provider owns nothing",
			spec: resource.AgentSpec{Provider: "nope", AuthToken: claudeToken},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Routes(tt.spec)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Routes(%+v)\n got %s\nwant %s", tt.spec, routesString(got), routesString(tt.want))
			}
			for _, r := range got {
				if r.Slot != "" {
					t.Errorf("route %s has slot %q before Merge", r.Host, r.Slot)
				}
			}
		})
	}
}

func TestMerge(t *testing.T) {
	github := resource.Ref{Secret: "github"}
	npm := resource.Ref{HostEnv: "NPM_TOKEN"}
	tests := []struct {
		name        string
		declared    []resource.Route
		spec        resource.AgentSpec
		want        []resource.Route
		wantDropped []resource.Route
	}{
		{
			name: "provider wins its host, slots follow host order",
			declared: []resource.Route{
				{Host: "registry.npmjs.org", TLS: resource.TLSIntercept, Auth: &resource.RouteAuth{Scheme: "token", Token: npm}},
				{Host: "api.anthropic.com", TLS: resource.TLSPassthrough},
				{Host: "pypi.org", TLS: resource.TLSIntercept},
				{Host: "api.github.com", TLS: resource.TLSIntercept, Auth: bearer(github), Paths: []string{"/repos/acme/"}},
			},
			spec: resource.AgentSpec{Provider: "claude", AuthToken: claudeToken},
			want: []resource.Route{
				{Host: "api.anthropic.com", TLS: resource.TLSIntercept, Auth: bearer(claudeToken), Owner: "claude", Slot: "EGRESS_TOKEN_0"},
				{Host: "api.github.com", TLS: resource.TLSIntercept, Auth: bearer(github), Paths: []string{"/repos/acme/"}, Slot: "EGRESS_TOKEN_1"},
				{Host: "pypi.org", TLS: resource.TLSIntercept},
				{Host: "registry.npmjs.org", TLS: resource.TLSIntercept, Auth: &resource.RouteAuth{Scheme: "token", Token: npm}, Slot: "EGRESS_TOKEN_2"},
			},
			wantDropped: []resource.Route{
				{Host: "api.anthropic.com", TLS: resource.TLSPassthrough},
			},
		},
		{
			name: "unauthenticated provider routes get no slot",
			declared: []resource.Route{
				{Host: "b.example", TLS: resource.TLSIntercept, Auth: bearer(github)},
				{Host: "a.example", TLS: resource.TLSIntercept, Auth: bearer(github)},
			},
			spec: resource.AgentSpec{Provider: "claude"},
			want: []resource.Route{
				{Host: "a.example", TLS: resource.TLSIntercept, Auth: bearer(github), Slot: "EGRESS_TOKEN_0"},
				{Host: "api.anthropic.com", TLS: resource.TLSPassthrough, Owner: "claude"},
				{Host: "b.example", TLS: resource.TLSIntercept, Auth: bearer(github), Slot: "EGRESS_TOKEN_1"},
			},
		},
		{
			name: "codex drops both of its hosts",
			declared: []resource.Route{
				{Host: "chatgpt.com", TLS: resource.TLSIntercept},
				{Host: "proxy.golang.org", TLS: resource.TLSIntercept},
				{Host: "api.openai.com", TLS: resource.TLSIntercept, Auth: bearer(github)},
			},
			spec: resource.AgentSpec{Provider: "codex", ForwardHostCredentials: true},
			want: []resource.Route{
				{Host: "api.openai.com", TLS: resource.TLSIntercept, Auth: bearer(codexCreds), Owner: "codex", Slot: "EGRESS_TOKEN_0"},
				{Host: "chatgpt.com", TLS: resource.TLSIntercept, Auth: bearer(codexCreds), Owner: "codex", Slot: "EGRESS_TOKEN_1"},
				{Host: "proxy.golang.org", TLS: resource.TLSIntercept},
			},
			wantDropped: []resource.Route{
				{Host: "chatgpt.com", TLS: resource.TLSIntercept},
				{Host: "api.openai.com", TLS: resource.TLSIntercept, Auth: bearer(github)},
			},
		},
		{
			name: "a stale slot on a declared route is renumbered",
			declared: []resource.Route{
				{Host: "z.example", TLS: resource.TLSIntercept, Auth: bearer(github), Slot: "EGRESS_TOKEN_7"},
				{Host: "y.example", TLS: resource.TLSIntercept, Slot: "EGRESS_TOKEN_3"},
			},
			spec: resource.AgentSpec{Provider: "codex"},
			want: []resource.Route{
				{Host: "api.openai.com", TLS: resource.TLSPassthrough, Owner: "codex"},
				{Host: "chatgpt.com", TLS: resource.TLSPassthrough, Owner: "codex"},
				{Host: "y.example", TLS: resource.TLSIntercept},
				{Host: "z.example", TLS: resource.TLSIntercept, Auth: bearer(github), Slot: "EGRESS_TOKEN_0"},
			},
		},
		{
			name: "no declared routes",
			spec: resource.AgentSpec{Provider: "claude", AuthToken: claudeToken},
			want: []resource.Route{
				{Host: "api.anthropic.com", TLS: resource.TLSIntercept, Auth: bearer(claudeToken), Owner: "claude", Slot: "EGRESS_TOKEN_0"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneRoutes(tt.declared)
			merged, dropped := Merge(tt.declared, tt.spec)
			if !reflect.DeepEqual(merged, tt.want) {
				t.Errorf("merged\n got %s\nwant %s", routesString(merged), routesString(tt.want))
			}
			if !reflect.DeepEqual(dropped, tt.wantDropped) {
				t.Errorf("dropped\n got %s\nwant %s", routesString(dropped), routesString(tt.wantDropped))
			}
			if !reflect.DeepEqual(tt.declared, before) {
				t.Errorf("Merge modified its input: %s, was %s", routesString(tt.declared), routesString(before))
			}
			// The same configuration, declared in any order, gets the
			// same slots on every run.
			reversed := cloneRoutes(tt.declared)
			slices.Reverse(reversed)
			for i, in := range [][]resource.Route{tt.declared, reversed, tt.declared, reversed} {
				again, _ := Merge(in, tt.spec)
				if !reflect.DeepEqual(again, merged) {
					t.Fatalf("run %d gave\n%s\nfirst run gave\n%s", i, routesString(again), routesString(merged))
				}
			}
		})
	}
}

func TestEnv(t *testing.T) {
	flag := "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"
	tests := []struct {
		name string
		spec resource.AgentSpec
		want map[string]string
	}{
		{
			name: "claude with token gets the placeholder",
			spec: resource.AgentSpec{Provider: "claude", AuthToken: claudeToken},
			want: map[string]string{flag: "1", "CLAUDE_CODE_OAUTH_TOKEN": Placeholder},
		},
		{
			name: "claude without token gets only the flag",
			spec: resource.AgentSpec{Provider: "claude"},
			want: map[string]string{flag: "1"},
		},
		{
			name: "codex has no token env",
			spec: resource.AgentSpec{Provider: "codex", ForwardHostCredentials: true},
			want: map[string]string{},
		},
		{
			name: "codex without credentials",
			spec: resource.AgentSpec{Provider: "codex"},
			want: map[string]string{},
		},
		{
			name: "unknown provider",
			spec: resource.AgentSpec{Provider: "nope"},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Env(tt.spec)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Env = %v, want %v", got, tt.want)
			}
		})
	}
	// The provider's own table must not be changed by a caller editing
	// the returned map.
	env := Env(resource.AgentSpec{Provider: "claude"})
	env[flag] = "0"
	if got := Env(resource.AgentSpec{Provider: "claude"})[flag]; got != "1" {
		t.Errorf("editing Env's result changed the provider: %s=%q", flag, got)
	}
}

func TestToken(t *testing.T) {
	tests := []struct {
		name string
		spec resource.AgentSpec
		want resource.Ref
	}{
		{"claude auth_token", resource.AgentSpec{Provider: "claude", AuthToken: claudeToken}, claudeToken},
		{"claude host_env token", resource.AgentSpec{Provider: "claude", AuthToken: resource.Ref{HostEnv: "TOK"}}, resource.Ref{HostEnv: "TOK"}},
		{"claude without", resource.AgentSpec{Provider: "claude"}, resource.Ref{}},
		{"codex forwarding", resource.AgentSpec{Provider: "codex", ForwardHostCredentials: true}, codexCreds},
		{"codex without", resource.AgentSpec{Provider: "codex"}, resource.Ref{}},
		{"auth_token wins over forwarding", resource.AgentSpec{Provider: "codex", AuthToken: claudeToken, ForwardHostCredentials: true}, claudeToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Token(tt.spec); got != tt.want {
				t.Errorf("Token = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name     string
		provider string
		wantErr  []string // substrings of the error; nil for success
	}{
		{"claude", "claude", nil},
		{"codex", "codex", nil},
		{"unknown", "nope", []string{`"nope"`, "known: claude, codex"}},
		{"empty", "", []string{`""`, "claude, codex"}},
		{"case matters", "Claude", []string{`"Claude"`, "claude, codex"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Lookup(tt.provider)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if p.Name != tt.provider || len(p.APIHosts) == 0 || p.SkillsDir == "" {
					t.Errorf("Lookup(%q) = %+v", tt.provider, p)
				}
				return
			}
			if err == nil {
				t.Fatalf("Lookup(%q) = %+v, want an error", tt.provider, p)
			}
			if p != nil {
				t.Errorf("Lookup(%q) returned a provider with its error", tt.provider)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
	if got, want := Names(), []string{"claude", "codex"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

func cloneRoutes(rs []resource.Route) []resource.Route {
	if rs == nil {
		return nil
	}
	out := make([]resource.Route, len(rs))
	for i, r := range rs {
		out[i] = r
		out[i].Paths = slices.Clone(r.Paths)
		if r.Auth != nil {
			a := *r.Auth
			out[i].Auth = &a
		}
	}
	return out
}

func routesString(rs []resource.Route) string {
	var b strings.Builder
	b.WriteString("[")
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.Host + " " + r.TLS)
		if r.Auth != nil {
			b.WriteString(" " + r.Auth.Scheme + " " + r.Auth.Token.String())
		}
		if len(r.Paths) > 0 {
			b.WriteString(" paths=" + strings.Join(r.Paths, ","))
		}
		if r.Owner != "" {
			b.WriteString(" owner=" + r.Owner)
		}
		if r.Slot != "" {
			b.WriteString(" slot=" + r.Slot)
		}
	}
	b.WriteString("]")
	return b.String()
}
