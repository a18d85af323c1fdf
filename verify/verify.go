// Package verify checks, from inside a running bottle, that it keeps the
// promises its definition makes: no way out but the gateway, no external
// DNS, ungranted hosts refused and granted routes in force, the git gate
// and supervise answering, and no secret the agent was not granted in its
// environment or its files. The network checks run in the agent, as the
// agent user, in a copy of bottleform's static binary (`bottleform
// probe`); the secret check reads the agent's env and files out and
// compares them inside bottleform, never printing a value.
package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/internal/rootfs"
	"github.com/bottleform/bottleform/resource"
)

// Agent is the running agent: the provisioning handle of either backend.
type Agent interface {
	Exec(ctx context.Context, argv []string, user string, stdin io.Reader) (stdout, stderr []byte, exit int, err error)
	CopyIn(ctx context.Context, dir string, archive io.Reader) error
}

// Endpoint is something the agent must not reach directly, and why.
type Endpoint struct {
	Addr string // host:port
	What string
}

// Target is one bottle to verify.
type Target struct {
	// Bottle is the effective desired spec (provider routes merged).
	Bottle *resource.Bottle
	Agent  Agent
	// Proxy, NoProxy, Gate (base URL) and Supervise (MCP URL) are the
	// sidecar's services as the agent reaches them.
	Proxy, NoProxy, Gate, Supervise string
	// Direct are addresses outside the bottle the agent must not reach
	// without the gateway.
	Direct []Endpoint
	// Secrets are the resolved values of the bottle's references.
	Secrets applier.Secrets
	// ProbeBinary is a static bottleform to run the probe with.
	ProbeBinary string
	// DNSName is an external name that must not resolve (default
	// example.com); Ungranted a host the gateway must refuse (default
	// bottleform-verify.invalid).
	DNSName, Ungranted string
}

// Status of a check.
type Status string

const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Check is one verified promise with what shows it.
type Check struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Status   Status `json:"status"`
	Evidence string `json:"evidence"`
}

// caFile is where the agent finds the bottle's CA (backends/docker).
const caFile = "/etc/bottleform/ca.pem"

// Run verifies t. It fails only when the agent cannot be probed at all;
// every broken promise is a Check that failed.
func Run(ctx context.Context, t Target) ([]Check, error) {
	if t.DNSName == "" {
		t.DNSName = "example.com"
	}
	if t.Ungranted == "" {
		t.Ungranted = "bottleform-verify.invalid"
	}
	env, err := agentEnv(ctx, t.Agent)
	if err != nil {
		return nil, err
	}
	var checks []Check
	checks = append(checks, proxyEnv(t, env))
	probeBin, err := installProbe(ctx, t)
	if err != nil {
		return nil, err
	}
	defer removeProbe(t.Agent, probeBin)

	req := ProbeRequest{DNS: []string{t.DNSName}}
	for _, d := range t.Direct {
		req.TCP = append(req.TCP, d.Addr)
	}
	proxy := t.Proxy
	req.Connect = append(req.Connect, ConnectProbe{Proxy: proxy, Target: t.Ungranted + ":443"})
	routes := routeHosts(t.Bottle)
	for _, r := range routes {
		cp := ConnectProbe{Proxy: proxy, Target: net.JoinHostPort(r.probe, "443")}
		if r.route.TLS == resource.TLSIntercept {
			cp.TLSName, cp.CAFile = r.probe, caFile
		}
		req.Connect = append(req.Connect, cp)
	}
	for _, g := range t.Bottle.Git {
		req.HTTP = append(req.HTTP, HTTPProbe{Method: "GET", URL: t.Gate + "/" + g.Name + ".git/info/refs?service=git-upload-pack"})
	}
	if t.Bottle.Supervise {
		req.HTTP = append(req.HTTP, HTTPProbe{
			Method: "POST", URL: t.Supervise,
			Headers: map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
			Body:    `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bottleform-verify","version":"1"}}}`,
		})
	}
	pr, err := probe(ctx, t, probeBin, req)
	if err != nil {
		return nil, err
	}
	checks = append(checks, directEgress(t, pr.TCP), externalDNS(pr.DNS[0]), ungranted(t, pr.Connect[0]))
	for i, r := range routes {
		checks = append(checks, routeInForce(r, pr.Connect[1+i]))
	}
	for i, g := range t.Bottle.Git {
		checks = append(checks, gateAnswers(g, pr.HTTP[i]))
		checks = append(checks, forbiddenPush(ctx, t, g))
	}
	if t.Bottle.Supervise {
		checks = append(checks, superviseAnswers(t, pr.HTTP[len(t.Bottle.Git)]))
	}
	checks = append(checks, noSecrets(ctx, t, probeBin, env))
	return checks, nil
}

