package egress

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// reason is why the gateway allowed or refused a request. Its String is
// the code written to the log and to refusal bodies; tools may match on it.
type reason int

const (
	reasonGranted             reason = 0
	reasonNotConfigured       reason = 1
	reasonOriginForm          reason = 2
	reasonNoHost              reason = 3
	reasonBadHost             reason = 4
	reasonScheme              reason = 5
	reasonNotGranted          reason = 6
	reasonIPLiteral           reason = 7
	reasonPort                reason = 8
	reasonResolve             reason = 9
	reasonBlockedAddress      reason = 10
	reasonSNIMismatch         reason = 11
	reasonAuthorityMismatch   reason = 12
	reasonMethod              reason = 13
	reasonGitPush             reason = 14
	reasonPathInvalid         reason = 15
	reasonPathNotGranted      reason = 16
	reasonPlainHTTPCredential reason = 17
	reasonCredentialMissing   reason = 18
	reasonNotTLS              reason = 19
	reasonUpstream            reason = 20
	reasonMethodNotGranted    reason = 21
	reasonForgeWrite          reason = 22
	reasonForgePassthrough    reason = 23
)

// reasonInfo is what a refusal says: its code, HTTP status, the words of
// why, and how to get what was refused (a remedy; remedyAsk is replaced by
// the supervise sentence).
type reasonInfo struct {
	code   string
	status int
	words  string
	remedy string
}

const remedyAsk = "ask"

var reasons = [...]reasonInfo{
	reasonGranted:       {"granted", http.StatusOK, "the route grants it", ""},
	reasonNotConfigured: {"not_configured", http.StatusForbidden, "the gateway has not received its configuration yet", "tell the person running this bottle to run `bottleform apply`"},
	reasonOriginForm: {"origin_form", http.StatusBadRequest, "this is the egress proxy, and the request is not a proxy request",
		"set HTTPS_PROXY and HTTP_PROXY to this gateway; clients then send CONNECT host:443 or GET http://host/path"},
	reasonNoHost:     {"no_host", http.StatusBadRequest, "the request names no host", "name the host, as CONNECT host:443 or http://host/path"},
	reasonBadHost:    {"bad_host", http.StatusBadRequest, "the host is not a valid host name", "use the ASCII host name (punycode for international names)"},
	reasonScheme:     {"scheme", http.StatusBadRequest, "only http:// URLs can be sent in absolute form", "send https through CONNECT (set HTTPS_PROXY to this gateway)"},
	reasonNotGranted: {"not_granted", http.StatusForbidden, "the host is not granted to this bottle", remedyAsk},
	reasonIPLiteral: {"ip_literal", http.StatusForbidden, "IP address literals are refused unless a route names that address",
		"use the host name instead; if you need this address itself, " + remedyAsk},
	reasonPort: {"port", http.StatusForbidden, "only port 443 (https, through CONNECT) and port 80 (plain http) are forwarded",
		"use the default port; other ports are not available"},
	reasonResolve: {"resolve_failed", http.StatusBadGateway, "the host name did not resolve", "check the host name"},
	reasonBlockedAddress: {"blocked_address", http.StatusForbidden,
		"the host resolves to a loopback, link-local, private or cloud metadata address",
		"if it is an internal service you need, " + remedyAsk},
	reasonSNIMismatch: {"sni_mismatch", http.StatusMisdirectedRequest, "the TLS server name (SNI) is not the host the tunnel was opened (CONNECT) to",
		"open a new connection (CONNECT) for each host"},
	reasonAuthorityMismatch: {"authority_mismatch", http.StatusMisdirectedRequest,
		"the request's Host (:authority) is not the host the tunnel was opened (CONNECT) to",
		"send requests only for the host you connected to; open a new connection for another host"},
	reasonMethod: {"method", http.StatusMethodNotAllowed, "TRACE, TRACK and CONNECT are not forwarded inside a tunnel", "use another method"},
	reasonGitPush: {"git_push", http.StatusForbidden, "git push goes through the git gate",
		"push with git to the bottle's git remote; the git gate checks the push and forwards it upstream"},
	reasonPathInvalid: {"path_invalid", http.StatusBadRequest,
		"the path has '.' or '..' segments, a backslash, a control character or a double-encoded '.', '/' or '\\'",
		"send the resolved path"},
	reasonPathNotGranted: {"path_not_granted", http.StatusForbidden, "path not granted: the route grants only some paths on this host", remedyAsk},
	reasonPlainHTTPCredential: {"plain_http_credential", http.StatusForbidden,
		"credentialed route over plain HTTP: the gateway never sends a credential in cleartext", "use https:// for this host"},
	reasonCredentialMissing: {"credential_missing", http.StatusForbidden,
		"credential not delivered to the gateway (run bottleform apply)",
		"tell the person running this bottle to run `bottleform apply`"},
	reasonNotTLS:   {"not_tls", http.StatusBadRequest, "the tunnel did not start with a TLS handshake the gateway accepts", "use TLS inside CONNECT tunnels"},
	reasonUpstream: {"upstream_error", http.StatusBadGateway, "the host did not answer", "try again later"},
	reasonMethodNotGranted: {"method_not_granted", http.StatusMethodNotAllowed,
		"method not granted: the route forwards only some methods to this host", remedyAsk},
	reasonForgeWrite: {"forge_write", http.StatusMethodNotAllowed,
		"the host is a git upstream of this bottle (a forge), and its route does not grant this write method: writes through the forge's HTTP API would bypass the git gate's push policy and secret scan",
		"push with git to the bottle's git remote, where the git gate checks the push; for another write, " + remedyAsk},
	reasonForgePassthrough: {"forge_passthrough", http.StatusForbidden,
		"the host is a git upstream of this bottle (a forge), and its route passes TLS through, so the gateway could not keep writes to the forge's HTTP API out",
		"push with git to the bottle's git remote; to reach the host, tell the person running this bottle to remove tls = \"passthrough\" from its route"},
}

