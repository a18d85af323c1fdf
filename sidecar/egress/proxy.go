package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// tunnel is one CONNECT the gateway accepted: the client connection after
// the 200, bound to the host it was opened to and the addresses checked
// for it.
type tunnel struct {
	host      string // normalized CONNECT host
	authority string // CONNECT target as the client sent it
	mode      string // the route's TLS mode when the tunnel was opened
	addrs     []netip.Addr
	conn      *clientConn
}

// serveProxy is the proxy listener's handler: CONNECT opens a tunnel,
// absolute-form http:// requests are forwarded, anything else is refused.
func (g *Gateway) serveProxy(w http.ResponseWriter, r *http.Request) {
	p := g.pol.Load()
	if r.Method == http.MethodConnect {
		g.serveConnect(w, r, p)
		return
	}
	a := ask{Kind: kindHTTP, Method: r.Method, Scheme: r.URL.Scheme, Target: r.URL.Host, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Overrides: methodOverrides(r.Header)}
	if r.URL.Opaque != "" {
		a.Target = ""
	}
	rec := &record{method: r.Method, host: r.URL.Host, target: r.URL.Host, path: r.URL.EscapedPath(), bytes: -1}
	if rec.host == "" {
		rec.host, rec.target = r.Host, r.Host // origin-form: the Host header, for the log only
	}
	v := decide(p, a)
	var addrs []netip.Addr
	if v.Allow {
		addrs, v.Reason = g.resolve(r.Context(), v.Route, v.Host)
		v.Allow = v.Reason == reasonGranted
	}
	fill(rec, v)
	if !v.Allow {
		g.refuse(w, r, p, rec, false)
		return
	}
	tr := g.transport(p, v.Host, addrs, g.port80)
	defer tr.CloseIdleConnections()
	tr.DisableKeepAlives = true
	g.forward(w, r, p, v, "http", tr, rec)
}

// fill copies a verdict into a log record.
func fill(rec *record, v verdict) {
	rec.allow, rec.reason = v.Allow, v.Reason
	if v.Host != "" {
		rec.host = v.Host
	}
	if v.Route != nil {
		rec.route = v.Route.Host
		if v.Reason == reasonMethodNotGranted || v.Reason == reasonForgeWrite {
			rec.methods, rec.asked = v.Route.methods, v.Method
		}
	}
}

// serveConnect decides a CONNECT; if it is allowed, it answers 200 and
// runs the tunnel in the route's mode until either side closes it.
func (g *Gateway) serveConnect(w http.ResponseWriter, r *http.Request, p *policy) {
	// The target is the request line's authority, never a Host header.
	rec := &record{method: r.Method, host: r.URL.Host, target: r.URL.Host, bytes: -1}
	v := decide(p, ask{Kind: kindConnect, Method: r.Method, Target: r.URL.Host})
	var addrs []netip.Addr
	if v.Allow {
		addrs, v.Reason = g.resolve(r.Context(), v.Route, v.Host)
		v.Allow = v.Reason == reasonGranted
	}
	fill(rec, v)
	if !v.Allow {
		g.refuse(w, r, p, rec, true)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		rec.allow, rec.reason = false, reasonNotTLS
		g.refuse(w, r, p, rec, false)
		return
	}
	cc := newClientConn(conn, brw.Reader)
	_ = cc.SetDeadline(time.Time{})
	if _, err := io.WriteString(cc, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		cc.Close()
		return
	}
	t := &tunnel{host: v.Host, authority: r.URL.Host, mode: v.Route.TLS, addrs: addrs, conn: cc}
	if !g.track(t) {
		return
	}
	defer g.untrack(t)
	defer cc.Close()
	if t.mode == TLSPassthrough {
		g.passthrough(t)
		return
	}
	rec.status = http.StatusOK
	g.logDecision(r.Context(), p, rec)
	g.intercept(t)
}

// resolve finds the addresses to dial for a granted host: the literal
// itself for an address route, else one lookup through the Resolver; then
// checkAddrs. The upstream is dialled at exactly these addresses.
func (g *Gateway) resolve(ctx context.Context, r *route, host string) ([]netip.Addr, reason) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if addrs, err = g.resolver.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, reasonResolve
		}
	}
	return checkAddrs(r, addrs, g.blocked, g.own)
}

// dialChecked dials the checked addresses in order on port and returns
// the first connection made.
func (g *Gateway) dialChecked(ctx context.Context, addrs []netip.Addr, port string) (net.Conn, error) {
	var errs []error
	for _, a := range addrs {
		c, err := g.dial(ctx, "tcp", net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("dial upstream: %w", errors.Join(errs...))
}

// transport is the upstream transport for one host: it dials only the
// checked addresses on port, never consults the proxy environment, and
// verifies the upstream certificate for host against the system roots
// and the policy's upstream CAs.
func (g *Gateway) transport(p *policy, host string, addrs []netip.Addr, port string) *http.Transport {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return g.dialChecked(ctx, addrs, port)
		},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 16,
	}
	tr.TLSClientConfig = tlsClientConfig(p, host)
	return tr
}

