package main

// Helpers for TestE2EEgress (e2e_egress_test.go): a TLS upstream with its
// own CA, run as a container on a bottle's egress network, and the
// plumbing to drive curl and git in the agent and read the gateway's
// decisions.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The names the upstream answers to: the alias of its container on the
// bottle's egress network, and the names its certificate carries.
const (
	egAPIHost   = "api.example.test"   // intercepted, credentialed, path-limited
	egFilesHost = "files.example.test" // passthrough
	egOtherHost = "other.example.test" // not granted (granted for a while in route-in-place)
)

// egPKI is the upstream's own CA and its leaf for the three names.
type egPKI struct {
	caCN                   string
	caPEM, certPEM, keyPEM []byte
}

func newEgPKI(t *testing.T) *egPKI {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &egPKI{caCN: "bottleform e2e upstream CA " + randomHex(4)}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: p.caCN},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: egAPIHost},
		DNSNames:     []string{egAPIHost, egFilesHost, egOtherHost},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	p.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	p.keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return p
}

// buildTestUpstream builds internal/testupstream as a static binary in
// dir and returns its path.
func buildTestUpstream(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "upstream")
	cmd := exec.Command("go", "build", "-o", bin, "./internal/testupstream")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./internal/testupstream: %v\n%s", err, out)
	}
	return bin
}

// egUpstream is the test upstream's container.
type egUpstream struct {
	name    string
	network string
	ip      string
}

