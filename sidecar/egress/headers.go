package egress

import (
	"net/http"
	"strings"
)

// credentialNames are the request headers that carry credentials, in
// normalized spelling (lower case, '_' and '.' read as '-'): the gateway
// removes them, in any spelling, from every request it forwards, before it
// injects the route's own credential. So "X-Api-Key", "x_api_key" and
// "X.API.Key" are all removed.
//
// Cookie is on the list: a cookie is a session credential, and no bottle
// should carry one. Set-Cookie is removed from every response for the same
// reason: a session minted on the injected credential would be a copy of
// it in the bottle. Cookies never cross the gateway.
var credentialNames = map[string]bool{
	"authorization":             true,
	"proxy-authorization":       true,
	"x-api-key":                 true,
	"api-key":                   true,
	"x-auth-token":              true,
	"x-access-token":            true,
	"private-token":             true,
	"job-token":                 true,
	"x-goog-api-key":            true,
	"x-amz-security-token":      true,
	"x-gitlab-token":            true,
	"x-vault-token":             true,
	"cookie":                    true,
	"x-functions-key":           true,
	"ocp-apim-subscription-key": true,
}

// credentialFragments widen the list: a header whose normalized name
// contains one of them is treated as a credential too (x-github-token,
// x-client-secret, x-auth-user, api-key-2, ...).
var credentialFragments = []string{"token", "secret", "password", "passwd", "api-key", "apikey", "credential", "auth"}

// normalizeHeaderName lower-cases a header name and reads '_' and '.' as
// '-'.
func normalizeHeaderName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '_' || r == '.':
			return '-'
		case 'A' <= r && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, name)
}

// isCredentialHeader reports whether a request header is a client-supplied
// credential the gateway removes.
func isCredentialHeader(name string) bool {
	n := normalizeHeaderName(name)
	if credentialNames[n] {
		return true
	}
	for _, f := range credentialFragments {
		if strings.Contains(n, f) {
			return true
		}
	}
	return false
}

// overrideNames are the method-override headers, in normalized spelling
// (see normalizeHeaderName): servers that obey one treat the request as
// the method it names, so decide checks their values like the method.
var overrideNames = map[string]bool{
	"x-http-method-override": true,
	"x-http-method":          true,
	"x-method-override":      true,
}

// methodOverrides returns the values of a request's method-override
// headers, in any spelling ("X_HTTP_Method_Override" too: Rack and CGI
// read '-' and '_' alike).
func methodOverrides(h http.Header) []string {
	var out []string
	for name, values := range h {
		if overrideNames[normalizeHeaderName(name)] {
			out = append(out, values...)
		}
	}
	return out
}

// minSecretLen is the shortest slot value the value check looks for:
// shorter values would match ordinary header values by chance.
const minSecretLen = 8

// containsSecret reports whether any of values contains one of secrets.
func containsSecret(values []string, secrets []string) bool {
	for _, v := range values {
		for _, s := range secrets {
			if strings.Contains(v, s) {
				return true
			}
		}
	}
	return false
}

// stripRequest removes from an outgoing request's headers every
// credential header (isCredentialHeader) and, as a defence, every header
// whose value contains a slot's value. Request trailers are the caller's
// to drop.
func stripRequest(h http.Header, secrets []string) {
	for name, values := range h {
		if isCredentialHeader(name) || containsSecret(values, secrets) {
			delete(h, name)
		}
	}
}

// inject sets the route's credential on an outgoing request whose
// headers stripRequest has cleaned. It is the only place a slot value is
// ever written.
func inject(h http.Header, r *route, value string) {
	if r.TokenSlot != "" {
		h.Set("Authorization", r.AuthScheme+" "+value)
	}
}

// stripResponse removes Set-Cookie (see credentialNames) and any header
// whose value contains a slot's value from a response on its way into the
// bottle.
func stripResponse(h http.Header, secrets []string) {
	for name, values := range h {
		n := normalizeHeaderName(name)
		if n == "set-cookie" || n == "set-cookie2" || containsSecret(values, secrets) {
			delete(h, name)
		}
	}
}
