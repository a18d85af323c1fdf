package planner

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/bottleform/bottleform/resource"
)

// security says in plain words what the plan grants and takes away: new
// hosts, injected credentials, push rights, minted keys, secrets handed to
// the agent. It reads only the changes, so it says the same for a saved
// plan as for a fresh one.
func security(p *Plan) []string {
	var out []string
	forgeBefore, forgeAfter := forgeHosts(p)
	for _, c := range p.Changes {
		b := c.Addr.Bottle
		if c.Addr.Kind == resource.KindEgress {
			// A route's methods depend on the bottle's git upstreams too,
			// so a route may say something when only those changed.
			fb, fa := forgeBefore[b][hostKey(c.Addr.Key)], forgeAfter[b][hostKey(c.Addr.Key)]
			if c.Action.Changes() {
				out = append(out, egressSecurity(b, c, fb || fa)...)
			}
			out = append(out, forgeSecurity(b, c, fb, fa)...)
			continue
		}
		if !c.Action.Changes() {
			continue
		}
		switch c.Addr.Kind {
		case resource.KindGit:
			out = append(out, gitSecurity(b, c)...)
		case resource.KindDeployKey:
			out = append(out, keySecurity(c)...)
		case resource.KindAgent:
			out = append(out, envSecurity(b, c)...)
		case resource.KindAuth:
			out = append(out, authSecurity(b, c)...)
		case resource.KindMCP:
			out = append(out, mcpSecurity(b, c)...)
		case resource.KindSidecar:
			if ca := str(c.After, "upstream_ca"); ca != "" && ca != str(c.Before, "upstream_ca") && c.Action != Delete {
				out = append(out, fmt.Sprintf("bottle %s's gateway trusts the upstream CA certificates of %s", b, ca))
			}
		}
	}
	return out
}

func str(a resource.Attrs, name string) string {
	if a == nil {
		return ""
	}
	return a[name].Str
}

func list(a resource.Attrs, name string) []string {
	if a == nil {
		return nil
	}
	var out []string
	for _, v := range a[name].List {
		out = append(out, v.Str)
	}
	return out
}

// egressSecurity says what a changed route grants; forge is set when its
// host is a git upstream of the bottle before or after, and forgeSecurity
// then speaks for its methods.
func egressSecurity(b string, c Change, forge bool) []string {
	host := c.Addr.Key
	switch c.Action {
	case Delete:
		return []string{fmt.Sprintf("bottle %s loses egress to %s", b, host)}
	case Create, Replace:
		if c.Action == Create && c.Before != nil {
			return nil // drift repair: nothing new is granted
		}
		if c.Action == Replace && c.Before.Equal(c.After) {
			return nil
		}
		return []string{fmt.Sprintf("bottle %s gains egress to %s%s", b, host, routeTerms(c.After))}
	}
	// Update: say what moved.
	var out []string
	before, after := c.Before, c.After
	if str(before, "tls") != str(after, "tls") {
		if str(after, "tls") == resource.TLSPassthrough {
			out = append(out, fmt.Sprintf("bottle %s's egress to %s is no longer inspected (TLS passthrough)", b, host))
		} else {
			out = append(out, fmt.Sprintf("bottle %s's egress to %s is now inspected (TLS intercepted)", b, host))
		}
	}
	if ba, aa := authText(before), authText(after); ba != aa {
		switch {
		case aa == "":
			out = append(out, fmt.Sprintf("bottle %s's egress to %s no longer has a credential injected (was %s)", b, host, authWords(ba)))
		case ba == "":
			out = append(out, fmt.Sprintf("bottle %s's egress to %s now has %s", b, host, authWords(aa)))
		default:
			out = append(out, fmt.Sprintf("bottle %s's egress to %s now has %s (was %s)", b, host, authWords(aa), authWords(ba)))
		}
	}
	if bp, ap := before["allow_private_ip"].Str == "true", after["allow_private_ip"].Str == "true"; bp != ap {
		if ap {
			out = append(out, fmt.Sprintf("bottle %s's egress to %s may now resolve to a private address", b, host))
		} else {
			out = append(out, fmt.Sprintf("bottle %s's egress to %s may no longer resolve to a private address", b, host))
		}
	}
	if bm, am := list(before, "methods"), list(after, "methods"); !forge && !slices.Equal(bm, am) {
		switch {
		case len(am) == 0:
			out = append(out, fmt.Sprintf("bottle %s's egress to %s is no longer limited to methods (was %s): every method is allowed", b, host, strings.Join(bm, ", ")))
		case len(bm) == 0:
			out = append(out, fmt.Sprintf("bottle %s's egress to %s is now limited to methods %s", b, host, strings.Join(am, ", ")))
		default:
			if added := minus(am, bm); len(added) > 0 {
				out = append(out, fmt.Sprintf("bottle %s's egress to %s now allows methods %s", b, host, strings.Join(added, ", ")))
			}
			if removed := minus(bm, am); len(removed) > 0 {
				out = append(out, fmt.Sprintf("bottle %s's egress to %s no longer allows methods %s", b, host, strings.Join(removed, ", ")))
			}
		}
	}
	bp, ap := list(before, "paths"), list(after, "paths")
	switch {
	case len(ap) == 0 && len(bp) > 0:
		out = append(out, fmt.Sprintf("bottle %s's egress to %s is no longer limited to paths (was %s): every path is allowed", b, host, strings.Join(bp, ", ")))
	case strings.Join(bp, "\x00") != strings.Join(ap, "\x00"):
		if added := minus(ap, bp); len(added) > 0 {
			out = append(out, fmt.Sprintf("bottle %s's egress to %s now allows paths %s", b, host, strings.Join(added, ", ")))
		}
		if removed := minus(bp, ap); len(removed) > 0 {
			out = append(out, fmt.Sprintf("bottle %s's egress to %s no longer allows paths %s", b, host, strings.Join(removed, ", ")))
		}
	}
	return out
}

