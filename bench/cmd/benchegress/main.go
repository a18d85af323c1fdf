// Command benchegress is bench/egress: it measures the throughput, the
// added latency, the CPU and the memory of bottleform's egress gateway,
// run as the real `bottleform sidecar` process, against mitmproxy and a
// direct connection, on one machine. See bench/README.md.
//
//	benchegress upstream -listen ADDR -dir DIR -names N1,N2 -token T
//	benchegress run -bottleform BIN -work DIR -gw-exec 'nsenter -t PID -n --' [flags]
//
// upstream is the HTTPS server every request ends at. run starts the
// upstream, the sidecar and two mitmdump processes, delivers the
// sidecar's configuration with `bottleform sidecar ctl`, checks each path
// once, warms each up, then times every path in every scenario N times,
// interleaved, and writes a Markdown report. bench/egress sets up the
// network namespaces run expects and calls it; run is not meant to be
// called by hand.
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bottleform/bottleform/sidecar"
)

const (
	apiHost   = "api.bench.test"  // the intercepted, credentialed route
	passHost  = "pass.bench.test" // the passthrough route
	tokenSlot = "BENCH_TOKEN"
	// token is what the proxies inject; a bench value, 40 characters
	// like a GitHub token, so the gateway's secret scan works as usual.
	token = "bench_0123456789abcdefghijklmnopqrstuvwx"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchegress upstream|run [flags] (see bench/README.md)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "upstream":
		err = runUpstream(os.Args[2:])
	case "run":
		err = runBench(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want upstream or run", os.Args[1])
	}
	switch {
	case errors.Is(err, context.Canceled):
		err = errors.New("interrupted; every process it started is stopped")
	case errors.Is(err, context.DeadlineExceeded):
		err = errors.New("ran past its time budget; every process it started is stopped")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchegress:", err)
		os.Exit(1)
	}
}

// config is run's flags.
type config struct {
	bottleform, mitmdump string
	gwExec               []string // prefix that runs a command in the gateways' network namespace
	upstream             string   // the upstream's address
	gwIP                 string   // the gateways' address
	work, out            string
	n, conc              int
	dur, warm            time.Duration
}

// scenario is one way of loading a path.
type scenario struct {
	key     string
	newConn bool
	conc    int
}

