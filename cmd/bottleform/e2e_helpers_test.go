package main

// Helpers for the end-to-end tests in e2e_test.go: they build a real
// bottleform binary once per test run and drive it, and the docker CLI,
// against the Docker engine of this machine.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bottleform/bottleform/resource"
)

// e2eAgentImage is the agent image examples/quickstart runs, built by
// ./scripts/agent-image.
const e2eAgentImage = "bottleform-agent:test"

// e2eCommandTimeout bounds one bottleform or docker command.
const e2eCommandTimeout = 3 * time.Minute

// e2eBuild is the bottleform binary of this test run, built on first use.
// Its version is unique to the run, so the sidecar image it builds
// (bottleform-sidecar:VERSION) is this run's alone: a concurrent build of
// bottleform-sidecar:dev elsewhere on the machine cannot swap it, and it is
// removed when the tests end.
var e2eBuild struct {
	once    sync.Once
	dir     string
	bin     string
	version string
	err     error
}

// e2eTestingM runs the tests, then removes what the end-to-end tests built
// for the run (the binary and its sidecar image).
type e2eTestingM struct{ m *testing.M }

func (e e2eTestingM) Run() int {
	code := e.m.Run()
	if e2eBuild.dir != "" {
		if e2eBuild.version != "" {
			_ = exec.Command("docker", "rmi", "bottleform-sidecar:"+e2eBuild.version).Run()
		}
		os.RemoveAll(e2eBuild.dir)
	}
	return code
}

// e2eBinary returns the path of a static bottleform built from this
// module, building it the first time.
func e2eBinary(t *testing.T) string {
	t.Helper()
	b := &e2eBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "bottleform-e2e-"); b.err != nil {
			return
		}
		b.version = "e2e-" + randomHex(6)
		b.bin = filepath.Join(b.dir, "bottleform")
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+b.version, "-o", b.bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("CGO_ENABLED=0 go build ./cmd/bottleform: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

var e2eEngine struct {
	once sync.Once
	err  error
}

// e2eRequire skips under -short and otherwise fails, never skips, when the
// Docker engine or the agent image is missing. It returns the binary.
func e2eRequire(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test against the Docker engine; skipped with -short")
	}
	e2eEngine.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := exec.LookPath("docker"); err != nil {
			e2eEngine.err = errors.New("the docker command is not installed; these end-to-end tests need Docker (apt-get install docker.io), then run ./scripts/agent-image")
			return
		}
		if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
			e2eEngine.err = fmt.Errorf("the Docker engine is unreachable (docker version: %v: %s); start it, then run ./scripts/agent-image", err, bytes.TrimSpace(out))
			return
		}
		if out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", e2eAgentImage).CombinedOutput(); err != nil {
			e2eEngine.err = fmt.Errorf("the agent image %s is missing (%s); build it with ./scripts/agent-image", e2eAgentImage, bytes.TrimSpace(out))
		}
	})
	if e2eEngine.err != nil {
		t.Fatal(e2eEngine.err)
	}
	return e2eBinary(t)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// e2eEnviron is this process's environment without the variables that
// would change what bottleform does under test.
func e2eEnviron(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "BOTTLEFORM_"), name == "NO_COLOR", name == "E2E_CANARY":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "NO_COLOR=1")
	return append(env, extra...)
}

// bfResult is how one bottleform run ended.
type bfResult struct {
	stdout, stderr string
	// code is the exit status, -1 when a signal ended the process.
	code   int
	signal syscall.Signal
	pid    int
}

func (r bfResult) String() string {
	s := fmt.Sprintf("exit %d", r.code)
	if r.signal != 0 {
		s = fmt.Sprintf("killed by %v", r.signal)
	}
	return fmt.Sprintf("%s\n--- stdout:\n%s--- stderr:\n%s", s, r.stdout, r.stderr)
}

// bfProc is a bottleform process that was started and not yet waited for.
type bfProc struct {
	cmd            *exec.Cmd
	cancel         context.CancelFunc
	stdout, stderr bytes.Buffer
}

