package config

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/bottleform/bottleform/resource"
)

// bottleDecl is one bottle block as written, before `extends` is merged.
// A nil pointer or map means "not set here", so the parent's value stays.
type bottleDecl struct {
	name       string
	labelRange hcl.Range
	defRange   hcl.Range

	extends      string
	extendsRange hcl.Range
	abstract     bool

	backend, image *string
	imageRange     hcl.Range
	agent          *resource.AgentSpec
	env            map[string]resource.EnvVar
	egress         map[string]resource.Route
	// egressTLS is where each route's TLS mode is set (its tls attribute,
	// else its block), for rules that need the whole merged bottle.
	egressTLS      map[string]hcl.Range
	git            map[string]resource.GitEntry
	gitUser        *resource.GitUser
	supervise      *bool
	mcp            map[string]resource.MCP
	prompt         *string
	promptFile     string
	upstreamCA     *string
	upstreamCAFile string
	skills         []resource.Skill
	skillsSet      bool
	cpus           *float64
	memory         *int64
	memoryText     string
	// broken is set when the block had errors, so no follow-on error
	// (such as a missing image) is reported for it.
	broken bool
}

func (d *decoder) bottle(b *hcl.Block) *bottleDecl {
	bd := &bottleDecl{name: b.Labels[0], labelRange: b.LabelRanges[0], defRange: b.DefRange}
	if !validBottleName(bd.name) {
		d.errorf(b.LabelRanges[0], "Invalid bottle name", "The bottle name %q is not valid: use lower-case letters, digits and '-', starting with a letter (^[a-z][a-z0-9-]*$), as in %q.", bd.name, suggestBottleName(bd.name))
		return nil
	}
	errsBefore := len(d.diags.Errs())
	defer func() { bd.broken = len(d.diags.Errs()) > errsBefore }()
	content, diags := b.Body.Content(bottleSchema)
	d.add(diags)
	if content == nil {
		return nil
	}
	attrs := content.Attributes
	if a, ok := attrs["extends"]; ok {
		if s, ok := d.str(a); ok {
			bd.extends, bd.extendsRange = s, a.Expr.Range()
		}
	}
	if a, ok := attrs["abstract"]; ok {
		d.value(a, cty.Bool, &bd.abstract)
	}
	if a, ok := attrs["backend"]; ok {
		if s, ok := d.str(a); ok {
			if s != resource.BackendDocker && s != resource.BackendSmolmachines {
				d.errorf(a.Expr.Range(), "Unknown backend", "The backend %q is not known: use \"docker\" (the default) or \"smolmachines\".", s)
			} else {
				bd.backend = &s
			}
		}
	}
	if a, ok := attrs["image"]; ok {
		if s, ok := d.str(a); ok {
			if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t\n") {
				d.errorf(a.Expr.Range(), "Invalid image", "The image must be an image reference such as \"debian:bookworm\" or \"ghcr.io/acme/agent:2.1\", without spaces.")
			} else {
				bd.image, bd.imageRange = &s, a.Expr.Range()
			}
		}
	}
	if a, ok := attrs["supervise"]; ok {
		var v bool
		if d.value(a, cty.Bool, &v) {
			bd.supervise = &v
		}
	}
	if a, ok := attrs["env"]; ok {
		bd.env = d.env(a)
	}
	if a, ok := attrs["prompt"]; ok {
		d.prompt(bd, a)
	}
	if a, ok := attrs["upstream_ca"]; ok {
		d.upstreamCA(bd, a)
	}
	if a, ok := attrs["skills"]; ok {
		bd.skills, bd.skillsSet = d.skills(a), true
	}
	seen := map[string]hcl.Range{}
	once := func(blk *hcl.Block) bool {
		key := blk.Type + "\x00" + strings.Join(blk.Labels, "\x00")
		if prev, dup := seen[key]; dup {
			what := blk.Type
			if len(blk.Labels) > 0 {
				what = fmt.Sprintf("%s %q", blk.Type, blk.Labels[0])
			}
			d.errorf(blk.DefRange, "Duplicate "+blk.Type+" block", "This bottle already has a %s block at %s; there can be only one. Merge the two blocks.", what, prev)
			return false
		}
		seen[key] = blk.DefRange
		return true
	}
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "agent":
			if once(&hcl.Block{Type: "agent", DefRange: blk.DefRange}) {
				bd.agent = d.agent(blk)
			}
		case "egress":
			if once(blk) {
				if bd.egress == nil {
					bd.egress = map[string]resource.Route{}
				}
				if r, tlsAt, ok := d.egress(blk); ok {
					bd.egress[r.Host] = r
					if bd.egressTLS == nil {
						bd.egressTLS = map[string]hcl.Range{}
					}
					bd.egressTLS[r.Host] = tlsAt
				}
			}
		case "git":
			if once(blk) {
				if bd.git == nil {
					bd.git = map[string]resource.GitEntry{}
				}
				if g, ok := d.git(blk); ok {
					bd.git[g.Name] = g
				}
			}
		case "git_user":
			if once(blk) {
				bd.gitUser = d.gitUser(blk)
			}
		case "mcp":
			if once(blk) {
				if bd.mcp == nil {
					bd.mcp = map[string]resource.MCP{}
				}
				if m, ok := d.mcpBlock(blk); ok {
					bd.mcp[m.Name] = m
				}
			}
		case "resources":
			if once(blk) {
				d.resources(bd, blk)
			}
		}
	}
	return bd
}

