package importer

import (
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"
)

// images are the images bot-bottle built for each template.
var images = map[string]string{
	"claude": "bot-bottle-claude:latest",
	"codex":  "bot-bottle-codex:latest",
}

// reservedEnv are the variables bottleform sets in the agent itself, which
// config refuses in env (config/bottle.go keeps the list;
// TestReservedEnvRefused checks the two agree).
var reservedEnv = []string{
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "NODE_USE_ENV_PROXY",
	"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "AWS_CA_BUNDLE",
	"PIP_CERT", "CARGO_HTTP_CAINFO", "NIX_SSL_CERT_FILE", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
	"NODE_EXTRA_CA_CERTS", "DENO_CERT", "NODE_USE_SYSTEM_CA", "CODEX_CA_CERTIFICATE",
	"CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "IS_SANDBOX",
}

// privateRanges are what allow_private_ip admits (sidecar/egress/addr.go).
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("100.64.0.0/10"),
}

// hostEnvRe is bot-bottle's interpolation: the whole value is ${NAME}.
var hostEnvRe = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

type secretDecl struct{ attr, value string }

// converter writes manifests as HCL. Secrets are shared by every bottle
// of the output, so they are collected while the bottles are written.
type converter struct {
	byName map[string]*manifest
	// hasAgents: agent manifests are imported, so the bottles are the
	// templates they run on.
	hasAgents bool
	secrets   map[string]secretDecl
	warnings  []Note
	errs      Errors
}

