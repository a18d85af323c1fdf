package egress

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func mustCompile(t testing.TB, p Policy) *policy {
	t.Helper()
	c, err := compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func decidePolicy(t testing.TB) *policy {
	p := basePolicy()
	p.Routes = append(p.Routes,
		Route{Host: "10.0.0.5", TLS: TLSIntercept},
		Route{Host: "[2001:db8::1]", TLS: TLSIntercept},
		Route{Host: "Mixed.Case.Test.", TLS: TLSIntercept},
		Route{Host: "gitlab.test", TLS: TLSIntercept, Paths: []string{"/api/v4/projects/acme%2Fapp/"}},
		Route{Host: "empty.test", TLS: TLSIntercept, AuthScheme: "token", TokenSlot: "EMPTY"},
		// Forge hosts: git upstreams of the bottle.
		Route{Host: "gitea.test", TLS: TLSIntercept, AuthScheme: "token", TokenSlot: tokenSlot},
		Route{Host: "forge-rw.test", TLS: TLSIntercept, Methods: []string{"GET", "post"}},
		Route{Host: "forge-pass.test", TLS: TLSPassthrough},
		Route{Host: "10.0.0.9", TLS: TLSIntercept},
		// Not a forge host, with methods.
		Route{Host: "readonly.test", TLS: TLSIntercept, Methods: []string{"GET", "HEAD"}},
	)
	p.ForgeHosts = []string{"Gitea.Test.", "forge-rw.test", "forge-pass.test", "0x0a.0.0.9", "not a host", "unrouted.test"}
	return mustCompile(t, p)
}

func TestDecide(t *testing.T) {
	p := decidePolicy(t)
	tunnel := func(host, method, path string) ask {
		return ask{Kind: kindTunnel, Method: method, Target: host + ":443", Authority: host, SNI: host, Path: path}
	}
	override := func(a ask, values ...string) ask {
		a.Overrides = values
		return a
	}
	query := func(a ask, q string) ask {
		a.Query = q
		return a
	}
	for _, c := range []struct {
		name  string
		a     ask
		allow bool
		want  reason
	}{
		{"connect granted", ask{Kind: kindConnect, Method: "CONNECT", Target: "api.test:443"}, true, reasonGranted},
		{"connect upper case, trailing dot", ask{Kind: kindConnect, Method: "CONNECT", Target: "API.Test.:443"}, true, reasonGranted},
		{"connect port with leading zero", ask{Kind: kindConnect, Method: "CONNECT", Target: "api.test:0443"}, true, reasonGranted},
		{"route host normalized", ask{Kind: kindConnect, Method: "CONNECT", Target: "mixed.case.test:443"}, true, reasonGranted},
		{"connect ungranted", ask{Kind: kindConnect, Method: "CONNECT", Target: "evil.test:443"}, false, reasonNotGranted},
		{"connect bad port", ask{Kind: kindConnect, Method: "CONNECT", Target: "api.test:444"}, false, reasonPort},
		{"connect huge port", ask{Kind: kindConnect, Method: "CONNECT", Target: "api.test:99999"}, false, reasonNoHost},
		{"granted IPv4 literal", ask{Kind: kindConnect, Method: "CONNECT", Target: "10.0.0.5:443"}, true, reasonGranted},
		{"granted literal in hex", ask{Kind: kindConnect, Method: "CONNECT", Target: "0xa.0.0.5:443"}, true, reasonGranted},
		{"granted literal as one number", ask{Kind: kindConnect, Method: "CONNECT", Target: "167772165:443"}, true, reasonGranted},
		{"granted IPv6 literal", ask{Kind: kindConnect, Method: "CONNECT", Target: "[2001:DB8:0::1]:443"}, true, reasonGranted},
		{"ungranted literal", ask{Kind: kindConnect, Method: "CONNECT", Target: "10.0.0.6:443"}, false, reasonIPLiteral},
		{"numeric last label", ask{Kind: kindConnect, Method: "CONNECT", Target: "api.08:443"}, false, reasonIPLiteral},
		{"unbracketed IPv6", ask{Kind: kindConnect, Method: "CONNECT", Target: "::1"}, false, reasonIPLiteral},
		{"space in host", ask{Kind: kindConnect, Method: "CONNECT", Target: "api test:443"}, false, reasonBadHost},
		{"percent in host", ask{Kind: kindConnect, Method: "CONNECT", Target: "api%2etest:443"}, false, reasonBadHost},
		{"http granted", ask{Kind: kindHTTP, Method: "GET", Scheme: "http", Target: "plain.test", Path: "/x"}, true, reasonGranted},
		{"http empty path", ask{Kind: kindHTTP, Method: "GET", Scheme: "http", Target: "plain.test:80"}, true, reasonGranted},
		{"http credentialed", ask{Kind: kindHTTP, Method: "GET", Scheme: "http", Target: "api.test", Path: "/repos/acme/app/"}, false, reasonPlainHTTPCredential},
		{"http origin form", ask{Kind: kindHTTP, Method: "GET", Path: "/"}, false, reasonOriginForm},
		{"http ftp", ask{Kind: kindHTTP, Method: "GET", Scheme: "ftp", Target: "plain.test"}, false, reasonScheme},
		{"tunnel granted", tunnel("api.test", "GET", "/repos/acme/app/pulls"), true, reasonGranted},
		{"tunnel prefix itself", tunnel("api.test", "GET", "/repos/acme/app"), true, reasonGranted},
		{"tunnel host with port 443", ask{Kind: kindTunnel, Method: "GET", Target: "api.test:443", Authority: "API.test:443", Path: "/repos/acme/app/"}, true, reasonGranted},
		{"tunnel no SNI", ask{Kind: kindTunnel, Method: "GET", Target: "api.test:443", Authority: "api.test", Path: "/repos/acme/app/"}, true, reasonGranted},
		{"tunnel SNI other", ask{Kind: kindTunnel, Method: "GET", Target: "api.test:443", Authority: "api.test", SNI: "plain.test", Path: "/repos/acme/app/"}, false, reasonSNIMismatch},
		{"tunnel authority other", ask{Kind: kindTunnel, Method: "GET", Target: "api.test:443", Authority: "plain.test", Path: "/repos/acme/app/"}, false, reasonAuthorityMismatch},
		{"tunnel empty authority", ask{Kind: kindTunnel, Method: "GET", Target: "api.test:443", Path: "/repos/acme/app/"}, false, reasonAuthorityMismatch},
		{"tunnel to passthrough route", tunnel("other.test", "GET", "/"), false, reasonNotGranted},
		{"trace", tunnel("plain.test", "TRACE", "/"), false, reasonMethod},
		{"track lower case", tunnel("plain.test", "track", "/"), false, reasonMethod},
		{"path outside", tunnel("api.test", "GET", "/repos/acme/other"), false, reasonPathNotGranted},
		{"path sibling", tunnel("api.test", "GET", "/repos/acme/apple"), false, reasonPathNotGranted},
		{"dot segment", tunnel("api.test", "GET", "/repos/acme/app/./x"), false, reasonPathInvalid},
		{"asterisk", tunnel("plain.test", "OPTIONS", "*"), false, reasonPathInvalid},
		{"encoded NUL", tunnel("plain.test", "GET", "/a%00b"), false, reasonPathInvalid},
		{"bad escape", tunnel("plain.test", "GET", "/a%zz"), false, reasonPathInvalid},
		{"receive-pack", tunnel("plain.test", "POST", "/r.git/git-receive-pack"), false, reasonGitPush},
		{"receive-pack upper case", tunnel("plain.test", "POST", "/r.git/GIT-RECEIVE-PACK"), false, reasonGitPush},
		{"receive-pack encoded", tunnel("plain.test", "POST", "/r.git/git%2Dreceive-pack"), false, reasonGitPush},
		{"receive-pack in a segment", tunnel("plain.test", "POST", "/r.git/x-git-receive-pack"), false, reasonGitPush},
		{"receive-pack query beside a bad escape", ask{Kind: kindTunnel, Method: "GET", Target: "plain.test:443", Authority: "plain.test",
			Path: "/r.git/info/refs", Query: "service=git%2Dreceive-pack&x=%zz"}, false, reasonGitPush},
		{"upload-pack", tunnel("plain.test", "POST", "/r.git/git-upload-pack"), true, reasonGranted},
		{"gitlab encoded slash granted", tunnel("gitlab.test", "GET", "/api/v4/projects/acme%2Fapp/issues"), true, reasonGranted},
		{"gitlab decoded slash not granted", tunnel("gitlab.test", "GET", "/api/v4/projects/acme/app/issues"), false, reasonPathNotGranted},
		{"empty slot", tunnel("empty.test", "GET", "/"), false, reasonCredentialMissing},

		// Forge hosts are read-only unless the route grants writes.
		{"forge GET", tunnel("gitea.test", "GET", "/api/v1/repos/owner/repo"), true, reasonGranted},
		{"forge HEAD", tunnel("gitea.test", "HEAD", "/api/v1/repos/owner/repo"), true, reasonGranted},
		{"forge OPTIONS", tunnel("gitea.test", "OPTIONS", "/api/v1/repos/owner/repo"), true, reasonGranted},
		{"forge GET lower case", tunnel("gitea.test", "get", "/api/v1/repos/owner/repo"), true, reasonGranted},
		{"forge POST by default", tunnel("gitea.test", "POST", "/api/v1/repos/owner/repo/contents/x"), false, reasonForgeWrite},
		{"forge PUT by default", tunnel("gitea.test", "PUT", "/api/v1/repos/owner/repo/contents/x"), false, reasonForgeWrite},
		{"forge PATCH by default", tunnel("gitea.test", "PATCH", "/api/v1/repos/owner/repo"), false, reasonForgeWrite},
		{"forge DELETE by default", tunnel("gitea.test", "DELETE", "/api/v1/repos/owner/repo/branches/main"), false, reasonForgeWrite},
		{"forge post lower case", tunnel("gitea.test", "post", "/api/v1/repos/owner/repo/pulls"), false, reasonForgeWrite},
		{"forge Post mixed case", tunnel("gitea.test", "Post", "/api/v1/repos/owner/repo/pulls"), false, reasonForgeWrite},
		{"forge unknown method", tunnel("gitea.test", "PROPFIND", "/"), false, reasonForgeWrite},
		{"forge method with a Unicode letter", tunnel("gitea.test", "GEť", "/"), false, reasonForgeWrite},
		{"forge host in another spelling", ask{Kind: kindTunnel, Method: "POST", Target: "GITEA.test.:443", Authority: "gitea.TEST", Path: "/api/v1/x"}, false, reasonForgeWrite},
		{"forge POST over plain http", ask{Kind: kindHTTP, Method: "POST", Scheme: "http", Target: "forge-pass.test", Path: "/api/v1/x"}, false, reasonForgeWrite},
		{"forge GET over plain http", ask{Kind: kindHTTP, Method: "GET", Scheme: "http", Target: "forge-pass.test", Path: "/api/v1/x"}, true, reasonGranted},
		{"forge address literal POST", tunnel("10.0.0.9", "POST", "/api/v1/x"), false, reasonForgeWrite},
		{"forge receive-pack stays git_push", tunnel("forge-rw.test", "POST", "/owner/repo.git/git-receive-pack"), false, reasonGitPush},
		{"forge passthrough CONNECT", ask{Kind: kindConnect, Method: "CONNECT", Target: "forge-pass.test:443"}, false, reasonForgePassthrough},
		{"forge intercept CONNECT", ask{Kind: kindConnect, Method: "CONNECT", Target: "gitea.test:443"}, true, reasonGranted},
		{"forge POST granted by methods", tunnel("forge-rw.test", "POST", "/api/v1/repos/owner/repo/pulls"), true, reasonGranted},
		{"forge post granted by methods", tunnel("forge-rw.test", "post", "/api/v1/repos/owner/repo/pulls"), true, reasonGranted},
		{"forge PUT not in methods", tunnel("forge-rw.test", "PUT", "/api/v1/repos/owner/repo/contents/x"), false, reasonForgeWrite},
		{"forge HEAD not in methods", tunnel("forge-rw.test", "HEAD", "/"), false, reasonMethodNotGranted},
		{"non-forge POST", tunnel("plain.test", "POST", "/api/v1/x"), true, reasonGranted},
		{"non-forge DELETE", tunnel("mixed.case.test", "DELETE", "/x"), true, reasonGranted},
		{"non-forge methods refuse POST", tunnel("readonly.test", "POST", "/x"), false, reasonMethodNotGranted},
		{"non-forge methods allow HEAD", tunnel("readonly.test", "HEAD", "/x"), true, reasonGranted},

		// Method overrides must not smuggle a write.
		{"override DELETE on a forge GET", override(tunnel("gitea.test", "GET", "/api/v1/repos/owner/repo"), "DELETE"), false, reasonForgeWrite},
		{"override put on a forge POST", override(tunnel("forge-rw.test", "POST", "/api/v1/x"), "put"), false, reasonForgeWrite},
		{"override in a list", override(tunnel("gitea.test", "GET", "/"), "GET, PATCH"), false, reasonForgeWrite},
		{"override in a second header", override(tunnel("gitea.test", "GET", "/"), "GET", " delete "), false, reasonForgeWrite},
		{"override GET on a forge GET", override(tunnel("gitea.test", "GET", "/"), "GET"), true, reasonGranted},
		{"override POST granted by methods", override(tunnel("forge-rw.test", "GET", "/"), "POST"), true, reasonGranted},
		{"empty override", override(tunnel("gitea.test", "GET", "/"), " "), true, reasonGranted},
		{"override TRACE anywhere", override(tunnel("plain.test", "GET", "/"), "TRACE"), false, reasonMethod},
		{"override on a non-forge route", override(tunnel("plain.test", "POST", "/"), "DELETE"), true, reasonGranted},
		{"override beyond non-forge methods", override(tunnel("readonly.test", "GET", "/"), "DELETE"), false, reasonMethodNotGranted},
		{"_method in the query", query(tunnel("forge-rw.test", "POST", "/api/v1/x"), "a=1&_method=DELETE"), false, reasonForgeWrite},
		{"_method encoded in the query", query(tunnel("forge-rw.test", "POST", "/api/v1/x"), "%5F%4Dethod=put"), false, reasonForgeWrite},
		{"_method after a semicolon", query(tunnel("gitea.test", "GET", "/"), "a=1;_method=PATCH"), false, reasonForgeWrite},
		{"_method GET in the query", query(tunnel("gitea.test", "GET", "/"), "_method=get"), true, reasonGranted},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := decide(p, c.a)
			if v.Allow != c.allow || v.Reason != c.want {
				t.Errorf("decide = allow %v %s, want allow %v %s", v.Allow, v.Reason, c.allow, c.want)
			}
		})
	}
	if v := decide(p, override(tunnel("gitea.test", "GET", "/"), "Delete")); v.Method != "DELETE" {
		t.Errorf("refused method = %q, want DELETE", v.Method)
	}
	if v := decide(nil, ask{Kind: kindConnect, Target: "api.test:443"}); v.Allow || v.Reason != reasonNotConfigured {
		t.Errorf("nil policy: %+v", v)
	}
}

