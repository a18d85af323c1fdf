package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/sidecar/supervise"
)

// canary is a slot value: it must never appear in a log line or a reply.
const canary = "canary-7f3a9c1e-do-not-log"

// syncBuffer is a log sink tests can read while the sidecar writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type running struct {
	socket    string
	egress    string
	git       string
	supervise string
	log       *syncBuffer
	stop      func() error
}

// start runs the sidecar on a socket in a temporary directory and an
// egress listener on a loopback port.
func start(t *testing.T) *running {
	t.Helper()
	// Unix socket paths are short (108 bytes): t.TempDir can be too long.
	dir, err := os.MkdirTemp("", "bfsc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &running{socket: filepath.Join(dir, "run", "control.sock"), log: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			ControlSocket: r.socket, EgressAddr: "127.0.0.1:0", Log: r.log,
			GitAddr: "127.0.0.1:0", GitRoot: filepath.Join(dir, "git"), KeyDir: filepath.Join(dir, "run", "keys"),
			SuperviseAddr: "127.0.0.1:0",
			Ready:         func(a Addrs) { r.git, r.supervise = a.Git.String(), a.Supervise.String(); ready <- a.Egress },
		})
	}()
	select {
	case a := <-ready:
		r.egress = a.String()
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("sidecar did not start")
	}
	var once sync.Once
	var stopErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(2 * time.Second):
				stopErr = errors.New("Run did not return within 2s of cancel")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = r.stop() })
	return r
}

func (r *running) call(t *testing.T, req string) *Reply {
	t.Helper()
	rep, err := Call(context.Background(), r.socket, []byte(req))
	if err != nil {
		t.Fatalf("call %s: %v", req, err)
	}
	return rep
}

func delivery(slots map[string]string) Delivery {
	return Delivery{
		Config: Config{
			Bottle: "reviewer",
			Routes: []Route{
				{Host: "api.anthropic.com", TLS: resource.TLSIntercept, AuthScheme: "Bearer", TokenSlot: "EGRESS_TOKEN_0"},
				{Host: "api.github.com", TLS: resource.TLSIntercept, AuthScheme: "token", TokenSlot: "EGRESS_TOKEN_1"},
				{Host: "registry.npmjs.org", TLS: resource.TLSPassthrough},
			},
			Repos: []Repo{{Name: "app", User: "git", Host: "gitea.example", Port: 22, Path: "/acme/app.git", KeySlot: "GIT_KEY_app"}},
		},
		Slots: slots,
	}
}

