package importer

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agext/levenshtein"
	"github.com/goccy/go-yaml/ast"
)

// manifest is one bot-bottle manifest as written: a bottle, or an agent
// on a bottle. Notes are kept where their comment goes in the output.
type manifest struct {
	file  string
	name  string
	agent bool // an agents/*.md manifest: its bottle is extended

	extends   *text // extends, or an agent's bottle
	env       []envEntry
	provider  *provider
	user      *gitUser
	gateNotes []Note
	repos     []*repo
	routes    []*route
	egNotes   []Note
	supervise *flag
	skills    []text
	skillsAt  int
	// subagent are the Claude Code subagent fields bot-bottle ignored
	// ("model: opus"), kept as comments.
	subagent []string
	notes    []Note // bottle-level: unknown keys
	prompt   string
}

type text struct {
	s    string
	line int
}

type flag struct {
	v    bool
	line int
}

type envEntry struct {
	name  string
	line  int
	value string
}

// provider is agent_provider.
type provider struct {
	line                  int
	template, dockerfile  *text
	authToken             *text
	forwardHostCredential *flag
	notes                 []Note
}

// gitUser is git-gate.user.
type gitUser struct {
	line        int
	name, email *text
	notes       []Note
}

// repo is one entry of git-gate.repos.
type repo struct {
	name        string
	line        int
	url         text
	identity    *text
	hostKey     *text
	provisioned *provisionedKey
	notes       []Note
}

type provisionedKey struct {
	line     int
	provider text
	tokenEnv text
}

// route is one entry of egress.routes.
type route struct {
	host        string
	line        int
	paths       []string
	methods     []string
	auth        *routeAuth
	passthrough *flag
	ssrf        []text
	// unmapped is why the route cannot be granted as written (a match
	// bottleform cannot express); such a route is left out, not widened.
	unmapped string
	notes    []Note
}

type routeAuth struct {
	line     int
	scheme   string
	tokenRef text
}

var (
	nameRe    = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	repoRe    = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

var (
	bottleKeys   = []string{"agent_provider", "egress", "env", "extends", "git-gate", "supervise"}
	agentKeys    = []string{"bottle", "color", "description", "git-gate", "memory", "model", "name", "skills"}
	subagentKeys = map[string]bool{"color": true, "description": true, "memory": true, "model": true, "name": true}
)

// parse reads one manifest. agentHint says the file lies in an agents/
// directory; a manifest with a `bottle` key is an agent anyway.
func parse(file string, data []byte, agentHint bool) (*manifest, []*Error) {
	m := &manifest{file: file, name: strings.TrimSuffix(filepath.Base(file), ".md")}
	if !nameRe.MatchString(m.name) {
		return nil, []*Error{{File: file, Line: 1, Msg: fmt.Sprintf("the file name %q is not a valid bottle name: bot-bottle and bottleform both need ^[a-z][a-z0-9-]*$ (lower-case letters, digits and '-', starting with a letter); rename the file", m.name)}}
	}
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:invalidUTF8(data)], []byte("\n"))
		return nil, []*Error{{File: file, Line: line, Msg: "the manifest is not UTF-8 text"}}
	}
	yamlText, offset, body, ferr := frontMatter(file, data)
	if ferr != nil {
		return nil, []*Error{ferr}
	}
	m.prompt = strings.TrimSpace(body)
	r := &yamlReader{file: file, offset: offset}
	top, ok := r.parseYAML(yamlText)
	if !ok {
		return nil, r.errs
	}
	m.agent = agentHint
	for _, e := range top {
		if e.key == "bottle" {
			m.agent = true
		}
	}
	for _, e := range top {
		if m.agent {
			m.agentKey(r, e)
		} else {
			m.bottleKey(r, e)
		}
	}
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	return m, nil
}

func (m *manifest) note(line int, format string, args ...any) Note {
	return Note{File: m.file, Line: line, Text: printable(fmt.Sprintf(format, args...))}
}