func (r reason) String() string { return reasons[r].code }

// status is the HTTP status a refusal for r is answered with.
func (r reason) status() int { return reasons[r].status }

// kind is where a request reached the gateway.
type kind int

const (
	// kindConnect is a CONNECT request to the proxy.
	kindConnect kind = 0
	// kindHTTP is any other request to the proxy: absolute-form
	// (http://host/path) or, refused, origin-form.
	kindHTTP kind = 1
	// kindTunnel is a request inside an intercepted CONNECT tunnel.
	kindTunnel kind = 2
)

// ask is a request as decide sees it: only what the client sent, before any
// network work.
type ask struct {
	Kind   kind
	Method string
	// Scheme is the absolute-form URL's scheme (kindHTTP); "" for
	// origin-form requests.
	Scheme string
	// Target is the CONNECT authority (kindConnect, and kindTunnel: the
	// authority the tunnel was opened to) or the absolute-form URL's
	// host[:port] (kindHTTP).
	Target string
	// Authority is the request's Host or :authority (kindTunnel).
	Authority string
	// SNI is the server name of the tunnel's ClientHello (kindTunnel).
	SNI string
	// Path is the escaped path exactly as it is forwarded; Query the raw
	// query (kindHTTP, kindTunnel).
	Path  string
	Query string
	// Overrides are the values of the request's method-override headers
	// (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override, in any
	// spelling; see methodOverrides), which some servers obey in place of
	// the method (kindHTTP, kindTunnel).
	Overrides []string
}

// verdict is decide's answer. Route and Host are set when the host matched
// a route, allowed or not.
type verdict struct {
	Allow  bool
	Reason reason
	Route  *route
	// Host is the normalized target host ("" if there is none).
	Host string
	// Method is, for a refused method, the method refused in upper case:
	// the request's own or one it asks for through a method override.
	Method string
}