// reservedEnv are variables bottleform sets in the agent itself.
var reservedEnv = []string{
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "NODE_USE_ENV_PROXY",
	"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "AWS_CA_BUNDLE",
	"PIP_CERT", "CARGO_HTTP_CAINFO", "NIX_SSL_CERT_FILE", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
	"NODE_EXTRA_CA_CERTS", "DENO_CERT", "NODE_USE_SYSTEM_CA", "CODEX_CA_CERTIFICATE",
	"CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "IS_SANDBOX",
}

func (d *decoder) env(a *hcl.Attribute) map[string]resource.EnvVar {
	pairs, diags := hcl.ExprMap(a.Expr)
	if !d.add(diags) {
		return nil
	}
	env := map[string]resource.EnvVar{}
	for _, kv := range pairs {
		// Keys are written as bare words (TZ = ...); hcl reads a bare word
		// key as a traversal, so take its name.
		var name string
		if trav, diags := hcl.AbsTraversalForExpr(kv.Key); !diags.HasErrors() && len(trav) == 1 {
			name = trav.RootName()
		} else {
			v, diags := kv.Key.Value(nil)
			if !d.add(diags) {
				continue
			}
			if v.Type() != cty.String {
				d.errorf(kv.Key.Range(), "Invalid environment variable name", "Environment variable names are strings.")
				continue
			}
			name = v.AsString()
		}
		if !validEnvName(name) {
			d.errorf(kv.Key.Range(), "Invalid environment variable name", "%q is not a valid environment variable name: use letters, digits and '_', not starting with a digit.", name)
			continue
		}
		for _, r := range reservedEnv {
			if strings.EqualFold(name, r) {
				d.errorf(kv.Key.Range(), "Reserved environment variable", "bottleform sets %s in the agent itself (proxy, CA and provider settings); remove it from env.", name)
				name = ""
				break
			}
		}
		if name == "" {
			continue
		}
		if _, dup := env[name]; dup {
			d.errorf(kv.Key.Range(), "Duplicate environment variable", "%s is set twice in env; keep one.", name)
			continue
		}
		ev := resource.EnvVar{Name: name}
		if isReference(kv.Value) {
			ref, ok := d.ref(kv.Value, "env "+name)
			if !ok {
				continue
			}
			ev.Ref = ref
		} else {
			v, diags := kv.Value.Value(nil)
			if !d.add(diags) {
				continue
			}
			s, err := convertString(v)
			if err != nil {
				d.errorf(kv.Value.Range(), "Invalid environment value", "The value of %s must be a string, secret.NAME or host_env(\"VAR\"): %s.", name, err)
				continue
			}
			ev.Literal = s
		}
		env[name] = ev
	}
	return env
}

