package main

// TestE2EEgress proves the egress gateway end to end on the Docker engine
// of this machine: a bottle with an intercepted, credentialed,
// path-limited route and a passthrough route; a TLS upstream with its own
// CA running as a container on the bottle's egress network, answering to
// the granted names and to one that is not granted; and curl and git in
// the agent trying to get past the gateway.
//
// No traffic leaves the machine. The upstream's names exist only as
// aliases on the bottle's egress network; "an outside address" is the
// upstream container's own address; the cloud metadata address is refused
// by the gateway before any dial; the external DNS name is looked up from
// the agent, whose network has no route out (docs/architecture.md).

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottleform/bottleform/resource"
)

const egBottle = "gw"

// egMain is the bottle of the test. The paths are segment-aligned
// prefixes (decide.go's pathGranted): "/echo" grants /echo and /echo/...,
// not /echoes.
const egMain = `secret "api" {
  env = "E2E_API_TOKEN"
}

bottle "gw" {
  image       = "bottleform-agent:test"
  upstream_ca = file("upstream-ca.pem")

  egress "api.example.test" {
    auth {
      scheme = "Bearer"
      token  = secret.api
    }
    allow_private_ip = true
    paths            = ["/echo", "/sse", "/git/"]
  }

  egress "files.example.test" {
    tls              = "passthrough"
    allow_private_ip = true
  }
}
`

// egOtherRoute is the route route-in-place adds and removes.
const egOtherRoute = `  egress "other.example.test" {
    allow_private_ip = true
  }

`

// egFixture is the bottle, its upstream and what the canary check reads.
type egFixture struct {
	dir     string
	canary  string
	env     []string
	lineage string
	pki     *egPKI
	up      *egUpstream
	// outputs holds the stdout and stderr of every plan and apply run with
	// the secret in the environment, for the canary check.
	outputs map[string]string
}

// bf runs bottleform with the secret in the environment and keeps its
// output for the canary check.
func (f *egFixture) bf(t *testing.T, args ...string) bfResult {
	t.Helper()
	return bfKeep(t, f.dir, f.env, f.outputs, args...)
}

// agent runs argv in the agent through `bottleform attach`.
func (f *egFixture) agent(t *testing.T, argv ...string) bfResult {
	t.Helper()
	return bfRun(t, f.dir, nil, append([]string{"attach", egBottle, "--"}, argv...)...)
}

func (f *egFixture) name(component string) string {
	return resource.ObjectName(f.lineage, egBottle, component)
}

// curl is the agent's curl with the options every case uses: quiet but
// with errors, the response headers (-i), a time limit.
func curl(args ...string) []string {
	return append([]string{"curl", "-sS", "-i", "--max-time", "20"}, args...)
}

// rawProxy sends request bytes to the gateway itself from the agent (bash's
// /dev/tcp), for requests no client would form: a CONNECT whose target
// curl would normalize first, an absolute-form https URL.
func rawProxy(request string) []string {
	return []string{"bash", "-c", `exec 3<>/dev/tcp/egress/9099 && printf '%s' "$1" >&3 && timeout 10 cat <&3`, "bash", request}
}

func TestE2EEgress(t *testing.T) {
	e2eRequire(t)
	began := time.Now()
	f := &egFixture{dir: t.TempDir(), canary: "canary-" + randomHex(16), outputs: map[string]string{}}
	f.env = []string{"E2E_API_TOKEN=" + f.canary}
	// Cleanups run last-registered first: the upstream (registered in
	// egSetup) is removed before the bottle is destroyed, since it holds
	// the bottle's egress network.
	t.Cleanup(func() { cleanupDir(t, f.dir) })
	egSetup(t, f)
	timings := []string{"setup " + time.Since(began).Round(100*time.Millisecond).String()}
	step := func(name string, fn func(t *testing.T, f *egFixture)) {
		start := time.Now()
		t.Run(name, func(t *testing.T) { fn(t, f) })
		timings = append(timings, name+" "+time.Since(start).Round(100*time.Millisecond).String())
	}
	step("intercepted", egIntercepted)
	step("passthrough", egPassthrough)
	step("bypass", egBypass)
	step("sse", egSSE)
	step("route-in-place", egRouteInPlace)
	step("canary", egCanary)
	t.Logf("timing: %s; total %s", strings.Join(timings, ", "), time.Since(began).Round(100*time.Millisecond))
}

