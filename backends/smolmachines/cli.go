package smolmachines

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/bottleform/bottleform/internal/hostenv"
)

// The smolvm versions this backend drives: the contract it follows
// (reference/smolvm-cli.md) is 1.9.2's, and the flags it uses have not
// changed up to 1.14, which added `exec --user`. A later minor version may
// change the CLI (it has, most weeks), so it is refused until checked.
var (
	minVersion  = version{1, 9, 2}
	maxVersion  = version{1, 15, 0} // exclusive
	userVersion = version{1, 14, 0} // exec --user
)

// CLI runs the smolvm command-line tool.
type CLI struct {
	// Path is the smolvm binary; empty is "smolvm" on PATH.
	Path string
	// Env is the environment of every smolvm process. Nil is bottleform's
	// reduced to what smolvm reads (HostEnv): not the values of the env
	// secrets bottleform was given.
	Env []string
}

// HostEnv is what a smolvm process gets of bottleform's environment: the
// basics, smolvm's own SMOLVM_* settings, RUST_LOG and the XDG
// directories (its state lives under them).
func HostEnv() []string { return hostenv.Env([]string{"RUST_LOG"}, "SMOLVM_", "XDG_") }

func (c *CLI) env() []string {
	if c.Env == nil {
		return HostEnv()
	}
	return c.Env
}

// Error is smolvm failing (exit 1 with `Error: …`, or 2 on a usage error),
// as opposed to a command in the guest exiting non-zero.
type Error struct {
	// Args are smolvm's arguments: never a secret (none is ever passed
	// as one).
	Args []string
	Exit int
	// Msg is smolvm's message, without the `Error: ` prefix.
	Msg string
}

func (e *Error) Error() string {
	return fmt.Sprintf("smolvm %s: %s (exit %d)", strings.Join(shortArgs(e.Args), " "), e.Msg, e.Exit)
}

// Sentinels an *Error matches with errors.Is.
var (
	// ErrNotFound: the machine does not exist (`vm not found: N`,
	// `machine 'N' not found`).
	ErrNotFound = errors.New("machine not found")
	// ErrNotRunning: the machine exists but is not running, so it cannot
	// run a command or take a file.
	ErrNotRunning = errors.New("machine not running")
	// ErrUsage: smolvm rejected its arguments (exit 2): a flag this
	// version does not have, or a bad value.
	ErrUsage = errors.New("smolvm usage error")
)

func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Exit == 1 && strings.Contains(e.Msg, "not found") && !strings.Contains(e.Msg, "mount source not found")
	case ErrNotRunning:
		return e.Exit == 1 && strings.Contains(e.Msg, "is not running")
	case ErrUsage:
		return e.Exit == 2
	}
	return false
}

// shortArgs cuts the workload or guest command off args for messages.
func shortArgs(args []string) []string {
	for i, a := range args {
		if a == "--" {
			return append(args[:i:i], "--", "…")
		}
	}
	return args
}

// result is one smolvm run.
type result struct {
	stdout, stderr []byte
	exit           int
}

// run runs smolvm with args and stdin. A smolvm failure is an *Error,
// unless guest is set (exec): then a non-zero exit is the guest's, except
// for one that smolvm's own `Error:` line explains.
func (c *CLI) run(ctx context.Context, args []string, stdin io.Reader, guest bool) (result, error) {
	path := c.Path
	if path == "" {
		path = "smolvm"
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = c.env()
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.Bytes(), stderr: errb.Bytes()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("smolvm %s: %w", strings.Join(shortArgs(args), " "), ctx.Err())
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
	case errors.Is(err, exec.ErrNotFound):
		return res, fmt.Errorf("smolvm is not installed (no %q on PATH): install smolvm %s (https://github.com/smol-machines/smolvm), or use backend = \"docker\"", path, minVersion)
	case err != nil:
		return res, fmt.Errorf("smolvm %s: %w", strings.Join(shortArgs(args), " "), err)
	}
	if res.exit == 0 {
		return res, nil
	}
	msg, own := smolvmMessage(res.stderr)
	switch {
	case res.exit == 2 && (!guest || clapUsage(res.stderr)):
		return res, &Error{Args: args, Exit: 2, Msg: usageMessage(res.stderr)}
	case guest && !(res.exit == 1 && own):
		return res, nil
	}
	if msg == "" {
		msg = strings.TrimSpace(string(res.stderr))
	}
	return res, &Error{Args: args, Exit: res.exit, Msg: msg}
}

