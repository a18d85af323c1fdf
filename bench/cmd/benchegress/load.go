package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// target is one way to reach the upstream: directly, or through a proxy.
type target struct {
	key      string
	label    string
	proxy    *url.URL // nil: direct
	host     string   // the request's host (api.bench.test or pass.bench.test)
	roots    *x509.CertPool
	wantAuth bool // the upstream must see the injected credential
	proc     *proc
	upProto  string // the HTTP version the upstream saw, learnt by probe
}

// sample is one timed load run.
type sample struct {
	requests int
	errors   int
	firstErr error
	elapsed  time.Duration
	lat      []time.Duration // sorted
	cpu      time.Duration   // the proxy's CPU time (user+system) in the window
	rssMax   int64           // the proxy's largest VmRSS in the window, KiB
}

func (s sample) rps() float64 { return float64(s.requests) / s.elapsed.Seconds() }

// pct returns the q-quantile of the sorted latencies (nearest rank).
func (s sample) pct(q float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(q*float64(len(s.lat))+0.5) - 1
	return s.lat[max(0, min(i, len(s.lat)-1))]
}

// cpuPerReq is the proxy's CPU time per request; 0 without a proxy.
func (s sample) cpuPerReq() time.Duration {
	if s.requests == 0 {
		return 0
	}
	return s.cpu / time.Duration(s.requests)
}

// client is one load worker's HTTP client: its own transport, so that in
// keep-alive mode each worker holds exactly one connection (one CONNECT
// tunnel) for the whole run, and in new-connection mode opens one per
// request.
func (t *target) client(upstream string, newConn bool) (*http.Client, *http.Transport) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: t.roots},
		DisableKeepAlives:     newConn,
		MaxIdleConnsPerHost:   1,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
	}
	if t.proxy != nil {
		tr.Proxy = http.ProxyURL(t.proxy)
		tr.DialContext = d.DialContext
	} else {
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, upstream)
		}
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}, tr
}

// get makes one request and checks the answer: 200, the whole body, and
// the credential injected exactly when the target injects one.
func (t *target) get(ctx context.Context, c *http.Client) error {
	_, err := t.do(ctx, c)
	return err
}

// do is get, returning the HTTP version the upstream saw.
func (t *target) do(ctx context.Context, c *http.Client) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+t.host+"/v1/bench", nil)
	if err != nil {
		return "", err
	}
	// What an agent would send: the proxies that inject replace it.
	req.Header.Set("Authorization", "Bearer agent-placeholder")
	res, err := c.Do(req)
	if err != nil {
		return "", err
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	switch {
	case err != nil:
		return "", fmt.Errorf("reading the body: %w", err)
	case res.StatusCode != http.StatusOK:
		return "", fmt.Errorf("status %s", res.Status)
	case n != bodySize:
		return "", fmt.Errorf("body of %d bytes, want %d", n, bodySize)
	case (res.Header.Get(authHeader) == "injected") != t.wantAuth:
		return "", fmt.Errorf("upstream saw credential %q, want injected=%v", res.Header.Get(authHeader), t.wantAuth)
	}
	return res.Header.Get(protoHeader), nil
}

// probe makes one request through t on a fresh connection.
func (t *target) probe(ctx context.Context, upstream string) error {
	c, tr := t.client(upstream, true)
	defer tr.CloseIdleConnections()
	var err error
	t.upProto, err = t.do(ctx, c)
	return err
}

// load runs conc workers against t for d and returns the sample. Each
// worker first makes one untimed request (in keep-alive mode it opens the
// worker's tunnel); the window starts when all have, and each worker
// stops starting requests when it ends. The proxy's CPU time and VmRSS
// are read around and during the window.
func load(ctx context.Context, t *target, upstream string, newConn bool, conc int, d time.Duration) sample {
	var (
		ready, done sync.WaitGroup
		start       = make(chan struct{})
		deadline    time.Time
		mu          sync.Mutex
		s           sample
	)
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	for range conc {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			c, tr := t.client(upstream, newConn)
			defer tr.CloseIdleConnections()
			primeErr := t.get(ctx, c)
			ready.Done()
			select {
			case <-start:
			case <-ctx.Done():
				return
			}
			lat := make([]time.Duration, 0, 1<<14)
			n, errs := 0, 0
			var first error
			if primeErr != nil {
				errs, first = 1, primeErr
			}
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				err := t.get(ctx, c)
				el := time.Since(t0)
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				n++
				lat = append(lat, el)
			}
			mu.Lock()
			s.requests += n
			s.errors += errs
			if s.firstErr == nil {
				s.firstErr = first
			}
			s.lat = append(s.lat, lat...)
			mu.Unlock()
		}()
	}
	ready.Wait()
	var cpu0 time.Duration
	stopRSS := func() int64 { return 0 }
	if t.proc != nil {
		cpu0 = procCPU(t.proc.pid())
		stopRSS = sampleRSS(t.proc.pid())
	}
	t0 := time.Now()
	deadline = t0.Add(d)
	close(start)
	done.Wait()
	s.elapsed = time.Since(t0)
	if t.proc != nil {
		s.cpu = procCPU(t.proc.pid()) - cpu0
		s.rssMax = stopRSS()
	}
	slices.Sort(s.lat)
	return s
}

// clkTck is the kernel's USER_HZ, the unit of /proc/PID/stat times.
var clkTck = 100

// procCPU returns the user+system CPU time of process pid so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / time.Duration(clkTck)
}

// procStatus returns a "kB" field of /proc/PID/status (VmRSS, VmHWM), in
// KiB; 0 if unreadable.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// sampleRSS reads VmRSS of pid every 20 ms until the returned function is
// called; that function returns the largest value seen, in KiB.
func sampleRSS(pid int) func() int64 {
	stop := make(chan struct{})
	res := make(chan int64)
	go func() {
		best := procStatus(pid, "VmRSS")
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				best = max(best, procStatus(pid, "VmRSS"))
			case <-stop:
				res <- max(best, procStatus(pid, "VmRSS"))
				return
			}
		}
	}()
	return func() int64 { close(stop); return <-res }
}

var errExited = errors.New("exited")
