package egress

import (
	"bufio"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const tokenSlot = "EGRESS_TOKEN_1"

// basePolicy grants api.test (intercepted, Bearer credential, one path
// prefix), other.test (passthrough) and plain.test (intercepted, no
// credential, every path).
func basePolicy() Policy {
	return Policy{
		Bottle:    "test",
		Supervise: "propose_egress",
		Routes: []Route{
			{Host: "api.test", TLS: TLSIntercept, AuthScheme: "Bearer", TokenSlot: tokenSlot, Paths: []string{"/repos/acme/app/"}},
			{Host: "other.test", TLS: TLSPassthrough},
			{Host: "plain.test", TLS: TLSIntercept},
		},
		Slots:       map[string]string{tokenSlot: realToken},
		UpstreamCAs: upstreamPKI().caPEM,
	}
}

// seen is what an upstream received.
type seen struct {
	header http.Header
	proto  int
	host   string
	tls    bool
}

func recorder(ch chan<- seen, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ch <- seen{header: r.Header.Clone(), proto: r.ProtoMajor, host: r.Host, tls: r.TLS != nil}
		w.Header().Set("Set-Cookie", "session=minted-on-the-token")
		w.Header().Set("X-Echo", "you sent "+r.Header.Get("Authorization"))
		io.WriteString(w, body)
	}
}

// assertClean fails if an upstream saw any credential but the injected
// one.
func assertClean(t *testing.T, h http.Header, wantAuth string) {
	t.Helper()
	for name, vals := range h {
		if normalizeHeaderName(name) == "authorization" {
			if len(vals) != 1 || vals[0] != wantAuth {
				t.Errorf("upstream saw Authorization %q, want %q", vals, wantAuth)
			}
			continue
		}
		if isCredentialHeader(name) {
			t.Errorf("upstream saw credential header %s", name)
		}
		for _, v := range vals {
			if strings.Contains(v, "agent-") || strings.Contains(v, realToken) {
				t.Errorf("upstream saw %s: %q", name, v)
			}
		}
	}
	if wantAuth != "" && h.Get("Authorization") == "" {
		t.Errorf("upstream saw no Authorization, want %q", wantAuth)
	}
}

// agentHeaders are the credentials an agent might try to send itself.
func agentHeaders(h http.Header) {
	h.Set("Authorization", "Bearer agent-fake")
	h.Set("X-Api-Key", "agent-key")
	h["x_api.key"] = []string{"agent-key-2"}
	h["X-API_KEY"] = []string{"agent-key-3"}
	h.Set("Private-Token", "agent-gitlab")
	h.Set("Cookie", "session=agent-cookie")
	h.Set("Proxy-Authorization", "Basic agent-proxy")
	h.Set("X-Leak", "prefix "+realToken) // a token the agent should not have
}