// egSetup writes the bottle, applies it, then starts the upstream on the
// bottle's egress network, where the gateway resolves its three names.
func egSetup(t *testing.T, f *egFixture) {
	t.Helper()
	f.pki = newEgPKI(t)
	if err := os.WriteFile(filepath.Join(f.dir, "main.hcl"), []byte(egMain), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "upstream-ca.pem"), f.pki.caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildTestUpstream(t, t.TempDir())

	r := f.bf(t, "apply", "--auto-approve")
	wantCode(t, "apply", r, 0)
	// 7: network, sidecar, three routes (the default claude agent brings
	// its own passthrough route to its API, never used here), auth, agent.
	wantLines(t, "apply", r.stdout, "Apply complete! Objects: 7 added, 0 changed, 0 destroyed.")
	f.lineage = lineageOf(f.dir)
	if f.lineage == "" {
		t.Fatal("apply saved no state")
	}
	egress := f.name("egress")
	if internal := dockerCLI(t, "network", "inspect", "--format", "{{.Internal}}", egress); internal != "false" {
		t.Fatalf("%s is the egress network but Internal=%s", egress, internal)
	}
	f.up = startUpstream(t, egress, bin, f.pki)
	t.Logf("lineage %s; upstream %s at %s on %s", f.lineage, f.up.name, f.up.ip, egress)
}

// egIntercepted: the gateway strips the agent's credentials and injects
// the route's, for curl and for git.
func egIntercepted(t *testing.T, f *egFixture) {
	bearer := "Bearer " + f.canary

	r := f.agent(t, curl("https://"+egAPIHost+"/echo",
		"-H", "Authorization: Bearer agent-forged", "-H", "X-Api-Key: x")...)
	wantCode(t, "curl /echo", r, 0)
	if s := lastStatus(r.stdout); s != "200" {
		t.Fatalf("curl /echo: status %s, want 200:\n%s", s, r.stdout)
	}
	echo := parseEcho(t, r.stdout)
	if got := echo.header("Authorization"); !slices.Equal(got, []string{bearer}) {
		t.Errorf("the upstream saw Authorization %q, want exactly the injected token (Bearer + E2E_API_TOKEN)", got)
	}
	if got := echo.header("X-Api-Key"); got != nil {
		t.Errorf("the upstream saw X-Api-Key %q; the gateway must strip it", got)
	}
	if echo.Host != egAPIHost || echo.ServerName != egAPIHost {
		t.Errorf("the upstream saw Host %q and SNI %q, want %s", echo.Host, echo.ServerName, egAPIHost)
	}

	// git clone through the gateway: git reads the proxy variables and
	// GIT_SSL_CAINFO (the bundle with the bottle's CA).
	before := len(f.up.requests(t))
	r = f.agent(t, "sh", "-c", `rm -rf /tmp/clone && git clone -q https://`+egAPIHost+`/git/repo.git /tmp/clone && git -C /tmp/clone log --format=%s && cat /tmp/clone/README`)
	wantCode(t, "git clone", r, 0)
	if r.stdout != "initial commit\nserved by testupstream\n" {
		t.Errorf("the clone's log and README: %q", r.stdout)
	}
	gitReqs := 0
	for _, q := range f.up.requests(t)[before:] {
		if !strings.HasPrefix(q.Path, "/git/") {
			continue
		}
		gitReqs++
		if got := q.header("Authorization"); !slices.Equal(got, []string{bearer}) {
			t.Errorf("git request %s %s?%s reached the upstream with Authorization %q, want the injected token", q.Method, q.Path, q.Query, got)
		}
	}
	if gitReqs < 2 {
		t.Errorf("the upstream saw %d git requests for the clone, want info/refs and upload-pack", gitReqs)
	}

	// A websocket upgrade on a granted path is spliced after the 101: the
	// control for the refused upgrades of the bypass suite.
	r = f.agent(t, curl("--http1.1", "https://"+egAPIHost+"/echo/ws",
		"-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
		"-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")...)
	if lastStatus(r.stdout) != "101" || !strings.Contains(r.stdout, "upgraded") {
		t.Errorf("websocket upgrade on a granted path: want 101 and the upstream's line; got %s", r)
	}
	t.Logf("intercepted: credential replaced on /echo, %d git requests carried it, websocket upgrade spliced", gitReqs)
}