// agentEnv is the environment a command in the agent gets.
func agentEnv(ctx context.Context, a Agent) (map[string]string, error) {
	out, stderr, code, err := a.Exec(ctx, []string{"env"}, "", nil)
	if err != nil {
		return nil, fmt.Errorf("read the agent's env: %w", err)
	}
	if code != 0 {
		return nil, fmt.Errorf("read the agent's env: `env` exited %d: %s", code, strings.TrimSpace(string(stderr)))
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k != "" {
			env[k] = v
		}
	}
	clear(out)
	return env, nil
}

func proxyEnv(t Target, env map[string]string) Check {
	c := Check{ID: "proxy_env", Title: "the agent's proxy variables point at the gateway"}
	var bad []string
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		v, ok := env[k]
		switch {
		case !ok:
			bad = append(bad, k+" is not set")
		case v != t.Proxy:
			bad = append(bad, fmt.Sprintf("%s=%s, not %s", k, v, t.Proxy))
		}
	}
	for _, k := range []string{"NO_PROXY", "no_proxy"} {
		if env[k] != t.NoProxy {
			bad = append(bad, fmt.Sprintf("%s=%q, not %q", k, env[k], t.NoProxy))
		}
	}
	if len(bad) > 0 {
		c.Status, c.Evidence = Fail, strings.Join(bad, "; ")
		return c
	}
	c.Status, c.Evidence = Pass, "HTTP_PROXY, HTTPS_PROXY, http_proxy, https_proxy = "+t.Proxy+"; NO_PROXY = "+t.NoProxy
	return c
}

// probe runs the probe binary name in the agent as the agent user, with
// req on stdin.
func probe(ctx context.Context, t Target, name string, req ProbeRequest) (*ProbeResult, error) {
	body, _ := json.Marshal(req)
	out, stderr, code, err := t.Agent.Exec(ctx, []string{name, "probe"}, "", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("run the probe in the agent: %w", err)
	}
	if code != 0 {
		return nil, fmt.Errorf("the probe in the agent exited %d: %s", code, strings.TrimSpace(string(stderr)))
	}
	var pr ProbeResult
	if err := json.Unmarshal(out, &pr); err != nil {
		return nil, fmt.Errorf("the probe's answer: %w", err)
	}
	if len(pr.TCP) != len(req.TCP) || len(pr.DNS) != len(req.DNS) || len(pr.Connect) != len(req.Connect) || len(pr.HTTP) != len(req.HTTP) {
		return nil, fmt.Errorf("the probe answered %d/%d/%d/%d of %d/%d/%d/%d probes", len(pr.TCP), len(pr.DNS), len(pr.Connect), len(pr.HTTP), len(req.TCP), len(req.DNS), len(req.Connect), len(req.HTTP))
	}
	return &pr, nil
}

