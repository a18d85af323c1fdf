package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// memory holds VmRSS readings, in KiB.
type memory struct {
	sidecarStarted, sidecarLoaded, sidecarKA, sidecarNC, sidecarHWM int64
	mitmStarted, mitmKA, mitmNC, mitmHWM                            int64
}

// med is the median of f over the samples.
func med(ss []sample, f func(sample) float64) float64 {
	if len(ss) == 0 {
		return 0
	}
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func rpsOf(s sample) float64 { return s.rps() }
func p50Of(s sample) float64 { return ms(s.pct(.50)) }
func p99Of(s sample) float64 { return ms(s.pct(.99)) }
func cpuOf(s sample) float64 { return float64(s.cpuPerReq()) / float64(time.Microsecond) }

func mib(kib int64) string {
	if kib == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", float64(kib)/1024)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// report writes the Markdown tables of medians over the repetitions.
func report(w io.Writer, c config, targets []*target, scenarios []scenario, res map[string]map[string][]sample, mem memory) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	m := func(sc, t string, f func(sample) float64) float64 { return med(res[sc][t], f) }
	added := func(sc, t string, f func(sample) float64) float64 { return m(sc, t, f) - m(sc, "direct", f) }

	p("HTTP version the upstream saw (the client always speaks HTTP/1.1):")
	for i, t := range targets {
		sep := ";"
		if i == len(targets)-1 {
			sep = "."
		}
		p(" %s %s%s", t.label, t.upProto, sep)
	}
	p("\n\n")
	p("## Throughput and latency at concurrency %d\n\n", c.conc)
	for _, sc := range scenarios[:2] {
		if sc.newConn {
			p("**New connection per request.** Every request opens a connection: TCP, CONNECT and a TLS handshake with the proxy, and the proxy's own TCP and TLS to the upstream (direct: TCP and TLS to the upstream).\n\n")
		} else {
			p("**Keep-alive.** Each of the %d workers opens one connection (one CONNECT tunnel, one TLS session) before the window and sends all its requests on it, one after another.\n\n", sc.conc)
		}
		p("| path | req/s | p50 (ms) | p99 (ms) | added p50 (ms) | added p99 (ms) | proxy CPU per request (µs) |\n")
		p("|---|---:|---:|---:|---:|---:|---:|\n")
		for _, t := range targets {
			row := fmt.Sprintf("| %s | %.0f | %.3f | %.3f |", t.label, m(sc.key, t.key, rpsOf), m(sc.key, t.key, p50Of), m(sc.key, t.key, p99Of))
			if t.proxy == nil {
				row += " — | — | — |"
			} else {
				row += fmt.Sprintf(" %+.3f | %+.3f | %.0f |", added(sc.key, t.key, p50Of), added(sc.key, t.key, p99Of), m(sc.key, t.key, cpuOf))
			}
			p("%s\n", row)
		}
		p("\n")
	}

	p("## Added latency, one request at a time (concurrency 1)\n\n")
	p("| path | keep-alive p50 (ms) | keep-alive p99 (ms) | added p50 | added p99 | new-conn p50 (ms) | new-conn p99 (ms) | added p50 | added p99 |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range targets {
		row := "| " + t.label + " |"
		for _, sc := range scenarios[2:] {
			row += fmt.Sprintf(" %.3f | %.3f |", m(sc.key, t.key, p50Of), m(sc.key, t.key, p99Of))
			if t.proxy == nil {
				row += " — | — |"
			} else {
				row += fmt.Sprintf(" %+.3f | %+.3f |", added(sc.key, t.key, p50Of), added(sc.key, t.key, p99Of))
			}
		}
		p("%s\n", row)
	}
	p("\n")

	ka, nc, ka1, nc1 := scenarios[0].key, scenarios[1].key, scenarios[2].key, scenarios[3].key
	p("## Ratios\n\n")
	p("bottleform ÷ mitmproxy (the same mode). req/s: above 1 means bottleform serves more; added latency and CPU: below 1 means bottleform adds less.\n\n")
	p("| ratio | req/s keep-alive c=%d | req/s new-conn c=%d | added p50 keep-alive c=1 | added p50 new-conn c=1 | added p99 keep-alive c=1 | CPU/request keep-alive c=%d | CPU/request new-conn c=%d |\n", c.conc, c.conc, c.conc, c.conc)
	p("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, pair := range [][2]string{{"bf-intercept", "mitm-intercept"}, {"bf-passthrough", "mitm-passthrough"}} {
		a, b := pair[0], pair[1]
		p("| %s ÷ %s | %s | %s | %s | %s | %s | %s | %s |\n", label(targets, a), label(targets, b),
			ratio(m(ka, a, rpsOf), m(ka, b, rpsOf)), ratio(m(nc, a, rpsOf), m(nc, b, rpsOf)),
			ratio(added(ka1, a, p50Of), added(ka1, b, p50Of)), ratio(added(nc1, a, p50Of), added(nc1, b, p50Of)),
			ratio(added(ka1, a, p99Of), added(ka1, b, p99Of)),
			ratio(m(ka, a, cpuOf), m(ka, b, cpuOf)), ratio(m(nc, a, cpuOf), m(nc, b, cpuOf)))
	}
	p("\n")
	p("Each proxy ÷ direct. req/s: the share of the direct rate kept; p50: how many times the direct latency.\n\n")
	p("| ratio | req/s keep-alive c=%d | req/s new-conn c=%d | p50 keep-alive c=1 | p50 new-conn c=1 |\n", c.conc, c.conc)
	p("|---|---:|---:|---:|---:|\n")
	for _, t := range targets[1:] {
		p("| %s ÷ direct | %s | %s | %s | %s |\n", t.label,
			ratio(m(ka, t.key, rpsOf), m(ka, "direct", rpsOf)), ratio(m(nc, t.key, rpsOf), m(nc, "direct", rpsOf)),
			ratio(m(ka1, t.key, p50Of), m(ka1, "direct", p50Of)), ratio(m(nc1, t.key, p50Of), m(nc1, "direct", p50Of)))
	}
	p("\n")

	p("## Memory (VmRSS, MiB)\n\n")
	p("| process | after start | idle, configured | max during intercept keep-alive c=%d | max during intercept new-conn c=%d | peak over the whole run |\n", c.conc, c.conc)
	p("|---|---:|---:|---:|---:|---:|\n")
	p("| bottleform sidecar (`bottleform sidecar`) | %s | %s | %s | %s | %s |\n",
		mib(mem.sidecarStarted), mib(mem.sidecarLoaded), mib(mem.sidecarKA), mib(mem.sidecarNC), mib(mem.sidecarHWM))
	p("| mitmdump (intercepting) | %s | %s | %s | %s | %s |\n",
		mib(mem.mitmStarted), mib(mem.mitmStarted), mib(mem.mitmKA), mib(mem.mitmNC), mib(mem.mitmHWM))
	p("\n")
	p("The sidecar's \"after start\" is before its configuration is delivered, \"idle, configured\" one second after `bottleform sidecar ctl` loaded it;\n")
	p("mitmdump takes its configuration on the command line, so both columns are the same reading. The sidecar's peak covers the\n")
	p("passthrough runs too (the same process serves both routes). \"Max during\" is the largest of readings every 20 ms; the peak is the\n")
	p("largest of every reading and the kernel's high-water mark (VmHWM).\n")
}

func label(ts []*target, key string) string {
	for _, t := range ts {
		if t.key == key {
			return t.label
		}
	}
	return key
}