// egPassthrough: the agent sees the upstream's own certificate; the
// bottle's CA alone does not verify it.
func egPassthrough(t *testing.T, f *egFixture) {
	r := bfRunStdin(t, f.dir, nil, string(f.pki.caPEM), "attach", egBottle, "--", "sh", "-c", "cat > /tmp/upstream-ca.pem")
	wantCode(t, "copy the upstream CA into the agent", r, 0)

	r = f.agent(t, "curl", "-sS", "-v", "--max-time", "20", "--cacert", "/tmp/upstream-ca.pem",
		"https://"+egFilesHost+"/echo", "-H", "X-Api-Key: agents-own-key")
	wantCode(t, "curl --cacert upstream-ca.pem https://files.example.test/echo", r, 0)
	if want := "issuer: CN=" + f.pki.caCN; !strings.Contains(r.stderr, want) {
		t.Errorf("passthrough: curl -v does not show %q; the agent did not see the upstream's own leaf:\n%s", want, r.stderr)
	}
	echo := parseEcho(t, r.stdout)
	if echo.ServerName != egFilesHost || echo.Host != egFilesHost {
		t.Errorf("passthrough: the upstream saw SNI %q and Host %q, want %s", echo.ServerName, echo.Host, egFilesHost)
	}
	// Nothing is changed inside a passthrough tunnel: no injection, no
	// stripping.
	if got := echo.header("Authorization"); got != nil {
		t.Errorf("passthrough: the upstream saw Authorization %q; nothing may be injected into a passthrough route", got)
	}
	if got := echo.header("X-Api-Key"); !slices.Equal(got, []string{"agents-own-key"}) {
		t.Errorf("passthrough: the upstream saw X-Api-Key %q, want the agent's own header untouched", got)
	}

	r = f.agent(t, "curl", "-sS", "--max-time", "20", "https://"+egFilesHost+"/echo")
	if r.code != 60 {
		t.Errorf("passthrough with only the bottle's CA: want curl exit 60 (certificate not verified), got %s", r)
	}

	// The control: an intercepted route shows the gateway's leaf.
	r = f.agent(t, "curl", "-sS", "-v", "--max-time", "20", "-o", "/dev/null", "https://"+egAPIHost+"/echo")
	wantCode(t, "curl -v https://api.example.test/echo", r, 0)
	if !strings.Contains(r.stderr, "CN=bottleform egress CA") {
		t.Errorf("intercepted: curl -v does not show the bottle's CA as issuer:\n%s", r.stderr)
	}

	allowed := false
	for _, d := range decisions(t, f.dir, egBottle, false) {
		if d.Verdict == "allow" && d.Method == "CONNECT" && d.Host == egFilesHost && d.Route == egFilesHost {
			allowed = true
		}
	}
	if !allowed {
		t.Errorf("logs --json has no allow line for CONNECT %s", egFilesHost)
	}
}

// egCase is one attempt to get past the gateway from inside the agent.
type egCase struct {
	name string
	argv []string
	// code is the command's exit status; -1 means any non-zero.
	code int
	// status and reason are what the gateway answered (the last HTTP
	// status line, X-Bottleform-Reason); "" when there is no HTTP answer.
	status, reason string
	// deny is the line `logs --denied --json` must show for the attempt.
	deny *egDecision
	// warn, for an attempt refused without a decision line (deny nil), is
	// what the sidecar's log must show instead.
	warn string
}

func egDeny(method, host, path, reason string) *egDecision {
	return &egDecision{Verdict: "deny", Method: method, Host: host, Path: path, Reason: reason}
}