// installProbe copies the probe binary into the agent's /tmp and returns
// its path there.
func installProbe(ctx context.Context, t Target) (string, error) {
	bin, err := os.ReadFile(t.ProbeBinary)
	if err != nil {
		return "", fmt.Errorf("read the probe binary: %w", err)
	}
	rnd := make([]byte, 6)
	_, _ = rand.Read(rnd)
	base := "bottleform-probe-" + hex.EncodeToString(rnd)
	archive, err := rootfs.Tar([]rootfs.Entry{{Name: base, Mode: 0o755, Data: bin}})
	if err != nil {
		return "", err
	}
	if err := t.Agent.CopyIn(ctx, "/tmp", bytes.NewReader(archive)); err != nil {
		return "", fmt.Errorf("copy the probe into the agent: %w", err)
	}
	return "/tmp/" + base, nil
}

func removeProbe(a Agent, name string) {
	_, _, _, _ = a.Exec(context.Background(), []string{"rm", "-f", name}, "0", nil)
}

func directEgress(t Target, rs []TCPResult) Check {
	c := Check{ID: "no_direct_egress", Title: "the agent has no way out but the gateway"}
	var ev []string
	c.Status = Pass
	for i, r := range rs {
		what := t.Direct[i].What
		switch r.Outcome {
		case TCPConnected, TCPRefused:
			c.Status = Fail
			ev = append(ev, fmt.Sprintf("%s (%s) is reachable from the agent: %s", r.Addr, what, r.Outcome))
		case TCPError:
			c.Status = Fail
			ev = append(ev, fmt.Sprintf("%s (%s): %s (neither reached nor refused)", r.Addr, what, r.Detail))
		default:
			ev = append(ev, fmt.Sprintf("%s (%s): %s", r.Addr, what, r.Detail))
		}
	}
	if len(rs) == 0 {
		c.Status, ev = Skip, []string{"no address to try"}
	}
	c.Evidence = strings.Join(ev, "; ")
	return c
}

func externalDNS(r DNSResult) Check {
	c := Check{ID: "no_external_dns", Title: "external names do not resolve in the agent"}
	if r.Resolved {
		c.Status, c.Evidence = Fail, fmt.Sprintf("%s resolved to %s", r.Name, r.Detail)
		return c
	}
	c.Status, c.Evidence = Pass, fmt.Sprintf("%s: %s", r.Name, r.Detail)
	return c
}

func ungranted(t Target, r ConnectResult) Check {
	c := Check{ID: "ungranted_denied", Title: "the gateway refuses a host that is not granted"}
	if r.Status == 403 && r.Reason != "" {
		c.Status, c.Evidence = Pass, fmt.Sprintf("CONNECT %s: %d (%s)", r.Target, r.Status, r.Reason)
		return c
	}
	c.Status, c.Evidence = Fail, fmt.Sprintf("CONNECT %s through %s: status %d %s %s", r.Target, t.Proxy, r.Status, r.Reason, r.Detail)
	return c
}

type routeProbe struct {
	route resource.Route
	probe string // the host name or address to ask for
}

// routeHosts are the bottle's routes with a host to ask the gateway for:
// a wildcard route is asked for a name under it.
func routeHosts(b *resource.Bottle) []routeProbe {
	var out []routeProbe
	for _, r := range b.Egress {
		h := r.Host
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			h = "bottleform-verify." + rest
		}
		out = append(out, routeProbe{route: r, probe: h})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].route.Host < out[j].route.Host })
	return out
}

// reasonsGranted are the gateway's refusals that come after the policy
// granted the host: the route is in force, the upstream is the problem.
var reasonsGranted = map[string]bool{"resolve_failed": true, "upstream_error": true, "blocked_address": true}