func routeTerms(a resource.Attrs) string {
	var terms []string
	if owner := str(a, "owner"); strings.HasPrefix(owner, "mcp.") {
		terms = append(terms, "for MCP server "+strings.TrimPrefix(owner, "mcp."))
	} else if owner != "" {
		terms = append(terms, "owned by the "+owner+" provider")
	}
	if str(a, "tls") == resource.TLSPassthrough {
		terms = append(terms, "TLS passthrough: not inspected")
	}
	if a["allow_private_ip"].Str == "true" {
		terms = append(terms, "may resolve to a private address")
	}
	s := ""
	if len(terms) > 0 {
		s = " (" + strings.Join(terms, "; ") + ")"
	}
	if auth := authText(a); auth != "" {
		s += ", with " + authWords(auth)
	}
	if paths := list(a, "paths"); len(paths) > 0 {
		s += ", limited to paths " + strings.Join(paths, ", ")
	}
	if methods := list(a, "methods"); len(methods) > 0 {
		s += ", limited to methods " + strings.Join(methods, ", ")
	}
	return s
}

// readMethods are what a route to a forge host forwards when it lists no
// methods: the gateway's default there (sidecar/egress).
var readMethods = []string{"GET", "HEAD", "OPTIONS"}

// forgeHosts returns, by bottle, the hosts of its git upstreams (forge
// hosts) before the plan (recorded) and after it (configured).
func forgeHosts(p *Plan) (before, after map[string]map[string]bool) {
	before, after = map[string]map[string]bool{}, map[string]map[string]bool{}
	add := func(m map[string]map[string]bool, b string, a resource.Attrs) {
		u, err := url.Parse(str(a, "upstream"))
		if a == nil || err != nil || u.Hostname() == "" {
			return
		}
		if m[b] == nil {
			m[b] = map[string]bool{}
		}
		m[b][hostKey(u.Hostname())] = true
	}
	for _, c := range p.Changes {
		if c.Addr.Kind != resource.KindGit {
			continue
		}
		add(before, c.Addr.Bottle, c.Before)
		add(after, c.Addr.Bottle, c.After)
	}
	return before, after
}