// isReference reports whether expr is a traversal or a host_env call, the
// two forms a sensitive value can take.
func isReference(expr hcl.Expression) bool {
	switch e := expr.(type) {
	case *hclsyntax.ScopeTraversalExpr:
		return true
	case *hclsyntax.FunctionCallExpr:
		return e.Name == "host_env"
	}
	return false
}

func convertString(v cty.Value) (string, error) {
	if v.IsNull() {
		return "", fmt.Errorf("null")
	}
	switch v.Type() {
	case cty.String:
		return v.AsString(), nil
	case cty.Number:
		return v.AsBigFloat().Text('f', -1), nil
	case cty.Bool:
		return strconv.FormatBool(v.True()), nil
	}
	return "", fmt.Errorf("got %s", v.Type().FriendlyName())
}

func (d *decoder) prompt(bd *bottleDecl, a *hcl.Attribute) {
	text, file, ok := d.textOrFile(a, "prompt", "prompts/reviewer.md")
	if ok {
		bd.prompt, bd.promptFile = &text, file
	}
}

// upstreamCA reads the PEM certificates the gateway trusts upstream.
func (d *decoder) upstreamCA(bd *bottleDecl, a *hcl.Attribute) {
	text, file, ok := d.textOrFile(a, "upstream_ca", "certs/internal-ca.pem")
	if !ok {
		return
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(text)) {
		d.errorf(a.Expr.Range(), "Invalid upstream_ca", "upstream_ca must hold one or more PEM certificates (-----BEGIN CERTIFICATE-----), such as your company's root CA.")
		return
	}
	if strings.Contains(text, "PRIVATE KEY") {
		d.errorf(a.Expr.Range(), "Private key in upstream_ca", "upstream_ca holds a private key. The gateway needs only the CA certificate; remove the key from the file, and treat it as leaked if it was committed.")
		return
	}
	bd.upstreamCA, bd.upstreamCAFile = &text, file
}

// textOrFile evaluates an attribute that takes a string or file("PATH"),
// returning the text and, for file(), the path as written.
func (d *decoder) textOrFile(a *hcl.Attribute, name, example string) (text, file string, ok bool) {
	call, isCall := a.Expr.(*hclsyntax.FunctionCallExpr)
	if !isCall {
		s, ok := d.str(a)
		return s, "", ok
	}
	if call.Name != "file" || len(call.Args) != 1 {
		d.errorf(a.Expr.Range(), "Invalid "+name, "%s takes a string or file(\"PATH\") with the path of a file relative to the definition, as in file(%q).", name, example)
		return "", "", false
	}
	v, diags := call.Args[0].Value(nil)
	if !d.add(diags) {
		return "", "", false
	}
	if v.Type() != cty.String || v.IsNull() {
		d.errorf(call.Args[0].Range(), "Invalid argument", "file takes a path as a string, as in file(%q).", example)
		return "", "", false
	}
	p := v.AsString()
	full := filepath.Join(filepath.Dir(a.Expr.Range().Filename), p)
	if filepath.IsAbs(p) {
		full = p
	}
	b, err := readPrompt(full)
	if err != nil {
		d.errorf(call.Args[0].Range(), "Cannot read "+name+" file", "%s. The path is relative to the file that names it; fix the path or create the file.", err)
		return "", "", false
	}
	return string(b), p, true
}