func (c *converter) convert() *Result {
	names := sortedKeys(c.byName)
	for _, m := range c.byName {
		c.hasAgents = c.hasAgents || m.agent
	}
	var bottles []*hclwrite.Block
	for _, n := range names {
		bottles = append(bottles, c.bottle(c.byName[n]))
	}
	f := hclwrite.NewEmptyFile()
	root := f.Body()
	remark(root, "Imported from bot-bottle by `bottleform import`. Read the comments, then run",
		"`bottleform validate` and `bottleform plan`.")
	for _, n := range sortedKeys(c.secrets) {
		root.AppendNewline()
		d := c.secrets[n]
		root.AppendNewBlock("secret", []string{n}).Body().SetAttributeValue(d.attr, cty.StringVal(d.value))
	}
	for _, b := range bottles {
		root.AppendNewline()
		root.AppendBlock(b)
	}
	sort.SliceStable(c.warnings, func(i, j int) bool {
		a, b := c.warnings[i], c.warnings[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return &Result{HCL: hclwrite.Format(collapseEmpty(f.BuildTokens(nil)).Bytes()), Bottles: names, Warnings: c.warnings}
}

// collapseEmpty writes empty blocks as {}, as the examples do.
func collapseEmpty(toks hclwrite.Tokens) hclwrite.Tokens {
	out := make(hclwrite.Tokens, 0, len(toks))
	for i := 0; i < len(toks); i++ {
		if toks[i].Type == hclsyntax.TokenNewline && i > 0 && i+1 < len(toks) &&
			toks[i-1].Type == hclsyntax.TokenOBrace && toks[i+1].Type == hclsyntax.TokenCBrace {
			continue
		}
		out = append(out, toks[i])
	}
	return out
}

// chain is m and the ancestors it extends among the imported manifests.
func (c *converter) chain(m *manifest) []*manifest {
	out := []*manifest{m}
	seen := map[string]bool{m.name: true}
	for m.extends != nil {
		p, ok := c.byName[m.extends.s]
		if !ok || seen[p.name] {
			break
		}
		seen[p.name] = true
		out = append(out, p)
		m = p
	}
	return out
}

// warn writes notes as comments and records them as warnings.
func (c *converter) warn(body *hclwrite.Body, notes ...Note) {
	for _, n := range notes {
		c.warnings = append(c.warnings, n)
		comment(body, fmt.Sprintf("%s:%d: %s", filepath.Base(n.File), n.Line, n.Text))
	}
}

func (c *converter) errorf(m *manifest, line int, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: m.file, Line: line, Msg: printable(fmt.Sprintf(format, args...))})
}

func comment(body *hclwrite.Body, line string) {
	body.AppendUnstructuredTokens(hclwrite.Tokens{{Type: hclsyntax.TokenComment, Bytes: []byte("# " + printable(line) + "\n")}})
}

// remark writes comment lines that are explanation, not warnings.
func remark(body *hclwrite.Body, lines ...string) {
	for _, l := range lines {
		comment(body, l)
	}
}

func (c *converter) bottle(m *manifest) *hclwrite.Block {
	blk := hclwrite.NewBlock("bottle", []string{m.name})
	body := blk.Body()
	from := "From " + filepath.Base(m.file)
	if m.agent {
		from += ", a bot-bottle agent"
		if m.extends != nil {
			from += " on the bottle " + m.extends.s
		}
	}
	remark(body, from+".")
	if len(m.subagent) > 0 {
		remark(body, "Claude Code subagent fields, which bot-bottle ignored too:")
		for _, s := range m.subagent {
			remark(body, "  "+s)
		}
	}
	c.warn(body, m.notes...)
	if !m.agent && c.hasAgents {
		remark(body, "bot-bottle ran a bottle only under an agent; remove abstract to bring it up alone.")
		body.SetAttributeValue("abstract", cty.True)
	}

	root := m.extends == nil
	if m.extends != nil {
		body.SetAttributeValue("extends", cty.StringVal(m.extends.s))
		if _, ok := c.byName[m.extends.s]; !ok {
			what := "extends"
			if m.agent {
				what = "bottle"
			}
			c.warn(body, m.note(m.extends.line, "%s %q: that manifest is not part of this import; import the two together (a directory, or one with bottles/ and agents/), so that one file holds both and the secrets they share", what, m.extends.s))
		} else if len(m.routes) > 0 || len(m.repos) > 0 || len(m.env) > 0 {
			remark(body, "bottleform merges env by name, and egress and git by host and name, with "+m.extends.s+"'s.")
		}
	}
	c.image(body, m, root)
	c.agent(body, m, root)
	c.env(body, m)
	c.egress(body, m)
	c.git(body, m)
	c.gitUser(body, m)
	if m.supervise != nil {
		body.AppendNewline()
		body.SetAttributeValue("supervise", cty.BoolVal(m.supervise.v))
	}
	if len(m.skills) > 0 {
		var names, dirs []string
		for _, s := range m.skills {
			names = append(names, s.s)
			dirs = append(dirs, fmt.Sprintf("%q", "skills/"+s.s))
		}
		body.AppendNewline()
		c.warn(body, m.note(m.skillsAt, "skills %s: bot-bottle found skills by name on the host, bottleform takes their directories relative to the definitions; copy them here and add skills = [%s]; not imported", strings.Join(names, ", "), strings.Join(dirs, ", ")))
	}
	if m.prompt != "" {
		body.AppendNewline()
		if strings.ContainsFunc(m.prompt, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
			// A heredoc cannot hold a lone carriage return and the like; a
			// quoted string escapes them.
			body.SetAttributeValue("prompt", cty.StringVal(m.prompt+"\n"))
		} else {
			body.SetAttributeRaw("prompt", heredoc(m.prompt+"\n"))
		}
	}
	return blk
}

// effective is a field of agent_provider as the overlay of m's chain
// gives it: the nearest manifest that sets it.
func effective[T any](c *converter, m *manifest, get func(*provider) *T) *T {
	for _, x := range c.chain(m) {
		if x.provider != nil {
			if v := get(x.provider); v != nil {
				return v
			}
		}
	}
	return nil
}

func (c *converter) template(m *manifest) string {
	if t := effective(c, m, func(p *provider) *text { return p.template }); t != nil {
		return t.s
	}
	return "claude"
}

// image is written where the image is decided: in a bottle that extends
// none, and where agent_provider picks the template or a Dockerfile.
func (c *converter) image(body *hclwrite.Body, m *manifest, root bool) {
	p := m.provider
	if !root && (p == nil || p.template == nil && p.dockerfile == nil) {
		return
	}
	tmpl := c.template(m)
	if p != nil && p.dockerfile != nil {
		c.warn(body, m.note(p.dockerfile.line, "agent_provider.dockerfile %q: bottleform runs an image and builds none; build it (docker build -f %s -t NAME .) and set image = \"NAME\"", p.dockerfile.s, p.dockerfile.s))
	} else {
		remark(body, "bot-bottle's "+tmpl+" image: bottleform pulls no image, so build or tag it on this host.")
	}
	body.SetAttributeValue("image", cty.StringVal(images[tmpl]))
}

func (c *converter) agent(body *hclwrite.Body, m *manifest, root bool) {
	own := m.provider
	if !root && own == nil {
		return
	}
	tmpl := c.template(m)
	body.AppendNewline()
	blk := body.AppendNewBlock("agent", []string{tmpl})
	ab := blk.Body()
	if own != nil {
		c.warn(ab, own.notes...)
	}
	switch tmpl {
	case "claude":
		if own != nil && own.forwardHostCredential != nil && own.forwardHostCredential.v {
			c.warn(ab, m.note(own.forwardHostCredential.line, "forward_host_credentials: bottleform forwards host credentials for codex only; give claude a token with auth_token instead; not imported"))
		}
		if t := effective(c, m, func(p *provider) *text { return p.authToken }); t != nil {
			ab.SetAttributeRaw("auth_token", c.envSecret(t.s, m.name))
		}
	case "codex":
		if own != nil && own.authToken != nil {
			c.errorf(m, own.authToken.line, "agent_provider.auth_token is for the claude template only (bot-bottle refuses it on codex too); remove it, or set forward_host_credentials: true to use the host's codex login")
		}
		if f := effective(c, m, func(p *provider) *flag { return p.forwardHostCredential }); f != nil && f.v {
			ab.SetAttributeValue("forward_host_credentials", cty.True)
		}
	}
}

// envSecret declares a secret read from the host variable name and
// returns a reference to it.
func (c *converter) envSecret(name, bottle string) hclwrite.Tokens {
	return secretRef(c.secret(name, secretDecl{attr: "env", value: name}, bottle))
}

// secret returns the name of a secret declared as d, declaring it: the
// variable's name in lower case, unless a different secret has it.
func (c *converter) secret(base string, d secretDecl, bottle string) string {
	name := strings.ToLower(base)
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		name = "env" + name
	}
	suffix := strings.ReplaceAll(bottle, "-", "_")
	for i := 0; ; i++ {
		n := name
		switch {
		case i == 1:
			n = name + "_" + suffix
		case i > 1:
			n = fmt.Sprintf("%s_%s_%d", name, suffix, i)
		}
		if prev, ok := c.secrets[n]; !ok || prev == d {
			c.secrets[n] = d
			return n
		}
	}
}