// hostKey is a host in the one spelling two names of the same host share
// (lower case, no brackets or trailing dot, an address in canonical form),
// as the gateway compares them.
func hostKey(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")), ".")
	if a, err := netip.ParseAddr(h); err == nil {
		return a.WithZone("").Unmap().String()
	}
	return h
}

// forgeMethods are the methods a route's attributes forward on a forge
// host: its methods, else readMethods.
func forgeMethods(a resource.Attrs) []string {
	if m := list(a, "methods"); len(m) > 0 {
		return m
	}
	return readMethods
}

// forgeSecurity speaks for the methods of a route to a forge host, which
// the gateway limits to reads unless the route lists writes: it says when
// the route starts or stops granting writes to the forge's HTTP API past
// the git gate, when it becomes read-only, and when it stops being
// read-only because the host is no longer a git upstream. wasForge and
// isForge say whether the host is a git upstream before and after.
func forgeSecurity(b string, c Change, wasForge, isForge bool) []string {
	host := c.Addr.Key
	var bw, aw []string // write methods granted on the forge before and after
	if c.Before != nil && wasForge {
		bw = minus(forgeMethods(c.Before), readMethods)
	}
	if c.After != nil && isForge {
		aw = minus(forgeMethods(c.After), readMethods)
	}
	var out []string
	switch {
	case len(aw) > 0 && !slices.Equal(aw, bw):
		out = append(out, fmt.Sprintf("bottle %s can write to the forge %s through its HTTP API (%s), bypassing the git gate's push policy and secret scan",
			b, host, strings.Join(aw, ", ")))
	case len(bw) > 0 && len(aw) == 0 && c.After != nil && isForge:
		out = append(out, fmt.Sprintf("bottle %s can no longer write to the forge %s through its HTTP API", b, host))
	}
	wasReadOnly := c.Before != nil && wasForge && len(list(c.Before, "methods")) == 0
	switch {
	case c.After == nil:
	case isForge && len(list(c.After, "methods")) == 0 && !wasReadOnly:
		out = append(out, fmt.Sprintf("bottle %s's egress to the forge %s is read-only (GET, HEAD, OPTIONS): it is a git upstream of the bottle, so writes go through the git gate",
			b, host))
	case !isForge && wasReadOnly:
		out = append(out, fmt.Sprintf("bottle %s's egress to %s now allows every method: it is no longer a git upstream of the bottle", b, host))
	}
	return out
}

// authText renders a route's auth attribute as "Bearer secret.github", or "".
func authText(a resource.Attrs) string {
	if a == nil {
		return ""
	}
	m := a["auth"].Map
	if m == nil {
		return ""
	}
	return m["scheme"].Str + " " + m["token"].Str
}

// authWords turns "Bearer secret.github" into "secret.github injected as Bearer".
func authWords(auth string) string {
	scheme, ref, ok := strings.Cut(auth, " ")
	if !ok {
		return auth
	}
	return ref + " injected as " + scheme
}

func gitSecurity(b string, c Change) []string {
	repo := func(a resource.Attrs) string { return upstreamWords(str(a, "upstream")) }
	switch c.Action {
	case Delete:
		return []string{fmt.Sprintf("bottle %s loses git access to %s", b, repo(c.Before))}
	case Create, Replace:
		if c.Before != nil && (c.Action == Create || c.Before.Equal(c.After)) {
			return nil
		}
		push := list(c.After, "push")
		if len(push) == 0 {
			return []string{fmt.Sprintf("bottle %s may clone and fetch %s through the git gate (no push)", b, repo(c.After))}
		}
		return []string{fmt.Sprintf("bottle %s may clone and fetch %s through the git gate, and push %s", b, repo(c.After), pushWords(push))}
	}
	var out []string
	if repo(c.Before) != repo(c.After) {
		out = append(out, fmt.Sprintf("bottle %s's git entry %q now reaches %s instead of %s", b, c.Addr.Key, repo(c.After), repo(c.Before)))
	}
	bp, ap := list(c.Before, "push"), list(c.After, "push")
	if added := minus(ap, bp); len(added) > 0 {
		out = append(out, fmt.Sprintf("bottle %s may now push %s to %s", b, pushWords(added), repo(c.After)))
	}
	if removed := minus(bp, ap); len(removed) > 0 {
		out = append(out, fmt.Sprintf("bottle %s may no longer push %s to %s", b, pushWords(removed), repo(c.After)))
	}
	if str(c.Before, "host_key") != str(c.After, "host_key") && c.Before != nil {
		out = append(out, fmt.Sprintf("bottle %s's pinned host key for %s changes", b, repo(c.After)))
	}
	return out
}