func TestInterceptInjectsCredentialAndStripsClientOnes(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			got := make(chan seen, 1)
			_, port := newUpstream(t, recorder(got, "hello"))
			p := basePolicy()
			e := newEnv(t, envConfig{policy: &p, port443: port})

			req, _ := http.NewRequest("GET", "https://api.test/repos/acme/app/issues?state=open&sig=query-secret", nil)
			agentHeaders(req.Header)
			resp, err := e.client(nil, h2).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "hello" {
				t.Fatalf("got %d %q, want 200 hello", resp.StatusCode, body)
			}
			s := <-got
			assertClean(t, s.header, "Bearer "+realToken)
			if s.host != "api.test" {
				t.Errorf("upstream saw Host %q, want api.test", s.host)
			}
			// The client speaks what it chose; the gateway speaks HTTP/2 upstream
			// whenever the upstream offers it.
			if wantProto := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != wantProto || s.proto != 2 {
				t.Errorf("client got HTTP/%d (want %d) and upstream saw HTTP/%d (want 2)", resp.ProtoMajor, wantProto, s.proto)
			}
			if v := resp.Header.Values("Set-Cookie"); len(v) > 0 {
				t.Errorf("client got Set-Cookie %q", v)
			}
			if v := resp.Header.Get("X-Echo"); v != "" {
				t.Errorf("a response header carrying the token reached the client: %q", v)
			}

			line := e.logs.waitDecision(t, map[string]any{"method": "GET", "verdict": "allow"})
			want := map[string]any{"bottle": "test", "host": "api.test", "path": "/repos/acme/app/issues",
				"route": "api.test", "reason": "granted", "status": 200, "bytes": 5}
			if !matches(line, want) {
				t.Errorf("decision line %v, want %v", line, want)
			}
			e.logs.waitDecision(t, map[string]any{"method": "CONNECT", "verdict": "allow", "host": "api.test", "status": 200})
			for _, secret := range []string{realToken, "agent-", "query-secret", "state=open"} {
				if strings.Contains(e.logs.String(), secret) {
					t.Errorf("the log holds %q:\n%s", secret, e.logs.String())
				}
			}
			if n := len(e.logs.decisions(t)); n != 2 {
				t.Errorf("%d decision lines, want 2 (CONNECT and GET)", n)
			}
		})
	}
}

func TestDialsTheCheckedAddressOnThePinnedPortAndResolvesOnce(t *testing.T) {
	got := make(chan seen, 2)
	_, port := newUpstream(t, recorder(got, "ok"))
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p, port443: port})
	c := e.client(nil, false)
	for range 2 {
		resp, err := c.Get("https://API.TEST./repos/acme/app/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		<-got
	}
	if n := e.resolver.count("api.test"); n != 1 {
		t.Errorf("api.test resolved %d times for one tunnel, want 1", n)
	}
	want := fmt.Sprintf("127.0.0.1:%d", port)
	for _, d := range e.dials() {
		if d != want {
			t.Errorf("gateway dialled %s, want only %s", d, want)
		}
	}
}

func TestPlainHTTPForward(t *testing.T) {
	got := make(chan seen, 1)
	up := &http.Server{Handler: recorder(got, "plain")}
	l := listenLoopback(t)
	go up.Serve(l)
	t.Cleanup(func() { up.Close() })
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p, port80: port(t, l.Addr())})

	req, _ := http.NewRequest("GET", "http://plain.test/x?y=1", nil)
	agentHeaders(req.Header)
	resp, err := e.client(nil, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "plain" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	s := <-got
	assertClean(t, s.header, "")
	if s.host != "plain.test" {
		t.Errorf("upstream saw Host %q", s.host)
	}
	e.logs.waitDecision(t, map[string]any{"method": "GET", "host": "plain.test", "path": "/x", "verdict": "allow", "status": 200})
}

func TestPassthroughEndToEnd(t *testing.T) {
	got := make(chan seen, 1)
	_, port := newUpstream(t, recorder(got, "passed"))
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p, port443: port})

	// The client trusts the upstream's CA, not the gateway's: it talks TLS
	// with the upstream itself.
	req, _ := http.NewRequest("GET", "https://other.test/anything", nil)
	req.Header.Set("Authorization", "Bearer agent-own")
	resp, err := e.client(upstreamPKI().pool, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "passed" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if s := <-got; !s.tls || s.header.Get("Authorization") != "Bearer agent-own" {
		t.Errorf("upstream saw tls=%v Authorization %q: passthrough neither terminates nor injects", s.tls, s.header.Get("Authorization"))
	}
	if resp.TLS == nil || resp.TLS.PeerCertificates[0].Issuer.CommonName != "test upstream CA" {
		t.Errorf("client did not see the upstream's own certificate")
	}
	e.logs.waitDecision(t, map[string]any{"method": "CONNECT", "host": "other.test", "route": "other.test", "verdict": "allow", "status": 200})

	// A client that trusts only the gateway's CA cannot talk to it.
	if _, err := e.client(nil, false).Get("https://other.test/"); err == nil {
		t.Error("a passthrough route answered with the gateway's certificate")
	}
}

