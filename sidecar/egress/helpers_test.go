package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test network: every name resolves through fakeResolver, and every
// dial goes through env.dial, which refuses anything but 127.0.0.1. Tests
// never reach another address.

const realToken = "real-token-0123456789abcdef"

// public is a documentation address DefaultBlocked lets through; the
// bypass suite maps granted names to it, and nothing ever dials it.
var public = netip.MustParseAddr("198.51.100.7")

type fakeResolver struct {
	mu      sync.Mutex
	names   map[string][]netip.Addr
	lookups map[string]int
}

func newResolver(names map[string][]netip.Addr) *fakeResolver {
	return &fakeResolver{names: names, lookups: map[string]int{}}
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups[host]++
	if a, ok := f.names[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (f *fakeResolver) count(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups[host]
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// allowLoopback is the blocklist of tests that reach their loopback
// upstreams: DefaultBlocked but for exactly 127.0.0.1.
func allowLoopback(a netip.Addr) bool {
	return a != netip.MustParseAddr("127.0.0.1") && DefaultBlocked(a)
}

// logBuf collects the gateway's JSON log and lets tests wait for a line.
type logBuf struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func newLogBuf() *logBuf { return &logBuf{wake: make(chan struct{})} }

func (l *logBuf) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.wake)
	l.wake = make(chan struct{})
	return l.buf.Write(b)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// decisions returns the decision lines logged so far.
func (l *logBuf) decisions(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == logMsg {
			out = append(out, m)
		}
	}
	return out
}

// waitDecision waits until a decision line matching want (every key equal,
// numbers compared as float64) is logged, and returns it.
func (l *logBuf) waitDecision(t *testing.T, want map[string]any) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		wake := l.wake
		l.mu.Unlock()
		for _, m := range l.decisions(t) {
			if matches(m, want) {
				return m
			}
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no decision line matching %v; log:\n%s", want, l.String())
		}
	}
}

func matches(m, want map[string]any) bool {
	for k, v := range want {
		if n, ok := v.(int); ok {
			v = float64(n)
		}
		if m[k] != v {
			return false
		}
	}
	return true
}

// testPKI is the upstreams' own CA and a leaf for every test name.
type testPKI struct {
	caPEM []byte
	pool  *x509.CertPool
	cert  tls.Certificate
}

var upstreamPKI = sync.OnceValue(func() *testPKI {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "test upstream CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		panic(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: serial(), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames:    []string{"api.test", "other.test", "plain.test", "git.test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pool:  pool,
		cert:  tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
})

// newUpstream starts an HTTPS upstream on 127.0.0.1 with HTTP/2 enabled
// and the test PKI's certificate.
func newUpstream(t testing.TB, h http.Handler) (*httptest.Server, int) {
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{upstreamPKI().cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors some tests cause on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, port(t, srv.Listener.Addr())
}

func port(t testing.TB, a net.Addr) int {
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// env is a running gateway with a test network.
type env struct {
	gw       *Gateway
	addr     string
	proxy    *url.URL
	logs     *logBuf
	roots    *x509.CertPool // trusts the gateway's CA
	resolver *fakeResolver

	mu     sync.Mutex
	dialed []string
}

type envConfig struct {
	policy *Policy
	// blocked nil means allowLoopback; defaultBlocked selects the
	// gateway's default.
	blocked        func(netip.Addr) bool
	defaultBlocked bool
	names          map[string][]netip.Addr
	port443        int
	port80         int
}

func newEnv(t testing.TB, c envConfig) *env {
	t.Helper()
	e := &env{logs: newLogBuf()}
	if c.names == nil {
		c.names = map[string][]netip.Addr{}
		for _, n := range []string{"api.test", "other.test", "plain.test", "git.test"} {
			c.names[n] = addrs("127.0.0.1")
		}
	}
	e.resolver = newResolver(c.names)
	o := Options{
		Log:             slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Bottle:          "test",
		Resolver:        e.resolver,
		Blocked:         c.blocked,
		Dial:            e.dial,
		UpstreamPort443: c.port443,
		UpstreamPort80:  c.port80,
	}
	if o.Blocked == nil && !c.defaultBlocked {
		o.Blocked = allowLoopback
	}
	gw, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if c.policy != nil {
		if err := gw.SetPolicy(*c.policy); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(l) }()
	t.Cleanup(func() {
		gw.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	e.gw, e.addr = gw, l.Addr().String()
	e.proxy = &url.URL{Scheme: "http", Host: e.addr}
	e.roots = x509.NewCertPool()
	if !e.roots.AppendCertsFromPEM(gw.CACertPEM()) {
		t.Fatal("CACertPEM is not PEM")
	}
	return e
}

// dial is the gateway's dialer in tests: it records every address and
// refuses anything but 127.0.0.1.
func (e *env) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	e.mu.Lock()
	e.dialed = append(e.dialed, addr)
	e.mu.Unlock()
	if h, _, _ := net.SplitHostPort(addr); h != "127.0.0.1" {
		return nil, fmt.Errorf("test network: refusing to dial %s", addr)
	}
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func (e *env) dials() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.dialed...)
}

// client is a Go HTTP client using the gateway as its proxy and trusting
// roots (the gateway's CA unless given).
func (e *env) client(roots *x509.CertPool, h2 bool) *http.Client {
	if roots == nil {
		roots = e.roots
	}
	tr := &http.Transport{
		Proxy:             http.ProxyURL(e.proxy),
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: h2,
	}
	return &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// raw sends one raw request to the proxy and reads the answer.
func (e *env) raw(t testing.TB, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var r *http.Request
	if strings.HasPrefix(req, "CONNECT ") {
		r = &http.Request{Method: http.MethodConnect}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), r)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// readerConn reads through a bufio.Reader that may hold bytes already
// read from the connection.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// tunnel opens a CONNECT tunnel to authority and starts TLS with sni. With
// verify false the client accepts any certificate (the bypass cases that
// play a malicious client).
func (e *env) tunnel(t testing.TB, authority, sni string, verify bool) (*tls.Conn, error) {
	t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CONNECT %s: %s", authority, resp.Status)
	}
	tc := tls.Client(&readerConn{Conn: c, r: br}, &tls.Config{
		ServerName: sni, RootCAs: e.roots, InsecureSkipVerify: !verify, NextProtos: []string{"http/1.1"},
	})
	return tc, tc.Handshake()
}

// inTunnel sends one raw HTTP/1.1 request inside a tunnel and reads the
// answer.
func (e *env) inTunnel(t testing.TB, authority, sni, req string) (int, string) {
	t.Helper()
	tc, err := e.tunnel(t, authority, sni, false)
	if err != nil {
		t.Fatalf("tunnel to %s: %v", authority, err)
	}
	if _, err := io.WriteString(tc, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func listenLoopback(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func x509VerifyOptions(e *env, host string) x509.VerifyOptions {
	return x509.VerifyOptions{DNSName: host, Roots: e.roots}
}