func (d *decoder) skills(a *hcl.Attribute) []resource.Skill {
	var dirs []string
	if !d.value(a, cty.List(cty.String), &dirs) {
		return nil
	}
	var out []resource.Skill
	names := map[string]string{}
	for _, dir := range dirs {
		full := filepath.Join(filepath.Dir(a.Expr.Range().Filename), dir)
		if filepath.IsAbs(dir) {
			full = dir
		}
		name := filepath.Base(filepath.Clean(dir))
		if !validGitName(name) {
			d.errorf(a.Expr.Range(), "Invalid skill directory", "The skill directory %q must end in a name of letters, digits, '.', '_' and '-'.", dir)
			continue
		}
		if prev, dup := names[name]; dup {
			d.errorf(a.Expr.Range(), "Duplicate skill", "The skills %q and %q have the same name %q; each skill must have a distinct directory name.", prev, dir, name)
			continue
		}
		names[name] = dir
		st, err := os.Stat(full)
		if err != nil || !st.IsDir() {
			d.errorf(a.Expr.Range(), "Skill directory not found", "The skill %q is not a directory (%s). Paths are relative to the file that names them; create it or fix the path.", dir, full)
			continue
		}
		dg, err := dirDigest(full)
		if err != nil {
			d.errorf(a.Expr.Range(), "Cannot read skill directory", "Reading %s: %s.", full, err)
			continue
		}
		out = append(out, resource.Skill{Name: name, Dir: dir, Digest: dg})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// dirDigest hashes the names and contents of the regular files under dir.
func dirDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(r), len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func (d *decoder) agent(b *hcl.Block) *resource.AgentSpec {
	spec := &resource.AgentSpec{Provider: b.Labels[0]}
	if spec.Provider != resource.ProviderClaude && spec.Provider != resource.ProviderCodex {
		detail := fmt.Sprintf("The agent provider %q is not known: use \"claude\" or \"codex\".", spec.Provider)
		if s := suggest(spec.Provider, []string{"claude", "codex"}); s != "" {
			detail = fmt.Sprintf("The agent provider %q is not known. Did you mean %q?", spec.Provider, s)
		}
		d.errorf(b.LabelRanges[0], "Unknown agent provider", "%s", detail)
		return nil
	}
	content, diags := b.Body.Content(agentSchema)
	if !d.add(diags) {
		return nil
	}
	if a, ok := content.Attributes["auth_token"]; ok {
		if spec.Provider != resource.ProviderClaude {
			d.errorf(a.NameRange, "auth_token is claude only", "Only the claude provider takes auth_token. For codex, set forward_host_credentials = true to use the host's codex login.")
			return nil
		}
		ref, ok := d.ref(a.Expr, "auth_token")
		if !ok {
			return nil
		}
		spec.AuthToken = ref
	}
	if a, ok := content.Attributes["forward_host_credentials"]; ok {
		if spec.Provider != resource.ProviderCodex {
			d.errorf(a.NameRange, "forward_host_credentials is codex only", "Only the codex provider forwards host credentials. For claude, set auth_token = secret.NAME.")
			return nil
		}
		if !d.value(a, cty.Bool, &spec.ForwardHostCredentials) {
			return nil
		}
	}
	return spec
}

// egress decodes one egress block. tlsAt is where the block sets its TLS
// mode: its tls attribute, or the block itself when it takes the default.
func (d *decoder) egress(b *hcl.Block) (r resource.Route, tlsAt hcl.Range, ok bool) {
	host := b.Labels[0]
	r = resource.Route{Host: host, TLS: resource.TLSIntercept}
	tlsAt = b.DefRange
	if msg := checkHost(host); msg != "" {
		d.errorf(b.LabelRanges[0], "Invalid egress host", "%s", msg)
		return r, tlsAt, false
	}
	content, diags := b.Body.Content(egressSchema)
	if !d.add(diags) {
		return r, tlsAt, false
	}
	ok = true
	if a, has := content.Attributes["role"]; has {
		d.errorf(a.NameRange, "Unknown role", "Routes take no role: roles are reserved and none is defined. Remove the role attribute; provider routes are added by the agent block.")
		ok = false
	}
	if a, has := content.Attributes["tls"]; has {
		tlsAt = a.Range
		if s, good := d.str(a); good {
			if s != resource.TLSIntercept && s != resource.TLSPassthrough {
				d.errorf(a.Expr.Range(), "Invalid tls mode", "tls must be \"intercept\" (the default: requests are inspected) or \"passthrough\" (bytes are spliced, only the host is checked).")
				ok = false
			}
			r.TLS = s
		} else {
			ok = false
		}
	}
	if a, has := content.Attributes["allow_private_ip"]; has {
		if !d.value(a, cty.Bool, &r.AllowPrivate) {
			ok = false
		}
	}
	if a, has := content.Attributes["paths"]; has {
		var paths []string
		if d.value(a, cty.List(cty.String), &paths) {
			for _, p := range paths {
				if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " ?#") {
					d.errorf(a.Expr.Range(), "Invalid path prefix", "%q is not a path prefix: each entry must start with '/' and hold no space, '?' or '#', as in \"/repos/acme/app/\".", p)
					ok = false
				}
			}
			sort.Strings(paths)
			r.Paths = paths
			if r.TLS == resource.TLSPassthrough {
				d.errorf(a.NameRange, "paths need interception", "Path prefixes are checked on decrypted requests, so they cannot apply to a passthrough route. Remove tls = \"passthrough\" or remove paths.")
				ok = false
			}
		} else {
			ok = false
		}
	}
	if a, has := content.Attributes["methods"]; has {
		if methods, good := d.methods(a); good {
			r.Methods = methods
			if r.TLS == resource.TLSPassthrough {
				d.errorf(a.NameRange, "methods need interception", "Methods are checked on decrypted requests, so they cannot apply to a passthrough route. Remove tls = \"passthrough\" or remove methods.")
				ok = false
			}
		} else {
			ok = false
		}
	}
	for i, blk := range content.Blocks {
		if i > 0 {
			d.errorf(blk.DefRange, "Duplicate auth block", "A route has at most one auth block.")
			ok = false
			continue
		}
		auth, good := d.auth(blk)
		if !good {
			ok = false
			continue
		}
		if r.TLS == resource.TLSPassthrough {
			d.errorf(blk.DefRange, "auth needs interception", "A credential can only be injected into traffic the gateway decrypts. Remove tls = \"passthrough\" from this route, or remove the auth block.")
			ok = false
		}
		r.Auth = auth
	}
	return r, tlsAt, ok
}

// methods reads a route's methods: upper-case HTTP method names, sorted,
// without repeats.
func (d *decoder) methods(a *hcl.Attribute) ([]string, bool) {
	var methods []string
	if !d.value(a, cty.List(cty.String), &methods) {
		return nil, false
	}
	if len(methods) == 0 {
		d.errorf(a.Expr.Range(), "Empty methods", "methods = [] forwards no request at all. List the methods the route forwards, as in [\"GET\", \"POST\"], or remove methods to forward every method (on a forge host: GET, HEAD and OPTIONS).")
		return nil, false
	}
	ok := true
	for i, m := range methods {
		if msg := checkMethod(m); msg != "" {
			d.errorf(elemRange(a, i), "Invalid method", "%s", msg)
			ok = false
		}
	}
	sort.Strings(methods)
	return slices.Compact(methods), ok
}

// elemRange is the range of element i of a list attribute written as a
// list, else of the whole expression.
func elemRange(a *hcl.Attribute, i int) hcl.Range {
	if t, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok && i < len(t.Exprs) {
		return t.Exprs[i].Range()
	}
	return a.Expr.Range()
}

func (d *decoder) auth(b *hcl.Block) (*resource.RouteAuth, bool) {
	content, diags := b.Body.Content(authSchema)
	if !d.add(diags) {
		return nil, false
	}
	scheme, hasScheme := content.Attributes["scheme"]
	token, hasToken := content.Attributes["token"]
	if !hasScheme || !hasToken {
		missing := "scheme"
		if hasScheme {
			missing = "token"
		}
		d.errorf(b.DefRange, "Incomplete auth block", "auth needs both scheme and token; %s is missing. Add %s, or remove the auth block for an unauthenticated route.", missing, missingExample(missing))
		return nil, false
	}
	a := &resource.RouteAuth{}
	s, ok := d.str(scheme)
	if !ok {
		return nil, false
	}
	if s != "Bearer" && s != "token" {
		d.errorf(scheme.Expr.Range(), "Unsupported auth scheme", "The scheme %q is not supported: use \"Bearer\" or \"token\" (sent as Authorization: <scheme> <token>).", s)
		return nil, false
	}
	a.Scheme = s
	ref, ok := d.ref(token.Expr, "token")
	if !ok {
		return nil, false
	}
	a.Token = ref
	return a, true
}

func missingExample(attr string) string {
	if attr == "scheme" {
		return "scheme = \"Bearer\""
	}
	return "token = secret.NAME"
}

func (d *decoder) git(b *hcl.Block) (resource.GitEntry, bool) {
	g := resource.GitEntry{Name: b.Labels[0]}
	if !validGitName(g.Name) {
		d.errorf(b.LabelRanges[0], "Invalid git entry name", "The git entry name %q is not valid: use letters, digits, '.', '_' and '-' only (no spaces, quotes, ';' or '/'), and not \".\" or \"..\"; the name becomes a directory and a URL path in the gate.", g.Name)
		return g, false
	}
	content, diags := b.Body.Content(gitSchema)
	if !d.add(diags) {
		return g, false
	}
	ok := true
	up := content.Attributes["upstream"]
	if s, good := d.str(up); good {
		g.Upstream = s
		u, msg := parseUpstream(s)
		if msg != "" {
			d.errorf(up.Expr.Range(), "Invalid upstream", "%s", msg)
			ok = false
		} else {
			g.User, g.Host, g.Port, g.Path = u.user, u.host, u.port, u.path
		}
	} else {
		ok = false
	}
	if a, has := content.Attributes["host_key"]; has {
		if s, good := d.str(a); good {
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s)); err != nil {
				d.errorf(a.Expr.Range(), "Invalid host key", "host_key must be the upstream's public host key as one line \"TYPE BASE64\", as printed by ssh-keyscan without the host name: %s.", err)
				ok = false
			}
			g.HostKey = strings.TrimSpace(s)
		} else {
			ok = false
		}
	} else {
		d.errorf(b.DefRange, "Missing host_key", "The upstream's host key must be pinned: bottleform never trusts a host key on first use. Add host_key = \"ssh-ed25519 AAAA...\" (from ssh-keyscan -p PORT HOST).")
		ok = false
	}
	if a, has := content.Attributes["push"]; has {
		var push []string
		if d.value(a, cty.List(cty.String), &push) {
			for _, p := range push {
				if msg := checkRefPattern(p); msg != "" {
					d.errorf(a.Expr.Range(), "Invalid push ref pattern", "%s", msg)
					ok = false
				}
			}
			sort.Strings(push)
			g.Push = push
		} else {
			ok = false
		}
	}
	var keys []*hcl.Block
	for _, blk := range content.Blocks {
		keys = append(keys, blk)
	}
	switch {
	case len(keys) == 0:
		d.errorf(b.DefRange, "Missing key", "A git entry needs exactly one key block: key \"file\" { path = \"~/.ssh/deploy_key\" } for a key you have, or key \"gitea\" { api_url = \"https://...\"  token = secret.NAME } to mint a deploy key at apply.")
		ok = false
	case len(keys) > 1:
		d.errorf(keys[1].DefRange, "More than one key", "A git entry takes exactly one key block; remove all but one.")
		ok = false
	default:
		k, good := d.key(keys[0], g)
		g.Key = k
		ok = ok && good
	}
	return g, ok
}