func TestWebsocketUpgradeIsInjected(t *testing.T) {
	auth := make(chan string, 1)
	_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want a websocket upgrade", 400)
			return
		}
		auth <- r.Header.Get("Authorization")
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]))
		brw.Flush()
		buf := make([]byte, 64)
		for {
			n, err := brw.Read(buf)
			if err != nil {
				return
			}
			conn.Write(buf[:n])
		}
	}))
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p, port443: port})

	req, _ := http.NewRequest("GET", "https://api.test/repos/acme/app/socket", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Authorization", "Bearer agent-fake")
	resp, err := e.client(nil, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("got %d %s, want 101", resp.StatusCode, b)
	}
	if a := <-auth; a != "Bearer "+realToken {
		t.Errorf("upstream saw Authorization %q on the upgrade", a)
	}
	rwc := resp.Body.(io.ReadWriteCloser)
	for _, msg := range []string{"ping", "pong and more"} {
		io.WriteString(rwc, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(rwc, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo: %q %v, want %q", buf, err, msg)
		}
	}
	rwc.Close()
	e.logs.waitDecision(t, map[string]any{"method": "GET", "path": "/repos/acme/app/socket", "verdict": "allow", "status": 101})
}

func TestServerSentEventsAreNotBuffered(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			next := make(chan struct{})
			var once sync.Once
			release := func() { once.Do(func() { close(next) }) }
			t.Cleanup(release)
			_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: one\n\n")
				w.(http.Flusher).Flush()
				<-next // the second event waits for the client to have the first
				io.WriteString(w, "data: two\n\n")
			}))
			p := basePolicy()
			e := newEnv(t, envConfig{policy: &p, port443: port})
			resp, err := e.client(nil, h2).Get("https://api.test/repos/acme/app/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			first := make(chan string, 1)
			go func() {
				l, _ := br.ReadString('\n')
				first <- l
			}()
			select {
			case l := <-first:
				if l != "data: one\n" {
					t.Fatalf("first line %q", l)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the first event did not arrive before the second was sent: the gateway buffers")
			}
			release()
			rest, _ := io.ReadAll(br)
			if string(rest) != "\ndata: two\n\n" {
				t.Errorf("rest %q", rest)
			}
		})
	}
}

func TestLargeUploadStreams(t *testing.T) {
	const size, chunk = 20 << 20, 1 << 20
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			firstArrived := make(chan struct{})
			_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h := sha256.New()
				n, err := io.CopyN(h, r.Body, chunk)
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				close(firstArrived)
				m, err := io.Copy(h, r.Body)
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				fmt.Fprintf(w, "%d %x", n+m, h.Sum(nil))
			}))
			p := basePolicy()
			e := newEnv(t, envConfig{policy: &p, port443: port})

			pr, pw := io.Pipe()
			want := sha256.New()
			go func() {
				buf := make([]byte, chunk)
				for i := 0; i < size/chunk; i++ {
					for j := range buf {
						buf[j] = byte(i*31 + j)
					}
					want.Write(buf)
					if _, err := pw.Write(buf); err != nil {
						return
					}
					if i == 0 {
						// The rest waits until the upstream has the first
						// MiB: a gateway that buffered the body would
						// never get there.
						select {
						case <-firstArrived:
						case <-time.After(20 * time.Second):
							pw.CloseWithError(errors.New("the upstream never saw the first MiB: the gateway buffers uploads"))
							return
						}
					}
				}
				pw.Close()
			}()
			req, _ := http.NewRequest("POST", "https://api.test/repos/acme/app/upload", pr)
			resp, err := e.client(nil, h2).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if wantBody := fmt.Sprintf("%d %s", size, hex.EncodeToString(want.Sum(nil))); string(body) != wantBody {
				t.Fatalf("upstream got %q, want %q", body, wantBody)
			}
		})
	}
}