func pushWords(patterns []string) string {
	var parts []string
	for _, p := range patterns {
		if strings.HasPrefix(p, "+") {
			parts = append(parts, strings.TrimPrefix(p, "+")+" (force-push allowed)")
		} else {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ", ")
}

// upstreamWords shows ssh://git@gitea.acme.dev:2222/acme/app.git as
// gitea.acme.dev:2222/acme/app.
func upstreamWords(u string) string {
	s := strings.TrimPrefix(u, "ssh://")
	if i := strings.Index(s, "@"); i >= 0 && i < strings.Index(s+"/", "/") {
		s = s[i+1:]
	}
	return strings.TrimSuffix(s, ".git")
}

func keySecurity(c Change) []string {
	switch c.Action {
	case Create, Replace:
		if c.Action == Create && c.Before != nil {
			return nil
		}
		return []string{fmt.Sprintf("bottleform mints a deploy key with write access to %s on %s (using %s); it is revoked at destroy",
			str(c.After, "repository"), str(c.After, "api_url"), c.After["token"].Str)}
	case Delete:
		return []string{fmt.Sprintf("the deploy key on %s at %s is revoked", str(c.Before, "repository"), str(c.Before, "api_url"))}
	}
	return nil
}

// envSecurity reports sensitive values handed to the agent itself.
func envSecurity(b string, c Change) []string {
	if c.Action == Delete || c.After == nil {
		return nil
	}
	before := map[string]string{}
	if c.Before != nil && c.Action != Create {
		for k, v := range c.Before["env"].Map {
			if v.Kind == resource.ValueExpr {
				before[k] = v.Str
			}
		}
	}
	env := c.After["env"].Map
	var out []string
	for _, k := range sortedKeys(env) {
		v := env[k]
		if v.Kind != resource.ValueExpr || before[k] == v.Str {
			continue
		}
		out = append(out, fmt.Sprintf("bottle %s's agent receives %s in its environment as %s", b, v.Str, k))
	}
	return out
}

func authSecurity(b string, c Change) []string {
	if c.Action == Delete {
		return nil
	}
	bt := ""
	if c.Before != nil && c.Action != Create {
		bt = c.Before["token"].Str
	}
	at := c.After["token"].Str
	if at == bt {
		return nil
	}
	provider := str(c.After, "provider")
	if at == "" {
		return []string{fmt.Sprintf("bottle %s's %s agent no longer gets %s injected for its API", b, provider, bt)}
	}
	return []string{fmt.Sprintf("bottle %s's %s agent is authenticated with %s, injected by the gateway; the agent holds only a placeholder", b, provider, at)}
}

func mcpSecurity(b string, c Change) []string {
	name := c.Addr.Key
	switch c.Action {
	case Delete:
		if name == "supervise" {
			return []string{fmt.Sprintf("bottle %s's agent can no longer propose grants (supervise removed)", b)}
		}
		return []string{fmt.Sprintf("bottle %s's agent no longer uses MCP server %s", b, name)}
	case Create:
		if c.Before != nil {
			return nil
		}
		if name == "supervise" {
			return []string{fmt.Sprintf("bottle %s's agent may propose new grants through supervise; a person approves each by editing the definition", b)}
		}
		return []string{fmt.Sprintf("bottle %s's agent uses MCP server %s at %s", b, name, str(c.After, "url"))}
	case Update, Replace:
		if str(c.Before, "url") != str(c.After, "url") {
			return []string{fmt.Sprintf("bottle %s's MCP server %s moves to %s", b, name, str(c.After, "url"))}
		}
	}
	return nil
}

// minus returns the elements of a not in b, in a's order.
func minus(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}