func secretRef(name string) hclwrite.Tokens {
	return hclwrite.TokensForTraversal(hcl.Traversal{hcl.TraverseRoot{Name: "secret"}, hcl.TraverseAttr{Name: name}})
}

func (c *converter) env(body *hclwrite.Body, m *manifest) {
	if len(m.env) == 0 {
		return
	}
	entries := append([]envEntry(nil), m.env...)
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var attrs []hclwrite.ObjectAttrTokens
	var notes []Note
	for _, e := range entries {
		if !envNameRe.MatchString(e.name) {
			notes = append(notes, m.note(e.line, "env %q: not a valid environment variable name (letters, digits and '_', not starting with a digit); not imported", e.name))
			continue
		}
		if reserved(e.name) {
			hint := ""
			if strings.EqualFold(e.name, "CLAUDE_CODE_OAUTH_TOKEN") {
				hint = " (give claude its token with agent_provider.auth_token: the gateway injects it)"
			}
			notes = append(notes, m.note(e.line, "env %s: bottleform sets it in the agent itself%s; not imported", e.name, hint))
			continue
		}
		var val hclwrite.Tokens
		switch {
		case strings.HasPrefix(e.value, "?"):
			prompt := strings.TrimSpace(e.value[1:])
			if prompt == "" {
				prompt = "Value of " + e.name
			}
			val = secretRef(c.secret(e.name, secretDecl{attr: "prompt", value: prompt}, m.name))
		case hostEnvRe.MatchString(e.value):
			val = hclwrite.TokensForFunctionCall("host_env", hclwrite.TokensForValue(cty.StringVal(hostEnvRe.FindStringSubmatch(e.value)[1])))
		default:
			val = hclwrite.TokensForValue(cty.StringVal(e.value))
		}
		attrs = append(attrs, hclwrite.ObjectAttrTokens{Name: hclwrite.TokensForIdentifier(e.name), Value: val})
	}
	body.AppendNewline()
	c.warn(body, notes...)
	if len(attrs) > 0 {
		body.SetAttributeRaw("env", hclwrite.TokensForObject(attrs))
	}
}