// bfStart starts bottleform in dir with args; env entries (NAME=VALUE) are
// added to a clean environment.
func bfStart(t *testing.T, dir string, env []string, args ...string) *bfProc {
	t.Helper()
	bin := e2eBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), e2eCommandTimeout)
	p := &bfProc{cancel: cancel}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = e2eEnviron(env)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.WaitDelay = 10 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start bottleform %s: %v", strings.Join(args, " "), err)
	}
	return p
}

func (p *bfProc) wait(t *testing.T) bfResult {
	t.Helper()
	defer p.cancel()
	err := p.cmd.Wait()
	r := bfResult{stdout: p.stdout.String(), stderr: p.stderr.String(), pid: p.cmd.Process.Pid}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signal = ws.Signal()
		}
	default:
		t.Fatalf("bottleform %s: %v", strings.Join(p.cmd.Args[1:], " "), err)
	}
	return r
}

// bfRun runs bottleform to the end.
func bfRun(t *testing.T, dir string, env []string, args ...string) bfResult {
	t.Helper()
	return bfStart(t, dir, env, args...).wait(t)
}

// bfKeep runs bottleform and keeps its stdout and stderr in outputs, for a
// canary check that reads every output of the test.
func bfKeep(t *testing.T, dir string, env []string, outputs map[string]string, args ...string) bfResult {
	t.Helper()
	r := bfRun(t, dir, env, args...)
	n := len(outputs) / 2
	outputs[fmt.Sprintf("stdout of bottleform %s (#%d)", strings.Join(args, " "), n)] = r.stdout
	outputs[fmt.Sprintf("stderr of bottleform %s (#%d)", strings.Join(args, " "), n)] = r.stderr
	return r
}

// bf runs bottleform in dir and returns its output and exit status (-1
// when killed by a signal).
func bf(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	r := bfRun(t, dir, env, args...)
	return r.stdout, r.stderr, r.code
}