func routeInForce(r routeProbe, res ConnectResult) Check {
	c := Check{ID: "route:" + r.route.Host, Title: "the route to " + r.route.Host + " (" + r.route.TLS + ") is in force"}
	switch {
	case res.Status == 200 && r.route.TLS == resource.TLSIntercept && res.Issuer == "":
		c.Status, c.Evidence = Fail, "CONNECT 200, but the tunnel's TLS is not the bottle's CA: "+res.Detail
	case res.Status == 200 && r.route.TLS == resource.TLSIntercept:
		c.Status, c.Evidence = Pass, "CONNECT 200; TLS intercepted, issued by "+res.Issuer
	case res.Status == 200:
		c.Status, c.Evidence = Pass, "CONNECT 200 (passthrough: closed before the ClientHello, so the upstream was not dialled)"
	case reasonsGranted[res.Reason]:
		c.Status, c.Evidence = Pass, fmt.Sprintf("granted by the gateway; the upstream is out of reach from here (%d %s)", res.Status, res.Reason)
	default:
		c.Status, c.Evidence = Fail, fmt.Sprintf("CONNECT %s: %d %s %s", res.Target, res.Status, res.Reason, res.Detail)
	}
	return c
}

func gateAnswers(g resource.GitEntry, r HTTPResult) Check {
	c := Check{ID: "git_gate:" + g.Name, Title: "the git gate serves " + g.Name}
	if r.Status == 200 && strings.Contains(r.Body, "# service=git-upload-pack") {
		c.Status, c.Evidence = Pass, fmt.Sprintf("GET %s: 200, refs advertised", r.URL)
		return c
	}
	c.Status, c.Evidence = Fail, fmt.Sprintf("GET %s: %d %s %s", r.URL, r.Status, strings.TrimSpace(firstLine(r.Body)), r.Detail)
	return c
}

// forbiddenPush pushes an empty commit to a ref outside any sane push
// pattern with the agent's git, and wants the gate's refusal.
func forbiddenPush(ctx context.Context, t Target, g resource.GitEntry) Check {
	c := Check{ID: "git_push_refused:" + g.Name, Title: "the git gate refuses a push " + g.Name + "'s patterns do not allow"}
	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	ref := "refs/bottleform-verify/" + hex.EncodeToString(rnd)
	script := `set -e
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT; cd "$d"
git init -q
git -c user.name=bottleform-verify -c user.email=verify@bottleform.invalid commit -q --allow-empty -m "bottleform verify: a push the gate must refuse"
git push "$1" "HEAD:$2" 2>&1 && echo BOTTLEFORM-PUSH-ACCEPTED || true`
	url := t.Gate + "/" + g.Name + ".git"
	out, _, code, err := t.Agent.Exec(ctx, []string{"/bin/sh", "-c", script, "sh", url, ref}, "", nil)
	switch {
	case err != nil:
		c.Status, c.Evidence = Fail, err.Error()
	case code == 127 || strings.Contains(string(out), "git: not found"):
		c.Status, c.Evidence = Skip, "the agent's image has no git"
	case strings.Contains(string(out), "BOTTLEFORM-PUSH-ACCEPTED"):
		c.Status, c.Evidence = Fail, "the gate accepted a push to "+ref+" (it is upstream now: delete it there)"
	case strings.Contains(string(out), "refusing "+ref):
		c.Status, c.Evidence = Pass, "push to "+ref+": "+lineWith(string(out), "refusing")
	default:
		c.Status, c.Evidence = Fail, fmt.Sprintf("push to %s failed without the gate's refusal (exit %d): %s", ref, code, strings.TrimSpace(lastLines(string(out), 3)))
	}
	return c
}

func superviseAnswers(t Target, r HTTPResult) Check {
	c := Check{ID: "supervise", Title: "supervise answers the agent"}
	if r.Status == 200 && strings.Contains(r.Body, `"serverInfo"`) {
		c.Status, c.Evidence = Pass, fmt.Sprintf("POST %s initialize: 200, %s", r.URL, serverInfo(r.Body))
		return c
	}
	c.Status, c.Evidence = Fail, fmt.Sprintf("POST %s initialize: %d %s %s", t.Supervise, r.Status, firstLine(r.Body), r.Detail)
	return c
}

func serverInfo(body string) string {
	i := strings.Index(body, `"serverInfo"`)
	s := body[i:]
	if j := strings.IndexByte(s, '}'); j > 0 {
		s = s[:j+1]
	}
	return s
}

