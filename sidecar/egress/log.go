package egress

import (
	"context"
	"log/slog"
	"strings"
)

// logMsg is the message of every decision line; nothing else the gateway
// logs uses it.
const logMsg = "egress"

// record is one decision as it is logged. It holds no header value and no
// query: only the method, host and path the client sent (sanitized, with
// slot values redacted), the route, the verdict and what came back.
type record struct {
	method string
	// host is the normalized host once decide has one, else what the
	// client sent; target is host[:port] as the client sent it, for the
	// refusal body only.
	host   string
	target string
	path   string
	route  string
	allow  bool
	reason reason
	status int
	// bytes is the response body bytes written to the client; -1 when not
	// known (tunnels, upgraded connections).
	bytes int64
	// methods and asked are, for a method refusal, what the route grants
	// and the method refused (upper case); for the refusal body only.
	methods []string
	asked   string
}

// logDecision writes rec as one JSON line: time, bottle, method, host,
// path, route, verdict, reason, status and, when known, bytes. Allows are
// Info, refusals Warn.
func (g *Gateway) logDecision(ctx context.Context, p *policy, rec *record) {
	var bottle string
	var secrets []string
	if p != nil {
		bottle, secrets = p.bottle, p.secrets
	}
	verdict, level := "deny", slog.LevelWarn
	if rec.allow {
		verdict, level = "allow", slog.LevelInfo
	}
	attrs := []slog.Attr{
		slog.String("bottle", bottle),
		slog.String("method", printable(rec.method, 32, nil)),
		slog.String("host", printable(rec.host, 260, secrets)),
		slog.String("path", printable(rec.path, 512, secrets)),
		slog.String("route", rec.route),
		slog.String("verdict", verdict),
		slog.String("reason", rec.reason.String()),
		slog.Int("status", rec.status),
	}
	if rec.bytes >= 0 {
		attrs = append(attrs, slog.Int64("bytes", rec.bytes))
	}
	g.log.LogAttrs(ctx, level, logMsg, attrs...)
}

// printable makes client input fit for a log line or a refusal body: slot
// values replaced by "(redacted)", bytes outside printable ASCII by '?',
// cut to max bytes.
func printable(s string, max int, secrets []string) string {
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, "(redacted)")
	}
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
