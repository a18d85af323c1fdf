package egress

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// pipeListener hands the server ends of net.Pipe connections to Serve.
type pipeListener struct {
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// upstreamGuard is an upstream that checks everything the gateway lets
// through: a granted host, a granted path, no git push, and no credential
// but the one the gateway injects, in headers or trailers.
func upstreamGuard(violations chan<- string) http.HandlerFunc {
	report := func(format string, args ...any) {
		select {
		case violations <- fmt.Sprintf(format, args...):
		default:
		}
	}
	checkHeaders := func(r *http.Request, h http.Header, where string) {
		for name, vals := range h {
			if isCredentialHeader(name) {
				if r.Host == "api.test" && r.TLS != nil && http.CanonicalHeaderKey(name) == "Authorization" &&
					len(vals) == 1 && vals[0] == "Bearer "+realToken {
					continue
				}
				report("credential %s %s: %q reached %s %s", where, name, vals, r.Host, r.URL)
			}
		}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		checkHeaders(r, r.Header, "header")
		io.Copy(io.Discard, r.Body)
		checkHeaders(r, r.Trailer, "trailer")
		if r.Host != "api.test" && r.Host != "plain.test" {
			report("request for host %q reached the upstream", r.Host)
		}
		if r.Host == "api.test" {
			if r.TLS == nil {
				report("api.test reached over plain http")
			}
			if r.Header.Get("Authorization") != "Bearer "+realToken {
				report("api.test reached without the injected credential")
			}
			if !strings.HasPrefix(r.URL.Path, "/repos/acme/app") || strings.Contains(r.URL.Path, "..") {
				report("path %q reached api.test", r.URL.EscapedPath())
			}
		}
		q, _ := url.QueryUnescape(r.URL.RawQuery)
		if strings.Contains(strings.ToLower(r.URL.Path+"?"+q), "git-receive-pack") {
			report("git push %q reached the upstream", r.URL.String())
		}
		io.WriteString(w, "ok")
	}
}

// FuzzProxyRequest feeds raw bytes to the proxy over a net.Pipe, either
// as a request to the proxy (first byte even) or as a request inside an
// intercepted tunnel to api.test (first byte odd). Properties: no panic,
// and whatever reaches an upstream is granted and carries no client
// credential.
func FuzzProxyRequest(f *testing.F) {
	violations := make(chan string, 64)
	_, port443 := newUpstream(f, upstreamGuard(violations))
	plain := &http.Server{Handler: upstreamGuard(violations)}
	l := listenLoopback(f)
	go plain.Serve(l)
	f.Cleanup(func() { plain.Close() })

	p := basePolicy()
	e := newEnv(f, envConfig{policy: &p, port443: port443, port80: port(f, l.Addr())})
	pl := newPipeListener()
	go e.gw.Serve(pl)
	clientTLS := &tls.Config{ServerName: "api.test", RootCAs: e.roots, NextProtos: []string{"http/1.1"}}

	for _, s := range []string{
		"\x00GET http://plain.test/x HTTP/1.1\r\nHost: plain.test\r\nAuthorization: Bearer a\r\nX_Api.Key: b\r\nCookie: c\r\n\r\n",
		"\x00GET http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\nConnection: X-Api-Key\r\nX-Api-Key: k\r\n\r\n",
		"\x00GET http://api.test/repos/acme/app/ HTTP/1.1\r\nHost: api.test\r\n\r\n",
		"\x00GET http://user:pass@plain.test/ HTTP/1.1\r\nHost: plain.test\r\n\r\n",
		"\x00CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n",
		"\x00GET / HTTP/1.1\r\nHost: plain.test\r\n\r\n",
		"\x00GET http://plain.test/a HTTP/1.1\r\nHost: plain.test\r\n\r\nGET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n",
		"\x01GET /repos/acme/app/x HTTP/1.1\r\nHost: api.test\r\nX-Api-Key: k\r\nPrivate_Token: t\r\n\r\n",
		"\x01POST /repos/acme/app/x HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\nTrailer: Authorization\r\n\r\n1\r\na\r\n0\r\nAuthorization: Bearer trailer\r\n\r\n",
		"\x01GET /repos/acme/app/../x HTTP/1.1\r\nHost: api.test\r\n\r\n",
		"\x01GET /repos/acme/app.git/info/refs?service=git-receive-pack HTTP/1.1\r\nHost: api.test\r\n\r\n",
		"\x01GET https://plain.test/ HTTP/1.1\r\nHost: plain.test\r\n\r\n",
		"\x01GET /repos/acme/app/ws HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Auth-Token: t\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		c, s := net.Pipe()
		defer c.Close() // closing the pipe, not the TLS conn, ends everything at once
		select {
		case pl.ch <- s:
		case <-time.After(5 * time.Second):
			t.Fatal("the gateway did not accept")
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var conn net.Conn = c
		if data[0]%2 == 1 {
			io.WriteString(c, "CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("CONNECT api.test: %v %v", resp, err)
			}
			tc := tls.Client(&readerConn{Conn: c, r: br}, clientTLS)
			if err := tc.Handshake(); err != nil {
				t.Fatalf("TLS: %v", err)
			}
			conn = tc
		}
		// One answer, or 100 ms of silence (an incomplete request), ends
		// the exchange.
		_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
		go conn.Write(data[1:])
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
			io.Copy(io.Discard, resp.Body)
		}
		c.Close()
		select {
		case v := <-violations:
			t.Fatal(v)
		default:
		}
	})
}