// bfOK runs bottleform and fails the test unless it exits 0.
func bfOK(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	r := bfRun(t, dir, env, args...)
	if r.code != 0 {
		t.Fatalf("bottleform %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// dockerRun runs the docker CLI and returns its trimmed stdout.
func dockerRun(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e2eCommandTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(errb.Bytes()))
	}
	return strings.TrimSpace(out.String()), nil
}

// dockerCLI runs the docker CLI and fails the test if it fails. (It
// cannot be called docker: backends.go imports a package of that name.)
func dockerCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerRun(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// e2eState is what `bottleform show --json` prints of the state.
type e2eState struct {
	Version int    `json:"version"`
	Lineage string `json:"lineage"`
	Serial  uint64 `json:"serial"`
	Bottles map[string]struct {
		Backend   string `json:"backend"`
		Resources []struct {
			Address string            `json:"address"`
			IDs     map[string]string `json:"ids"`
		} `json:"resources"`
	} `json:"bottles"`
}

func parseState(out string) (*e2eState, error) {
	var s e2eState
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return nil, fmt.Errorf("show --json printed what is not a state: %v\n%s", err, out)
	}
	return &s, nil
}

// showState returns the state as `bottleform show --json` prints it.
func showState(t *testing.T, dir string) *e2eState {
	t.Helper()
	s, err := parseState(bfOK(t, dir, nil, "show", "--json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ids returns the backend ids the state records for addr.
func (s *e2eState) ids(addr string) map[string]string {
	for _, b := range s.Bottles {
		for _, r := range b.Resources {
			if r.Address == addr {
				return r.IDs
			}
		}
	}
	return nil
}

// lineageOf reads the lineage from dir's state file without the CLI, for
// cleanups; "" when there is no state yet.
func lineageOf(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, ".bottleform", "state.json"))
	if err != nil {
		return ""
	}
	var s struct {
		Lineage string `json:"lineage"`
	}
	if json.Unmarshal(data, &s) != nil {
		return ""
	}
	return s.Lineage
}

// objName is the Docker name of a component of bottle quickstart.
func objName(lineage, component string) string {
	return resource.ObjectName(lineage, "quickstart", component)
}

// lineageObjects lists the containers and networks labelled with lineage,
// as "container NAME COMPONENT" and "network NAME COMPONENT", sorted.
func lineageObjects(t *testing.T, lineage string) []string {
	t.Helper()
	objs, err := lineageObjectsErr(lineage)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func lineageObjectsErr(lineage string) ([]string, error) {
	if lineage == "" {
		return nil, errors.New("no lineage: the state was never saved")
	}
	filter := "label=" + resource.LabelLineage + "=" + lineage
	format := `{{.Names}} {{.Label "` + resource.LabelComponent + `"}}`
	cs, err := dockerRun("ps", "-a", "--filter", filter, "--format", format)
	if err != nil {
		return nil, err
	}
	format = `{{.Name}} {{.Label "` + resource.LabelComponent + `"}}`
	ns, err := dockerRun("network", "ls", "--filter", filter, "--format", format)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(cs, "\n") {
		if l != "" {
			out = append(out, "container "+l)
		}
	}
	for _, l := range strings.Split(ns, "\n") {
		if l != "" {
			out = append(out, "network "+l)
		}
	}
	sort.Strings(out)
	return out, nil
}

// fullBottle is what lineageObjects returns for a quickstart bottle that is
// up: exactly one of each object.
func fullBottle(lineage string) []string {
	return []string{
		"container " + objName(lineage, "agent") + " agent",
		"container " + objName(lineage, "sidecar") + " sidecar",
		"network " + objName(lineage, "egress") + " network-egress",
		"network " + objName(lineage, "internal") + " network-internal",
	}
}

// sweep force-removes whatever carries lineage's label and returns what it
// found.
func sweep(lineage string) []string {
	objs, _ := lineageObjectsErr(lineage)
	if len(objs) == 0 {
		return nil
	}
	filter := "label=" + resource.LabelLineage + "=" + lineage
	if ids, _ := dockerRun("ps", "-aq", "--filter", filter); ids != "" {
		_, _ = dockerRun(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	if ids, _ := dockerRun("network", "ls", "-q", "--filter", filter); ids != "" {
		_, _ = dockerRun(append([]string{"network", "rm"}, strings.Fields(ids)...)...)
	}
	return objs
}

// quickstart copies examples/quickstart (its *.hcl and other files, never a
// .bottleform state someone left there) into a fresh directory. Cleanup
// destroys what the directory's state holds, then sweeps anything left with
// its lineage, failing the test if a destroy that exited 0 left something.
func quickstart(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "examples", "quickstart")
	dir := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == ".bottleform" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupDir(t, dir) })
	return dir
}

func cleanupDir(t *testing.T, dir string) {
	t.Helper()
	lineage := lineageOf(dir)
	if lineage == "" {
		return // never saved: nothing was created
	}
	r := bfRun(t, dir, nil, "destroy", "--auto-approve", "--lock-timeout", "60s")
	if r.code != 0 {
		t.Errorf("cleanup: bottleform destroy: %s", r)
	}
	if left := sweep(lineage); len(left) > 0 && r.code == 0 {
		t.Errorf("cleanup: destroy exited 0 but left %v (removed them)", left)
	}
}

// editFile replaces old with new in dir/name, failing if old is absent.
func editFile(t *testing.T, dir, name, old, new string) {
	t.Helper()
	p := filepath.Join(dir, name)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s does not contain %q:\n%s", name, old, data)
	}
	if err := os.WriteFile(p, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantLines fails unless every line of want is a line of out.
func wantLines(t *testing.T, what, out string, want ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		have[strings.TrimRight(l, " ")] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("%s: no line %q in:\n%s", what, w, out)
		}
	}
}

// wantCode fails the test unless r exited with code.
func wantCode(t *testing.T, what string, r bfResult, code int) {
	t.Helper()
	if r.code != code || r.signal != 0 {
		t.Fatalf("%s: want exit %d, got %s", what, code, r)
	}
}
