package egress

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TLS modes of a route.
const (
	TLSIntercept   = "intercept"
	TLSPassthrough = "passthrough"
)

// Route is one granted host.
type Route struct {
	// Host is the exact host granted: a name (matched case-insensitively,
	// trailing dot ignored, no wildcards) or an IP address literal, which
	// then matches every spelling of that address (0x0a.0.0.5 for
	// 10.0.0.5). An address literal is checked like a resolved name: a
	// private one needs AllowPrivate too.
	Host string
	// TLS is TLSIntercept (requests decrypted, checked, credentials
	// injected) or TLSPassthrough (only the SNI is checked). Either way
	// https goes through CONNECT to port 443; plain http://host/ on port 80
	// is forwarded too, unless the route is credentialed.
	TLS string
	// Paths are the path prefixes granted on an intercepted route; empty
	// grants every path. They are segment-aligned ("/repos/acme/app/"
	// grants /repos/acme/app and below, not /repos/acme/application) and
	// compared with the request path decoded except for %2F.
	Paths []string
	// AuthScheme and TokenSlot are set together on a credentialed route:
	// every request gets "Authorization: <AuthScheme> <Slots[TokenSlot]>".
	AuthScheme string
	TokenSlot  string
	// Methods are the HTTP methods forwarded on an intercepted route
	// (matched in ASCII upper case); others are refused with 405. Empty
	// forwards every method but TRACE, TRACK and CONNECT, except on a
	// forge host (Policy.ForgeHosts), where it forwards only GET, HEAD and
	// OPTIONS: a route grants writes to a forge only by listing them.
	Methods []string
	// AllowPrivate lets the host resolve to a private address (RFC 1918,
	// fc00::/7, CGNAT); loopback, link-local, metadata and the gateway's
	// own addresses stay refused.
	AllowPrivate bool
}

// readMethods are what a route to a forge host forwards when it lists no
// methods.
var readMethods = []string{http.MethodGet, http.MethodHead, http.MethodOptions}

// Policy is what the gateway enforces: a bottle's routes and the values of
// their token slots.
type Policy struct {
	Bottle string
	Routes []Route
	// Slots maps a slot name to its value. A route whose slot is missing or
	// empty is refused (fail closed) until a policy brings the value.
	Slots map[string]string
	// UpstreamCAs are PEM certificates trusted upstream besides the system
	// roots.
	UpstreamCAs []byte
	// Supervise names the supervise tool refusals point the agent to
	// ("propose_egress"); "" when the bottle has no supervise server, and
	// refusals then tell the agent to ask the person running the bottle.
	Supervise string
	// ForgeHosts are the hosts of the bottle's git upstreams (forge
	// hosts), compared like route hosts. A route to one forwards only the
	// methods it lists, and GET, HEAD and OPTIONS if it lists none; a
	// passthrough route to one is refused, since its methods cannot be
	// seen. So the agent cannot write to the forge's HTTP API past the git
	// gate unless a route grants it. A host that is not a valid host name
	// is ignored: no request can name it.
	ForgeHosts []string
}

// Resolver resolves a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure a Gateway. Zero values take the defaults.
type Options struct {
	// Log receives one JSON line per decision (message "egress"); never a
	// header value, a query or a slot value. Default: discarded.
	Log *slog.Logger
	// Bottle names the CA: "bottleform egress CA <Bottle>"; random if "".
	Bottle string
	// Resolver resolves granted host names: once per CONNECT (the tunnel
	// keeps the checked addresses) and once per absolute-form request.
	// Default: net.DefaultResolver.
	Resolver Resolver
	// Blocked reports addresses never dialled unless a route allows private
	// addresses (see Route.AllowPrivate). Default: DefaultBlocked and the
	// gateway's own interface addresses.
	Blocked func(netip.Addr) bool
	// Dial dials upstream; it is always given "ip:port", the checked
	// address. Default: a net.Dialer with a 10 s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// UpstreamPort443 and UpstreamPort80 are the ports dialled upstream for
	// https and http; 0 means 443 and 80. Only tests change them: clients
	// can only ever ask for 443 and 80.
	UpstreamPort443 int
	UpstreamPort80  int
	// Now is the clock for certificates. Default: time.Now.
	Now func() time.Time
}