// forward sends an allowed request upstream (scheme://host, the request's
// path and query unchanged) and streams the answer back: bodies are never
// buffered, responses are flushed as they arrive (server-sent events), and
// upgrades (websockets) are spliced after the 101. On the way out every
// client credential is removed and the route's credential injected; on
// the way back Set-Cookie is removed. The decision is logged once the
// response is done.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, p *policy, v verdict, scheme string, tr http.RoundTripper, rec *record) {
	cw := &countingWriter{ResponseWriter: w}
	upStatus := 0 // set when an upstream response arrives
	hostport := v.Host
	if strings.Contains(hostport, ":") {
		hostport = "[" + hostport + "]"
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = &url.URL{Scheme: scheme, Host: hostport, Path: pr.In.URL.Path, RawPath: pr.In.URL.RawPath, RawQuery: pr.In.URL.RawQuery}
			pr.Out.Host = ""
			pr.Out.Trailer = nil
			stripRequest(pr.Out.Header, p.secrets)
			inject(pr.Out.Header, v.Route, p.slots[v.Route.TokenSlot])
		},
		Transport:     tr,
		FlushInterval: -1,
		ModifyResponse: func(res *http.Response) error {
			upStatus = res.StatusCode
			stripResponse(res.Header, p.secrets)
			stripResponse(res.Trailer, p.secrets)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			rec.reason = reasonUpstream
			if errors.Is(err, context.Canceled) {
				return
			}
			g.log.LogAttrs(r.Context(), slog.LevelDebug, "egress upstream error", slog.String("host", v.Host), slog.String("error", err.Error()))
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "bottleform egress: %s did not answer (%s); try again later\n", v.Host, reasons[reasonUpstream].code)
		},
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	defer func() {
		rec.status, rec.bytes = cw.status, cw.bytes
		if upStatus == http.StatusSwitchingProtocols {
			// ReverseProxy writes the 101 on the hijacked connection,
			// past cw; what follows is not counted.
			rec.status, rec.bytes = upStatus, -1
		}
		if rec.status == 0 {
			rec.status = 499 // the client went away before an answer
		}
		g.logDecision(r.Context(), p, rec)
	}()
	rp.ServeHTTP(cw, r)
}

// refuse answers a refused request with its status and a plain-text body
// saying what was refused, why and how to ask, and logs the decision. A
// refused CONNECT also carries the reason in its status line, since many
// clients show only that for a failed tunnel.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, p *policy, rec *record, connect bool) {
	rec.status = rec.reason.status()
	rec.allow = false
	body := refusalText(p, rec)
	rec.bytes = int64(len(body))
	g.logDecision(r.Context(), p, rec)
	if connect {
		if conn, brw, err := http.NewResponseController(w).Hijack(); err == nil {
			defer conn.Close()
			fmt.Fprintf(brw, "HTTP/1.1 %d %s (bottleform egress: %s)\r\n", rec.status, http.StatusText(rec.status), rec.reason)
			fmt.Fprintf(brw, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nX-Bottleform-Reason: %s\r\nConnection: close\r\n\r\n%s", len(body), rec.reason, body)
			brw.Flush()
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Bottleform-Reason", rec.reason.String())
	if rec.status == http.StatusMethodNotAllowed && len(rec.methods) > 0 {
		h.Set("Allow", strings.Join(rec.methods, ", "))
	}
	if r.ProtoMajor == 1 && (connect || rec.reason.status() == http.StatusBadRequest) {
		h.Set("Connection", "close")
	}
	w.WriteHeader(rec.status)
	fmt.Fprint(w, body)
}

// refusalText is the body of a refusal, for a model to act on:
//
//	bottleform egress refused GET api.example.com/v1/x (bottle reviewer)
//	why: not_granted: the host is not granted to this bottle
//	next: ask for it with the supervise tool propose_egress, giving the host and why you need it
//
// It names the method, the host[:port] and the path as the client sent
// them (never the query), the reason code and its words, and the next
// step.
func refusalText(p *policy, rec *record) string {
	info := reasons[rec.reason]
	var bottle, tool string
	var secrets []string
	if p != nil {
		bottle, tool, secrets = p.bottle, p.supervise, p.secrets
	}
	what := printable(rec.target, 260, secrets)
	if rec.method != http.MethodConnect {
		what += printable(rec.path, 512, secrets)
	}
	if what == "" {
		what = "(no host)"
	}
	ask := "ask the person running this bottle to add it to the bottle's egress block"
	if tool != "" {
		ask = "ask for it with the supervise tool " + tool + ", giving the host"
		switch rec.reason {
		case reasonPathNotGranted:
			ask += ", the path"
		case reasonMethodNotGranted, reasonForgeWrite:
			ask += ", the method"
		}
		ask += " and why you need it"
	}
	remedy := strings.ReplaceAll(info.remedy, remedyAsk, ask)
	var b strings.Builder
	fmt.Fprintf(&b, "bottleform egress refused %s %s", printable(rec.method, 32, nil), what)
	if bottle != "" {
		fmt.Fprintf(&b, " (bottle %s)", bottle)
	}
	fmt.Fprintf(&b, "\nwhy: %s: %s", info.code, info.words)
	if len(rec.methods) > 0 {
		fmt.Fprintf(&b, " (route %s grants %s", rec.route, strings.Join(rec.methods, ", "))
		if rec.asked != asciiUpper(rec.method) {
			fmt.Fprintf(&b, "; the request asks for %s through a method override", printable(rec.asked, 32, secrets))
		}
		b.WriteString(")")
	}
	b.WriteString("\n")
	if remedy != "" {
		fmt.Fprintf(&b, "next: %s\n", remedy)
	}
	return b.String()
}

// countingWriter records the status and body bytes of a response. It
// unwraps for http.ResponseController, so flushing and hijacking reach
// the connection.
type countingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.bytes += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// clientConn is a hijacked client connection. It first returns the bytes
// the server had already read into its buffer (a client that sends its
// ClientHello without waiting for the 200), and closes done when it is
// closed, by either side of the gateway.
type clientConn struct {
	net.Conn
	r    *bufio.Reader
	once sync.Once
	done chan struct{}
}

func newClientConn(c net.Conn, r *bufio.Reader) *clientConn {
	return &clientConn{Conn: c, r: r, done: make(chan struct{})}
}

func (c *clientConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (c *clientConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *clientConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