func reserved(name string) bool {
	for _, r := range reservedEnv {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

// forgeHosts are the hosts of the git upstreams of m and its ancestors:
// the gateway keeps routes to them intercepted.
func (c *converter) forgeHosts(m *manifest) map[string]bool {
	out := map[string]bool{}
	for _, x := range c.chain(m) {
		for _, r := range x.repos {
			if u, err := url.Parse(r.url.s); err == nil {
				out[strings.ToLower(u.Hostname())] = true
			}
		}
	}
	return out
}

func (c *converter) egress(body *hclwrite.Body, m *manifest) {
	if len(m.routes) == 0 && len(m.egNotes) == 0 {
		return
	}
	body.AppendNewline()
	c.warn(body, m.egNotes...)
	routes := append([]*route(nil), m.routes...)
	sort.Slice(routes, func(i, j int) bool { return routes[i].host < routes[j].host })
	forge := c.forgeHosts(m)
	for _, rt := range routes {
		c.route(body, m, rt, forge)
	}
}

func (c *converter) route(body *hclwrite.Body, m *manifest, rt *route, forge map[string]bool) {
	if strings.ContainsAny(rt.host, ":/*@ ") {
		c.warn(body, m.note(rt.line, "egress route %q: a route names one host, without scheme, port, path or wildcard; not imported", rt.host))
		return
	}
	if rt.unmapped != "" {
		c.warn(body, m.note(rt.line, "egress route %s: %s, so the route is left out rather than granted wider; grant it by hand", rt.host, rt.unmapped))
		return
	}
	var notes []Note
	var paths []string
	for _, p := range rt.paths {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " ?#") {
			notes = append(notes, m.note(rt.line, "path %q: a path prefix starts with '/' and holds no space, '?' or '#'; not imported", p))
			continue
		}
		paths = append(paths, p)
	}
	if len(rt.paths) > 0 && len(paths) == 0 {
		c.warn(body, m.note(rt.line, "egress route %s: none of its paths can be written as a prefix, so the route is left out rather than granted wider; grant it by hand", rt.host))
		return
	}
	var methods []string
	for _, meth := range rt.methods {
		switch {
		case meth == "CONNECT" || meth == "TRACE" || meth == "TRACK":
			notes = append(notes, m.note(rt.line, "method %s: the gateway never forwards it; not imported", meth))
		case meth == "" || strings.ContainsFunc(meth, func(r rune) bool { return r < 'A' || r > 'Z' }):
			notes = append(notes, m.note(rt.line, "method %q: not an HTTP method name; not imported", meth))
		default:
			methods = append(methods, meth)
		}
	}
	if len(rt.methods) > 0 && len(methods) == 0 {
		c.warn(body, m.note(rt.line, "egress route %s: none of its methods can be granted, so the route is left out rather than granted wider; grant it by hand", rt.host))
		return
	}
	blk := body.AppendNewBlock("egress", []string{rt.host})
	eb := blk.Body()
	c.warn(eb, rt.notes...)
	if forge[rt.host] && len(methods) == 0 {
		c.warn(eb, m.note(rt.line, "%s is a git upstream of the bottle, so the gateway forwards only GET, HEAD and OPTIONS to it, where bot-bottle forwarded every method but pushes; to let the agent write through the forge's API (around the git gate), add methods = [\"GET\", \"HEAD\", \"POST\", ...]", rt.host))
	}
	if rt.passthrough != nil && rt.passthrough.v {
		switch {
		case rt.auth != nil || len(paths) > 0 || len(methods) > 0:
			c.warn(eb, m.note(rt.passthrough.line, "tls_passthrough: in bot-bottle it only kept pipelock from rescanning; bottleform's gateway must decrypt to inject a token or check paths and methods, so the route is intercepted"))
		case forge[rt.host]:
			c.warn(eb, m.note(rt.passthrough.line, "tls_passthrough: %s is a git upstream of the bottle, and the gateway intercepts forge hosts so that writes cannot bypass the git gate; the route is intercepted", rt.host))
		default:
			eb.SetAttributeValue("tls", cty.StringVal("passthrough"))
		}
	}
	c.ssrf(eb, m, rt)
	if rt.auth != nil {
		ab := eb.AppendNewBlock("auth", nil).Body()
		ab.SetAttributeValue("scheme", cty.StringVal(rt.auth.scheme))
		ab.SetAttributeRaw("token", c.envSecret(rt.auth.tokenRef.s, m.name))
	}
	c.warn(eb, notes...)
	if len(methods) > 0 {
		eb.SetAttributeValue("methods", stringList(sortedSet(methods)))
	}
	if len(paths) > 0 {
		eb.SetAttributeValue("paths", stringList(sortedSet(paths)))
	}
}

// ssrf maps pipelock's ssrf_ip_allowlist: bottleform admits a host's
// private addresses as a whole (allow_private_ip), never loopback,
// link-local or metadata ones.
func (c *converter) ssrf(eb *hclwrite.Body, m *manifest, rt *route) {
	if len(rt.ssrf) == 0 {
		return
	}
	var private, other []string
	line := rt.ssrf[0].line
	for _, t := range rt.ssrf {
		p, err := netip.ParsePrefix(t.s)
		if err != nil {
			a, aerr := netip.ParseAddr(t.s)
			if aerr != nil {
				other = append(other, t.s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = p.Masked()
		inside := false
		for _, r := range privateRanges {
			if r.Bits() <= p.Bits() && r.Contains(p.Addr().Unmap()) {
				inside = true
			}
		}
		if inside {
			private = append(private, t.s)
		} else {
			other = append(other, t.s)
		}
	}
	if len(private) > 0 {
		c.warn(eb, m.note(line, "ssrf_ip_allowlist %s: allow_private_ip admits every private address (RFC 1918, unique local, CGNAT) the host resolves to, not only these ranges", strings.Join(private, ", ")))
		eb.SetAttributeValue("allow_private_ip", cty.True)
	}
	if len(other) > 0 {
		c.warn(eb, m.note(line, "ssrf_ip_allowlist %s: not a private range; the gateway never admits loopback, link-local or metadata addresses, and public ones need no allowance; not imported", strings.Join(other, ", ")))
	}
}

func (c *converter) git(body *hclwrite.Body, m *manifest) {
	if len(m.repos) == 0 && len(m.gateNotes) == 0 {
		return
	}
	body.AppendNewline()
	c.warn(body, m.gateNotes...)
	repos := append([]*repo(nil), m.repos...)
	sort.Slice(repos, func(i, j int) bool { return repos[i].name < repos[j].name })
	for _, r := range repos {
		gb := body.AppendNewBlock("git", []string{r.name}).Body()
		c.warn(gb, r.notes...)
		gb.SetAttributeValue("upstream", cty.StringVal(r.url.s))
		if r.hostKey == nil {
			c.warn(gb, m.note(r.line, "no host_key: bottleform never trusts a host key on first use; pin it (ssh-keyscan -p PORT HOST) and add host_key = \"TYPE BASE64\": the definitions do not validate until then"))
		} else {
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.hostKey.s))
			if err != nil {
				c.errorf(m, r.hostKey.line, "git-gate.repos.%s.host_key is not an SSH public key (\"TYPE BASE64\", as ssh-keyscan prints it): %s", r.name, err)
				continue
			}
			gb.SetAttributeValue("host_key", cty.StringVal(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))))
		}
		if r.identity != nil {
			p := r.identity.s
			if !filepath.IsAbs(p) && p != "~" && !strings.HasPrefix(p, "~/") {
				c.warn(gb, m.note(r.identity.line, "identity %q is relative; bottleform reads it relative to the directory of the definitions", p))
			}
			gb.AppendNewBlock("key", []string{"file"}).Body().SetAttributeValue("path", cty.StringVal(p))
		} else if pk := r.provisioned; pk != nil {
			apiURL := "https://"
			if u, err := url.Parse(r.url.s); err == nil {
				apiURL += u.Hostname()
			}
			c.warn(gb, m.note(pk.line, "provisioned_key: bottleform needs the Gitea API's address, and %s is a guess from the upstream's host; check it", apiURL))
			kb := gb.AppendNewBlock("key", []string{"gitea"}).Body()
			kb.SetAttributeValue("api_url", cty.StringVal(apiURL))
			kb.SetAttributeRaw("token", c.envSecret(pk.tokenEnv.s, m.name))
		}
		remark(gb, "bot-bottle's gate pushed every ref that passed its scan; narrow this to what",
			"the agent needs, as in [\"refs/heads/agent/*\"].")
		gb.SetAttributeValue("push", stringList([]string{"refs/*"}))
	}
}