func (d *decoder) key(b *hcl.Block, g resource.GitEntry) (resource.GitKey, bool) {
	k := resource.GitKey{Kind: b.Labels[0]}
	switch k.Kind {
	case resource.KeyFile:
		content, diags := b.Body.Content(keyFileSchema)
		if !d.add(diags) {
			return k, false
		}
		a := content.Attributes["path"]
		p, ok := d.str(a)
		if !ok {
			return k, false
		}
		k.Path = p
		if d.opts.LookupEnv != nil {
			if _, err := os.Stat(expandHome(d.path(p), d.opts.LookupEnv)); err != nil {
				d.errorf(a.Expr.Range(), "Key file not found", "The key file for git entry %q cannot be read: %s. Fix the path, or create the key with ssh-keygen -t ed25519 -f %s.", g.Name, err, p)
				return k, false
			}
		}
		return k, true
	case resource.KeyGitea:
		content, diags := b.Body.Content(keyGiteaSchema)
		if !d.add(diags) {
			return k, false
		}
		a := content.Attributes["api_url"]
		s, ok := d.str(a)
		if !ok {
			return k, false
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			d.errorf(a.Expr.Range(), "Invalid api_url", "api_url must be the Gitea server's base URL, as in \"https://gitea.acme.dev\".")
			return k, false
		}
		k.APIURL = strings.TrimSuffix(s, "/")
		if _, _, err := splitOwnerRepo(g.Path); g.Path != "" && err != nil {
			d.errorf(b.DefRange, "Upstream is not a Gitea repository path", "A gitea key is registered on OWNER/REPO, taken from the upstream path; %s.", err)
			return k, false
		}
		ref, ok := d.ref(content.Attributes["token"].Expr, "token")
		if !ok {
			return k, false
		}
		k.Token = ref
		return k, true
	}
	detail := fmt.Sprintf("The key kind %q is not known: use key \"file\" or key \"gitea\".", k.Kind)
	if s := suggest(k.Kind, []string{"file", "gitea"}); s != "" {
		detail = fmt.Sprintf("The key kind %q is not known. Did you mean %q?", k.Kind, s)
	}
	d.errorf(b.LabelRanges[0], "Unknown key kind", "%s", detail)
	return k, false
}

