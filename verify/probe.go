package verify

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProbeRequest is what the host asks of the probe, which runs inside the
// agent (`bottleform probe`, a copy of bottleform's static binary) with the
// agent's user, env and network.
type ProbeRequest struct {
	// TCP are host:port addresses to connect to directly, with no proxy.
	TCP []string `json:"tcp,omitempty"`
	// DNS are names to resolve with the agent's resolver.
	DNS []string `json:"dns,omitempty"`
	// Connect are CONNECT requests through a proxy.
	Connect []ConnectProbe `json:"connect,omitempty"`
	// HTTP are requests made directly, with no proxy.
	HTTP []HTTPProbe `json:"http,omitempty"`
}

// ConnectProbe asks Proxy to tunnel to Target (host:port). With TLSName
// set, a tunnel that opens gets a TLS handshake for that name checked
// against CAFile, and is closed before any request: the gateway dials an
// intercepted route's upstream only for a request.
type ConnectProbe struct {
	Proxy   string `json:"proxy"`
	Target  string `json:"target"`
	TLSName string `json:"tls_name,omitempty"`
	CAFile  string `json:"ca_file,omitempty"`
}

// HTTPProbe is one direct request.
type HTTPProbe struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Body    string            `json:"body,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// ProbeResult is what the probe saw, in the request's order.
type ProbeResult struct {
	TCP     []TCPResult     `json:"tcp"`
	DNS     []DNSResult     `json:"dns"`
	Connect []ConnectResult `json:"connect"`
	HTTP    []HTTPResult    `json:"http"`
}

// TCP outcomes. Connected and refused both mean a packet reached the
// address: there is a path.
const (
	TCPConnected   = "connected"
	TCPRefused     = "refused"
	TCPUnreachable = "unreachable"
	TCPDenied      = "denied"
	TCPTimeout     = "timeout"
	TCPError       = "error"
)

type TCPResult struct {
	Addr    string `json:"addr"`
	Outcome string `json:"outcome"`
	Detail  string `json:"detail"`
}

type DNSResult struct {
	Name     string `json:"name"`
	Resolved bool   `json:"resolved"`
	Detail   string `json:"detail"`
}

type ConnectResult struct {
	Target string `json:"target"`
	// Status is the proxy's answer to CONNECT; 0 when it gave none.
	Status int `json:"status"`
	// Reason is the gateway's X-Bottleform-Reason on a refusal.
	Reason string `json:"reason,omitempty"`
	// Issuer is the subject of the certificate that issued the
	// tunnel's TLS certificate, when the handshake verified.
	Issuer string `json:"issuer,omitempty"`
	Detail string `json:"detail,omitempty"`
}

type HTTPResult struct {
	URL    string `json:"url"`
	Status int    `json:"status"`
	Body   string `json:"body"`
	Detail string `json:"detail,omitempty"`
}

const probeTimeout = 3 * time.Second

// Probe reads a ProbeRequest from in, carries it out and writes the
// ProbeResult to out.
func Probe(in io.Reader, out io.Writer) error {
	var req ProbeRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return fmt.Errorf("probe request: %w", err)
	}
	// Every probe runs at once: the ones that must fail wait out their
	// timeouts together.
	res := ProbeResult{
		TCP: make([]TCPResult, len(req.TCP)), DNS: make([]DNSResult, len(req.DNS)),
		Connect: make([]ConnectResult, len(req.Connect)), HTTP: make([]HTTPResult, len(req.HTTP)),
	}
	var wg sync.WaitGroup
	each := func(n int, f func(i int)) {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); f(i) }()
		}
	}
	each(len(req.TCP), func(i int) { res.TCP[i] = probeTCP(req.TCP[i]) })
	each(len(req.DNS), func(i int) { res.DNS[i] = probeDNS(req.DNS[i]) })
	each(len(req.Connect), func(i int) { res.Connect[i] = probeConnect(req.Connect[i]) })
	each(len(req.HTTP), func(i int) { res.HTTP[i] = probeHTTP(req.HTTP[i]) })
	wg.Wait()
	return json.NewEncoder(out).Encode(res)
}

func probeTCP(addr string) TCPResult {
	r := TCPResult{Addr: addr}
	c, err := net.DialTimeout("tcp", addr, probeTimeout)
	switch {
	case err == nil:
		c.Close()
		r.Outcome, r.Detail = TCPConnected, "connected"
	case errors.Is(err, syscall.ECONNREFUSED):
		r.Outcome = TCPRefused
	case errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH):
		r.Outcome = TCPUnreachable
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		r.Outcome = TCPDenied
	case isTimeout(err):
		r.Outcome = TCPTimeout
	default:
		r.Outcome = TCPError
	}
	if err != nil {
		r.Detail = errText(err)
	}
	return r
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errText is the innermost part of a network error, as a person reads it.
func errText(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.Err
	}
	if isTimeout(err) {
		return "timed out"
	}
	return err.Error()
}

func probeDNS(name string) DNSResult {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	if err != nil {
		return DNSResult{Name: name, Detail: errText(err)}
	}
	return DNSResult{Name: name, Resolved: true, Detail: strings.Join(addrs, ", ")}
}

func probeConnect(p ConnectProbe) ConnectResult {
	r := ConnectResult{Target: p.Target}
	u, err := url.Parse(p.Proxy)
	if err != nil || u.Host == "" {
		r.Detail = fmt.Sprintf("proxy %q is not a URL", p.Proxy)
		return r
	}
	c, err := net.DialTimeout("tcp", u.Host, probeTimeout)
	if err != nil {
		r.Detail = "the proxy " + u.Host + ": " + errText(err)
		return r
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", p.Target, p.Target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		r.Detail = "reading the proxy's answer: " + errText(err)
		return r
	}
	r.Status, r.Reason = resp.StatusCode, resp.Header.Get("X-Bottleform-Reason")
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		r.Detail = strings.TrimSpace(string(b))
		return r
	}
	if p.TLSName == "" {
		return r
	}
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(p.CAFile); err != nil || !pool.AppendCertsFromPEM(pem) {
		r.Detail = "no CA certificate at " + p.CAFile
		return r
	}
	tc := tls.Client(&bufferedConn{Conn: c, r: br}, &tls.Config{ServerName: p.TLSName, RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		r.Detail = "TLS: " + err.Error()
		return r
	}
	chains := tc.ConnectionState().VerifiedChains
	if len(chains) > 0 && len(chains[0]) > 0 {
		r.Issuer = chains[0][len(chains[0])-1].Subject.String()
	}
	return r
}

// bufferedConn reads what the CONNECT response's reader buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func probeHTTP(h HTTPProbe) HTTPResult {
	r := HTTPResult{URL: h.URL}
	req, err := http.NewRequest(h.Method, h.URL, strings.NewReader(h.Body))
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Do(req)
	if err != nil {
		r.Detail = errText(err)
		return r
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	r.Status, r.Body = resp.StatusCode, string(b)
	return r
}

// Limits of ProbeTar: it reads files an agent owns, which may be large.
const (
	tarFileMax  = 4 << 20
	tarTotalMax = 256 << 20
)

// ProbeTar writes a tar of the regular files under dirs (each at most
// 4 MiB, 256 MiB in all; larger ones are listed as empty with a
// "bottleform.skipped" PAX record) to out. Unreadable files are skipped
// the same way; a missing dir is left out.
func ProbeTar(dirs []string, out io.Writer) error {
	tw := tar.NewWriter(out)
	var total int64
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == dir && errors.Is(err, fs.ErrNotExist) {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			h := &tar.Header{Name: p, Mode: int64(info.Mode().Perm()), Size: info.Size(), ModTime: info.ModTime(), Typeflag: tar.TypeReg}
			var data []byte
			if info.Size() > tarFileMax || total+info.Size() > tarTotalMax {
				h.Size, h.PAXRecords = 0, map[string]string{"bottleform.skipped": "too large"}
			} else if data, err = os.ReadFile(p); err != nil {
				h.Size, h.PAXRecords = 0, map[string]string{"bottleform.skipped": "unreadable"}
			} else {
				h.Size = int64(len(data))
			}
			total += h.Size
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}