// egBypassCases are the attempts whose refusal is logged; ip is the
// upstream container's address on the egress network.
func egBypassCases(ip string) []egCase {
	a := netip.MustParseAddr(ip).As4()
	decimal := fmt.Sprint(uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]))
	hexOctal := fmt.Sprintf("0x%x.0%o.%d.%d", a[0], a[1], a[2], a[3])
	api, other, files := egAPIHost, egOtherHost, egFilesHost
	ws := []string{"-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}
	return []egCase{
		{name: "ungranted-host", argv: curl("https://" + other + "/echo"),
			code: 56, status: "403", reason: "not_granted", deny: egDeny("CONNECT", other, "", "not_granted")},
		{name: "granted-host-other-port", argv: curl("https://" + api + ":8443/echo"),
			code: 56, status: "403", reason: "port", deny: egDeny("CONNECT", api, "", "port")},
		{name: "connect-to-port-80", argv: curl("--proxytunnel", "http://"+files+"/echo"),
			code: 56, status: "403", reason: "port", deny: egDeny("CONNECT", files, "", "port")},
		{name: "ipv4-literal-of-upstream", argv: curl("https://" + ip + "/echo"),
			code: 56, status: "403", reason: "ip_literal", deny: egDeny("CONNECT", ip, "", "ip_literal")},
		{name: "ipv4-literal-plain-http", argv: curl("http://" + ip + "/echo"),
			code: 0, status: "403", reason: "ip_literal", deny: egDeny("GET", ip, "/echo", "ip_literal")},
		{name: "ipv6-literal-ipv4-mapped", argv: curl("-g", "https://[::ffff:"+ip+"]/echo"),
			code: 56, status: "403", reason: "ip_literal", deny: egDeny("CONNECT", ip, "", "ip_literal")},
		{name: "ipv6-literal-metadata", argv: curl("-g", "https://[fd00:ec2::254]/latest/meta-data/"),
			code: 56, status: "403", reason: "ip_literal", deny: egDeny("CONNECT", "fd00:ec2::254", "", "ip_literal")},
		{name: "decimal-ip-connect", argv: rawProxy("CONNECT " + decimal + ":443 HTTP/1.1\r\nHost: " + decimal + ":443\r\n\r\n"),
			code: 0, status: "403", reason: "ip_literal", deny: egDeny("CONNECT", ip, "", "ip_literal")},
		{name: "hex-octal-ip-connect", argv: rawProxy("CONNECT " + hexOctal + ":443 HTTP/1.1\r\nHost: " + hexOctal + ":443\r\n\r\n"),
			code: 0, status: "403", reason: "ip_literal", deny: egDeny("CONNECT", ip, "", "ip_literal")},
		{name: "metadata-http", argv: curl("http://169.254.169.254/latest/meta-data/"),
			code: 0, status: "403", reason: "ip_literal", deny: egDeny("GET", "169.254.169.254", "/latest/meta-data/", "ip_literal")},
		{name: "metadata-https", argv: curl("https://169.254.169.254/latest/meta-data/"),
			code: 56, status: "403", reason: "ip_literal", deny: egDeny("CONNECT", "169.254.169.254", "", "ip_literal")},
		{name: "host-header-not-connect-host", argv: curl("https://"+api+"/echo", "-H", "Host: "+other),
			code: 0, status: "421", reason: "authority_mismatch", deny: egDeny("GET", api, "/echo", "authority_mismatch")},
		{name: "sni-not-connect-host-intercept", argv: curl("-k", "https://"+other+"/echo", "--connect-to", other+":443:"+api+":443"),
			code: 0, status: "421", reason: "sni_mismatch", deny: egDeny("GET", api, "/echo", "sni_mismatch")},
		{name: "sni-not-connect-host-passthrough", argv: curl("https://"+other+"/echo", "--connect-to", other+":443:"+files+":443"),
			code: 35, deny: egDeny("CONNECT", files, "", "sni_mismatch")},
		{name: "connect-with-granted-host-header", argv: rawProxy("CONNECT " + other + ":443 HTTP/1.1\r\nHost: " + api + ":443\r\n\r\n"),
			code: 0, status: "403", reason: "not_granted", deny: egDeny("CONNECT", other, "", "not_granted")},
		{name: "plain-http-ungranted", argv: curl("http://" + other + "/"),
			code: 0, status: "403", reason: "not_granted", deny: egDeny("GET", other, "/", "not_granted")},
		{name: "websocket-upgrade-ungranted-host", argv: curl(append([]string{"http://" + other + "/ws"}, ws...)...),
			code: 0, status: "403", reason: "not_granted", deny: egDeny("GET", other, "/ws", "not_granted")},
		{name: "websocket-upgrade-path-not-granted", argv: curl(append([]string{"--http1.1", "https://" + api + "/ws"}, ws...)...),
			code: 0, status: "403", reason: "path_not_granted", deny: egDeny("GET", api, "/ws", "path_not_granted")},
		{name: "git-push", argv: []string{"sh", "-c", `rm -rf /tmp/push && git clone -q https://` + api + `/git/repo.git /tmp/push && cd /tmp/push &&
git -c user.name=agent -c user.email=agent@example.test commit -q --allow-empty -m "agent change" &&
git push origin HEAD:refs/heads/agent-change 2>&1`},
			code: 128, reason: "git_push", deny: egDeny("GET", api, "/git/repo.git/info/refs", "git_push")},
		{name: "git-receive-pack-post", argv: curl("-X", "POST", "-H", "Content-Type: application/x-git-receive-pack-request",
			"--data-binary", "0000", "https://"+api+"/git/repo.git/git-receive-pack"),
			code: 0, status: "403", reason: "git_push", deny: egDeny("POST", api, "/git/repo.git/git-receive-pack", "git_push")},
		{name: "path-not-granted", argv: curl("https://" + api + "/admin"),
			code: 0, status: "403", reason: "path_not_granted", deny: egDeny("GET", api, "/admin", "path_not_granted")},
		{name: "path-prefix-sibling", argv: curl("https://" + api + "/echoes"),
			code: 0, status: "403", reason: "path_not_granted", deny: egDeny("GET", api, "/echoes", "path_not_granted")},
		{name: "path-traversal", argv: curl("--path-as-is", "https://"+api+"/echo/../admin"),
			code: 0, status: "400", reason: "path_invalid", deny: egDeny("GET", api, "/echo/../admin", "path_invalid")},
		{name: "path-traversal-encoded", argv: curl("--path-as-is", "https://"+api+"/echo/%2e%2e/admin"),
			code: 0, status: "400", reason: "path_invalid", deny: egDeny("GET", api, "/echo/%2e%2e/admin", "path_invalid")},
		{name: "path-traversal-double-encoded", argv: curl("--path-as-is", "https://"+api+"/echo/%252e%252e/admin"),
			code: 0, status: "400", reason: "path_invalid", deny: egDeny("GET", api, "/echo/%252e%252e/admin", "path_invalid")},
		{name: "path-traversal-encoded-slash", argv: curl("--path-as-is", "https://"+api+"/echo%2f..%2fadmin"),
			code: 0, status: "400", reason: "path_invalid", deny: egDeny("GET", api, "/echo%2f..%2fadmin", "path_invalid")},
		{name: "credentialed-route-plain-http", argv: curl("http://" + api + "/echo"),
			code: 0, status: "403", reason: "plain_http_credential", deny: egDeny("GET", api, "/echo", "plain_http_credential")},
		{name: "trace", argv: curl("-X", "TRACE", "https://"+api+"/echo"),
			code: 0, status: "405", reason: "method", deny: egDeny("TRACE", api, "/echo", "method")},
		{name: "absolute-form-https", argv: rawProxy("GET https://" + api + "/echo HTTP/1.1\r\nHost: " + api + "\r\nConnection: close\r\n\r\n"),
			code: 0, status: "400", reason: "scheme", deny: egDeny("GET", api, "/echo", "scheme")},
		{name: "origin-form-to-gateway", argv: curl("--noproxy", "*", "http://egress:9099/echo"),
			code: 0, status: "400", reason: "origin_form", deny: egDeny("GET", "egress:9099", "/echo", "origin_form")},
		{name: "plain-bytes-in-passthrough-tunnel", argv: curl("--proxytunnel", "http://"+files+":443/echo"),
			code: 52, deny: egDeny("CONNECT", files, "", "not_tls")},
		// The gateway logs a failed TLS handshake in an intercepted tunnel
		// as a warning, not as a decision (intercept.go): logs --denied
		// does not show it, the sidecar's log does.
		{name: "plain-bytes-in-intercepted-tunnel", argv: curl("--proxytunnel", "http://"+api+":443/echo"),
			code: 52, deny: egDeny("CONNECT", api, "", "not_tls")},
	}
}

