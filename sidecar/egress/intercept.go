package egress

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// intercept terminates TLS on an accepted tunnel with a leaf for the
// CONNECT host (whatever name the ClientHello carries), offering h2 and
// http/1.1, and serves the requests inside with one http.Server: HTTP/1.1
// and HTTP/2 reach the same handler, so every request of either version is
// decided, stripped and injected; nothing is relayed blind. It returns
// when the tunnel closes.
func (g *Gateway) intercept(t *tunnel) {
	tc := tls.Server(t.conn, &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return g.ca.leaf(t.host) },
		NextProtos:     []string{"h2", "http/1.1"},
		MinVersion:     tls.VersionTLS12,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		// A refusal like passthrough's not_tls, so `bottleform logs
		// --denied` shows it; most often the client does not trust the
		// gateway's CA, which the warning beside it says.
		rec := &record{method: http.MethodConnect, host: t.host, route: t.host, reason: reasonNotTLS, bytes: -1}
		rec.status = rec.reason.status()
		g.logDecision(context.Background(), g.pol.Load(), rec)
		g.log.LogAttrs(context.Background(), slog.LevelWarn, "egress tunnel failed",
			slog.String("host", t.host), slog.String("error", "tls handshake: "+err.Error()))
		return
	}
	tr := g.transport(g.pol.Load(), t.host, t.addrs, g.port443)
	defer tr.CloseIdleConnections()
	srv := &http.Server{
		Handler:           g.tunnelHandler(t, tr),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	_ = srv.Serve(&oneConnListener{conn: tc, done: t.conn.done})
}

// tunnelHandler decides and forwards each request inside an intercepted
// tunnel, on the policy in force when the request arrives: the route must
// still be granted for interception, its checked addresses still allowed,
// the SNI and the request's Host must name the CONNECT host, and the
// request rules of decide must pass.
func (g *Gateway) tunnelHandler(t *tunnel, tr http.RoundTripper) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := g.pol.Load()
		a := ask{Kind: kindTunnel, Method: r.Method, Target: t.authority, Authority: r.Host, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Overrides: methodOverrides(r.Header)}
		if r.TLS != nil {
			a.SNI = r.TLS.ServerName
		}
		rec := &record{method: r.Method, host: t.host, target: r.Host, path: a.Path, bytes: -1}
		v := decide(p, a)
		if v.Allow {
			if _, why := checkAddrs(v.Route, t.addrs, g.blocked, g.own); why != reasonGranted {
				v.Allow, v.Reason = false, why
			}
		}
		fill(rec, v)
		if !v.Allow {
			g.refuse(w, r, p, rec, false)
			return
		}
		g.forward(w, r, p, v, "https", tr, rec)
	})
}

func tlsClientConfig(p *policy, host string) *tls.Config {
	return &tls.Config{ServerName: host, RootCAs: p.roots, MinVersion: tls.VersionTLS12}
}

// oneConnListener hands one connection to an http.Server, then blocks
// until that connection is closed, so that Serve returns when the tunnel
// ends.
type oneConnListener struct {
	conn net.Conn
	done <-chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

// Close does nothing: the connection outlives Serve's listener.
func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