func expandHome(p string, lookup func(string) (string, bool)) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, ok := lookup("HOME"); ok {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}

// splitOwnerRepo splits "/owner/repo.git" into owner and repo.
func splitOwnerRepo(p string) (owner, repo string, err error) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" || parts[1] == ".git" {
		return "", "", fmt.Errorf("%q is not of the form /OWNER/REPO.git", p)
	}
	return parts[0], strings.TrimSuffix(parts[1], ".git"), nil
}

// OwnerRepo returns the forge repository of a git entry ("acme/app").
func OwnerRepo(g resource.GitEntry) string {
	o, r, err := splitOwnerRepo(g.Path)
	if err != nil {
		return ""
	}
	return o + "/" + r
}

func (d *decoder) gitUser(b *hcl.Block) *resource.GitUser {
	content, diags := b.Body.Content(gitUserSchema)
	if !d.add(diags) {
		return nil
	}
	u := &resource.GitUser{}
	n, ok1 := d.str(content.Attributes["name"])
	e, ok2 := d.str(content.Attributes["email"])
	if !ok1 || !ok2 {
		return nil
	}
	if strings.TrimSpace(n) == "" || strings.ContainsAny(n, "<>\n") {
		d.errorf(content.Attributes["name"].Expr.Range(), "Invalid git user name", "The name must be non-empty and hold no '<', '>' or newline.")
		return nil
	}
	if !strings.Contains(e, "@") || strings.ContainsAny(e, "<> \n") {
		d.errorf(content.Attributes["email"].Expr.Range(), "Invalid git user email", "The email must look like name@example.com.")
		return nil
	}
	u.Name, u.Email = n, e
	return u
}

