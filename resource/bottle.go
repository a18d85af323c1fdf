package resource

// Backends a bottle can run on.
const (
	BackendDocker       = "docker"
	BackendSmolmachines = "smolmachines"
)

// Agent providers.
const (
	ProviderClaude = "claude"
	ProviderCodex  = "codex"
)

// TLS modes of an egress route.
const (
	TLSIntercept   = "intercept"
	TLSPassthrough = "passthrough"
)

// Key kinds of a git entry.
const (
	KeyFile  = "file"
	KeyGitea = "gitea"
)

// Bottle is one bottle as the configuration declares it, with `extends`
// already merged. It holds references to secrets, never values, so it can
// be stored in a saved plan. Slices are sorted by their key.
type Bottle struct {
	Name      string     `json:"name"`
	Backend   string     `json:"backend"`
	Image     string     `json:"image"`
	Agent     AgentSpec  `json:"agent"`
	Env       []EnvVar   `json:"env,omitempty"`
	Egress    []Route    `json:"egress,omitempty"`
	Git       []GitEntry `json:"git,omitempty"`
	GitUser   *GitUser   `json:"git_user,omitempty"`
	Supervise bool       `json:"supervise,omitempty"`
	MCP       []MCP      `json:"mcp,omitempty"`
	// Prompt is the system prompt's text; PromptFile the path it was read
	// from, relative to the configuration directory, for display.
	Prompt     string    `json:"prompt,omitempty"`
	PromptFile string    `json:"prompt_file,omitempty"`
	Skills     []Skill   `json:"skills,omitempty"`
	Resources  Resources `json:"resources"`
	// UpstreamCA holds PEM certificates the gateway trusts, besides the
	// system roots, when it connects upstream (a company proxy or an
	// internal forge with a private CA); UpstreamCAFile is where they were
	// read from. Certificates are public: nothing here is secret.
	UpstreamCA     string `json:"upstream_ca,omitempty"`
	UpstreamCAFile string `json:"upstream_ca_file,omitempty"`
}

// AgentSpec is the `agent "PROVIDER"` block.
type AgentSpec struct {
	Provider string `json:"provider"`
	// AuthToken is the claude OAuth token the gateway injects; zero if unset.
	AuthToken Ref `json:"auth_token,omitempty"`
	// ForwardHostCredentials: codex reads the host's ~/.codex/auth.json at apply.
	ForwardHostCredentials bool `json:"forward_host_credentials,omitempty"`
}

// EnvVar is one entry of a bottle's env: a literal, or a reference whose
// value is granted to the agent itself.
type EnvVar struct {
	Name    string `json:"name"`
	Literal string `json:"literal,omitempty"`
	Ref     Ref    `json:"ref,omitempty"`
}

// Route is one egress route.
type Route struct {
	Host  string   `json:"host"`
	TLS   string   `json:"tls"`
	Paths []string `json:"paths,omitempty"`
	// Methods are the HTTP methods forwarded on the route, upper case and
	// sorted; empty forwards every method, except on a host that is a git
	// upstream of the bottle (a forge host), where it forwards only GET,
	// HEAD and OPTIONS: writes to a forge go through the git gate unless
	// the route lists them.
	Methods []string   `json:"methods,omitempty"`
	Auth    *RouteAuth `json:"auth,omitempty"`
	// Owner is empty for a declared route and the provider's name for a
	// route the agent provider owns.
	Owner string `json:"owner,omitempty"`
	// AllowPrivate lets the host resolve to a private address (an internal
	// forge, a company proxy); loopback, link-local and cloud metadata
	// addresses stay refused.
	AllowPrivate bool `json:"allow_private_ip,omitempty"`
	// Slot names the token slot the gateway reads the credential from
	// (EGRESS_TOKEN_<n>); empty for an unauthenticated route. Slots are
	// numbered over the merged, sorted routes, so an unchanged
	// configuration always gets the same slots.
	Slot string `json:"slot,omitempty"`
}

// RouteAuth is a route's credential: injected as "Authorization: Scheme value".
type RouteAuth struct {
	Scheme string `json:"scheme"`
	Token  Ref    `json:"token"`
}

// GitEntry is one `git "NAME"` block.
type GitEntry struct {
	Name     string `json:"name"`
	Upstream string `json:"upstream"`
	// The upstream URL, parsed once.
	User    string   `json:"user"`
	Host    string   `json:"host"`
	Port    int      `json:"port"`
	Path    string   `json:"path"`
	HostKey string   `json:"host_key"`
	Key     GitKey   `json:"key"`
	Push    []string `json:"push,omitempty"`
}

// GitKey is the `key "file"` or `key "gitea"` block of a git entry.
type GitKey struct {
	Kind string `json:"kind"`
	// Path is the private key file on the host (file keys).
	Path string `json:"path,omitempty"`
	// APIURL and Token address the Gitea API (gitea keys).
	APIURL string `json:"api_url,omitempty"`
	Token  Ref    `json:"token,omitempty"`
}

// GitUser is the commit identity provisioned into the agent.
type GitUser struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// MCP is an external MCP server registered in the agent.
type MCP struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Skill is a directory copied into the agent's skills folder.
type Skill struct {
	Name string `json:"name"`
	// Dir is the directory as written in the configuration.
	Dir string `json:"dir"`
	// Digest is a digest of the directory's file names and contents.
	Digest string `json:"digest"`
}

// Resources are the agent's CPU and memory limits; zero means no limit.
type Resources struct {
	CPUs float64 `json:"cpus,omitempty"`
	// Memory in bytes; MemoryText as written ("4GiB").
	Memory     int64  `json:"memory,omitempty"`
	MemoryText string `json:"memory_text,omitempty"`
}

// Object is one addressable object of a bottle with the attributes the plan
// diffs and the state records.
type Object struct {
	Addr  Address `json:"address"`
	Attrs Attrs   `json:"attributes"`
}

// Refs returns every reference to a sensitive value the bottle makes: its
// agent's credential, its env, its routes' credentials and its forge
// tokens, without repeats, in that order.
func (b *Bottle) Refs() []Ref {
	var out []Ref
	seen := map[Ref]bool{}
	add := func(r Ref) {
		if !r.IsZero() && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	add(b.Agent.AuthToken)
	if b.Agent.ForwardHostCredentials {
		add(Ref{HostCredential: b.Agent.Provider})
	}
	for _, e := range b.Env {
		add(e.Ref)
	}
	for _, r := range b.Egress {
		if r.Auth != nil {
			add(r.Auth.Token)
		}
	}
	for _, g := range b.Git {
		add(g.Key.Token)
		if g.Key.Kind == KeyFile {
			add(Ref{KeyFile: g.Key.Path})
		}
	}
	return out
}
