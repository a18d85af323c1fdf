package sidecar

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// deny is the egress listener for now: a forward proxy (CONNECT and
// absolute-form requests) that refuses everything with a 403 and a
// plain-text body naming the host and the reason, so an agent, and the
// person reading its transcript, can tell a refusal from an outage. Only
// the method and host are logged: paths and queries can carry tokens.
func (s *server) deny(w http.ResponseWriter, r *http.Request) {
	host := requestHost(r)
	var msg, reason string
	switch l := s.cur.Load(); {
	case l == nil:
		reason = "not configured"
		msg = fmt.Sprintf("bottleform egress: %s is refused: this sidecar has not received its configuration yet; run `bottleform apply`", host)
	case l.hasRoute(host):
		reason = "gateway not built"
		msg = fmt.Sprintf("bottleform egress: %s is granted to bottle %s, but this sidecar does not forward traffic yet", host, l.config.Bottle)
	default:
		reason = "not granted"
		msg = fmt.Sprintf("bottleform egress: %s is not granted to bottle %s; ask for it with the supervise tool propose_egress", host, l.config.Bottle)
	}
	s.log.Info("egress denied", "method", r.Method, "host", host, "reason", reason)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprintln(w, msg)
}

func (l *loaded) hasRoute(host string) bool {
	for _, r := range l.config.Routes {
		if strings.EqualFold(r.Host, host) {
			return true
		}
	}
	return false
}

// requestHost is the host a proxy request is for: the CONNECT authority,
// the absolute-form URL's host, or else the Host header; lower case, port
// and trailing dot removed, and cut short if it is not a plausible name.
func requestHost(r *http.Request) string {
	h := r.URL.Host
	if h == "" {
		h = r.Host
	}
	if hp, _, err := net.SplitHostPort(h); err == nil {
		h = hp
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" {
		return "(no host)"
	}
	if len(h) > 253 {
		h = h[:253]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '?'
		}
		return r
	}, h)
}
