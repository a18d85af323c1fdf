package egress

import (
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// bypassPolicy is the policy the bypass suite attacks. Every granted name
// resolves to a public documentation address or to a refused one; the
// gateway runs with DefaultBlocked, and the test network would refuse to
// dial anything but loopback, so a case that got through would show as a
// dial.
func bypassPolicy() Policy {
	return Policy{
		Bottle:    "test",
		Supervise: "propose_egress",
		Routes: []Route{
			{Host: "api.test", TLS: TLSIntercept, AuthScheme: "Bearer", TokenSlot: tokenSlot, Paths: []string{"/repos/acme/app/"}},
			{Host: "other.test", TLS: TLSPassthrough},
			{Host: "plain.test", TLS: TLSIntercept},
			{Host: "kite.test", TLS: TLSIntercept},
			{Host: "missing.test", TLS: TLSIntercept, AuthScheme: "Bearer", TokenSlot: "EGRESS_TOKEN_9"},
			{Host: "rebind.test", TLS: TLSIntercept},
			{Host: "private.test", TLS: TLSIntercept},
			{Host: "mixed.test", TLS: TLSIntercept},
			{Host: "mapped.test", TLS: TLSIntercept},
			{Host: "meta.test", TLS: TLSIntercept, AllowPrivate: true},
			{Host: "alibaba.test", TLS: TLSIntercept, AllowPrivate: true},
			{Host: "nat64.test", TLS: TLSIntercept, AllowPrivate: true},
			{Host: "forge.test", TLS: TLSIntercept},
			{Host: "forgerw.test", TLS: TLSIntercept, Methods: []string{"GET", "POST"}},
			{Host: "forgepass.test", TLS: TLSPassthrough},
		},
		Slots:      map[string]string{tokenSlot: realToken},
		ForgeHosts: []string{"forge.test", "forgerw.test", "forgepass.test"},
	}
}

var bypassNames = map[string][]netip.Addr{
	"api.test":       {public},
	"other.test":     {public},
	"plain.test":     {public},
	"kite.test":      {public},
	"missing.test":   {public},
	"rebind.test":    addrs("127.0.0.1"),
	"private.test":   addrs("10.1.2.3"),
	"mixed.test":     addrs("198.51.100.8", "192.168.1.10"),
	"mapped.test":    addrs("::ffff:127.0.0.1"),
	"meta.test":      addrs("169.254.169.254"),
	"alibaba.test":   addrs("100.100.100.200"),
	"nat64.test":     addrs("64:ff9b::a9fe:a9fe"),
	"forge.test":     {public},
	"forgerw.test":   {public},
	"forgepass.test": {public},
}

func connect(authority string) string {
	return "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"
}

func get(target, host string, extra ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(extra, "") + "\r\n"
}

// TestBypass is the bypass suite: every case is an attempt to get past
// the gateway, and each must be refused with its status and reason code
// in the body, logged as a deny with that reason, and never dialled.
func TestBypass(t *testing.T) {
	type result struct {
		status int
		body   string
	}
	raw := func(req string) func(*testing.T, *env) result {
		return func(t *testing.T, e *env) result {
			st, b := e.raw(t, req)
			return result{st, b}
		}
	}
	inTunnel := func(authority, sni, req string) func(*testing.T, *env) result {
		return func(t *testing.T, e *env) result {
			st, b := e.inTunnel(t, authority, sni, req)
			return result{st, b}
		}
	}
	api := func(path string) func(*testing.T, *env) result {
		return inTunnel("api.test:443", "api.test", get(path, "api.test"))
	}
	// noAnswer is a passthrough refusal: the tunnel closes mid-handshake.
	noAnswer := func(authority, sni string) func(*testing.T, *env) result {
		return func(t *testing.T, e *env) result {
			if tc, err := e.tunnel(t, authority, sni, false); err == nil {
				tc.Close()
				t.Fatalf("TLS through %s with SNI %q succeeded", authority, sni)
			}
			return result{}
		}
	}

	cases := []struct {
		name   string
		do     func(*testing.T, *env) result
		status int // 0: no HTTP answer is possible
		reason string
	}{
		// Hosts.
		{"ungranted host (CONNECT)", raw(connect("evil.test:443")), 403, "not_granted"},
		{"ungranted host, plain absolute-form http", raw(get("http://evil.test/", "evil.test")), 403, "not_granted"},
		{"websocket upgrade to an ungranted host", raw(get("http://evil.test/socket", "evil.test",
			"Connection: Upgrade\r\n", "Upgrade: websocket\r\n", "Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")), 403, "not_granted"},
		{"suffix of a granted host", raw(connect("evil.api.test:443")), 403, "not_granted"},
		{"unicode host folding to a granted one", raw("CONNECT \u212aite.test:443 HTTP/1.1\r\nHost: kite.test:443\r\n\r\n"), 400, "bad_host"},
		{"CONNECT with no host", raw(connect(":443")), 400, "no_host"},
		{"origin-form request", raw(get("/repos/acme/app/", "api.test")), 400, "origin_form"},
		{"https in absolute form", raw(get("https://api.test/repos/acme/app/", "api.test")), 400, "scheme"},

		// Ports.
		{"granted host on another port", raw(connect("api.test:8443")), 403, "port"},
		{"granted host on port 80 through CONNECT", raw(connect("api.test:80")), 403, "port"},
		{"CONNECT without a port", raw(connect("api.test")), 403, "port"},
		{"passthrough on a port other than 443", raw(connect("other.test:8443")), 403, "port"},
		{"plain http on a port other than 80", raw(get("http://plain.test:8080/", "plain.test:8080")), 403, "port"},

		// Address literals.
		{"IPv4 literal", raw(connect("127.0.0.1:443")), 403, "ip_literal"},
		{"IPv6 literal", raw(connect("[::1]:443")), 403, "ip_literal"},
		{"decimal IP literal", raw(connect("2130706433:443")), 403, "ip_literal"},
		{"hex IP literal", raw(connect("0x7f.1:443")), 403, "ip_literal"},
		{"octal IP literal", raw(connect("0177.0.0.1:443")), 403, "ip_literal"},
		{"out-of-range numeric host", raw(connect("1.2.3.4.5:443")), 403, "ip_literal"},
		{"metadata address 169.254.169.254", raw(connect("169.254.169.254:443")), 403, "ip_literal"},
		{"metadata address over plain http", raw(get("http://169.254.169.254/latest/meta-data/", "169.254.169.254")), 403, "ip_literal"},
		{"IPv4-mapped metadata literal", raw(connect("[::ffff:169.254.169.254]:443")), 403, "ip_literal"},
		{"AWS IPv6 metadata literal", raw(connect("[fd00:ec2::254]:443")), 403, "ip_literal"},

		// Resolution.
		{"granted name resolving to loopback (DNS rebinding)", raw(connect("rebind.test:443")), 403, "blocked_address"},
		{"granted name resolving to a private address", raw(connect("private.test:443")), 403, "blocked_address"},
		{"granted name with one private answer among public ones", raw(connect("mixed.test:443")), 403, "blocked_address"},
		{"granted name resolving to IPv4-mapped loopback", raw(connect("mapped.test:443")), 403, "blocked_address"},
		{"metadata by name, even with allow_private_ip", raw(connect("meta.test:443")), 403, "blocked_address"},
		{"Alibaba metadata (inside CGNAT) with allow_private_ip", raw(connect("alibaba.test:443")), 403, "blocked_address"},
		{"metadata through NAT64 with allow_private_ip", raw(connect("nat64.test:443")), 403, "blocked_address"},
		{"granted name that does not resolve", func(t *testing.T, e *env) result {
			p := bypassPolicy()
			p.Routes = append(p.Routes, Route{Host: "nxdomain.test", TLS: TLSIntercept})
			if err := e.gw.SetPolicy(p); err != nil {
				t.Fatal(err)
			}
			st, b := e.raw(t, connect("nxdomain.test:443"))
			return result{st, b}
		}, 502, "resolve_failed"},

		// Binding the tunnel to its host.
		{"Host header is not the CONNECT host (domain fronting)", inTunnel("api.test:443", "api.test", get("/repos/acme/app/", "other.test")), 421, "authority_mismatch"},
		{"Host header names another port", inTunnel("api.test:443", "api.test", get("/repos/acme/app/", "api.test:8443")), 421, "authority_mismatch"},
		{"absolute-form for another host inside the tunnel", inTunnel("api.test:443", "api.test", get("https://other.test/repos/acme/app/", "other.test")), 421, "authority_mismatch"},
		{"SNI is not the CONNECT host (intercept)", inTunnel("api.test:443", "plain.test", get("/repos/acme/app/", "api.test")), 421, "sni_mismatch"},
		{"SNI is not the CONNECT host (passthrough)", noAnswer("other.test:443", "api.test"), 0, "sni_mismatch"},
		{"no SNI on a passthrough tunnel", noAnswer("other.test:443", ""), 0, "sni_mismatch"},
		{"HTTP/2 request with another :authority", func(t *testing.T, e *env) result {
			req, _ := http.NewRequest("GET", "https://api.test/repos/acme/app/", nil)
			req.Host = "other.test"
			resp, err := e.client(nil, true).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Errorf("HTTP/%d, want 2", resp.ProtoMajor)
			}
			b, _ := io.ReadAll(resp.Body)
			return result{resp.StatusCode, string(b)}
		}, 421, "authority_mismatch"},

		// Git.
		{"git push: receive-pack POST", inTunnel("api.test:443", "api.test",
			"POST /repos/acme/app.git/git-receive-pack HTTP/1.1\r\nHost: api.test\r\nContent-Length: 4\r\n\r\n0000"), 403, "git_push"},
		{"git push: info/refs?service=git-receive-pack", api("/repos/acme/app.git/info/refs?service=git-receive-pack"), 403, "git_push"},
		{"git push: encoded service name", api("/repos/acme/app.git/info/refs?service=git%2DRECEIVE-pack"), 403, "git_push"},
		{"git push: service name beside a bad escape", api("/repos/acme/app.git/info/refs?x=%zz&service=git%2Dreceive-pack"), 403, "git_push"},
		{"git push on a host with no path limits", inTunnel("plain.test:443", "plain.test", get("/x.git/git-receive-pack", "plain.test")), 403, "git_push"},
		{"git push over plain http", raw(get("http://plain.test/x.git/info/refs?service=git-receive-pack", "plain.test")), 403, "git_push"},

		// Paths.
		{"path outside paths", api("/repos/other/app/"), 403, "path_not_granted"},
		{"path sharing a prefix but not a segment", api("/repos/acme/application"), 403, "path_not_granted"},
		{"encoded slash joining segments", api("/repos/acme%2Fapp/issues"), 403, "path_not_granted"},
		{"path traversal", api("/repos/acme/app/../../other"), 400, "path_invalid"},
		{"percent-encoded traversal", api("/repos/acme/app/%2e%2e/%2E%2E/other"), 400, "path_invalid"},
		{"encoded slashes and dots", api("/repos/acme/app%2F..%2F..%2Fother"), 400, "path_invalid"},
		{"double-encoded traversal", api("/repos/acme/app/%252e%252e/other"), 400, "path_invalid"},
		{"backslash traversal", api("/repos/acme/app/..%5C..%5Cother"), 400, "path_invalid"},
		{"dot-dot-semicolon segment", api("/repos/acme/app/..;/..;/other"), 400, "path_invalid"},

		// Credentials and methods.
		{"credentialed route over plain http", raw(get("http://api.test/repos/acme/app/", "api.test")), 403, "plain_http_credential"},
		{"missing slot (fail closed)", inTunnel("missing.test:443", "missing.test", get("/", "missing.test")), 403, "credential_missing"},
		{"TRACE inside a tunnel", inTunnel("api.test:443", "api.test", "TRACE /repos/acme/app/ HTTP/1.1\r\nHost: api.test\r\n\r\n"), 405, "method"},
		{"TRACK over plain http", raw("TRACK http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\n\r\n"), 405, "method"},
		{"CONNECT nested in a tunnel", inTunnel("plain.test:443", "plain.test", connect("plain.test:443")), 405, "method"},

		// Writes to a forge host's HTTP API, past the git gate.
		{"forge write API: POST on a route without methods", inTunnel("forge.test:443", "forge.test",
			"POST /api/v1/repos/owner/repo/contents/x HTTP/1.1\r\nHost: forge.test\r\nContent-Length: 2\r\n\r\n{}"), 405, "forge_write"},
		{"forge write API: lower-case delete", inTunnel("forge.test:443", "forge.test",
			"delete /api/v1/repos/owner/repo HTTP/1.1\r\nHost: forge.test\r\n\r\n"), 405, "forge_write"},
		{"forge write API: PATCH over plain http", raw("PATCH http://forge.test/api/v1/repos/owner/repo HTTP/1.1\r\nHost: forge.test\r\nContent-Length: 0\r\n\r\n"), 405, "forge_write"},
		{"forge write API: POST over HTTP/2", func(t *testing.T, e *env) result {
			resp, err := e.client(nil, true).Post("https://forge.test/api/v1/repos/owner/repo/pulls", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Errorf("HTTP/%d, want 2", resp.ProtoMajor)
			}
			b, _ := io.ReadAll(resp.Body)
			return result{resp.StatusCode, string(b)}
		}, 405, "forge_write"},
		{"forge write API: PUT beyond the route's methods", inTunnel("forgerw.test:443", "forgerw.test",
			"PUT /api/v1/repos/owner/repo/contents/x HTTP/1.1\r\nHost: forgerw.test\r\nContent-Length: 0\r\n\r\n"), 405, "forge_write"},
		{"forge write API: X-HTTP-Method-Override on a GET", inTunnel("forge.test:443", "forge.test",
			get("/api/v1/repos/owner/repo", "forge.test", "X-HTTP-Method-Override: DELETE\r\n")), 405, "forge_write"},
		{"forge write API: X_HTTP_Method spelled with underscores", inTunnel("forge.test:443", "forge.test",
			get("/api/v1/repos/owner/repo", "forge.test", "X_HTTP_Method: PATCH\r\n")), 405, "forge_write"},
		{"forge write API: X-Method-Override: delete on a granted POST", inTunnel("forgerw.test:443", "forgerw.test",
			"POST /api/v1/repos/owner/repo HTTP/1.1\r\nHost: forgerw.test\r\nX-Method-Override: delete\r\nContent-Length: 0\r\n\r\n"), 405, "forge_write"},
		{"forge write API: _method=DELETE on a granted POST", inTunnel("forgerw.test:443", "forgerw.test",
			"POST /api/v1/repos/owner/repo?_method=DELETE HTTP/1.1\r\nHost: forgerw.test\r\nContent-Length: 0\r\n\r\n"), 405, "forge_write"},
		{"passthrough tunnel to a forge host", raw(connect("forgepass.test:443")), 403, "forge_passthrough"},
		{"git push to a forge host that grants POST", inTunnel("forgerw.test:443", "forgerw.test",
			"POST /owner/repo.git/git-receive-pack HTTP/1.1\r\nHost: forgerw.test\r\nContent-Length: 4\r\n\r\n0000"), 403, "git_push"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := bypassPolicy()
			e := newEnv(t, envConfig{policy: &p, defaultBlocked: true, names: bypassNames})
			got := c.do(t, e)
			if got.status != c.status {
				t.Errorf("status %d, want %d; body:\n%s", got.status, c.status, got.body)
			}
			if c.status != 0 && !strings.Contains(got.body, "why: "+c.reason+":") {
				t.Errorf("body does not give reason %s:\n%s", c.reason, got.body)
			}
			if c.status == 403 && !strings.Contains(got.body, "next: ") {
				t.Errorf("body does not say what to do next:\n%s", got.body)
			}
			e.logs.waitDecision(t, map[string]any{"verdict": "deny", "reason": c.reason})
			for _, line := range e.logs.decisions(t) {
				if line["verdict"] == "allow" && line["method"] != "CONNECT" {
					t.Errorf("a request was allowed: %v", line)
				}
			}
			if d := e.dials(); len(d) > 0 {
				t.Errorf("the gateway dialled %v", d)
			}
			if strings.Contains(e.logs.String(), realToken) {
				t.Error("the token is in the log")
			}
		})
	}
	if len(cases) < 20 {
		t.Fatalf("%d bypass cases, want at least 20", len(cases))
	}
}