func TestPolicySwap(t *testing.T) {
	release := make(chan struct{})
	got := make(chan seen, 4)
	_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{header: r.Header.Clone()}
		if r.URL.Path == "/repos/acme/app/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p, port443: port})
	c := e.client(nil, false)

	// A request in flight when the policy changes finishes on the old one.
	done := make(chan int)
	go func() {
		resp, err := c.Get("https://api.test/repos/acme/app/slow")
		if err != nil {
			done <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	if s := <-got; s.header.Get("Authorization") != "Bearer "+realToken {
		t.Fatalf("first request saw %q", s.header.Get("Authorization"))
	}
	rotated := basePolicy()
	rotated.Slots = map[string]string{tokenSlot: "rotated-token-0123456789"}
	if err := e.gw.SetPolicy(rotated); err != nil {
		t.Fatal(err)
	}
	close(release)
	if st := <-done; st != 200 {
		t.Fatalf("in-flight request ended with %d", st)
	}
	// The next request, on the same tunnel, gets the new value.
	resp, err := c.Get("https://api.test/repos/acme/app/next")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if s := <-got; s.header.Get("Authorization") != "Bearer rotated-token-0123456789" {
		t.Errorf("after rotation upstream saw %q", s.header.Get("Authorization"))
	}
	// Revoking the route refuses the next request on an open tunnel.
	revoked := basePolicy()
	revoked.Routes = revoked.Routes[1:]
	if err := e.gw.SetPolicy(revoked); err != nil {
		t.Fatal(err)
	}
	resp, err = c.Get("https://api.test/repos/acme/app/next")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "why: not_granted") {
		t.Errorf("after revocation: %d %s", resp.StatusCode, b)
	}
}

func TestPassthroughTunnelClosedWhenRevoked(t *testing.T) {
	_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p, port443: port})
	tc, err := e.tunnel(t, "other.test:443", "other.test", false)
	if err != nil {
		t.Fatal(err)
	}
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	revoked := basePolicy()
	revoked.Routes = slices.DeleteFunc(revoked.Routes, func(r Route) bool { return r.Host == "other.test" })
	if err := e.gw.SetPolicy(revoked); err != nil {
		t.Fatal(err)
	}
	io.WriteString(tc, "GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(tc), nil); err == nil {
		t.Error("a revoked passthrough tunnel still carried a request")
	}
}

func TestAllowPrivate(t *testing.T) {
	p := Policy{Bottle: "test", Routes: []Route{
		{Host: "internal.test", TLS: TLSIntercept, AllowPrivate: true},
		{Host: "meta.test", TLS: TLSIntercept, AllowPrivate: true},
		{Host: "loop.test", TLS: TLSIntercept, AllowPrivate: true},
	}}
	e := newEnv(t, envConfig{policy: &p, defaultBlocked: true, names: map[string][]netip.Addr{
		"internal.test": addrs("10.1.2.3"), "meta.test": addrs("169.254.169.254"), "loop.test": addrs("127.0.0.1"),
	}})
	// A private address is allowed: the gateway dials it (and the test
	// network refuses, so the upstream is reported unreachable).
	resp, err := e.client(nil, false).Get("https://internal.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !slices.Equal(e.dials(), []string{"10.1.2.3:443"}) {
		t.Errorf("got %d and dials %v, want 502 after dialling 10.1.2.3:443", resp.StatusCode, e.dials())
	}
	e.logs.waitDecision(t, map[string]any{"method": "GET", "host": "internal.test", "verdict": "allow", "reason": "upstream_error", "status": 502})
	// Metadata and loopback stay refused.
	for _, h := range []string{"meta.test", "loop.test"} {
		if st, body := e.raw(t, "CONNECT "+h+":443 HTTP/1.1\r\nHost: "+h+":443\r\n\r\n"); st != 403 || !strings.Contains(body, "blocked_address") {
			t.Errorf("%s: %d %s", h, st, body)
		}
	}
}