func runBench(args []string) error {
	var c config
	var gwExec string
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&c.bottleform, "bottleform", "", "the bottleform `BINARY` (run as `bottleform sidecar`)")
	fs.StringVar(&c.mitmdump, "mitmdump", "mitmdump", "the mitmdump `BINARY`")
	fs.StringVar(&gwExec, "gw-exec", "", "the `PREFIX` that runs a command in the gateways' network namespace (space-separated)")
	fs.StringVar(&c.upstream, "upstream", "10.99.0.1:443", "the upstream's `ADDRESS` (port 443: the gateway dials only that)")
	fs.StringVar(&c.gwIP, "gw-ip", "10.99.0.2", "the `IP` the gateways listen on")
	fs.StringVar(&c.work, "work", "", "a scratch `DIR`")
	fs.StringVar(&c.out, "out", "", "write the Markdown report to `FILE` too")
	fs.IntVar(&c.n, "n", 3, "repetitions of each measurement")
	fs.IntVar(&c.conc, "c", 8, "concurrency of the throughput runs")
	fs.DurationVar(&c.dur, "d", 4*time.Second, "length of each timed run")
	fs.DurationVar(&c.warm, "warm", time.Second, "length of each untimed warm-up run")
	fs.IntVar(&clkTck, "clk-tck", 100, "the kernel's USER_HZ (getconf CLK_TCK)")
	_ = fs.Parse(args)
	c.gwExec = strings.Fields(gwExec)
	if c.bottleform == "" || c.work == "" || c.n < 1 || c.conc < 1 || c.dur <= 0 {
		return errors.New("run needs -bottleform, -work, and positive -n, -c and -d")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// However long N and D make it, a run ends: 4 scenarios × 5 paths.
	budget := time.Duration(c.n)*20*(c.dur+5*time.Second) + 20*(c.warm+5*time.Second) + 2*time.Minute
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	start := func(name string, prefix []string, argv ...string) (*proc, error) {
		p, err := startProc(name, filepath.Join(c.work, name+".log"), append(append([]string{}, prefix...), argv...))
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}

	// The upstream, in the load client's namespace.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	up, err := start("upstream", nil, self, "upstream", "-listen", c.upstream, "-dir", c.work,
		"-names", apiHost+","+passHost, "-token", token)
	if err != nil {
		return err
	}
	caFile := filepath.Join(c.work, "upstream-ca.pem")
	if err := waitFor(ctx, up, func() bool { return fileExists(caFile) && dialable(c.upstream) }); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	upstreamCA, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}

	// The real sidecar, in the gateways' namespace.
	sock := filepath.Join(c.work, "run", "control.sock")
	sideAddr := net.JoinHostPort(c.gwIP, "9099")
	sc, err := start("sidecar", c.gwExec, c.bottleform, "sidecar", "--control-socket", sock, "--egress-listen", sideAddr)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, sc, func() bool { return fileExists(sock) && dialable(sideAddr) }); err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	rssStarted := procStatus(sc.pid(), "VmRSS")
	rep, err := deliver(ctx, c.bottleform, sock, upstreamCA)
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	rssLoaded := procStatus(sc.pid(), "VmRSS")

	// mitmdump twice, in the same namespace: intercepting with the
	// credential set, and passing pass.bench.test through.
	confdir := filepath.Join(c.work, "mitmproxy")
	mitmAddr, mitmPassAddr := net.JoinHostPort(c.gwIP, "8080"), net.JoinHostPort(c.gwIP, "8081")
	mitmArgs := func(port string) []string {
		return []string{c.mitmdump, "--mode", "regular", "--listen-host", c.gwIP, "--listen-port", port,
			"--set", "confdir=" + confdir, "--set", "ssl_verify_upstream_trusted_ca=" + caFile,
			// One record per request (flow_detail 1, the default), like the
			// gateway's one decision line; no connection events.
			"--set", "termlog_verbosity=warn"}
	}
	mi, err := start("mitmdump-intercept", c.gwExec, append(mitmArgs("8080"),
		"--modify-headers", "/~q/Authorization/Bearer "+token)...)
	if err != nil {
		return err
	}
	mitmCAFile := filepath.Join(confdir, "mitmproxy-ca-cert.pem")
	if err := waitFor(ctx, mi, func() bool { return fileExists(mitmCAFile) && dialable(mitmAddr) }); err != nil {
		return fmt.Errorf("mitmdump: %w", err)
	}
	time.Sleep(time.Second)
	mitmRSSStarted := procStatus(mi.pid(), "VmRSS")
	mp, err := start("mitmdump-passthrough", c.gwExec, append(mitmArgs("8081"),
		"--ignore-hosts", `^pass\.bench\.test(:443)?$`)...)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, mp, func() bool { return dialable(mitmPassAddr) }); err != nil {
		return fmt.Errorf("mitmdump: %w", err)
	}
	mitmCA, err := os.ReadFile(mitmCAFile)
	if err != nil {
		return err
	}

	pool := func(pems ...[]byte) *x509.CertPool {
		p := x509.NewCertPool()
		for _, b := range pems {
			if !p.AppendCertsFromPEM(b) {
				panic("benchegress: no certificate in a CA file")
			}
		}
		return p
	}
	proxyURL := func(addr string) *url.URL { return &url.URL{Scheme: "http", Host: addr} }
	targets := []*target{
		{key: "direct", label: "direct (no proxy)", host: apiHost, roots: pool(upstreamCA)},
		{key: "bf-intercept", label: "bottleform intercept (credential injected)", proxy: proxyURL(sideAddr), host: apiHost,
			roots: pool([]byte(rep.CACert)), wantAuth: true, proc: sc},
		{key: "bf-passthrough", label: "bottleform passthrough", proxy: proxyURL(sideAddr), host: passHost,
			roots: pool(upstreamCA), proc: sc},
		{key: "mitm-intercept", label: "mitmproxy intercept (header set)", proxy: proxyURL(mitmAddr), host: apiHost,
			roots: pool(mitmCA), wantAuth: true, proc: mi},
		{key: "mitm-passthrough", label: "mitmproxy passthrough (ignore_hosts)", proxy: proxyURL(mitmPassAddr), host: passHost,
			roots: pool(upstreamCA), proc: mp},
	}
	scenarios := []scenario{
		{key: "ka", newConn: false, conc: c.conc},
		{key: "nc", newConn: true, conc: c.conc},
		{key: "ka1", newConn: false, conc: 1},
		{key: "nc1", newConn: true, conc: 1},
	}

	// Each path once, then an untimed warm-up of each.
	for _, t := range targets {
		if err := t.probe(ctx, c.upstream); err != nil {
			return fmt.Errorf("%s: the check request failed: %w", t.label, err)
		}
	}
	logf("benchegress: every path answers; warming up (%s each)", c.warm)
	alive := func() error {
		for _, p := range procs {
			if p.exited() {
				return fmt.Errorf("%s exited early; see %s", p.name, p.logPath)
			}
		}
		return ctx.Err()
	}
	for _, s := range scenarios[:2] {
		for _, t := range targets {
			if err := alive(); err != nil {
				return err
			}
			_ = load(ctx, t, c.upstream, s.newConn, s.conc, c.warm)
		}
	}

	res := map[string]map[string][]sample{}
	for _, s := range scenarios {
		res[s.key] = map[string][]sample{}
	}
	for i := 1; i <= c.n; i++ {
		for _, s := range scenarios {
			for _, t := range targets {
				if err := alive(); err != nil {
					return err
				}
				sm := load(ctx, t, c.upstream, s.newConn, s.conc, c.dur)
				if err := alive(); err != nil {
					return err
				}
				if sm.requests == 0 || sm.errors*100 > sm.requests {
					return fmt.Errorf("%s, %s: %d errors in %d requests; the first: %v", t.label, s.describe(), sm.errors, sm.requests, sm.firstErr)
				}
				res[s.key][t.key] = append(res[s.key][t.key], sm)
				logf("benchegress: %d/%d %-14s %-17s %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  errors %d",
					i, c.n, s.describe(), t.key, sm.rps(), ms(sm.pct(.5)), ms(sm.pct(.99)), sm.errors)
			}
		}
	}

	mem := memory{
		sidecarStarted: rssStarted, sidecarLoaded: rssLoaded, sidecarHWM: procStatus(sc.pid(), "VmHWM"),
		mitmStarted: mitmRSSStarted, mitmHWM: procStatus(mi.pid(), "VmHWM"),
	}
	// VmHWM is the kernel's high-water mark, which it updates lazily; the
	// peak is the larger of it and every reading taken during the runs.
	for _, t := range targets {
		for _, s := range scenarios {
			for _, sm := range res[s.key][t.key] {
				switch t.proc {
				case sc:
					mem.sidecarHWM = max(mem.sidecarHWM, sm.rssMax)
				case mi:
					mem.mitmHWM = max(mem.mitmHWM, sm.rssMax)
				}
			}
		}
	}
	for _, sm := range res["ka"]["bf-intercept"] {
		mem.sidecarKA = max(mem.sidecarKA, sm.rssMax)
	}
	for _, sm := range res["nc"]["bf-intercept"] {
		mem.sidecarNC = max(mem.sidecarNC, sm.rssMax)
	}
	for _, sm := range res["ka"]["mitm-intercept"] {
		mem.mitmKA = max(mem.mitmKA, sm.rssMax)
	}
	for _, sm := range res["nc"]["mitm-intercept"] {
		mem.mitmNC = max(mem.mitmNC, sm.rssMax)
	}
	var b bytes.Buffer
	report(&b, c, targets, scenarios, res, mem)
	if c.out != "" {
		if err := os.WriteFile(c.out, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	_, err = os.Stdout.Write(b.Bytes())
	return err
}

func (s scenario) describe() string {
	mode := "keep-alive"
	if s.newConn {
		mode = "new-conn"
	}
	return fmt.Sprintf("%s c=%d", mode, s.conc)
}

// deliver loads the benchmark's configuration into the sidecar the way
// bottleform apply does: `bottleform sidecar ctl` with the request on
// stdin. It returns the reply, which carries the gateway's CA.
func deliver(ctx context.Context, bf, sock string, upstreamCA []byte) (*sidecar.Reply, error) {
	req := sidecar.Request{Op: sidecar.OpLoad, Delivery: &sidecar.Delivery{
		Config: sidecar.Config{
			Bottle: "bench",
			Routes: []sidecar.Route{
				// The upstream is on a private address: the routes allow it,
				// as a route to a service on a private network would.
				{Host: apiHost, TLS: "intercept", AuthScheme: "Bearer", TokenSlot: tokenSlot, AllowPrivate: true},
				{Host: passHost, TLS: "passthrough", AllowPrivate: true},
			},
			UpstreamCAs: string(upstreamCA),
		},
		Slots: map[string]string{tokenSlot: token},
	}}
	in, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bf, "sidecar", "--control-socket", sock, "ctl")
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bottleform sidecar ctl: %w: %s%s", err, out.String(), errb.String())
	}
	var rep sidecar.Reply
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("bottleform sidecar ctl: reply: %w", err)
	}
	if !rep.OK || !rep.Configured || rep.CACert == "" {
		return nil, fmt.Errorf("bottleform sidecar ctl: not configured: %s", out.String())
	}
	return &rep, nil
}

// proc is a child process. Its stdout and stderr go to logPath; it gets
// SIGKILL if benchegress dies first.
type proc struct {
	name, logPath string
	cmd           *exec.Cmd
	done          chan struct{}
}

func startProc(name, logPath string, argv []string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, and SIGKILL if the process is still there 5 s later.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitFor polls ok for up to 20 s, failing early if p exits.
func waitFor(ctx context.Context, p *proc, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for !ok() {
		if p.exited() {
			b, _ := os.ReadFile(p.logPath)
			return fmt.Errorf("%w: %s", errExited, tail(b))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready in time; see %s", p.logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