// smolvmErrors are the Display templates of smolvm's errors (contract §2.1),
// which its `Error: ` line starts with.
var smolvmErrors = []string{
	"vm not found:", "invalid vm state:", "config operation failed:", "agent operation failed:",
	"mount operation failed:", "mount source not found:", "invalid mount path:",
	"storage operation failed", "database operation failed", "database not available",
	"kvm not available", "kvm permission denied", "hypervisor not available", "io operation failed",
}

// smolvmMessage returns smolvm's own error line from stderr (the last line
// that starts `Error: `), and whether it is one of smolvm's errors rather
// than a guest's output that happens to look like one.
func smolvmMessage(stderr []byte) (string, bool) {
	lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if msg, ok := strings.CutPrefix(l, "Error: "); ok {
			for _, p := range smolvmErrors {
				if strings.HasPrefix(msg, p) {
					return msg, true
				}
			}
			return msg, false
		}
	}
	return "", false
}

// clapUsage reports whether stderr is a clap usage error: `error: …` first,
// then a `Usage:` line.
func clapUsage(stderr []byte) bool {
	s := string(stderr)
	return strings.HasPrefix(s, "error: ") && strings.Contains(s, "\nUsage:")
}

// usageMessage is clap's `error: …` line.
func usageMessage(stderr []byte) string {
	for _, l := range strings.Split(string(stderr), "\n") {
		if msg, ok := strings.CutPrefix(strings.TrimSpace(l), "error: "); ok {
			return msg
		}
	}
	return strings.TrimSpace(string(stderr))
}

// version is a smolvm release.
type version [3]int

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

func (v version) less(o version) bool {
	for i := range v {
		if v[i] != o[i] {
			return v[i] < o[i]
		}
	}
	return false
}

// parseVersion reads `smolvm 1.9.2` (a pre-release or build suffix is
// ignored).
func parseVersion(out string) (version, error) {
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "smolvm" {
		return version{}, fmt.Errorf("unexpected `smolvm --version` output %q", strings.TrimSpace(out))
	}
	s := f[1]
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	if len(parts) != 3 {
		return version{}, fmt.Errorf("unexpected smolvm version %q", f[1])
	}
	var v version
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return version{}, fmt.Errorf("unexpected smolvm version %q", f[1])
		}
		v[i] = n
	}
	return v, nil
}

// Version runs `smolvm --version` and checks it against the supported
// range; then `machine ls --json`, which proves smolvm's database opens.
func (c *CLI) Version(ctx context.Context) (version, error) {
	res, err := c.run(ctx, []string{"--version"}, nil, false)
	if err != nil {
		return version{}, err
	}
	v, err := parseVersion(string(res.stdout))
	if err != nil {
		return version{}, err
	}
	if v.less(minVersion) || !v.less(maxVersion) {
		return v, fmt.Errorf("smolvm %s is not supported: bottleform drives smolvm %s up to (not including) %s, whose CLI it was checked against; install a version in that range", v, minVersion, maxVersion)
	}
	if _, err := c.list(ctx); err != nil {
		return v, err
	}
	return v, nil
}

// Machine is one machine as `status --json` and `ls --json` describe it
// (contract §2.3). Unknown fields are ignored; smolvm adds them often.
type Machine struct {
	Name      string            `json:"name"`
	State     string            `json:"state"`
	CPUs      int               `json:"cpus"`
	MemoryMiB int               `json:"memory_mib"`
	PID       *int              `json:"pid"`
	Network   bool              `json:"network"`
	Image     *string           `json:"image"`
	Ephemeral bool              `json:"ephemeral"`
	Labels    map[string]string `json:"labels"`
}

// Machine states (contract §2.3).
const (
	StateCreated     = "created"
	StateRunning     = "running"
	StateStopped     = "stopped"
	StateFailed      = "failed"
	StateUnreachable = "unreachable"
	StateFrozen      = "frozen"
)

// list is `machine ls --json`.
func (c *CLI) list(ctx context.Context) ([]Machine, error) {
	res, err := c.run(ctx, []string{"machine", "ls", "--json"}, nil, false)
	if err != nil {
		return nil, err
	}
	var ms []Machine
	if err := json.Unmarshal(res.stdout, &ms); err != nil {
		return nil, fmt.Errorf("smolvm machine ls --json: %w", err)
	}
	return ms, nil
}

// status is `machine status --name N --json`; a missing machine is an
// error that matches ErrNotFound.
func (c *CLI) status(ctx context.Context, name string) (*Machine, error) {
	res, err := c.run(ctx, []string{"machine", "status", "--name", name, "--json"}, nil, false)
	if err != nil {
		return nil, err
	}
	var m Machine
	if err := json.Unmarshal(res.stdout, &m); err != nil {
		return nil, fmt.Errorf("smolvm machine status --name %s --json: %w", name, err)
	}
	return &m, nil
}