func TestMissingSlots(t *testing.T) {
	e := newEnv(t, envConfig{})
	if got := e.gw.MissingSlots(); len(got) != 0 {
		t.Errorf("no policy: %v", got)
	}
	p := basePolicy()
	p.Routes = append(p.Routes, Route{Host: "b.test", TLS: TLSIntercept, AuthScheme: "token", TokenSlot: "EGRESS_TOKEN_2"})
	p.Slots = map[string]string{"EGRESS_TOKEN_2": ""}
	if err := e.gw.SetPolicy(p); err != nil {
		t.Fatal(err)
	}
	if got := e.gw.MissingSlots(); !slices.Equal(got, []string{"EGRESS_TOKEN_1", "EGRESS_TOKEN_2"}) {
		t.Errorf("MissingSlots = %v", got)
	}
}

func TestSetPolicyRejects(t *testing.T) {
	gw, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		r    Route
		want string
	}{
		{"empty host", Route{TLS: TLSIntercept}, "not a host name"},
		{"bad tls", Route{Host: "a.test", TLS: "maybe"}, "tls is"},
		{"scheme without slot", Route{Host: "a.test", TLS: TLSIntercept, AuthScheme: "Bearer"}, "set together"},
		{"passthrough credential", Route{Host: "a.test", TLS: TLSPassthrough, AuthScheme: "Bearer", TokenSlot: "S"}, "need tls"},
		{"passthrough paths", Route{Host: "a.test", TLS: TLSPassthrough, Paths: []string{"/x"}}, "need tls"},
		{"passthrough methods", Route{Host: "a.test", TLS: TLSPassthrough, Methods: []string{"GET"}}, "need tls"},
		{"method with space", Route{Host: "a.test", TLS: TLSIntercept, Methods: []string{"GET", "PO ST"}}, "not an HTTP token"},
		{"empty method", Route{Host: "a.test", TLS: TLSIntercept, Methods: []string{""}}, "not an HTTP token"},
		{"scheme with space", Route{Host: "a.test", TLS: TLSIntercept, AuthScheme: "Bearer x", TokenSlot: "S"}, "not an HTTP token"},
		{"relative path", Route{Host: "a.test", TLS: TLSIntercept, Paths: []string{"x/"}}, "must start with /"},
		{"dotdot path", Route{Host: "a.test", TLS: TLSIntercept, Paths: []string{"/a/../b"}}, "must start with /"},
		{"unicode host", Route{Host: "\u212aite.test", TLS: TLSIntercept}, "not a host name"},
		{"bad literal", Route{Host: "1.2.3.999", TLS: TLSIntercept}, "not a valid address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := gw.SetPolicy(Policy{Routes: []Route{c.r}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("SetPolicy = %v, want an error containing %q", err, c.want)
			}
		})
	}
	dup := Policy{Routes: []Route{{Host: "a.test", TLS: TLSIntercept}, {Host: "A.test.", TLS: TLSIntercept}}}
	if err := gw.SetPolicy(dup); err == nil {
		t.Error("two routes for one host were accepted")
	}
	ctl := Policy{Routes: []Route{{Host: "a.test", TLS: TLSIntercept, AuthScheme: "Bearer", TokenSlot: "S"}}, Slots: map[string]string{"S": "x\r\nInjected: yes"}}
	if err := gw.SetPolicy(ctl); err == nil || strings.Contains(err.Error(), "Injected") {
		t.Errorf("slot with CRLF: %v", err)
	}
	if err := gw.SetPolicy(Policy{UpstreamCAs: []byte("not pem")}); err == nil {
		t.Error("a non-PEM upstream CA was accepted")
	}
}