// noSecrets looks for the value of every secret the bottle uses but does
// not grant to the agent's env in the agent's env and in the files under
// its home and /etc/bottleform. Values under 8 bytes are too short to
// tell from chance and are left out (and counted).
func noSecrets(ctx context.Context, t Target, probeBin string, env map[string]string) Check {
	c := Check{ID: "no_secrets_in_agent", Title: "no secret the agent was not granted is in its env or files"}
	granted := map[resource.Ref]bool{}
	for _, e := range t.Bottle.Env {
		if !e.Ref.IsZero() {
			granted[e.Ref] = true
		}
	}
	type secret struct {
		ref string
		v   []byte
	}
	var secrets []secret
	short := 0
	for ref, v := range t.Secrets {
		switch {
		case granted[ref] || v.Empty():
		case len(v.Reveal()) < 8:
			short++
		default:
			secrets = append(secrets, secret{ref.String(), []byte(v.Reveal())})
			// A key file's PEM body also counts without its armour.
			if body := pemBody(v.Reveal()); body != "" {
				secrets = append(secrets, secret{ref.String(), []byte(body)})
			}
		}
	}
	sort.Slice(secrets, func(i, j int) bool { return secrets[i].ref < secrets[j].ref })
	home := env["HOME"]
	dirs := []string{"/etc/bottleform"}
	if strings.HasPrefix(home, "/") && home != "/" {
		dirs = append([]string{home}, dirs...)
	}
	files, size, err := readTree(ctx, t, probeBin, dirs)
	if err != nil {
		c.Status, c.Evidence = Fail, "read the agent's files: "+err.Error()
		return c
	}
	// Where to look, by the name a finding gives it.
	places := map[string][]byte{}
	for k, v := range env {
		places["the agent's env "+k] = []byte(v)
	}
	for n, b := range files {
		places[n] = b
	}
	var found []string
	for _, n := range slices.Sorted(maps.Keys(places)) {
		for _, s := range secrets {
			if bytes.Contains(places[n], s.v) {
				found = append(found, fmt.Sprintf("%s's value is in %s", s.ref, n))
			}
		}
		clear(places[n])
	}
	found = dedupe(found)
	if len(found) > 0 {
		c.Status, c.Evidence = Fail, strings.Join(found, "; ")
		return c
	}
	c.Status = Pass
	refs := map[string]bool{}
	for _, s := range secrets {
		refs[s.ref] = true
	}
	c.Evidence = fmt.Sprintf("none of %d secret value(s) in %d env variables or %d files (%d KiB) under %s", len(refs), len(env), len(files), size>>10, strings.Join(dirs, ", "))
	if short > 0 {
		c.Evidence += fmt.Sprintf("; %d value(s) under 8 bytes not looked for", short)
	}
	return c
}

// readTree reads the files under dirs in the agent with the probe.
func readTree(ctx context.Context, t Target, name string, dirs []string) (map[string][]byte, int64, error) {
	out, stderr, code, err := t.Agent.Exec(ctx, append([]string{name, "probe", "--tar"}, dirs...), "", nil)
	if err != nil {
		return nil, 0, err
	}
	if code != 0 {
		return nil, 0, fmt.Errorf("the probe exited %d: %s", code, strings.TrimSpace(string(stderr)))
	}
	files := map[string][]byte{}
	var size int64
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, 0, err
		}
		if strings.HasPrefix(path.Base(h.Name), "bottleform-probe-") {
			continue
		}
		files[h.Name] = b
		size += int64(len(b))
	}
	clear(out)
	return files, size, nil
}

func pemBody(s string) string {
	if !strings.Contains(s, "-----BEGIN ") {
		return ""
	}
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "-----") {
			b.WriteString(l)
		}
	}
	if b.Len() < 16 {
		return ""
	}
	return b.String()[:16]
}

func dedupe(s []string) []string {
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "remote:"))
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}
