// Package egress is a bottle's egress gateway: the forward proxy that is
// the agent's only way out. It grants exactly the hosts of its Policy and
// refuses everything else with a 403 whose text says what was refused, why
// and how to ask; it adds each route's credential on the way out, so the
// token never enters the bottle; and it writes one JSON line per decision.
//
// A route is intercepted (TLS terminated with a leaf from the gateway's own
// in-memory CA, every request checked, credentials stripped and injected,
// HTTP/1.1 and HTTP/2 served by the same handler) or passed through (the
// ClientHello's SNI checked against the CONNECT host, bytes spliced; no
// path check and no injection is possible). Upstreams are dialled at the
// address that was resolved and checked, on a pinned port.
//
// The decision itself is the pure function decide (decide.go); proxy.go,
// intercept.go and passthrough.go carry it out.
package egress