func TestParseIPLiteral(t *testing.T) {
	for _, c := range []struct {
		host    string
		literal bool
		want    string // "" if invalid
	}{
		{"127.0.0.1", true, "127.0.0.1"},
		{"2130706433", true, "127.0.0.1"},
		{"0x7f.1", true, "127.0.0.1"},
		{"0177.0.0.1", true, "127.0.0.1"},
		{"127.1", true, "127.0.0.1"},
		{"0x7f000001", true, "127.0.0.1"},
		{"0xa9.0xfe.0xa9.0xfe", true, "169.254.169.254"},
		{"::ffff:127.0.0.1", true, "127.0.0.1"},
		{"fe80::1%eth0", true, "fe80::1"},
		{"4294967296", true, ""},
		{"1.2.3.256", true, ""},
		{"1.2.3.4.5", true, ""},
		{"08", true, ""},
		{"1..1", true, ""},
		{"api.test", false, ""},
		{"1.2.3.example", false, ""},
		{"0x.test", false, ""},
	} {
		a, lit, valid := parseIPLiteral(c.host)
		got := ""
		if valid {
			got = a.String()
		}
		if lit != c.literal || got != c.want {
			t.Errorf("parseIPLiteral(%q) = %q literal %v, want %q literal %v", c.host, got, lit, c.want, c.literal)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for _, c := range []struct {
		in         string
		ok         bool
		prefixForm string
	}{
		{"/a/b", true, "/a/b"},
		{"", true, "/"},
		{"/a%20b", true, "/a b"},
		{"/a%2Fb/c", true, "/a%2Fb/c"},
		{"/a%2fb", true, "/a%2Fb"},
		{"/a/../b", false, ""},
		{"/a/%2e%2e/b", false, ""},
		{"/a/.%2E/b", false, ""},
		{"/a%2F..%2Fb", false, ""},
		{"/a/%252e%252e/b", false, ""},
		{"/a/%252fb", false, ""},
		{"/a/%5c", false, ""},
		{"/a\\b", false, ""},
		{"/a/..;x/b", false, ""},
		{"/a/.", false, ""},
		{"a/b", false, ""},
		{"/a%0a", false, ""},
		{"/a/...", true, "/a/..."},
	} {
		_, form, ok := cleanPath(c.in)
		if ok != c.ok || form != c.prefixForm {
			t.Errorf("cleanPath(%q) = %q %v, want %q %v", c.in, form, ok, c.prefixForm, c.ok)
		}
	}
}

func TestDefaultBlocked(t *testing.T) {
	for _, c := range []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true}, {"127.8.9.10", true}, {"::1", true},
		{"169.254.1.1", true}, {"fe80::1", true},
		{"0.0.0.0", true}, {"::", true}, {"0.1.2.3", true},
		{"224.0.0.1", true}, {"ff02::1", true}, {"255.255.255.255", true},
		{"10.1.1.1", true}, {"172.16.0.1", true}, {"172.31.255.255", true}, {"192.168.0.1", true},
		{"fc00::1", true}, {"fd12::1", true}, {"100.64.0.1", true},
		{"169.254.169.254", true}, {"100.100.100.200", true}, {"168.63.129.16", true}, {"fd00:ec2::254", true},
		{"::ffff:127.0.0.1", true}, {"::ffff:169.254.169.254", true}, {"::ffff:10.0.0.1", true},
		{"::127.0.0.1", true}, {"64:ff9b::7f00:1", true}, {"2002:7f00:1::", true}, {"2002:a9fe:a9fe::1", true},
		{"198.18.0.1", true}, {"240.0.0.1", true},
		{"93.184.216.34", false}, {"172.32.0.1", false}, {"100.128.0.1", false}, {"2606:4700::1", false},
		{"::ffff:93.184.216.34", false}, {"64:ff9b::5db8:d822", false}, {"198.51.100.7", false},
	} {
		if got := DefaultBlocked(netip.MustParseAddr(c.addr)); got != c.blocked {
			t.Errorf("DefaultBlocked(%s) = %v, want %v", c.addr, got, c.blocked)
		}
	}
}