// printable escapes control characters, so that text from a manifest
// can neither end a comment line nor reach a terminal as a control
// sequence.
func printable(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (m *manifest) unknown(e entry, known []string) Note {
	hint := ""
	if s := suggest(e.key, known); s != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	return m.note(e.line, "unknown key %q%s: not imported", e.key, hint)
}

func (m *manifest) bottleKey(r *yamlReader, e entry) {
	switch e.key {
	case "extends":
		if t, ok := r.str(e.val, "extends", e.line); ok {
			m.extends = &t
		}
	case "env":
		m.readEnv(r, e)
	case "agent_provider":
		m.readProvider(r, e)
	case "git-gate":
		m.readGate(r, e, false)
	case "egress":
		m.readEgress(r, e)
	case "supervise":
		if f, ok := r.boolean(e.val, "supervise", e.line); ok {
			m.supervise = &f
		}
	case "git":
		r.errorf(e.line, "the key \"git\" is bot-bottle's old repository format, which bot-bottle itself refuses since PRD 0047: move the repositories to git-gate.repos, then import")
	default:
		m.notes = append(m.notes, m.unknown(e, bottleKeys))
	}
}

func (m *manifest) agentKey(r *yamlReader, e entry) {
	switch {
	case e.key == "bottle":
		if t, ok := r.str(e.val, "bottle", e.line); ok {
			if t.s == m.name {
				r.errorf(t.line, "the agent %q runs on a bottle of the same name; in bottleform agents and bottles share one namespace: rename the agent's file", m.name)
				return
			}
			m.extends = &t
		}
	case e.key == "skills":
		m.skillsAt = e.line
		m.skills, _ = r.strs(e.val, "skills", e.line)
	case e.key == "git-gate":
		m.readGate(r, e, true)
	case subagentKeys[e.key]:
		v, ok := scalar(e.val)
		if !ok {
			v = "(" + kind(e.val) + ")"
		}
		m.subagent = append(m.subagent, fmt.Sprintf("%s: %s", e.key, strings.Join(strings.Fields(v), " ")))
	default:
		m.notes = append(m.notes, m.unknown(e, agentKeys))
	}
}

func (m *manifest) readEnv(r *yamlReader, e entry) {
	entries, _ := r.mapping(e.val, "env", e.line)
	for _, kv := range entries {
		v, ok := scalar(kv.val)
		if !ok {
			r.errorf(r.line(kv.val, kv.line), "env %s must be a string (a literal, \"?\" or \"?PROMPT\" to ask, \"${VAR}\" to read the host), not %s", kv.key, kind(kv.val))
			continue
		}
		m.env = append(m.env, envEntry{name: kv.key, line: kv.line, value: v})
	}
}

var templates = []string{"claude", "codex"}

func (m *manifest) readProvider(r *yamlReader, e entry) {
	entries, ok := r.mapping(e.val, "agent_provider", e.line)
	if !ok {
		return
	}
	p := &provider{line: e.line}
	for _, kv := range entries {
		what := "agent_provider." + kv.key
		switch kv.key {
		case "template":
			t, ok := r.str(kv.val, what, kv.line)
			if !ok {
				continue
			}
			if t.s != "claude" && t.s != "codex" {
				hint := ""
				if s := suggest(t.s, templates); s != "" {
					hint = fmt.Sprintf("; did you mean %q?", s)
				}
				r.errorf(t.line, "unknown agent provider %q: the template is \"claude\" or \"codex\"%s", t.s, hint)
				continue
			}
			p.template = &t
		case "dockerfile":
			if t, ok := r.str(kv.val, what, kv.line); ok {
				p.dockerfile = &t
			}
		case "auth_token":
			if t, ok := r.str(kv.val, what, kv.line); ok {
				if !envNameRe.MatchString(t.s) {
					r.errorf(t.line, "agent_provider.auth_token is the name of a host environment variable, and %q is not one", t.s)
					continue
				}
				p.authToken = &t
			}
		case "forward_host_credentials":
			if f, ok := r.boolean(kv.val, what, kv.line); ok {
				p.forwardHostCredential = &f
			}
		default:
			p.notes = append(p.notes, m.unknown(kv, []string{"auth_token", "dockerfile", "forward_host_credentials", "template"}))
		}
	}
	m.provider = p
}

func (m *manifest) readGate(r *yamlReader, e entry, agent bool) {
	entries, _ := r.mapping(e.val, "git-gate", e.line)
	for _, kv := range entries {
		switch kv.key {
		case "user":
			m.readUser(r, kv)
		case "repos":
			if agent {
				r.errorf(kv.line, "git-gate.repos on an agent: bot-bottle refuses repositories on agents (they carry credentials and host trust); move them to the bottle %q", m.parentName())
				continue
			}
			m.readRepos(r, kv)
		default:
			m.gateNotes = append(m.gateNotes, m.unknown(kv, []string{"repos", "user"}))
		}
	}
}

func (m *manifest) parentName() string {
	if m.extends == nil {
		return ""
	}
	return m.extends.s
}

func (m *manifest) readUser(r *yamlReader, e entry) {
	entries, _ := r.mapping(e.val, "git-gate.user", e.line)
	u := &gitUser{line: e.line}
	for _, kv := range entries {
		switch kv.key {
		case "name", "email":
			t, ok := r.str(kv.val, "git-gate.user."+kv.key, kv.line)
			if !ok || strings.TrimSpace(t.s) == "" {
				continue // bot-bottle takes only non-empty fields
			}
			if kv.key == "name" {
				u.name = &t
			} else {
				u.email = &t
			}
		default:
			u.notes = append(u.notes, m.unknown(kv, []string{"email", "name"}))
		}
	}
	m.user = u
}

func (m *manifest) readRepos(r *yamlReader, e entry) {
	entries, _ := r.mapping(e.val, "git-gate.repos", e.line)
	for _, kv := range entries {
		rp := &repo{name: kv.key, line: kv.line}
		if !repoRe.MatchString(rp.name) || rp.name == "." || rp.name == ".." {
			r.errorf(kv.line, "the repository name %q is not valid: use letters, digits, '.', '_' and '-' only", rp.name)
			continue
		}
		what := "git-gate.repos." + rp.name
		fields, _ := r.mapping(kv.val, what, kv.line)
		hasURL := false
		for _, f := range fields {
			switch f.key {
			case "url":
				if t, ok := r.str(f.val, what+".url", f.line); ok {
					rp.url, hasURL = t, true
					if !strings.HasPrefix(t.s, "ssh://") {
						r.errorf(t.line, "%s.url %q is not an ssh:// URL: the git gate reaches upstreams over SSH; write ssh://USER@HOST[:PORT]/OWNER/REPO.git", what, t.s)
					}
				}
			case "identity":
				if t, ok := r.str(f.val, what+".identity", f.line); ok {
					rp.identity = &t
				}
			case "host_key":
				if t, ok := r.str(f.val, what+".host_key", f.line); ok {
					rp.hostKey = &t
				}
			case "provisioned_key":
				rp.provisioned = m.readProvisioned(r, f, what)
			case "extra_hosts":
				rp.notes = append(rp.notes, m.note(f.line, "extra_hosts: the git gate resolves upstreams with DNS and takes no host entries; not imported"))
			default:
				rp.notes = append(rp.notes, m.unknown(f, []string{"extra_hosts", "host_key", "identity", "provisioned_key", "url"}))
			}
		}
		if !hasURL {
			r.errorf(kv.line, "%s has no url: give url: ssh://USER@HOST[:PORT]/OWNER/REPO.git", what)
			continue
		}
		switch {
		case rp.identity != nil && rp.provisioned != nil:
			r.errorf(rp.provisioned.line, "%s has both identity and provisioned_key, which bot-bottle refuses: keep one", what)
			continue
		case rp.identity == nil && rp.provisioned == nil:
			r.errorf(kv.line, "%s has neither identity (a key file) nor provisioned_key (a Gitea deploy key): give one", what)
			continue
		}
		m.repos = append(m.repos, rp)
	}
}

func (m *manifest) readProvisioned(r *yamlReader, e entry, repoWhat string) *provisionedKey {
	what := repoWhat + ".provisioned_key"
	fields, ok := r.mapping(e.val, what, e.line)
	if !ok {
		return nil
	}
	pk := &provisionedKey{line: e.line}
	var hasProvider, hasToken bool
	for _, f := range fields {
		switch f.key {
		case "provider":
			t, ok := r.str(f.val, what+".provider", f.line)
			if !ok {
				continue
			}
			if t.s != "gitea" {
				r.errorf(t.line, "unknown provisioner %q in %s: bot-bottle and bottleform mint deploy keys on Gitea only (provider: gitea)", t.s, what)
				continue
			}
			pk.provider, hasProvider = t, true
		case "token_env", "provisioner_token":
			if hasToken {
				r.errorf(f.line, "%s has both token_env and provisioner_token; keep one", what)
				continue
			}
			t, ok := r.str(f.val, what+"."+f.key, f.line)
			if !ok {
				continue
			}
			if !envNameRe.MatchString(t.s) {
				r.errorf(t.line, "%s.%s is the name of a host environment variable holding the Gitea token, and %q is not one", what, f.key, t.s)
				continue
			}
			pk.tokenEnv, hasToken = t, true
		default:
			r.errorf(f.line, "unknown key %q in %s: it takes provider and token_env", f.key, what)
		}
	}
	if !hasProvider {
		r.errorf(e.line, "%s has no provider: write provider: gitea", what)
	}
	if !hasToken {
		r.errorf(e.line, "%s has no token_env: name the host environment variable that holds the Gitea API token", what)
	}
	return pk
}

func (m *manifest) readEgress(r *yamlReader, e entry) {
	entries, _ := r.mapping(e.val, "egress", e.line)
	seen := map[string]int{}
	for _, kv := range entries {
		if kv.key != "routes" {
			m.egNotes = append(m.egNotes, m.unknown(kv, []string{"routes"}))
			continue
		}
		items, _ := r.list(kv.val, "egress.routes", kv.line)
		for i, it := range items {
			rt := m.readRoute(r, it, fmt.Sprintf("egress.routes[%d]", i), r.line(it, kv.line))
			if rt == nil {
				continue
			}
			if prev, dup := seen[rt.host]; dup {
				r.errorf(rt.line, "a second route for %s (the first is on line %d): one route per host; merge them", rt.host, prev)
				continue
			}
			seen[rt.host] = rt.line
			m.routes = append(m.routes, rt)
		}
	}
}

func (m *manifest) readRoute(r *yamlReader, n ast.Node, what string, line int) *route {
	fields, ok := r.mapping(n, what, line)
	if !ok {
		return nil
	}
	rt := &route{line: line}
	var matches *entry
	for _, f := range fields {
		switch f.key {
		case "host":
			if t, ok := r.str(f.val, what+".host", f.line); ok {
				rt.host = strings.ToLower(strings.TrimSpace(t.s))
			}
		case "path_allowlist":
			ps, _ := r.strs(f.val, what+".path_allowlist", f.line)
			for _, p := range ps {
				rt.paths = append(rt.paths, p.s)
			}
		case "auth":
			rt.auth = m.readAuth(r, f, what)
		case "role":
			role, _ := scalar(f.val)
			rt.notes = append(rt.notes, m.note(f.line, "role %q: routes take no role (bot-bottle refuses every role too); provider routes come from the agent block; not imported", role))
		case "pipelock":
			m.readPipelock(r, f, what, rt)
		case "matches":
			matches = &f
		case "dlp":
			rt.notes = append(rt.notes, m.note(f.line, "dlp: the gateway has no per-route DLP detectors (pushes are scanned by the git gate); not imported"))
		default:
			rt.notes = append(rt.notes, m.unknown(f, []string{"auth", "dlp", "host", "matches", "path_allowlist", "pipelock", "role"}))
		}
	}
	if rt.host == "" {
		r.errorf(line, "%s has no host: every route names the host it grants", what)
		return nil
	}
	if matches != nil {
		m.readMatches(r, *matches, what, rt)
	}
	return rt
}

func (m *manifest) readAuth(r *yamlReader, e entry, routeWhat string) *routeAuth {
	what := routeWhat + ".auth"
	fields, ok := r.mapping(e.val, what, e.line)
	if !ok {
		return nil
	}
	a := &routeAuth{line: e.line}
	var hasScheme, hasRef bool
	for _, f := range fields {
		switch f.key {
		case "scheme":
			t, ok := r.str(f.val, what+".scheme", f.line)
			if !ok {
				continue
			}
			if t.s != "Bearer" && t.s != "token" {
				r.errorf(t.line, "%s.scheme %q is not supported: use Bearer or token", what, t.s)
				continue
			}
			a.scheme, hasScheme = t.s, true
		case "token_ref":
			t, ok := r.str(f.val, what+".token_ref", f.line)
			if !ok {
				continue
			}
			if !envNameRe.MatchString(t.s) {
				r.errorf(t.line, "%s.token_ref is the name of a host environment variable, and %q is not one", what, t.s)
				continue
			}
			a.tokenRef, hasRef = t, true
		default:
			r.errorf(f.line, "unknown key %q in %s: it takes scheme and token_ref", f.key, what)
		}
	}
	switch {
	case !hasScheme && !hasRef:
		r.errorf(e.line, "%s is empty: give scheme and token_ref, or remove auth", what)
	case !hasScheme:
		r.errorf(e.line, "%s has token_ref but no scheme: add scheme: Bearer (or token)", what)
	case !hasRef:
		r.errorf(e.line, "%s has scheme but no token_ref: name the host environment variable that holds the token", what)
	}
	return a
}

func (m *manifest) readPipelock(r *yamlReader, e entry, routeWhat string, rt *route) {
	what := routeWhat + ".pipelock"
	fields, _ := r.mapping(e.val, what, e.line)
	for _, f := range fields {
		switch f.key {
		case "tls_passthrough":
			if fl, ok := r.boolean(f.val, what+".tls_passthrough", f.line); ok {
				rt.passthrough = &fl
			}
		case "ssrf_ip_allowlist":
			rt.ssrf, _ = r.strs(f.val, what+".ssrf_ip_allowlist", f.line)
		default:
			rt.notes = append(rt.notes, m.unknown(f, []string{"ssrf_ip_allowlist", "tls_passthrough"}))
		}
	}
}

// readMatches reads a route's matches (bot-bottle after its seed). Path
// prefixes and methods map to paths and methods; what would have to be
// widened to fit (another path type, header conditions, method sets that
// differ per match) leaves the route out instead.
func (m *manifest) readMatches(r *yamlReader, e entry, routeWhat string, rt *route) {
	what := routeWhat + ".matches"
	items, _ := r.list(e.val, what, e.line)
	if len(items) == 0 {
		return
	}
	if len(rt.paths) > 0 {
		rt.unmapped = "it has both path_allowlist and matches"
		return
	}
	var methodSets []string
	methods := map[string]bool{}
	everyPath := false // a match without paths grants every path
	for i, it := range items {
		mw := fmt.Sprintf("%s[%d]", what, i)
		fields, ok := r.mapping(it, mw, e.line)
		if !ok {
			continue
		}
		var own []string
		hasPaths := false
		for _, f := range fields {
			switch f.key {
			case "paths":
				ps, _ := r.list(f.val, mw+".paths", f.line)
				for j, p := range ps {
					pf, _ := r.mapping(p, fmt.Sprintf("%s.paths[%d]", mw, j), f.line)
					typ, value := "prefix", ""
					for _, x := range pf {
						s, _ := scalar(x.val)
						switch x.key {
						case "type":
							typ = s
						case "value":
							value = s
						}
					}
					if typ != "prefix" {
						rt.unmapped = fmt.Sprintf("its path match of type %q (line %d) cannot be written as a prefix", typ, f.line)
						continue
					}
					rt.paths = append(rt.paths, value)
					hasPaths = true
				}
			case "methods":
				ms, _ := r.strs(f.val, mw+".methods", f.line)
				for _, x := range ms {
					own = append(own, strings.ToUpper(x.s))
					methods[strings.ToUpper(x.s)] = true
				}
			case "headers":
				rt.unmapped = fmt.Sprintf("it matches on headers (line %d), which routes cannot", f.line)
			default:
				rt.unmapped = fmt.Sprintf("its match key %q (line %d) is not known", f.key, f.line)
			}
		}
		methodSets = append(methodSets, strings.Join(sortedSet(own), ","))
		everyPath = everyPath || !hasPaths
	}
	if everyPath {
		rt.paths = nil
	}
	for _, s := range methodSets {
		if s != methodSets[0] && rt.unmapped == "" {
			rt.unmapped = "its matches grant different methods on different paths, and a route has one set of each"
		}
	}
	rt.methods = sortedKeys(methods)
}

// invalidUTF8 is the offset of the first byte of data that is not UTF-8.
func invalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(data)
}

// suggest returns the candidate closest to s when it is a likely typo.
func suggest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(s, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}