// decide is the gateway's policy, a pure function of the policy in force
// and the request: it reads no clock, no DNS and no network. Resolution
// and address checks (checkAddrs) follow an allowed kindConnect or kindHTTP
// verdict; for kindTunnel the tunnel's checked addresses are checked again
// against the route in force. A nil policy refuses everything.
func decide(p *policy, a ask) verdict {
	if p == nil {
		return verdict{Reason: reasonNotConfigured}
	}
	if a.Kind == kindHTTP {
		switch {
		case a.Scheme == "" && a.Target == "":
			return verdict{Reason: reasonOriginForm}
		case !strings.EqualFold(a.Scheme, "http"):
			return verdict{Reason: reasonScheme}
		}
	}
	rawHost, port, ok := splitTarget(a.Target)
	if !ok || rawHost == "" {
		return verdict{Reason: reasonNoHost}
	}
	host, ok := normalizeHost(rawHost)
	if !ok {
		return verdict{Reason: reasonBadHost}
	}
	lit, isLit, valid := parseIPLiteral(host)
	if isLit {
		if !valid {
			return verdict{Reason: reasonIPLiteral, Host: host}
		}
		host = lit.String()
	}
	r := p.routes[host]
	if r == nil {
		if isLit {
			return verdict{Reason: reasonIPLiteral, Host: host}
		}
		return verdict{Reason: reasonNotGranted, Host: host}
	}
	v := verdict{Route: r, Host: host}
	wantPort := "443"
	if a.Kind == kindHTTP {
		wantPort = "80"
		if port == "" {
			port = "80"
		}
	}
	if port != wantPort {
		v.Reason = reasonPort
		return v
	}
	if a.Kind == kindConnect {
		if r.forge && r.TLS == TLSPassthrough {
			v.Reason = reasonForgePassthrough
			return v
		}
		v.Allow = true
		return v
	}

	if a.Kind == kindTunnel {
		if r.TLS != TLSIntercept {
			v.Reason = reasonNotGranted
			return v
		}
		if a.SNI != "" {
			if sni, ok := normalizeHost(a.SNI); !ok || sni != host {
				v.Reason = reasonSNIMismatch
				return v
			}
		}
		if !sameAuthority(a.Authority, host) {
			v.Reason = reasonAuthorityMismatch
			return v
		}
	}
	if m := strings.ToUpper(a.Method); m == "TRACE" || m == "TRACK" || m == http.MethodConnect {
		v.Reason = reasonMethod
		return v
	}
	full, prefixForm, ok := cleanPath(a.Path)
	if !ok {
		v.Reason = reasonPathInvalid
		return v
	}
	if isGitPush(full, a.Query) {
		v.Reason = reasonGitPush
		return v
	}
	for _, m := range askedMethods(a) {
		if why := r.method(m); why != reasonGranted {
			v.Reason, v.Method = why, asciiUpper(m)
			return v
		}
	}
	if !pathGranted(r.Paths, prefixForm) {
		v.Reason = reasonPathNotGranted
		return v
	}
	if r.TokenSlot != "" {
		if a.Kind == kindHTTP {
			v.Reason = reasonPlainHTTPCredential
			return v
		}
		if p.slots[r.TokenSlot] == "" {
			v.Reason = reasonCredentialMissing
			return v
		}
	}
	v.Allow = true
	return v
}

// askedMethods are the methods a request may be read as: its own, each
// comma-separated element of its method-override headers, and each
// _method query parameter (which frameworks such as Rails and Symfony
// obey on a POST). A server obeying an override it was not checked for
// would turn a granted read into a write.
func askedMethods(a ask) []string {
	out := []string{a.Method}
	for _, v := range a.Overrides {
		for m := range strings.SplitSeq(v, ",") {
			if m = strings.Trim(m, " \t"); m != "" {
				out = append(out, m)
			}
		}
	}
	for pair := range strings.FieldsFuncSeq(a.Query, func(r rune) bool { return r == '&' || r == ';' }) {
		k, val, _ := strings.Cut(pair, "=")
		if asciiLower(lenientUnescape(k)) == "_method" {
			if m := strings.Trim(lenientUnescape(val), " \t"); m != "" {
				out = append(out, m)
			}
		}
	}
	return out
}