func loadReq(t *testing.T, d Delivery) string {
	t.Helper()
	b, err := json.Marshal(Request{Op: OpLoad, Delivery: &d})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestControlProtocol(t *testing.T) {
	r := start(t)

	st, err := os.Stat(r.socket)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want 0600", st.Mode().Perm())
	}
	if st, err := os.Stat(filepath.Dir(r.socket)); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("socket directory: %v, %v; want mode 0700", st.Mode().Perm(), err)
	}

	rep := r.call(t, `{"op":"ping"}`)
	if !rep.OK || rep.Configured || rep.ConfigDigest != "" || rep.Status != nil {
		t.Errorf("ping before load = %+v, want ok, not configured, no status", rep)
	}
	rep = r.call(t, `{"op":"status"}`)
	if !rep.OK || rep.Configured || rep.Status == nil || rep.SlotsComplete || len(rep.MissingSlots) != 0 {
		t.Errorf("status before load = %+v", rep)
	}

	// A delivery whose second credential slot has no value is taken, and
	// the slot is reported missing by name.
	d := delivery(map[string]string{"EGRESS_TOKEN_0": canary, "EGRESS_TOKEN_1": ""})
	rep = r.call(t, loadReq(t, d))
	if !rep.OK || !rep.Configured || rep.ConfigDigest != d.Config.Digest() {
		t.Fatalf("load = %+v, want ok and configured with digest %s", rep, d.Config.Digest())
	}
	rep = r.call(t, `{"op":"ping"}`)
	if !rep.OK || !rep.Configured || rep.ConfigDigest != d.Config.Digest() {
		t.Errorf("ping after load = %+v", rep)
	}
	rep = r.call(t, `{"op":"status"}`)
	if rep.Status == nil || rep.Bottle != "reviewer" || rep.Routes != 3 || rep.Repos != 1 {
		t.Fatalf("status after load = %+v", rep)
	}
	if rep.SlotsComplete || !slices.Equal(rep.MissingSlots, []string{"EGRESS_TOKEN_1", "GIT_KEY_app"}) {
		t.Errorf("status: slots_complete %v, missing %q; want false, [EGRESS_TOKEN_1 GIT_KEY_app]", rep.SlotsComplete, rep.MissingSlots)
	}

	// Filling the slot completes it; a slot left out of the map entirely is
	// missing too.
	rep = r.call(t, loadReq(t, delivery(map[string]string{"EGRESS_TOKEN_0": canary, "EGRESS_TOKEN_1": canary + "-2", "GIT_KEY_app": canary + "-key"})))
	if !rep.OK {
		t.Fatalf("second load: %+v", rep)
	}
	if rep = r.call(t, `{"op":"status"}`); !rep.SlotsComplete || len(rep.MissingSlots) != 0 {
		t.Errorf("status with every slot = %+v", rep.Status)
	}
	rep = r.call(t, loadReq(t, delivery(map[string]string{"EGRESS_TOKEN_1": canary, "GIT_KEY_app": canary + "-key"})))
	if rep = r.call(t, `{"op":"status"}`); !slices.Equal(rep.MissingSlots, []string{"EGRESS_TOKEN_0"}) {
		t.Errorf("status with a slot left out = %+v", rep.Status)
	}

	// Several requests on one connection get one reply line each.
	conn, err := net.Dial("unix", r.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "{\"op\":\"ping\"}\n{\"op\":\"status\"}\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for i, want := range []bool{false, true} {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		var rep Reply
		if err := json.Unmarshal(line, &rep); err != nil || !rep.OK || (rep.Status != nil) != want {
			t.Errorf("reply %d = %s (%v)", i, line, err)
		}
	}
	if err := r.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, err := os.Stat(r.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind after stop: %v", err)
	}
}