// startUpstream creates the upstream container from the agent image on
// network (the bottle's egress network) with the three names as aliases,
// copies the server and its certificate in, starts it as root (it listens
// on 443) and waits until it listens. Cleanup removes it; it must run
// before the bottle's destroy, which removes the network (t.Cleanup runs
// last-registered first).
func startUpstream(t *testing.T, network, bin string, pki *egPKI) *egUpstream {
	t.Helper()
	u := &egUpstream{name: "bfe2e-upstream-" + randomHex(4), network: network}
	tmp := t.TempDir()
	for name, data := range map[string][]byte{"cert.pem": pki.certPEM, "key.pem": pki.keyPEM} {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dockerCLI(t, "create", "--name", u.name, "--user", "0", "--network", network,
		"--network-alias", egAPIHost, "--network-alias", egFilesHost, "--network-alias", egOtherHost,
		"--label", "dev.bottleform.e2e=upstream",
		"--entrypoint", "/srv/upstream", e2eAgentImage)
	t.Cleanup(func() {
		if _, err := dockerRun("rm", "-f", u.name); err != nil {
			t.Errorf("cleanup: remove the upstream: %v", err)
		}
	})
	dockerCLI(t, "cp", bin, u.name+":/srv/upstream")
	dockerCLI(t, "cp", filepath.Join(tmp, "cert.pem"), u.name+":/srv/cert.pem")
	dockerCLI(t, "cp", filepath.Join(tmp, "key.pem"), u.name+":/srv/key.pem")
	dockerCLI(t, "start", u.name)
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs, _ := exec.Command("docker", "logs", u.name).CombinedOutput()
		if bytes.Contains(logs, []byte("testupstream ready")) {
			break
		}
		if running, _ := dockerRun("inspect", "--format", "{{.State.Running}}", u.name); running != "true" || time.Now().After(deadline) {
			t.Fatalf("the upstream did not come up (running: %s); its logs:\n%s", running, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	u.ip = dockerCLI(t, "inspect", "--format", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, u.name)
	if u.ip == "" {
		t.Fatalf("the upstream has no address on %s", network)
	}
	return u
}

// egRequest is one request as the upstream saw it (its /echo form).
type egRequest struct {
	Method      string              `json:"method"`
	Path        string              `json:"path"`
	Query       string              `json:"query"`
	Host        string              `json:"host"`
	Proto       string              `json:"proto"`
	ServerName  string              `json:"server_name"`
	Headers     map[string][]string `json:"headers"`
	HeaderNames []string            `json:"header_names"`
}

// header returns the values of the header whose name, read as the gateway
// reads credential names (case-insensitive, '_' and '.' as '-'), is name.
func (r egRequest) header(name string) []string {
	var out []string
	for k, v := range r.Headers {
		if normHeader(k) == normHeader(name) {
			out = append(out, v...)
		}
	}
	return out
}

func normHeader(s string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(s))
}

// requests returns every request the upstream has received, in order.
func (u *egUpstream) requests(t *testing.T) []egRequest {
	t.Helper()
	out := dockerCLI(t, "exec", u.name, "cat", "/srv/requests.jsonl")
	var rs []egRequest
	for _, l := range strings.Split(out, "\n") {
		if l == "" {
			continue
		}
		var r egRequest
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("the upstream's request log has a line that is not JSON: %v: %s", err, l)
		}
		rs = append(rs, r)
	}
	return rs
}

// release lets the SSE stream ?id=id send its second event.
func (u *egUpstream) release(t *testing.T, id string) {
	t.Helper()
	dockerCLI(t, "exec", u.name, "touch", "/srv/flags/"+id)
}

// parseEcho finds the /echo JSON in a curl output (after any headers).
func parseEcho(t *testing.T, out string) egRequest {
	t.Helper()
	i := strings.Index(out, "{")
	if i < 0 {
		t.Fatalf("no /echo JSON in:\n%s", out)
	}
	var r egRequest
	if err := json.NewDecoder(strings.NewReader(out[i:])).Decode(&r); err != nil {
		t.Fatalf("the /echo reply is not JSON: %v\n%s", err, out)
	}
	return r
}

var (
	statusLine   = regexp.MustCompile(`(?m)^HTTP/[0-9.]+ ([0-9]{3})`)
	reasonHeader = regexp.MustCompile(`(?mi)^x-bottleform-reason: *([a-z_]+)`)
	reasonBody   = regexp.MustCompile(`(?m)why: ([a-z_]+):`)
)

// lastStatus is the status code of the last HTTP status line in out (curl
// -i prints the proxy's CONNECT answer, then the request's), "" if none.
func lastStatus(out string) string {
	m := statusLine.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}

// refusalReason is the gateway's reason code in out: the
// X-Bottleform-Reason header, else the "why:" line of a refusal body.
func refusalReason(out string) string {
	if m := reasonHeader.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	if m := reasonBody.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// bfRunStdin runs bottleform in dir with stdin.
func bfRunStdin(t *testing.T, dir string, env []string, stdin string, args ...string) bfResult {
	t.Helper()
	r, err := bfExec(e2eBinary(t), dir, env, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// bfExec runs the bottleform binary bin in dir with stdin; it does not
// touch a testing.T, so goroutines may call it. err is for a binary that
// could not be run at all.
func bfExec(bin, dir string, env []string, stdin string, args ...string) (bfResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e2eCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, e2eEnviron(env)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := bfResult{stdout: out.String(), stderr: errb.String()}
	if cmd.Process != nil {
		r.pid = cmd.Process.Pid
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signal = ws.Signal()
		}
	default:
		return r, fmt.Errorf("bottleform %s: %v", strings.Join(args, " "), err)
	}
	return r, nil
}

// egDecision is one line of `bottleform logs --json`.
type egDecision struct {
	Method  string `json:"method"`
	Host    string `json:"host"`
	Path    string `json:"path"`
	Route   string `json:"route"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	Status  int    `json:"status"`
}

func (d egDecision) String() string {
	return fmt.Sprintf("%s %s %s%s %s %d", d.Verdict, d.Method, d.Host, d.Path, d.Reason, d.Status)
}

// decisions runs `bottleform logs BOTTLE --json` (with --denied when
// denied) and parses every line.
func decisions(t *testing.T, dir, bottle string, denied bool) []egDecision {
	t.Helper()
	args := []string{"logs", bottle, "--json"}
	if denied {
		args = append(args, "--denied")
	}
	out := bfOK(t, dir, nil, args...)
	var ds []egDecision
	for _, l := range strings.Split(out, "\n") {
		if l == "" {
			continue
		}
		var d egDecision
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("bottleform logs --json printed a line that is not JSON: %v: %s", err, l)
		}
		ds = append(ds, d)
	}
	return ds
}

// egLine is a line of a streamed command's stdout and when it arrived.
type egLine struct {
	at   time.Time
	text string
}

// egStream is a bottleform process whose stdout is read line by line as
// it arrives.
type egStream struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	lines  chan egLine
	stderr bytes.Buffer
	done   chan struct{}
	err    error
	once   sync.Once
}

func bfStream(t *testing.T, dir string, args ...string) *egStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eCommandTimeout)
	s := &egStream{cancel: cancel, lines: make(chan egLine, 1024), done: make(chan struct{})}
	s.cmd = exec.CommandContext(ctx, e2eBinary(t), args...)
	s.cmd.Dir, s.cmd.Env = dir, e2eEnviron(nil)
	s.cmd.Stderr = &s.stderr
	s.cmd.WaitDelay = 10 * time.Second
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- egLine{at: time.Now(), text: sc.Text()}
		}
		close(s.lines)
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *egStream) stop() { s.once.Do(s.cancel) }

// next returns the next non-empty line, or fails after d.
func (s *egStream) next(t *testing.T, d time.Duration) egLine {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				<-s.done
				t.Fatalf("the stream ended (%v) before another line; stderr:\n%s", s.err, s.stderr.String())
			}
			if strings.TrimSpace(l.text) != "" {
				return l
			}
		case <-timer.C:
			t.Fatalf("no line within %s", d)
		}
	}
}

// dockerRunStdin runs the docker CLI with stdin and returns how it ended;
// a docker that cannot be run at all fails the test.
func dockerRunStdin(t *testing.T, stdin string, args ...string) bfResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := bfResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// exportSearch reads every file of `docker export CONTAINER` (its whole
// file system, whatever the owner and mode) and returns, per needle, the
// paths whose content, name or link target holds it, and how many entries
// were read.
func exportSearch(t *testing.T, container string, needles ...string) (map[string][]string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "export", container)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hits := map[string][]string{}
	n := 0
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("docker export %s: %v", container, err)
		}
		n++
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("docker export %s: %s: %v", container, h.Name, err)
		}
		for _, s := range needles {
			if bytes.Contains(data, []byte(s)) || strings.Contains(h.Name, s) || strings.Contains(h.Linkname, s) {
				hits[s] = append(hits[s], h.Name)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("docker export %s: %v: %s", container, err, errb.String())
	}
	return hits, n
}