func TestAddrAllowedWithAllowPrivate(t *testing.T) {
	r := &route{Route: Route{Host: "x.test", AllowPrivate: true}}
	own := map[netip.Addr]bool{netip.MustParseAddr("172.18.0.3"): true}
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "192.168.1.1": true, "fd12::1": true, "100.64.1.1": true, "::ffff:10.1.2.3": true,
		"172.18.0.3": false, "127.0.0.1": false, "169.254.169.254": false, "100.100.100.200": false,
		"fd00:ec2::254": false, "fe80::1": false, "0.0.0.0": false, "224.0.0.1": false,
	} {
		if got := addrAllowed(r, netip.MustParseAddr(addr), DefaultBlocked, own); got != want {
			t.Errorf("addrAllowed(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestCredentialHeaders(t *testing.T) {
	for _, name := range []string{
		"Authorization", "authorization", "Proxy-Authorization", "X-Api-Key", "x_api_key", "X.Api.Key", "x_api.key",
		"Api-Key", "API_KEY", "X-Auth-Token", "X-Access-Token", "Private-Token", "PRIVATE_TOKEN", "Job-Token",
		"X-Goog-Api-Key", "X-Amz-Security-Token", "X-Gitlab-Token", "X-Vault-Token", "Cookie", "X-GitHub-Token",
		"X-Client-Secret", "Ocp-Apim-Subscription-Key",
	} {
		if !isCredentialHeader(name) {
			t.Errorf("%s is not treated as a credential", name)
		}
	}
	for _, name := range []string{"Accept", "Content-Type", "User-Agent", "Git-Protocol", "Sec-WebSocket-Key", "Anthropic-Version", "X-Request-Id"} {
		if isCredentialHeader(name) {
			t.Errorf("%s is treated as a credential", name)
		}
	}
	h := http.Header{"X-Custom": {"has " + realToken}, "Accept": {"*/*"}, "X_Auth.Token": {"x"}}
	stripRequest(h, []string{realToken})
	if len(h) != 1 || h.Get("Accept") != "*/*" {
		t.Errorf("after stripRequest: %v", h)
	}
}

func TestMethodOverrides(t *testing.T) {
	h := http.Header{
		"X-Http-Method-Override": {"DELETE"},
		"X_http_method":          {"PUT", "PATCH"},
		"X.Method.Override":      {"POST"},
		"X-Method":               {"not an override"},
		"Accept":                 {"*/*"},
	}
	got := methodOverrides(h)
	slices.Sort(got)
	if want := []string{"DELETE", "PATCH", "POST", "PUT"}; !slices.Equal(got, want) {
		t.Errorf("methodOverrides = %q, want %q", got, want)
	}
}

// FuzzDecide checks decide's promises on any input: no panic; an allow is
// for a granted host on the right port, with a granted, clean path and no
// git push, never TRACE or TRACK, never a credential over plain HTTP or
// from an empty slot, never a method (its own, or one a method-override
// header or _method parameter asks for) the route does not grant, never
// a write to a forge host the route does not list, never a passthrough
// tunnel to a forge host; and after stripping and injection no client
// credential is left. The header (hname, hvalue) is also the request's
// one method-override header when its name is one.
func FuzzDecide(f *testing.F) {
	p := decidePolicy(f)
	f.Add(uint8(0), "CONNECT", "api.test:443", "", "", "", "", "Authorization", "Bearer x")
	f.Add(uint8(1), "GET", "plain.test", "", "", "/x", "a=b", "X_Api.Key", "k")
	f.Add(uint8(2), "GET", "api.test:443", "api.test", "api.test", "/repos/acme/app/x", "", "Cookie", "a=b")
	f.Add(uint8(2), "POST", "plain.test:443", "plain.test", "", "/r.git/git-receive-pack", "", "x", "y")
	f.Add(uint8(2), "GET", "api.test:443", "API.TEST.:443", "api.test", "/repos/acme/app/%2e%2e/x", "", "", "")
	f.Add(uint8(0), "CONNECT", "0x0a.0.0.5:443", "", "", "", "", "", "")
	f.Add(uint8(2), "GET", "gitlab.test:443", "gitlab.test", "", "/api/v4/projects/acme%2Fapp/x", "service=git-upload-pack", "", "")
	f.Add(uint8(2), "POST", "gitea.test:443", "gitea.test", "gitea.test", "/api/v1/repos/owner/repo/pulls", "", "", "")
	f.Add(uint8(2), "post", "Gitea.Test.:443", "gitea.test", "", "/api/v1/repos/owner/repo", "", "", "")
	f.Add(uint8(2), "GET", "gitea.test:443", "gitea.test", "", "/api/v1/repos/owner/repo", "", "X-HTTP-Method-Override", "DELETE")
	f.Add(uint8(2), "POST", "forge-rw.test:443", "forge-rw.test", "", "/api/v1/x", "_method=PUT", "X_Http_Method", "GET, patch")
	f.Add(uint8(2), "PUT", "forge-rw.test:443", "forge-rw.test", "", "/api/v1/x", "", "x-method-override", "POST")
	f.Add(uint8(1), "POST", "forge-pass.test", "", "", "/api/v1/x", "", "", "")
	f.Add(uint8(0), "CONNECT", "forge-pass.test:443", "", "", "", "", "", "")
	f.Add(uint8(2), "DELETE", "readonly.test:443", "readonly.test", "", "/x", "", "", "")
	f.Fuzz(func(t *testing.T, k uint8, method, target, authority, sni, path, query, hname, hvalue string) {
		a := ask{Kind: kind(k % 3), Method: method, Target: target, Authority: authority, SNI: sni, Path: path, Query: query}
		if n := strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(hname)); n == "x-http-method-override" || n == "x-http-method" || n == "x-method-override" {
			a.Overrides = []string{hvalue}
		}
		if a.Kind == kindHTTP && k&4 == 0 {
			a.Scheme = "http"
		}
		v := decide(p, a)
		if !v.Allow {
			return
		}
		r := v.Route
		if r == nil || p.routes[v.Host] != r {
			t.Fatalf("allowed %+v without its route", a)
		}
		host, port, err := net.SplitHostPort(target)
		if err != nil {
			host, port = target, ""
		}
		if !sameHost(host, r.Host) {
			t.Fatalf("allowed target %q for route %s", target, r.Host)
		}
		switch a.Kind {
		case kindConnect:
			if n := strings.TrimLeft(port, "0"); n != "443" {
				t.Fatalf("allowed CONNECT to port %q", port)
			}
			if r.TLS == TLSPassthrough && isForgeRoute(r) {
				t.Fatalf("allowed a passthrough tunnel to the forge host %s", r.Host)
			}
			return
		case kindHTTP:
			if n := strings.TrimLeft(port, "0"); port != "" && n != "80" {
				t.Fatalf("allowed http to port %q", port)
			}
			if r.TokenSlot != "" {
				t.Fatalf("allowed a credential over plain http")
			}
		case kindTunnel:
			ah, ap, err := net.SplitHostPort(authority)
			if err != nil {
				ah, ap = authority, ""
			}
			if !sameHost(ah, r.Host) || (ap != "" && strings.TrimLeft(ap, "0") != "443") {
				t.Fatalf("allowed authority %q in a tunnel to %s", authority, r.Host)
			}
			if sni != "" && !sameHost(sni, r.Host) {
				t.Fatalf("allowed SNI %q in a tunnel to %s", sni, r.Host)
			}
			if r.TLS != TLSIntercept {
				t.Fatalf("allowed a request on a passthrough route")
			}
		}
		if m := strings.ToUpper(method); m == "TRACE" || m == "TRACK" || m == "CONNECT" {
			t.Fatalf("allowed %s", method)
		}
		dec, err := url.PathUnescape(path)
		if err != nil {
			t.Fatalf("allowed an undecodable path %q", path)
		}
		for seg := range strings.SplitSeq(dec, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("allowed a dot segment in %q", path)
			}
		}
		q, _ := url.QueryUnescape(query)
		pairs, _ := url.ParseQuery(query) // decodes pair by pair, as servers do
		for k, vs := range pairs {
			q += "&" + k + "=" + strings.Join(vs, ",")
		}
		if strings.Contains(strings.ToLower(dec+"?"+q), "git-receive-pack") {
			t.Fatalf("allowed a git push: %q ? %q", path, query)
		}
		if len(r.Paths) > 0 {
			// Decode all but %2F, independently of cleanPath.
			keep := strings.NewReplacer("%2f", "\x00", "%2F", "\x00").Replace(path)
			d, _ := url.PathUnescape(keep)
			d = strings.ReplaceAll(d, "\x00", "%2F")
			if d == "" {
				d = "/"
			}
			ok := false
			for _, pre := range r.Paths {
				pre = strings.TrimSuffix(pre, "/")
				ok = ok || d == pre || strings.HasPrefix(d, pre+"/")
			}
			if !ok {
				t.Fatalf("allowed path %q outside %v", path, r.Paths)
			}
		}
		if r.TokenSlot != "" && p.slots[r.TokenSlot] == "" {
			t.Fatalf("allowed a route whose slot is empty")
		}
		// Every method the request may be read as is granted: the route's
		// methods, else on a forge host GET, HEAD and OPTIONS.
		granted := r.Route.Methods
		if len(granted) == 0 && isForgeRoute(r) {
			granted = []string{"GET", "HEAD", "OPTIONS"}
		}
		asked := []string{method}
		for _, v := range a.Overrides {
			for m := range strings.SplitSeq(v, ",") {
				asked = append(asked, strings.TrimSpace(m))
			}
		}
		for pair := range strings.FieldsFuncSeq(query, func(r rune) bool { return r == '&' || r == ';' }) {
			k, v, _ := strings.Cut(pair, "=")
			if dk, err := url.QueryUnescape(k); err == nil && strings.EqualFold(dk, "_method") {
				if dv, err := url.QueryUnescape(v); err == nil {
					asked = append(asked, strings.TrimSpace(dv))
				}
			}
		}
		for _, m := range asked {
			if m == "" || len(granted) == 0 {
				continue
			}
			ok := false
			for _, g := range granted {
				ok = ok || (strings.EqualFold(m, g) && !strings.ContainsFunc(m, func(r rune) bool { return r > 0x7f }))
			}
			if !ok {
				t.Fatalf("allowed method %q on %s, which grants %v", m, r.Host, granted)
			}
		}

		h := http.Header{}
		h[hname] = []string{hvalue}
		h["X_Api.Key"] = []string{"agent"}
		h["Authorization"] = []string{"Bearer agent"}
		stripRequest(h, p.secrets)
		inject(h, r, p.slots[r.TokenSlot])
		for name, vals := range h {
			if isCredentialHeader(name) && !(name == "Authorization" && r.TokenSlot != "" && vals[0] == r.AuthScheme+" "+p.slots[r.TokenSlot]) {
				t.Fatalf("credential header %q survived: %q", name, vals)
			}
		}
	})
}

// isForgeRoute reports whether decidePolicy's forge hosts name r's host
// (it spells them in several ways).
func isForgeRoute(r *route) bool {
	switch r.Host {
	case "gitea.test", "forge-rw.test", "forge-pass.test", "10.0.0.9":
		return true
	}
	return false
}

// sameHost compares a client-given host with a route host the simple way:
// ASCII case, one trailing dot, brackets, and address literals by value.
func sameHost(given, route string) bool {
	given = strings.TrimSuffix(strings.Trim(given, "[]"), ".")
	if strings.EqualFold(given, route) && !strings.ContainsFunc(given, func(r rune) bool { return r > 0x7f }) {
		return true
	}
	a, lit, valid := parseIPLiteral(strings.ToLower(given))
	return lit && valid && a.String() == route
}