func TestControlRefusals(t *testing.T) {
	r := start(t)
	good := delivery(map[string]string{"EGRESS_TOKEN_0": canary})
	if rep := r.call(t, loadReq(t, good)); !rep.OK {
		t.Fatalf("load: %+v", rep)
	}
	digest := good.Config.Digest()

	tests := []struct {
		name, req, want string
	}{
		{"bad JSON", `{"op": "load", "delivery": {"slots": {"EGRESS_TOKEN_0": "` + canary + `"`, "malformed JSON"},
		{"not an object", `["ping"]`, "malformed request"},
		{"unknown op", `{"op":"` + canary + `"}`, "unknown op"},
		{"load without delivery", `{"op":"load"}`, "needs a delivery"},
		{"no bottle", loadReq(t, Delivery{Config: Config{Routes: []Route{}}}), "bottle is empty"},
		{"duplicate host", loadReq(t, Delivery{Config: Config{Bottle: "b", Routes: []Route{
			{Host: "a.example", TLS: "intercept"}, {Host: "a.example", TLS: "intercept"}}}}), "more than one route"},
		{"bad tls", loadReq(t, Delivery{Config: Config{Bottle: "b", Routes: []Route{{Host: "a.example", TLS: "open"}}}}), "tls"},
		{"scheme without slot", loadReq(t, Delivery{Config: Config{Bottle: "b", Routes: []Route{
			{Host: "a.example", TLS: "intercept", AuthScheme: "Bearer"}}}}), "set together"},
		{"credential on passthrough", loadReq(t, Delivery{Config: Config{Bottle: "b", Routes: []Route{
			{Host: "a.example", TLS: "passthrough", AuthScheme: "Bearer", TokenSlot: "EGRESS_TOKEN_0"}}}}), "intercepted"},
		{"unknown slot", loadReq(t, delivery(map[string]string{"EGRESS_TOKEN_9": canary})), "slot EGRESS_TOKEN_9 is not named"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := r.call(t, tt.req)
			if rep.OK || !strings.Contains(rep.Error, tt.want) {
				t.Errorf("reply = %+v, want not ok with %q", rep, tt.want)
			}
			if strings.Contains(rep.Error, canary) {
				t.Errorf("the reply echoes a slot value: %s", rep.Error)
			}
			// A refused load leaves the configuration in force alone.
			if !rep.Configured || rep.ConfigDigest != digest {
				t.Errorf("after a refusal: configured %v, digest %s; want the earlier %s", rep.Configured, rep.ConfigDigest, digest)
			}
		})
	}

	// A line longer than the limit is refused, and the sidecar still answers.
	conn, err := net.Dial("unix", r.socket)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = conn.Write(bytes.Repeat([]byte("x"), maxLine+10))
	}()
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	conn.Close()
	if err != nil || !strings.Contains(string(line), "longer than") {
		t.Errorf("overlong request: %q, %v", line, err)
	}
	if rep := r.call(t, `{"op":"ping"}`); !rep.OK {
		t.Errorf("ping after an overlong request: %+v", rep)
	}

	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	logs := r.log.String()
	if strings.Contains(logs, canary) {
		t.Errorf("a slot value reached the log:\n%s", logs)
	}
	for _, want := range []string{`"msg":"configuration loaded"`, `"msg":"control request rejected"`, `"msg":"configuration rejected"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	// One JSON object per line.
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("log line is not JSON: %s", l)
		}
	}
}

func TestCtlAndHealth(t *testing.T) {
	r := start(t)
	// Not configured yet: unhealthy, so a sidecar that restarted and lost
	// its configuration shows as drift.
	if err := Health(context.Background(), r.socket); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("Health of an unconfigured sidecar: %v, want not configured", err)
	}
	// Configured but a credential missing: unhealthy, naming the slot.
	if rep := r.call(t, loadReq(t, delivery(map[string]string{"EGRESS_TOKEN_0": "x"}))); !rep.OK {
		t.Fatalf("load: %+v", rep)
	}
	if err := Health(context.Background(), r.socket); err == nil || !strings.Contains(err.Error(), "EGRESS_TOKEN_1") {
		t.Fatalf("Health with a missing slot: %v, want it named", err)
	}
	if rep := r.call(t, loadReq(t, delivery(map[string]string{"EGRESS_TOKEN_0": "x", "EGRESS_TOKEN_1": "y", "GIT_KEY_app": "k"}))); !rep.OK {
		t.Fatalf("load: %+v", rep)
	}
	if err := Health(context.Background(), r.socket); err != nil {
		t.Fatalf("Health of a configured sidecar: %v", err)
	}
	if err := Health(context.Background(), filepath.Join(t.TempDir(), "nothing.sock")); err == nil {
		t.Error("Health of a socket nobody listens on: nil, want an error")
	}

	// ctl takes any JSON layout on stdin and prints the reply on one line.
	d := delivery(map[string]string{"EGRESS_TOKEN_0": canary, "EGRESS_TOKEN_1": canary})
	pretty, _ := json.MarshalIndent(Request{Op: OpLoad, Delivery: &d}, "", "  ")
	var out bytes.Buffer
	if err := Ctl(context.Background(), r.socket, bytes.NewReader(pretty), &out); err != nil {
		t.Fatalf("ctl load: %v", err)
	}
	if strings.Count(out.String(), "\n") != 1 || !strings.Contains(out.String(), `"ok":true`) {
		t.Errorf("ctl printed %q", out.String())
	}
	if strings.Contains(out.String(), canary) {
		t.Errorf("ctl printed a slot value: %s", out.String())
	}

	out.Reset()
	err := Ctl(context.Background(), r.socket, strings.NewReader(`{"op":"load"}`), &out)
	if !errors.Is(err, ErrRefused) || !strings.Contains(out.String(), `"ok":false`) {
		t.Errorf("ctl of a refused request: %v, printed %q; want ErrRefused and the reply", err, out.String())
	}
	out.Reset()
	err = Ctl(context.Background(), r.socket, strings.NewReader(`{"op": "load", "x": "`+canary), &out)
	if err == nil || strings.Contains(err.Error(), canary) || out.Len() != 0 {
		t.Errorf("ctl of broken JSON: %v, printed %q; want an error naming no input", err, out.String())
	}
}

func TestEgressDenies(t *testing.T) {
	r := start(t)
	proxy := &url.URL{Scheme: "http", Host: r.egress}

	get := func(target string) (int, string) {
		t.Helper()
		// The proxy is on loopback; nothing is sent beyond it.
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}, Timeout: 5 * time.Second}
		resp, err := c.Get(target)
		if err != nil {
			t.Fatalf("GET %s through the proxy: %v", target, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	connect := func(authority string) (int, string) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", r.egress, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "CONNECT "+authority+" HTTP/1.1\r\nHost: "+authority+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	code, body := get("http://example.com/x?token=" + canary)
	if code != http.StatusForbidden || !strings.Contains(body, "not_configured") {
		t.Errorf("absolute-form before load: %d %q", code, body)
	}

	d := delivery(map[string]string{"EGRESS_TOKEN_0": canary})
	d.Config.Supervise = true
	if rep := r.call(t, loadReq(t, d)); !rep.OK {
		t.Fatalf("load: %+v", rep)
	}
	if rep := r.call(t, `{"op":"ping"}`); !strings.Contains(rep.CACert, "BEGIN CERTIFICATE") {
		t.Errorf("ping does not carry the gateway's CA certificate: %+v", rep)
	}
	// Only hosts that are not granted: nothing is resolved or dialled.
	code, body = get("http://Example.COM./path?token=" + canary)
	if code != http.StatusForbidden || !strings.Contains(body, "not_granted") || !strings.Contains(body, "propose_egress") {
		t.Errorf("absolute-form = %d %q, want 403 not_granted naming propose_egress", code, body)
	}
	code, body = connect("evil.example:443")
	if code != http.StatusForbidden || !strings.Contains(body, "not_granted") {
		t.Errorf("CONNECT = %d %q", code, body)
	}

	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	logs := r.log.String()
	if strings.Contains(logs, canary) {
		t.Errorf("the log holds a slot value:\n%s", logs)
	}
	if n := strings.Count(logs, `"verdict":"deny"`); n != 3 {
		t.Errorf("%d egress deny lines, want 3:\n%s", n, logs)
	}
}

func TestStopIsPrompt(t *testing.T) {
	r := start(t)
	// An idle open connection must not hold the shutdown up.
	conn, err := net.Dial("unix", r.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eg, err := net.Dial("tcp", r.egress)
	if err != nil {
		t.Fatal(err)
	}
	defer eg.Close()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", r.egress); err == nil {
		t.Error("the egress listener still accepts after stop")
	}
}

func TestRunRefusesANonSocket(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "control.sock")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Options{ControlSocket: p, EgressAddr: "127.0.0.1:0", Log: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Run = %v, want a refusal to replace a regular file", err)
	}
}

func TestGitGateKeysAndKeep(t *testing.T) {
	r := start(t)
	keyFile := filepath.Join(filepath.Dir(r.socket), "keys", "app")
	full := map[string]string{"EGRESS_TOKEN_0": "a", "EGRESS_TOKEN_1": "b"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range full {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	// A delivered key is written to the key directory, 0600.
	if rep := r.call(t, loadReq(t, delivery(with(map[string]string{"GIT_KEY_app": canary})))); !rep.OK {
		t.Fatalf("load: %+v", rep)
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st, err)
	}
	if b, _ := os.ReadFile(keyFile); string(b) != canary {
		t.Errorf("key file holds %q", b)
	}

	// Kept: a load without the value keeps what the sidecar has.
	d := delivery(full)
	d.Keep = []string{"GIT_KEY_app"}
	if rep := r.call(t, loadReq(t, d)); !rep.OK {
		t.Fatalf("load with keep: %+v", rep)
	}
	if rep := r.call(t, `{"op":"status"}`); !rep.SlotsComplete {
		t.Errorf("status after a load that keeps the key: %+v", rep.Status)
	}
	if b, _ := os.ReadFile(keyFile); string(b) != canary {
		t.Errorf("after keep, the key file holds %q", b)
	}

	// Refused: a slot both delivered and kept, or kept but never named.
	bad := delivery(with(map[string]string{"GIT_KEY_app": "x"}))
	bad.Keep = []string{"GIT_KEY_app"}
	if rep := r.call(t, loadReq(t, bad)); rep.OK || !strings.Contains(rep.Error, "both delivered and kept") {
		t.Errorf("load with a slot delivered and kept: %+v", rep)
	}
	bad = delivery(full)
	bad.Keep = []string{"GIT_KEY_other"}
	if rep := r.call(t, loadReq(t, bad)); rep.OK || !strings.Contains(rep.Error, "not named") {
		t.Errorf("load keeping an unnamed slot: %+v", rep)
	}

	// The gate serves the declared repo: without a pinned host key it
	// refuses to contact the upstream (503); an undeclared repo is 404.
	for path, want := range map[string]int{"/app.git/info/refs?service=git-upload-pack": 503, "/other.git/info/refs?service=git-upload-pack": 404} {
		resp, err := http.Get("http://" + r.git + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}

	// The repo removed: its key file goes with it.
	d = delivery(full)
	d.Config.Repos = nil
	if rep := r.call(t, loadReq(t, d)); !rep.OK {
		t.Fatalf("load without repos: %+v", rep)
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("the key file of a removed repo: %v, want it gone", err)
	}
	if strings.Contains(r.log.String(), canary) {
		t.Error("the sidecar's log holds the key")
	}

	// A sidecar that restarted has nothing to keep: the slot is missing.
	r2 := start(t)
	d = delivery(full)
	d.Keep = []string{"GIT_KEY_app"}
	if rep := r2.call(t, loadReq(t, d)); !rep.OK {
		t.Fatalf("load with keep into a new sidecar: %+v", rep)
	}
	if rep := r2.call(t, `{"op":"status"}`); rep.SlotsComplete || !slices.Equal(rep.MissingSlots, []string{"GIT_KEY_app"}) {
		t.Errorf("status of a new sidecar asked to keep a key it never had: %+v", rep.Status)
	}
}

// The hosts of a bottle's repos are forges: the gateway forwards only
// reads to them unless their route lists write methods.
func TestForgeHostIsReadOnly(t *testing.T) {
	r := start(t)
	d := delivery(map[string]string{"EGRESS_TOKEN_0": "a", "EGRESS_TOKEN_1": "b", "GIT_KEY_app": "k"})
	d.Config.Routes = append(d.Config.Routes,
		Route{Host: "gitea.example", TLS: resource.TLSIntercept},
		Route{Host: "wiki.example", TLS: resource.TLSIntercept, Methods: []string{"GET", "POST"}})
	d.Config.Repos = append(d.Config.Repos, Repo{Name: "wiki", User: "git", Host: "wiki.example", Port: 22, Path: "/acme/wiki.git", KeySlot: "GIT_KEY_wiki"})
	d.Slots["GIT_KEY_wiki"] = "k2"
	if rep := r.call(t, loadReq(t, d)); !rep.OK {
		t.Fatalf("load: %+v", rep)
	}
	proxy := &url.URL{Scheme: "http", Host: r.egress}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}, Timeout: 5 * time.Second}
	post := func(target string) (int, string) {
		t.Helper()
		resp, err := c.Post(target, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatalf("POST %s: %v", target, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post("http://gitea.example/api/v1/repos/acme/app/contents/x"); code != http.StatusMethodNotAllowed || !strings.Contains(body, "forge") {
		t.Errorf("POST to a forge host without a grant: %d %q, want 405 naming the forge rule", code, body)
	}
	// Granted explicitly: the gateway lets it through to the dial, which
	// fails here (nothing is reached beyond loopback).
	if code, body := post("http://wiki.example/api/v1/repos/acme/wiki/contents/x"); code == http.StatusMethodNotAllowed {
		t.Errorf("POST to a forge host whose route lists POST: %d %q", code, body)
	}
}

// mcpCall calls a supervise tool through the SDK's client and returns its
// structured output decoded into out, or the text of its error.
func mcpCall(t *testing.T, cs *mcp.ClientSession, tool string, args any, out any) (errText string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	if res.IsError {
		var text []string
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text = append(text, tc.Text)
			}
		}
		return strings.Join(text, "\n")
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("call %s: %s: %v", tool, b, err)
	}
	return ""
}

func TestSuperviseProposals(t *testing.T) {
	r := start(t)
	const envSecret = "sk-env-canary-0123456789"
	d := delivery(map[string]string{"EGRESS_TOKEN_0": canary, "EGRESS_TOKEN_1": canary + "-2", "GIT_KEY_app": canary + "-key"})
	d.Config.Supervise = true
	d.Config.Routes = append(d.Config.Routes, Route{Host: "gitea.example", TLS: resource.TLSIntercept})
	d.Config.Repos[0].Push = []string{"refs/heads/agent/*"}
	d.Canaries = map[string]string{"env ANTHROPIC_API_KEY": envSecret}
	if rep := r.call(t, loadReq(t, d)); !rep.OK {
		t.Fatalf("load: %+v", rep)
	}
	if rep := r.call(t, `{"op":"proposals"}`); !rep.OK || len(rep.Proposals) != 0 {
		t.Fatalf("proposals before any = %+v", rep)
	}

	c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: "http://" + r.supervise + supervise.Path, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect to supervise: %v", err)
	}
	defer cs.Close()

	var g supervise.Grants
	if e := mcpCall(t, cs, supervise.ToolListGrants, map[string]any{}, &g); e != "" {
		t.Fatalf("list_grants: %s", e)
	}
	if len(g.Egress) != 4 || !g.Egress[0].Credential || g.Egress[2].Credential ||
		!slices.Equal(g.Egress[3].Methods, []string{"GET", "HEAD", "OPTIONS"}) || len(g.Git) != 1 || g.Git[0].Host != "gitea.example" {
		t.Errorf("list_grants = %+v", g)
	}
	if b, _ := json.Marshal(g); strings.Contains(string(b), "EGRESS_TOKEN") || strings.Contains(string(b), canary) {
		t.Errorf("list_grants shows a slot: %s", b)
	}

	var pe, pp supervise.Proposed
	if e := mcpCall(t, cs, supervise.ToolProposeEgress, map[string]any{"host": "pypi.org", "justification": "pip install -r requirements.txt"}, &pe); e != "" {
		t.Fatalf("propose_egress: %s", e)
	}
	if e := mcpCall(t, cs, supervise.ToolProposePush, map[string]any{"repo": "app", "ref": "refs/heads/fix/*", "justification": "push the fix"}, &pp); e != "" {
		t.Fatalf("propose_push: %s", e)
	}
	for _, j := range []string{"the key is " + canary + "-key", "my env has " + envSecret} {
		var out any
		if e := mcpCall(t, cs, supervise.ToolProposeEgress, map[string]any{"host": "b.example.com", "justification": j}, &out); !strings.Contains(e, "secret") {
			t.Errorf("a justification with a secret: %q", e)
		}
	}

	rep := r.call(t, `{"op":"proposals"}`)
	if !rep.OK || len(rep.Proposals) != 2 {
		t.Fatalf("proposals = %+v", rep)
	}
	if b, _ := json.Marshal(rep); strings.Contains(string(b), canary) || strings.Contains(string(b), envSecret) {
		t.Errorf("the proposals reply holds a secret: %s", b)
	}
	if p := rep.Proposals[0]; p.ID != pe.ID || p.Kind != supervise.KindEgress || p.Host != "pypi.org" || p.Status != supervise.StatusPending || p.Justification != "pip install -r requirements.txt" {
		t.Errorf("proposals[0] = %+v", p)
	}
	if p := rep.Proposals[1]; p.ID != pp.ID || p.Kind != supervise.KindPush || p.Repo != "app" || p.Ref != "refs/heads/fix/*" || p.Status != supervise.StatusPending {
		t.Errorf("proposals[1] = %+v", p)
	}

	rep = r.call(t, `{"op":"decide","id":"`+pe.ID+`","status":"approved","reason":"fine"}`)
	if !rep.OK || rep.Proposal == nil || rep.Proposal.ID != pe.ID || rep.Proposal.Status != supervise.StatusApproved || rep.Proposal.Reason != "fine" {
		t.Fatalf("decide = %+v", rep)
	}
	for _, tt := range []struct{ name, req, want string }{
		{"unknown id", `{"op":"decide","id":"` + canary + `","status":"approved"}`, "no proposal has that id"},
		{"no id", `{"op":"decide","status":"rejected"}`, "no proposal has that id"},
		{"bad status", `{"op":"decide","id":"` + pp.ID + `","status":"` + canary + `"}`, "status must be approved, rejected or applied"},
		{"control character", `{"op":"decide","id":"` + pp.ID + `","status":"rejected","reason":"\u001b[2J` + canary + `"}`, "control character"},
	} {
		rep := r.call(t, tt.req)
		if rep.OK || !strings.Contains(rep.Error, tt.want) || strings.Contains(rep.Error, canary) {
			t.Errorf("%s: %+v, want refused with %q and no echo", tt.name, rep, tt.want)
		}
	}

	// The apply that makes both live: the load marks them applied, the
	// approved one and the one still pending alike.
	d2 := d
	d2.Config.Routes = append(slices.Clone(d.Config.Routes), Route{Host: "pypi.org", TLS: resource.TLSIntercept})
	d2.Config.Repos = []Repo{d.Config.Repos[0]}
	d2.Config.Repos[0].Push = []string{"refs/heads/agent/*", "refs/heads/fix/*"}
	if rep := r.call(t, loadReq(t, d2)); !rep.OK {
		t.Fatalf("second load: %+v", rep)
	}
	rep = r.call(t, `{"op":"proposals"}`)
	for _, p := range rep.Proposals {
		if p.Status != supervise.StatusApplied || p.AppliedConfig != d2.Config.Digest() {
			t.Errorf("after the load: %s is %s (config %s), want applied by %s", p.ID, p.Status, p.AppliedConfig, d2.Config.Digest())
		}
	}
	var st supervise.StatusOutput
	if e := mcpCall(t, cs, supervise.ToolProposalStatus, map[string]any{"id": pe.ID}, &st); e != "" || st.Proposal.Status != supervise.StatusApplied || !strings.HasPrefix(st.Message, "Applied") {
		t.Errorf("proposal_status = %+v, %s", st, e)
	}
	if rep := r.call(t, `{"op":"decide","id":"`+pe.ID+`","status":"rejected"}`); rep.OK {
		t.Errorf("rejecting an applied proposal: %+v", rep)
	}

	cs.Close()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	logs := r.log.String()
	for _, s := range []string{canary, envSecret, "pip install"} {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %q:\n%s", s, logs)
		}
	}
	for _, want := range []string{`"msg":"proposal recorded"`, `"msg":"proposal decided"`, `"msg":"proposal applied"`, `"component":"supervise"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

func TestSuperviseOff(t *testing.T) {
	r := start(t)
	post := func() (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+r.supervise+supervise.Path, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(); code != http.StatusServiceUnavailable || !strings.Contains(body, "no configuration") {
		t.Errorf("before load: %d %s", code, body)
	}
	if rep := r.call(t, loadReq(t, delivery(nil))); !rep.OK {
		t.Fatalf("load: %+v", rep)
	}
	if code, body := post(); code != http.StatusNotFound || !strings.Contains(body, "supervise is off for bottle reviewer") {
		t.Errorf("supervise off: %d %s", code, body)
	}
	// The control ops work all the same, with nothing to show.
	if rep := r.call(t, `{"op":"proposals"}`); !rep.OK || len(rep.Proposals) != 0 {
		t.Errorf("proposals = %+v", rep)
	}
}