func TestNotConfiguredRefusesEverything(t *testing.T) {
	e := newEnv(t, envConfig{})
	st, body := e.raw(t, connect("api.test:443"))
	if st != 403 || !strings.Contains(body, "why: not_configured:") || !strings.Contains(body, "bottleform apply") {
		t.Errorf("%d %s", st, body)
	}
	e.logs.waitDecision(t, map[string]any{"verdict": "deny", "reason": "not_configured"})
}

func TestRefusalSaysWhatWhyAndHow(t *testing.T) {
	p := bypassPolicy()
	e := newEnv(t, envConfig{policy: &p, defaultBlocked: true, names: bypassNames})
	_, body := e.raw(t, get("http://evil.test/v1/x?secret=1", "evil.test"))
	want := "bottleform egress refused GET evil.test/v1/x (bottle test)\n" +
		"why: not_granted: the host is not granted to this bottle\n" +
		"next: ask for it with the supervise tool propose_egress, giving the host and why you need it\n"
	if body != want {
		t.Errorf("body:\n%s\nwant:\n%s", body, want)
	}
	if _, body := e.raw(t, connect("api.test:8443")); !strings.HasPrefix(body, "bottleform egress refused CONNECT api.test:8443 (bottle test)\nwhy: port: ") {
		t.Errorf("body:\n%s", body)
	}
	// Without a supervise server the agent is pointed at the person.
	p.Supervise = ""
	e.gw.SetPolicy(p)
	if _, body := e.raw(t, connect("evil.test:443")); !strings.Contains(body, "ask the person running this bottle") {
		t.Errorf("body:\n%s", body)
	}
	// A refused CONNECT carries its reason in the status line, which is all
	// many clients show.
	_, err := e.client(nil, false).Get("https://evil.test/")
	if err == nil || !strings.Contains(err.Error(), "bottleform egress: not_granted") {
		t.Errorf("client error %v", err)
	}
}