// Gateway is a bottle's egress gateway. Its methods are safe for
// concurrent use.
type Gateway struct {
	log      *slog.Logger
	resolver Resolver
	blocked  func(netip.Addr) bool
	own      map[netip.Addr]bool
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	port443  string
	port80   string
	ca       *authority

	pol atomic.Pointer[policy]

	mu      sync.Mutex
	closed  bool
	servers map[*http.Server]bool
	tunnels map[*tunnel]bool
}

// policy is a validated Policy, compiled for lookups. It is never changed
// once stored: SetPolicy swaps in a new one, and a request decided on one
// policy is finished on it.
type policy struct {
	bottle    string
	supervise string
	routes    map[string]*route // by normalized host
	slots     map[string]string
	secrets   []string // slot values of at least minSecretLen bytes
	roots     *x509.CertPool
}

// route is a validated Route: Host normalized, Paths in prefix form.
type route struct {
	Route
	// methods are the methods forwarded, in upper case; nil forwards every
	// method (but those decide never forwards).
	methods []string
	// forge is set when Host is one of the policy's forge hosts.
	forge bool
}

// New returns a gateway with no policy (it refuses everything) and a
// freshly minted CA.
func New(o Options) (*Gateway, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Gateway{
		log:      o.Log,
		resolver: o.Resolver,
		blocked:  o.Blocked,
		dial:     o.Dial,
		port443:  "443",
		port80:   "80",
		servers:  map[*http.Server]bool{},
		tunnels:  map[*tunnel]bool{},
		own:      map[netip.Addr]bool{},
	}
	if g.log == nil {
		g.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	if g.blocked == nil {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					g.own[p.Addr().Unmap()] = true
				}
			}
		}
		g.blocked = func(a netip.Addr) bool { return DefaultBlocked(a) || g.own[a] }
	}
	if g.dial == nil {
		g.dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	if o.UpstreamPort443 != 0 {
		g.port443 = fmt.Sprint(o.UpstreamPort443)
	}
	if o.UpstreamPort80 != 0 {
		g.port80 = fmt.Sprint(o.UpstreamPort80)
	}
	ca, err := newAuthority(o.Bottle, o.Now)
	if err != nil {
		return nil, err
	}
	g.ca = ca
	return g, nil
}

// CACertPEM is the CA certificate the bottle must trust (PEM).
func (g *Gateway) CACertPEM() []byte { return slices.Clone(g.ca.pem) }

// SetPolicy validates p and puts it in force at once for every new
// request and tunnel; requests already decided finish on the policy they
// were decided on. Open passthrough tunnels to a host that is no longer
// granted for passthrough, or is now a forge host, are closed: nothing
// else would stop them.
// Errors name routes and slots, never a slot's value; on error the policy
// in force is unchanged.
func (g *Gateway) SetPolicy(p Policy) error {
	c, err := compile(p)
	if err != nil {
		return err
	}
	g.pol.Store(c)
	g.mu.Lock()
	defer g.mu.Unlock()
	for t := range g.tunnels {
		if r := c.routes[t.host]; t.mode == TLSPassthrough && (r == nil || r.TLS != TLSPassthrough || r.forge) {
			t.conn.Close()
		}
	}
	return nil
}