func (d *decoder) mcpBlock(b *hcl.Block) (resource.MCP, bool) {
	m := resource.MCP{Name: b.Labels[0]}
	if !validMCPName(m.Name) {
		d.errorf(b.LabelRanges[0], "Invalid MCP server name", "The name %q is not valid: use lower-case letters, digits, '_' and '-', starting with a letter or digit.", m.Name)
		return m, false
	}
	if m.Name == "supervise" {
		d.errorf(b.LabelRanges[0], "Reserved MCP server name", "The name \"supervise\" is the bottle's own supervise server; set supervise = true instead, or choose another name.")
		return m, false
	}
	content, diags := b.Body.Content(mcpSchema)
	if !d.add(diags) {
		return m, false
	}
	a := content.Attributes["url"]
	s, ok := d.str(a)
	if !ok {
		return m, false
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		d.errorf(a.Expr.Range(), "Invalid MCP URL", "url must be the server's streamable HTTP endpoint, as in \"https://mcp.acme.dev/mcp\".")
		return m, false
	}
	m.URL = s
	return m, true
}

func (d *decoder) resources(bd *bottleDecl, b *hcl.Block) {
	content, diags := b.Body.Content(resourcesSchema)
	if !d.add(diags) {
		return
	}
	if a, ok := content.Attributes["cpus"]; ok {
		var c float64
		if d.value(a, cty.Number, &c) {
			if c <= 0 || c > 1024 {
				d.errorf(a.Expr.Range(), "Invalid cpus", "cpus must be a number of CPUs greater than 0, as in 2 or 0.5.")
			} else {
				bd.cpus = &c
			}
		}
	}
	if a, ok := content.Attributes["memory"]; ok {
		if s, good := d.str(a); good {
			n, err := parseMemory(s)
			if err != nil {
				d.errorf(a.Expr.Range(), "Invalid memory", "%s.", err)
			} else {
				bd.memory, bd.memoryText = &n, s
			}
		}
	}
}