// gitUser writes git-gate.user where a manifest sets it, with the fields
// it leaves empty taken from its ancestors, as bot-bottle's overlay did.
func (c *converter) gitUser(body *hclwrite.Body, m *manifest) {
	if m.user == nil {
		return
	}
	var name, email *text
	for _, x := range c.chain(m) {
		if x.user == nil {
			continue
		}
		if name == nil {
			name = x.user.name
		}
		if email == nil {
			email = x.user.email
		}
	}
	body.AppendNewline()
	c.warn(body, m.user.notes...)
	if name == nil || email == nil {
		missing := "name"
		if name != nil {
			missing = "email"
		}
		c.warn(body, m.note(m.user.line, "git-gate.user has no %s here or in a bottle it extends, and git_user needs both name and email; add it and write the block; not imported", missing))
		return
	}
	ub := body.AppendNewBlock("git_user", nil).Body()
	ub.SetAttributeValue("name", cty.StringVal(name.s))
	ub.SetAttributeValue("email", cty.StringVal(email.s))
}

// heredoc writes s (ending in a newline) as a heredoc, verbatim: template
// sequences are escaped and the delimiter is one no line of s equals.
func heredoc(s string) hclwrite.Tokens {
	s = strings.ReplaceAll(s, "${", "$${")
	s = strings.ReplaceAll(s, "%{", "%%{")
	delim := "EOT"
	for i := 1; ; i++ {
		clash := false
		for _, l := range strings.Split(s, "\n") {
			if strings.TrimSpace(l) == delim {
				clash = true
				break
			}
		}
		if !clash {
			break
		}
		delim = fmt.Sprintf("EOT%d", i)
	}
	return hclwrite.Tokens{
		{Type: hclsyntax.TokenOHeredoc, Bytes: []byte("<<" + delim + "\n")},
		{Type: hclsyntax.TokenStringLit, Bytes: []byte(s)},
		{Type: hclsyntax.TokenCHeredoc, Bytes: []byte(delim)},
	}
}

func stringList(ss []string) cty.Value {
	vals := make([]cty.Value, len(ss))
	for i, s := range ss {
		vals[i] = cty.StringVal(s)
	}
	return cty.ListVal(vals)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedSet(ss []string) []string {
	set := map[string]bool{}
	for _, s := range ss {
		set[s] = true
	}
	return sortedKeys(set)
}