// egOfflineCases never reach the gateway: they must fail, and the gateway
// must log nothing while they run.
func egOfflineCases(ip string) []egCase {
	return []egCase{
		{name: "proxy-variables-unset", argv: []string{"curl", "-sS", "--max-time", "90", "--noproxy", "*", "https://" + egAPIHost + "/echo"}, code: -1},
		{name: "direct-tcp-to-upstream-ip", argv: []string{"curl", "-sS", "--max-time", "30", "--noproxy", "*", "-k", "https://" + ip + "/echo"}, code: -1},
		{name: "direct-tcp-bash", argv: []string{"timeout", "30", "bash", "-c", "exec 3<>/dev/tcp/" + ip + "/443"}, code: -1},
		{name: "dns-external-name", argv: []string{"getent", "hosts", "example.com"}, code: -1},
		{name: "dns-upstream-alias", argv: []string{"getent", "hosts", egAPIHost}, code: -1},
	}
}

func egBypass(t *testing.T, f *egFixture) {
	cases := egBypassCases(f.up.ip)
	offline := egOfflineCases(f.up.ip)
	upBefore := len(f.up.requests(t))
	seen := len(decisions(t, f.dir, egBottle, true))
	warned := map[string]int{}
	for _, c := range cases {
		if c.warn != "" {
			logs := dockerRunStdin(t, "", "logs", f.name("sidecar"))
			warned[c.warn] = strings.Count(logs.stdout+logs.stderr, c.warn)
		}
	}
	passed := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.agent(t, c.argv...)
			out := r.stdout + r.stderr
			if c.code >= 0 && r.code != c.code || c.code < 0 && r.code == 0 {
				t.Errorf("want exit %d, got %s", c.code, r)
			}
			if c.status != "" {
				if s := lastStatus(out); s != c.status {
					t.Errorf("want HTTP status %s, got %q:\n%s", c.status, s, out)
				}
			}
			if c.reason != "" {
				if got := refusalReason(out); got != c.reason {
					t.Errorf("want the gateway's reason %s, got %q:\n%s", c.reason, got, out)
				}
			}
			// The refusal is in logs --denied --json, after the lines of
			// the cases before.
			deadline := time.Now().Add(10 * time.Second)
			for c.deny != nil {
				ds := decisions(t, f.dir, egBottle, true)
				var fresh []egDecision
				if seen <= len(ds) {
					fresh = ds[seen:]
				}
				if i := slices.IndexFunc(fresh, func(d egDecision) bool {
					return d.Method == c.deny.Method && d.Host == c.deny.Host && d.Path == c.deny.Path && d.Reason == c.deny.Reason
				}); i >= 0 {
					seen = len(ds)
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("logs --denied --json has no line %q among the new lines:\n%v", c.deny.String(), fresh)
					seen = len(ds)
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if c.warn != "" {
				deadline := time.Now().Add(10 * time.Second)
				for {
					logs := dockerRunStdin(t, "", "logs", f.name("sidecar"))
					if strings.Count(logs.stdout+logs.stderr, c.warn) > warned[c.warn] {
						warned[c.warn]++
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("the sidecar's log has no new line with %s", c.warn)
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
			if !t.Failed() {
				passed++
			}
		})
	}

	// Credential headers in other spellings are stripped, not refused.
	stripped := false
	t.Run("credential-header-other-spellings", func(t *testing.T) {
		r := f.agent(t, curl("https://"+egAPIHost+"/echo",
			"-H", "X_Api.Key: smuggled-1", "-H", "x-api-key: smuggled-2", "-H", "Private_Token: smuggled-3",
			"-H", "Cookie: session=smuggled-4", "-H", "Proxy-Authorization: Basic c211Z2dsZWQ=",
			"-H", "X-Auth.Token: smuggled-5", "-H", "X-Custom-Secret: smuggled-6")...)
		wantCode(t, "curl with smuggled credential headers", r, 0)
		if s := lastStatus(r.stdout); s != "200" {
			t.Fatalf("want 200 (stripped, not refused), got %s:\n%s", s, r.stdout)
		}
		echo := parseEcho(t, r.stdout)
		for _, h := range []string{"X-Api-Key", "Private-Token", "Cookie", "Proxy-Authorization", "X-Auth-Token", "X-Custom-Secret"} {
			if got := echo.header(h); got != nil {
				t.Errorf("the upstream saw %s (any spelling) = %q; the gateway must strip it", h, got)
			}
		}
		if strings.Contains(strings.Join(echo.HeaderNames, " "), "muggled") || strings.Contains(fmt.Sprint(echo.Headers), "smuggled") {
			t.Errorf("a smuggled value reached the upstream; it saw the headers %q", echo.HeaderNames)
		}
		if got := echo.header("Authorization"); !slices.Equal(got, []string{"Bearer " + f.canary}) {
			t.Errorf("the upstream saw Authorization %q, want only the injected token", got)
		}
		stripped = !t.Failed()
	})

	// Attempts that never reach the gateway run at the same time (DNS in
	// the agent takes 20 s to fail), then are judged one by one.
	all := len(decisions(t, f.dir, egBottle, false))
	type outcome struct {
		r    bfResult
		err  error
		took time.Duration
	}
	results := make([]outcome, len(offline))
	var wg sync.WaitGroup
	bin := e2eBinary(t)
	for i, c := range offline {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			r, err := bfExec(bin, f.dir, nil, "", append([]string{"attach", egBottle, "--"}, c.argv...)...)
			results[i] = outcome{r, err, time.Since(began)}
		}()
	}
	wg.Wait()
	offlinePassed := 0
	t.Run("offline", func(t *testing.T) {
		for i, c := range offline {
			t.Run(c.name, func(t *testing.T) {
				o := results[i]
				if o.err != nil {
					t.Fatal(o.err)
				}
				if o.r.code == 0 {
					t.Errorf("want failure, got %s", o.r)
				}
				if lastStatus(o.r.stdout) != "" || strings.Contains(o.r.stdout, "{") {
					t.Errorf("an answer came back:\n%s", o.r.stdout)
				}
				t.Logf("failed as it must (exit %d) after %s: %s", o.r.code, o.took.Round(100*time.Millisecond), strings.TrimSpace(o.r.stderr))
				if !t.Failed() {
					offlinePassed++
				}
			})
		}
	})
	if ds := decisions(t, f.dir, egBottle, false); len(ds) != all {
		t.Errorf("the gateway logged %d decisions while the offline attempts ran; they must never reach it: %v", len(ds)-all, ds[all:])
		offlinePassed = 0
	}

	// None of it reached the upstream.
	for _, q := range f.up.requests(t)[upBefore:] {
		bad := q.Host != egAPIHost || q.Method == "TRACE" || strings.Contains(strings.ToLower(q.Path+"?"+q.Query), "receive-pack") ||
			!(q.Path == "/echo" || strings.HasPrefix(q.Path, "/echo/") || strings.HasPrefix(q.Path, "/git/"))
		if bad {
			t.Errorf("a refused request reached the upstream: %s %s %s?%s", q.Method, q.Host, q.Path, q.Query)
		}
	}

	total, logged := len(cases)+1+len(offline), 0
	for _, c := range cases {
		if c.deny != nil {
			logged++
		}
	}
	var names []string
	for _, c := range cases {
		names = append(names, c.name)
	}
	names = append(names, "credential-header-other-spellings")
	for _, c := range offline {
		names = append(names, c.name)
	}
	t.Logf("bypass cases: %d (%d refused with a deny line in logs --denied, %d refused with only a sidecar warning, 1 stripped, %d never reach the gateway): %s",
		total, logged, len(cases)-logged, len(offline), strings.Join(names, ", "))
	t.Logf("bypass results: %d/%d refused as expected, stripped ok=%v, offline %d/%d", passed, len(cases), stripped, offlinePassed, len(offline))
	if total < 20 {
		t.Errorf("only %d bypass cases", total)
	}
}

// egSSE: server-sent events stream through an intercepted route: the
// first event reaches the agent while the upstream still holds the
// stream open, and the second only once the test lets it go.
func egSSE(t *testing.T, f *egFixture) {
	id := "sse-" + randomHex(4)
	began := time.Now()
	s := bfStream(t, f.dir, "attach", egBottle, "--", "curl", "-sS", "-N", "--max-time", "60", "https://"+egAPIHost+"/sse?id="+id)
	first := s.next(t, 30*time.Second)
	if first.text != "data: first" {
		t.Fatalf("first SSE line %q, want \"data: first\"", first.text)
	}
	t.Logf("first event after %s (attach, CONNECT, two TLS handshakes included)", first.at.Sub(began).Round(time.Millisecond))
	// The upstream holds the stream open: nothing more arrives, and curl
	// has not finished.
	hold := time.After(1500 * time.Millisecond)
	for held := false; !held; {
		select {
		case l, ok := <-s.lines:
			if !ok {
				<-s.done
				t.Fatalf("the stream ended before the upstream was released (%v): %s", s.err, s.stderr.String())
			}
			if strings.TrimSpace(l.text) != "" {
				t.Fatalf("a second line arrived before the upstream was released: %q", l.text)
			}
		case <-hold:
			held = true
		}
	}
	released := time.Now()
	f.up.release(t, id)
	second := s.next(t, 10*time.Second)
	if second.text != "data: second" {
		t.Fatalf("second SSE line %q, want \"data: second\"", second.text)
	}
	lag := second.at.Sub(released)
	t.Logf("second event %s after the release", lag.Round(time.Millisecond))
	if second.at.Sub(first.at) < 1500*time.Millisecond {
		t.Errorf("the events arrived %s apart: the first was not delivered before the stream's end", second.at.Sub(first.at))
	}
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("curl -N ended with %v: %s", s.err, s.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("curl -N did not end after the last event")
	}
}

// egRouteInPlace: a route added and removed changes the gateway without
// touching the agent or the sidecar.
func egRouteInPlace(t *testing.T, f *egFixture) {
	agentID := dockerCLI(t, "inspect", "--format", "{{.Id}}", f.name("agent"))
	sidecarID := dockerCLI(t, "inspect", "--format", "{{.Id}}", f.name("sidecar"))
	same := func(what string) {
		t.Helper()
		if id := dockerCLI(t, "inspect", "--format", "{{.Id}}", f.name("agent")); id != agentID {
			t.Errorf("%s replaced the agent: %s became %s", what, agentID, id)
		}
		if id := dockerCLI(t, "inspect", "--format", "{{.Id}}", f.name("sidecar")); id != sidecarID {
			t.Errorf("%s replaced the sidecar: %s became %s", what, sidecarID, id)
		}
	}
	addr := `bottle.gw.egress["other.example.test"]`

	editFile(t, f.dir, "main.hcl", `  egress "files.example.test" {`, egOtherRoute+`  egress "files.example.test" {`)
	r := f.bf(t, "plan", "--detailed-exitcode")
	wantCode(t, "plan adding a route", r, 2)
	wantLines(t, "plan adding a route", r.stdout, "  # "+addr+" will be created", "Plan: 1 to add, 0 to change, 0 to destroy.")
	if strings.Contains(r.stdout, "bottle.gw.agent") {
		t.Errorf("adding a route must not touch the agent:\n%s", r.stdout)
	}
	r = f.bf(t, "apply", "--auto-approve")
	wantCode(t, "apply adding a route", r, 0)
	wantLines(t, "apply adding a route", r.stdout, "Apply complete! Objects: 1 added, 0 changed, 0 destroyed.")
	r = f.agent(t, curl("https://"+egOtherHost+"/echo", "-H", "Authorization: Bearer agent-own")...)
	wantCode(t, "curl https://other.example.test/echo once granted", r, 0)
	if s := lastStatus(r.stdout); s != "200" {
		t.Fatalf("once granted, other.example.test answered %s:\n%s", s, r.stdout)
	}
	echo := parseEcho(t, r.stdout)
	if echo.Host != egOtherHost {
		t.Errorf("the upstream saw Host %q, want %s", echo.Host, egOtherHost)
	}
	// An uncredentialed route: the agent's header is stripped and the
	// other route's token is not sent here.
	if got := echo.header("Authorization"); got != nil {
		t.Errorf("other.example.test (no auth block) received Authorization %q", got)
	}
	same("adding a route")

	editFile(t, f.dir, "main.hcl", egOtherRoute, "")
	r = f.bf(t, "plan", "--detailed-exitcode")
	wantCode(t, "plan removing a route", r, 2)
	wantLines(t, "plan removing a route", r.stdout, "  # "+addr+" will be destroyed", "Plan: 0 to add, 0 to change, 1 to destroy.")
	if strings.Contains(r.stdout, "bottle.gw.agent") {
		t.Errorf("removing a route must not touch the agent:\n%s", r.stdout)
	}
	r = f.bf(t, "apply", "--auto-approve")
	wantCode(t, "apply removing a route", r, 0)
	wantLines(t, "apply removing a route", r.stdout, "Apply complete! Objects: 0 added, 0 changed, 1 destroyed.")
	r = f.agent(t, curl("https://"+egOtherHost+"/echo")...)
	if r.code != 56 || refusalReason(r.stdout) != "not_granted" {
		t.Errorf("after the route's removal: want curl exit 56 and not_granted, got %s", r)
	}
	same("removing a route")
	r = f.bf(t, "plan", "--detailed-exitcode")
	wantCode(t, "plan after removing the route", r, 0)
}

// egCanary: the route's token, a random canary, is nowhere the agent or
// an onlooker can read it, though the upstream got it on every request.
func egCanary(t *testing.T, f *egFixture) {
	places := map[string]string{}
	look := func(where, text string) { places[where] = text }

	// The control: the canary is the token the upstream received.
	wantCode(t, "curl /echo", f.agent(t, curl("https://"+egAPIHost+"/echo")...), 0)
	got := 0
	for _, q := range f.up.requests(t) {
		if slices.Contains(q.header("Authorization"), "Bearer "+f.canary) {
			got++
		}
	}
	if got == 0 {
		t.Fatal("the upstream never received the canary: the check below would prove nothing")
	}

	r := f.agent(t, "env")
	wantCode(t, "attach -- env", r, 0)
	look("the agent's environment (attach -- env)", r.stdout)

	// Every process of the agent container: environment and argv, as root.
	procs, err := dockerRun("exec", "-u", "0", f.name("agent"), "sh", "-c", `for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null; echo; done`)
	if err != nil {
		t.Fatal(err)
	}
	look("the environ and cmdline of every process in the agent", procs)

	// The agent's file system, twice: grep -r as the agent user (through
	// attach, the pattern on stdin, never in an argv), and every file of
	// `docker export` read here, whatever its owner and mode (root in the
	// agent has no CAP_DAC_OVERRIDE). A control file in the agent's home
	// proves both searches read what the agent writes.
	control := "control-" + randomHex(8)
	wantCode(t, "write the control file", bfRunStdin(t, f.dir, nil, control+"\n", "attach", egBottle, "--", "sh", "-c", "cat > $HOME/.control"), 0)
	grep := func(pattern string) bfResult {
		t.Helper()
		return bfRunStdin(t, f.dir, nil, pattern+"\n", "attach", egBottle, "--", "timeout", "120",
			"grep", "-r", "-l", "-s", "-F", "--binary-files=text", "--exclude-dir=proc", "--exclude-dir=sys", "--exclude-dir=dev", "-f", "/dev/stdin", "/")
	}
	began := time.Now()
	// Exit 2 is grep's "some files were unreadable" (root's, as the agent
	// user); the export below reads those.
	if r := grep(control); r.code != 0 && r.code != 2 || !strings.Contains(r.stdout, "/home/agent/.control") {
		t.Errorf("the control search found %q (%s), want /home/agent/.control", r.stdout, r)
	}
	if r := grep(f.canary); r.code != 1 && r.code != 2 || r.stdout != "" {
		t.Errorf("grep -r for the canary in the agent's file system: %s", r)
	}
	hits, files := exportSearch(t, f.name("agent"), control, f.canary)
	if !slices.Contains(hits[control], "home/agent/.control") {
		t.Errorf("the control is not found in docker export of the agent (found in %q)", hits[control])
	}
	for _, p := range hits[f.canary] {
		t.Errorf("the canary is in the agent's file %s", p)
	}
	t.Logf("searched the agent's file system with grep (twice) and docker export (%d files) in %s", files, time.Since(began).Round(100*time.Millisecond))

	look("docker inspect of the sidecar", dockerCLI(t, "inspect", f.name("sidecar")))
	look("docker inspect of the agent", dockerCLI(t, "inspect", f.name("agent")))
	for _, c := range []string{"sidecar", "agent"} {
		r := dockerRunStdin(t, "", "logs", f.name(c))
		look("docker logs of the "+c, r.stdout+r.stderr)
	}
	look("bottleform logs --json", bfOK(t, f.dir, nil, "logs", egBottle, "--json"))
	for _, name := range []string{"state.json", "state.json.backup"} {
		data, err := os.ReadFile(filepath.Join(f.dir, ".bottleform", name))
		if err != nil {
			t.Fatal(err)
		}
		look(name, string(data))
	}
	look("show --json of the state", bfOK(t, f.dir, nil, "show", "--json"))
	planFile := filepath.Join(t.TempDir(), "gw.tfplan")
	r = f.bf(t, "plan", "--destroy", "--out", planFile)
	wantCode(t, "plan --destroy --out", r, 0)
	data, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	look("the saved plan file", string(data))
	look("show --json of the saved plan", bfOK(t, f.dir, nil, "show", "--json", planFile))
	r = f.bf(t, "plan", "--json")
	wantCode(t, "plan --json", r, 0)
	for where, text := range f.outputs {
		look(where, text)
	}

	var found []string
	for where, text := range places {
		if strings.Contains(text, f.canary) {
			found = append(found, where)
		}
	}
	slices.Sort(found)
	for _, where := range found {
		t.Errorf("the canary is in %s", where)
	}
	t.Logf("the canary (received by the upstream on %d requests) is in none of %d places", got, len(places))
}