func compile(p Policy) (*policy, error) {
	c := &policy{
		bottle:    p.Bottle,
		supervise: p.Supervise,
		routes:    map[string]*route{},
		slots:     maps.Clone(p.Slots),
	}
	forge := map[string]bool{}
	for _, h := range p.ForgeHosts {
		if host, ok := canonicalHost(h); ok {
			forge[host] = true
		}
	}
	for i, r := range p.Routes {
		host, ok := normalizeHost(r.Host)
		if !ok {
			return nil, fmt.Errorf("routes[%d]: host %q is not a host name or address", i, r.Host)
		}
		if a, lit, valid := parseIPLiteral(host); lit {
			if !valid {
				return nil, fmt.Errorf("route %s: not a valid address", r.Host)
			}
			host = a.String()
		}
		switch {
		case c.routes[host] != nil:
			return nil, fmt.Errorf("route %s: host has more than one route", r.Host)
		case r.TLS != TLSIntercept && r.TLS != TLSPassthrough:
			return nil, fmt.Errorf("route %s: tls is %q, want %q or %q", r.Host, r.TLS, TLSIntercept, TLSPassthrough)
		case (r.AuthScheme == "") != (r.TokenSlot == ""):
			return nil, fmt.Errorf("route %s: auth scheme and token slot must be set together", r.Host)
		case r.TLS == TLSPassthrough && (r.TokenSlot != "" || len(r.Paths) > 0 || len(r.Methods) > 0):
			return nil, fmt.Errorf("route %s: paths, methods and credentials need tls = %q", r.Host, TLSIntercept)
		case r.AuthScheme != "" && !isToken(r.AuthScheme):
			return nil, fmt.Errorf("route %s: auth scheme %q is not an HTTP token", r.Host, r.AuthScheme)
		}
		if v := c.slots[r.TokenSlot]; r.TokenSlot != "" && strings.ContainsFunc(v, func(ch rune) bool { return ch < 0x20 || ch == 0x7f }) {
			return nil, fmt.Errorf("route %s: slot %s holds a control character and cannot be sent in a header", r.Host, r.TokenSlot)
		}
		cr := &route{Route: r, forge: forge[host]}
		cr.Host, cr.Paths = host, nil
		for _, m := range r.Methods {
			if !isToken(m) {
				return nil, fmt.Errorf("route %s: method %q is not an HTTP token", r.Host, m)
			}
			if m = asciiUpper(m); !slices.Contains(cr.methods, m) {
				cr.methods = append(cr.methods, m)
			}
		}
		if cr.methods == nil && cr.forge {
			cr.methods = readMethods
		}
		for _, pre := range r.Paths {
			_, form, ok := cleanPath(pre)
			if !ok {
				return nil, fmt.Errorf("route %s: path %q must start with / and have no . or .. segments", r.Host, pre)
			}
			cr.Paths = append(cr.Paths, form)
		}
		c.routes[host] = cr
	}
	for _, v := range c.slots {
		if len(v) >= minSecretLen {
			c.secrets = append(c.secrets, v)
		}
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if len(p.UpstreamCAs) > 0 && !roots.AppendCertsFromPEM(p.UpstreamCAs) {
		return nil, errors.New("upstream CAs: no PEM certificate found")
	}
	c.roots = roots
	return c, nil
}

// isToken reports whether s is an HTTP token (RFC 9110 5.6.2).
func isToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	})
}

// MissingSlots returns, sorted, the token slots of credentialed routes
// that have no value in the policy in force: those routes are refused.
// Names only.
func (g *Gateway) MissingSlots() []string {
	p := g.pol.Load()
	out := []string{}
	if p == nil {
		return out
	}
	for _, r := range p.routes {
		if r.TokenSlot != "" && p.slots[r.TokenSlot] == "" && !slices.Contains(out, r.TokenSlot) {
			out = append(out, r.TokenSlot)
		}
	}
	slices.Sort(out)
	return out
}

// Serve answers proxy requests on l until Close; it returns nil after
// Close and the listener's error otherwise. It may be called for several
// listeners.
func (g *Gateway) Serve(l net.Listener) error {
	srv := &http.Server{
		Handler:           http.HandlerFunc(g.serveProxy),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		l.Close()
		return nil
	}
	g.servers[srv] = true
	g.mu.Unlock()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops every Serve, and closes every connection and tunnel.
func (g *Gateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for s := range g.servers {
		s.Close()
	}
	for t := range g.tunnels {
		t.conn.Close()
	}
	return nil
}

// track registers a tunnel so that Close and SetPolicy can end it; it
// returns false, and closes the tunnel, if the gateway is closed.
func (g *Gateway) track(t *tunnel) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		t.conn.Close()
		return false
	}
	g.tunnels[t] = true
	return true
}

func (g *Gateway) untrack(t *tunnel) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.tunnels, t)
}