func TestCloseEndsTunnels(t *testing.T) {
	_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p, port443: port})
	tc, err := e.tunnel(t, "api.test:443", "api.test", true)
	if err != nil {
		t.Fatal(err)
	}
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	e.gw.Close()
	if _, err := tc.Read(make([]byte, 1)); err == nil {
		t.Error("a tunnel outlived Close")
	}
}

func TestInterceptLeafIsForTheConnectHost(t *testing.T) {
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p})
	tc, err := e.tunnel(t, "api.test:443", "", false) // no SNI: the CONNECT host is used
	if err != nil {
		t.Fatal(err)
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	if err := leaf.VerifyHostname("api.test"); err != nil {
		t.Error(err)
	}
	if _, err := leaf.Verify(x509VerifyOptions(e, "api.test")); err != nil {
		t.Errorf("leaf does not chain to CACertPEM: %v", err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
		t.Errorf("ALPN %q", got)
	}
}

func TestUpstreamCertificateIsVerified(t *testing.T) {
	_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the request reached an upstream whose certificate the gateway should not trust")
	}))
	p := basePolicy()
	p.UpstreamCAs = nil // the upstream's CA is not among the system roots
	e := newEnv(t, envConfig{policy: &p, port443: port})
	resp, err := e.client(nil, false).Get("https://api.test/repos/acme/app/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	e.logs.waitDecision(t, map[string]any{"method": "GET", "verdict": "allow", "reason": "upstream_error", "status": 502})
}

// eagerConn plays a client that sends its ClientHello in the same write
// as the CONNECT, without waiting for the 200, and skips the 200 when it
// reads.
type eagerConn struct {
	net.Conn
	connect string
	br      *bufio.Reader
}

func (c *eagerConn) Write(b []byte) (int, error) {
	if c.connect == "" {
		return c.Conn.Write(b)
	}
	_, err := c.Conn.Write(append([]byte(c.connect), b...))
	c.connect = ""
	return len(b), err
}

func (c *eagerConn) Read(b []byte) (int, error) {
	if c.br == nil {
		c.br = bufio.NewReader(c.Conn)
		resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("CONNECT: %s", resp.Status)
		}
	}
	return c.br.Read(b)
}

func TestClientHelloSentWithTheConnect(t *testing.T) {
	got := make(chan seen, 2)
	_, port := newUpstream(t, recorder(got, "ok"))
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p, port443: port})
	for _, c := range []struct {
		host  string
		roots *x509.CertPool
	}{{"api.test", e.roots}, {"other.test", upstreamPKI().pool}} {
		t.Run(c.host, func(t *testing.T) {
			raw, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
			conn := &eagerConn{Conn: raw, connect: connect(c.host + ":443")}
			tc := tls.Client(conn, &tls.Config{ServerName: c.host, RootCAs: c.roots, NextProtos: []string{"http/1.1"}})
			fmt.Fprintf(tc, "GET /repos/acme/app/ HTTP/1.1\r\nHost: %s\r\n\r\n", c.host)
			resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
			<-got
		})
	}
}