// method decides one method a request asks for on route r: TRACE, TRACK
// and CONNECT never; else a method the route forwards, compared in ASCII
// upper case (so "post" and "Post" are POST).
func (r *route) method(m string) reason {
	m = asciiUpper(m)
	switch {
	case m == "TRACE" || m == "TRACK" || m == http.MethodConnect:
		return reasonMethod
	case r.methods == nil || slices.Contains(r.methods, m):
		return reasonGranted
	case r.forge && !slices.Contains(readMethods, m):
		return reasonForgeWrite
	}
	return reasonMethodNotGranted
}

// splitTarget splits host[:port]; the port, if any, must be decimal digits.
// A bracketed IPv6 literal keeps its brackets for normalizeHost.
func splitTarget(t string) (host, port string, ok bool) {
	host = t
	unbracketedIPv6 := strings.Count(t, ":") > 1 && !strings.HasPrefix(t, "[")
	if strings.Contains(t, ":") && !strings.HasSuffix(t, "]") && !unbracketedIPv6 {
		h, p, err := net.SplitHostPort(t)
		if err != nil {
			return "", "", false
		}
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return "", "", false
		}
		n, err := strconv.Atoi(p)
		if err != nil || n > 65535 {
			return "", "", false
		}
		host, port = h, strconv.Itoa(n)
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return host, port, true
}

// sameAuthority reports whether a request's Host names host, with no port
// or port 443.
func sameAuthority(authority, host string) bool {
	h, port, ok := splitTarget(authority)
	if !ok || (port != "" && port != "443") {
		return false
	}
	n, ok := normalizeHost(h)
	if !ok {
		return false
	}
	if lit, isLit, valid := parseIPLiteral(n); isLit {
		return valid && lit.String() == host
	}
	return n == host
}

// normalizeHost lower-cases an ASCII host name and strips one trailing
// dot; an IPv6 literal, bracketed or not, comes back in canonical form
// without brackets or zone. It refuses anything but letters,
// digits, '-', '_' and '.', so that no Unicode case folding (the Kelvin
// sign lower-cases to 'k') can make two spellings of a host meet.
func normalizeHost(h string) (string, bool) {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") && strings.Contains(h, ":") {
		h = h[1 : len(h)-1]
	}
	if strings.Contains(h, ":") {
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is6() {
			return "", false
		}
		return a.WithZone("").String(), true
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "", false
	}
	b := []byte(h)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return "", false
		}
	}
	return string(b), true
}

// parseIPLiteral reports whether a normalized host is an address literal,
// and which address. It follows the WHATWG URL host parser: a host whose
// last label is a number (decimal, 0x hex, or 0-prefixed octal) is an IPv4
// literal in inet_aton form (2130706433, 0x7f.1, 0177.0.0.1, 127.1), and
// invalid (valid false) if it does not fit.
func parseIPLiteral(h string) (addr netip.Addr, literal, valid bool) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.WithZone("").Unmap(), true, true
	}
	parts := strings.Split(h, ".")
	last := parts[len(parts)-1]
	if _, ok := inetNumber(last); !ok && (last == "" || strings.Trim(last, "0123456789") != "") {
		return netip.Addr{}, false, false
	}
	if len(parts) > 4 {
		return netip.Addr{}, true, false
	}
	var v uint64
	for i, p := range parts {
		n, ok := inetNumber(p)
		if !ok {
			return netip.Addr{}, true, false
		}
		if i < len(parts)-1 {
			if n > 255 {
				return netip.Addr{}, true, false
			}
			v = v<<8 | n
			continue
		}
		rest := uint(4 - i) // bytes the last part fills
		if n >= 1<<(8*rest) {
			return netip.Addr{}, true, false
		}
		v = v<<(8*rest) | n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, true
}