type upstream struct {
	user, host, path string
	port             int
}

func parseUpstream(s string) (upstream, string) {
	if !strings.HasPrefix(s, "ssh://") {
		if i := strings.Index(s, ":"); i > 0 && !strings.Contains(s[:i], "/") && !strings.Contains(s, "://") {
			return upstream{}, fmt.Sprintf("%q is scp-style; write it as a URL: ssh://%s/%s.", s, s[:i], strings.TrimPrefix(s[i+1:], "/"))
		}
		return upstream{}, fmt.Sprintf("%q is not an ssh:// URL. The git gate reaches upstreams over SSH only; write ssh://git@HOST[:PORT]/OWNER/REPO.git.", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return upstream{}, fmt.Sprintf("%q is not a valid URL: %s.", s, err)
	}
	if u.Hostname() == "" {
		return upstream{}, fmt.Sprintf("%q has no host; write ssh://git@HOST[:PORT]/OWNER/REPO.git.", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return upstream{}, fmt.Sprintf("%q has a query or fragment; remove it.", s)
	}
	if _, has := u.User.Password(); has {
		return upstream{}, fmt.Sprintf("the upstream URL holds a password; remove it: keys are given in the key block.")
	}
	p := path.Clean(u.Path)
	if u.Path == "" || p == "/" || p == "." {
		return upstream{}, fmt.Sprintf("%q has no repository path; write ssh://git@HOST[:PORT]/OWNER/REPO.git.", s)
	}
	up := upstream{user: u.User.Username(), host: u.Hostname(), path: p, port: 22}
	if up.user == "" {
		up.user = "git"
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			return upstream{}, fmt.Sprintf("%q has an invalid port.", s)
		}
		up.port = n
	}
	return up, ""
}

// maxPrompt bounds a file read into the configuration (a prompt, CA
// certificates): text, not a data set.
const maxPrompt = 1 << 20

// readPrompt reads a regular file of at most maxPrompt bytes, so a path to
// a device or a FIFO fails instead of hanging.
func readPrompt(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > maxPrompt {
		return nil, fmt.Errorf("%s is %d bytes; a prompt file may hold at most 1 MiB", path, st.Size())
	}
	return os.ReadFile(path)
}