// TestForgeHostIsReadOnly: on a host that is a git upstream of the bottle
// (a forge host), reads reach the upstream and writes are refused with
// 405, a reason naming the route and what it grants, and an Allow header,
// until the route lists the write; a method override cannot smuggle one.
func TestForgeHostIsReadOnly(t *testing.T) {
	got := make(chan string, 8)
	_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Method + " " + r.URL.Path
		io.WriteString(w, "ok")
	}))
	p := basePolicy()
	p.ForgeHosts = []string{"Plain.Test."}
	e := newEnv(t, envConfig{policy: &p, port443: port})
	c := e.client(nil, false)
	do := func(method, path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://plain.test"+path, strings.NewReader("{}"))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	upstreamSaw := func(want string) {
		t.Helper()
		select {
		case s := <-got:
			if s != want {
				t.Errorf("upstream saw %q, want %q", s, want)
			}
		default:
			t.Errorf("upstream did not see %q", want)
		}
	}

	if resp, _ := do("GET", "/api/v1/repos/owner/repo"); resp.StatusCode != 200 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	upstreamSaw("GET /api/v1/repos/owner/repo")

	resp, body := do("POST", "/api/v1/repos/owner/repo/pulls")
	want := "bottleform egress refused POST plain.test/api/v1/repos/owner/repo/pulls (bottle test)\n" +
		"why: forge_write: the host is a git upstream of this bottle (a forge), and its route does not grant this write method: " +
		"writes through the forge's HTTP API would bypass the git gate's push policy and secret scan (route plain.test grants GET, HEAD, OPTIONS)\n" +
		"next: push with git to the bottle's git remote, where the git gate checks the push; for another write, " +
		"ask for it with the supervise tool propose_egress, giving the host, the method and why you need it\n"
	if resp.StatusCode != 405 || body != want {
		t.Errorf("POST: %d\n%s\nwant 405\n%s", resp.StatusCode, body, want)
	}
	if a, r := resp.Header.Get("Allow"), resp.Header.Get("X-Bottleform-Reason"); a != "GET, HEAD, OPTIONS" || r != "forge_write" {
		t.Errorf("Allow %q, X-Bottleform-Reason %q", a, r)
	}
	e.logs.waitDecision(t, map[string]any{"method": "POST", "host": "plain.test", "route": "plain.test",
		"verdict": "deny", "reason": "forge_write", "status": 405})

	resp, body = do("GET", "/api/v1/repos/owner/repo", "X-HTTP-Method-Override", "delete")
	if resp.StatusCode != 405 || !strings.Contains(body, "(route plain.test grants GET, HEAD, OPTIONS; the request asks for DELETE through a method override)") {
		t.Errorf("GET with an override: %d %s", resp.StatusCode, body)
	}

	// The route grants POST: it is forwarded, and PUT still is not.
	granted := basePolicy()
	granted.ForgeHosts = p.ForgeHosts
	granted.Routes[2].Methods = []string{"GET", "POST"}
	if err := e.gw.SetPolicy(granted); err != nil {
		t.Fatal(err)
	}
	if resp, _ := do("POST", "/api/v1/repos/owner/repo/pulls"); resp.StatusCode != 200 {
		t.Fatalf("granted POST: %d", resp.StatusCode)
	}
	upstreamSaw("POST /api/v1/repos/owner/repo/pulls")
	if resp, body := do("PUT", "/api/v1/repos/owner/repo/contents/x"); resp.StatusCode != 405 ||
		!strings.Contains(body, "why: forge_write:") || !strings.Contains(body, "(route plain.test grants GET, POST)") {
		t.Errorf("PUT: %d %s", resp.StatusCode, body)
	}
	if resp, body := do("HEAD", "/"); resp.StatusCode != 405 || resp.Header.Get("X-Bottleform-Reason") != "method_not_granted" {
		t.Errorf("HEAD: %d %s", resp.StatusCode, body)
	}
	select {
	case s := <-got:
		t.Errorf("a refused request reached the upstream: %s", s)
	default:
	}
}

func TestPassthroughTunnelClosedWhenItsHostBecomesAForge(t *testing.T) {
	_, port := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	p := basePolicy()
	e := newEnv(t, envConfig{policy: &p, port443: port})
	tc, err := e.tunnel(t, "other.test:443", "other.test", false)
	if err != nil {
		t.Fatal(err)
	}
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	forge := basePolicy()
	forge.ForgeHosts = []string{"other.test"}
	if err := e.gw.SetPolicy(forge); err != nil {
		t.Fatal(err)
	}
	io.WriteString(tc, "POST /api/v1/repos/owner/repo/pulls HTTP/1.1\r\nHost: other.test\r\nContent-Length: 0\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(tc), nil); err == nil {
		t.Error("a passthrough tunnel to a forge host still carried a request")
	}
}