// inetNumber parses one inet_aton part: 0x/0X hex, 0-prefixed octal or
// decimal. It never overflows: values above 2^32 fail.
func inetNumber(s string) (uint64, bool) {
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
		if s == "" {
			return 0, true
		}
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" || len(s) > 32 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil || n > 1<<32 {
		return 0, false
	}
	return n, true
}

// cleanPath checks an escaped request path and returns two decodings:
// full, with every escape decoded (for the '.'-segment and git checks), and
// prefixForm, with every escape decoded but %2F, which stays "%2F" (for the
// prefix check, because upstreams treat an encoded slash as part of a
// segment). It refuses, on the fully decoded path: a path not starting
// with '/', '.' or '..' segments (also "..;x", which some servers read as
// ".."), a backslash, control characters, and a '%2e', '%2f' or '%5c' left
// after decoding (double encoding). So neither an upstream that decodes
// %2F nor one that does not can resolve a path outside the prefix it
// matched. The empty path is "/".
func cleanPath(escaped string) (full, prefixForm string, ok bool) {
	if escaped == "" {
		escaped = "/"
	}
	if escaped[0] != '/' {
		return "", "", false
	}
	full, err := url.PathUnescape(escaped)
	if err != nil {
		return "", "", false
	}
	for _, c := range []byte(full) {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", "", false
		}
	}
	low := asciiLower(full)
	if strings.Contains(low, "%2e") || strings.Contains(low, "%2f") || strings.Contains(low, "%5c") {
		return "", "", false
	}
	for seg := range strings.SplitSeq(full, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return "", "", false
		}
	}
	pieces := splitFold(escaped, "%2f")
	for i, s := range pieces {
		if pieces[i], err = url.PathUnescape(s); err != nil {
			return "", "", false
		}
	}
	return full, strings.Join(pieces, "%2F"), true
}

// splitFold splits s around each ASCII case-insensitive occurrence of sep
// (sep in lower case).
func splitFold(s, sep string) []string {
	var out []string
	low := asciiLower(s) // same length as s, unlike strings.ToLower
	for {
		i := strings.Index(low, sep)
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i])
		s, low = s[i+len(sep):], low[i+len(sep):]
	}
}

// pathGranted reports whether path (in prefixForm) is under one of the
// prefixes. Prefixes are segment-aligned: "/repos/acme/app/" and
// "/repos/acme/app" both grant /repos/acme/app and everything below it,
// never /repos/acme/application. No prefixes grant every path.
func pathGranted(prefixes []string, path string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		p = strings.TrimSuffix(p, "/")
		if p == "" || path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// isGitPush reports whether a request may be part of a git push over
// smart HTTP: its decoded path or query names git-receive-pack anywhere,
// in any case (the push POST .../git-receive-pack, and
// info/refs?service=git-receive-pack). Matching anywhere refuses a few
// paths that are not pushes; no push gets through.
func isGitPush(fullPath, rawQuery string) bool {
	return strings.Contains(strings.ToLower(fullPath+"?"+lenientUnescape(rawQuery)), "git-receive-pack")
}

// lenientUnescape decodes every valid %XX escape and '+' and keeps the
// rest as it is, so that one bad escape cannot hide the others from a
// check (servers decode query pairs one by one).
func lenientUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		case c == '+':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// canonicalHost is a host as routes are keyed: normalized, an address
// literal in canonical form.
func canonicalHost(h string) (string, bool) {
	host, ok := normalizeHost(h)
	if !ok {
		return "", false
	}
	if a, lit, valid := parseIPLiteral(host); lit {
		return a.String(), valid
	}
	return host, true
}

// asciiUpper upper-cases ASCII letters only, so that no Unicode case
// mapping ('ſ' upper-cases to 'S') can make a method meet another.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// asciiLower lower-cases ASCII letters only, keeping every byte offset.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
