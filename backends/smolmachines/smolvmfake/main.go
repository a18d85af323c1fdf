package smolvmfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"
)

// Env names the fake reads.
const (
	EnvRoot    = "SMOLVM_FAKE_ROOT" // state root (§8.1)
	EnvDataDir = "SMOLVM_DATA_DIR"  // fallback: $SMOLVM_DATA_DIR/fake
	EnvExec    = "SMOLVM_FAKE_EXEC" // "host": host passthrough (§8.4); "docker": a container guest
)

// Invocation is one line of invocations.jsonl.
type Invocation struct {
	Argv       []string          `json:"argv"`
	Cwd        string            `json:"cwd"`
	Env        map[string]string `json:"env"`
	StdinBytes int               `json:"stdin_bytes"`
	Exit       int               `json:"exit"`
	Stdout     string            `json:"stdout"`
	Stderr     string            `json:"stderr"`
	Ts         string            `json:"ts"`
}

// smolvmError is an `Error: <msg>` failure, exit 1 (§2.1).
type smolvmError struct{ msg string }

func (e *smolvmError) Error() string { return e.msg }

func errorf(format string, a ...any) error { return &smolvmError{fmt.Sprintf(format, a...)} }

// exitCode ends a command with a code and no message (guest codes, faults).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

type session struct {
	root    string
	version string
	store   store
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	env     func(string) string
	faults  *Faults
	firing  *firing
	lock    *os.File
	dc      *client.Client // docker mode's engine client, made on first use
}

func (s *session) unlock() {
	if s.lock != nil {
		_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		s.lock.Close()
		s.lock = nil
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// Main runs one smolvm invocation; args excludes the program name. It
// returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	root := env(EnvRoot)
	if root == "" && env(EnvDataDir) != "" {
		root = filepath.Join(env(EnvDataDir), "fake")
	}
	var outBuf, errBuf bytes.Buffer
	cin := &countingReader{r: stdin}
	s := &session{
		root: root, version: readVersion(root), store: store{root},
		stdin: cin, stdout: io.MultiWriter(stdout, &outBuf), stderr: io.MultiWriter(stderr, &errBuf), env: env,
	}
	code := s.run(args)
	s.closeDocker()
	if root != "" {
		s.record(args, cin.n, code, outBuf.String(), errBuf.String())
	}
	return code
}

func (s *session) record(args []string, stdinBytes, code int, out, errs string) {
	cwd, _ := os.Getwd()
	envSubset := map[string]string{}
	for _, k := range []string{EnvRoot, EnvDataDir, EnvExec, "HOME", "RUST_LOG", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"} {
		if v := s.env(k); v != "" {
			envSubset[k] = v
		}
	}
	line, _ := json.Marshal(Invocation{
		Argv: append([]string{"smolvm"}, args...), Cwd: cwd, Env: envSubset, StdinBytes: stdinBytes,
		Exit: code, Stdout: out, Stderr: errs, Ts: time.Now().UTC().Format(time.RFC3339Nano),
	})
	f, err := os.OpenFile(filepath.Join(s.root, "invocations.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(line, '\n'))
}

// ReadInvocations returns the invocations recorded under root, oldest first.
func ReadInvocations(root string) ([]Invocation, error) {
	b, err := os.ReadFile(filepath.Join(root, "invocations.jsonl"))
	if err != nil {
		return nil, err
	}
	var out []Invocation
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var inv Invocation
		if err := json.Unmarshal(l, &inv); err != nil {
			return nil, err
		}
		out = append(out, inv)
	}
	return out, nil
}

const topUsage = "smolvm <COMMAND>"

func (s *session) run(args []string) int {
	err := s.dispatch(args)
	var ue *usageError
	var se *smolvmError
	var ec exitCode
	var hr *helpRequest
	switch {
	case err == nil:
		return 0
	case errors.As(err, &hr):
		fmt.Fprint(s.stdout, hr.spec.help())
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(s.stderr, "error: %s\n\nUsage: %s\n\nFor more information, try '--help'.\n", ue.msg, ue.usage)
		return 2
	case errors.As(err, &ec):
		return int(ec)
	case errors.As(err, &se):
		fmt.Fprintf(s.stderr, "Error: %s\n", se.msg)
		return 1
	default:
		fmt.Fprintf(s.stderr, "Error: io operation failed: %v\n", err)
		return 1
	}
}

func (s *session) dispatch(args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "'smolvm' requires a subcommand but one was not provided", usage: topUsage}
	}
	switch args[0] {
	case "-V", "--version":
		fmt.Fprintf(s.stdout, "smolvm %s\n", s.version)
		return nil
	case "-h", "--help":
		fmt.Fprint(s.stdout, "Usage: smolvm <COMMAND>\n\nCommands:\n  machine  (alias vm)\n  serve\n  pack\n  config\n")
		return nil
	case "machine", "vm":
	case "serve", "pack", "config":
		return errorf("fake smolvm: '%s' is not emulated", args[0])
	default:
		return &usageError{msg: fmt.Sprintf("unrecognized subcommand '%s'", args[0]), usage: topUsage}
	}
	if len(args) == 2 && (args[1] == "-h" || args[1] == "--help") {
		fmt.Fprint(s.stdout, "Usage: smolvm machine <COMMAND>\n")
		return nil
	}
	if len(args) < 2 {
		return &usageError{msg: "'smolvm machine' requires a subcommand but one was not provided", usage: "smolvm machine <COMMAND>"}
	}
	spec, ok := machineSpecs(s.version)[args[1]]
	if !ok {
		return &usageError{msg: fmt.Sprintf("unrecognized subcommand '%s'", args[1]), usage: "smolvm machine <COMMAND>"}
	}
	p, err := parseArgs(spec, args[2:])
	if err != nil {
		return err
	}
	if spec.notEmulated {
		return errorf("fake smolvm: 'machine %s' is not emulated", spec.name)
	}
	if s.root == "" {
		return errorf("fake smolvm: no state root; set %s (or %s)", EnvRoot, EnvDataDir)
	}
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return err
	}
	s.faults, err = loadFaults(s.root)
	if err != nil {
		return errorf("fake smolvm: %v", err)
	}
	lock, err := os.OpenFile(filepath.Join(s.root, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	// The lock serializes state mutation like SQLite's busy timeout; exec
	// releases it while the guest command runs.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return err
	}
	s.lock = lock
	defer s.unlock()
	s.firing = loadFiring(s.root)

	machine := p.get("name")
	if r := s.take(spec.name, machine, func(r Rule) bool { return r.DelayMs > 0 || r.Fail != nil }); r != nil {
		time.Sleep(time.Duration(r.DelayMs) * time.Millisecond)
		if r.Fail != nil {
			fmt.Fprint(s.stderr, r.Fail.Stderr)
			if r.Fail.Stderr != "" && !strings.HasSuffix(r.Fail.Stderr, "\n") {
				fmt.Fprintln(s.stderr)
			}
			return exitCode(r.Fail.Exit)
		}
	}
	return s.command(spec.name, p, args)
}
