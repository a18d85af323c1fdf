package smolmachines

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/bottleform/bottleform/backends/docker"
	"github.com/bottleform/bottleform/resource"
)

// vm is one agent machine: docker.Guest over the smolvm CLI, so the
// Docker backend's provisioning runs unchanged in it.
type vm struct {
	b    *Backend
	name string
}

var _ docker.Guest = vm{}

// Exec is `machine exec --name N [-i] [--user U] -- argv` (never `-n`:
// exec has no short form). stdin goes over the exec's stdin (-i), never
// argv. user "" is the image's USER; any other needs smolvm's --user
// (1.14), except root when the image's USER is root already.
func (g vm) Exec(ctx context.Context, argv []string, user string, stdin io.Reader) ([]byte, []byte, int, error) {
	args := []string{"machine", "exec", "--name", g.name}
	if stdin != nil {
		args = append(args, "-i")
	}
	if user != "" {
		switch {
		case g.b.hasUser:
			args = append(args, "--user", user)
		case user == "0" || user == "root":
			if root, err := g.rootByDefault(ctx); err != nil {
				return nil, nil, -1, err
			} else if !root {
				return nil, nil, -1, fmt.Errorf("%s must run a command as root, but smolvm %s has no `exec --user` (added in %s) and the image's user is not root: upgrade smolvm, or use an image whose USER is root", g.name, g.b.version, userVersion)
			}
		default:
			return nil, nil, -1, fmt.Errorf("smolvm %s cannot run a command in %s as user %s: `exec --user` arrived in %s", g.b.version, g.name, user, userVersion)
		}
	}
	args = append(args, "--")
	args = append(args, argv...)
	res, err := g.b.cli.run(ctx, args, stdin, true)
	if err != nil {
		return nil, nil, -1, err
	}
	return res.stdout, res.stderr, res.exit, nil
}

// rootByDefault reports whether commands run as root without --user.
func (g vm) rootByDefault(ctx context.Context) (bool, error) {
	out, _, code, err := g.Exec(ctx, []string{"id", "-u"}, "", nil)
	if err != nil {
		return false, err
	}
	return code == 0 && strings.TrimSpace(string(out)) == "0", nil
}

// CopyIn extracts the archive into dir with the guest's tar, as root so
// the owners in its headers hold, reading it from the exec's stdin: one
// call for a whole tree, and nothing is staged on the host's disk (what
// is copied may hold a file read back from the agent's home). `machine
// cp`, one file a call from a host path, is not used for this.
func (g vm) CopyIn(ctx context.Context, dir string, archive io.Reader) error {
	_, stderr, code, err := g.Exec(ctx, []string{"tar", "-x", "-p", "-f", "-", "-C", dir}, "0", archive)
	switch {
	case err != nil:
		return fmt.Errorf("copy into %s:%s: %w", g.name, dir, err)
	case code == 126 || code == 127:
		return fmt.Errorf("copy into %s:%s: the agent's image has no tar, which bottleform needs to write files into a VM", g.name, dir)
	case code != 0:
		return fmt.Errorf("copy into %s:%s: tar exited %d: %s", g.name, dir, code, strings.TrimSpace(string(stderr)))
	}
	return nil
}

// Running reports whether the machine exists and runs.
func (g vm) Running(ctx context.Context) (bool, error) {
	m, err := g.b.cli.status(ctx, g.name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m.State == StateRunning, nil
}

// Workdir is where exec starts without -w: the image's WORKDIR.
func (g vm) Workdir(ctx context.Context) (string, error) {
	out, stderr, code, err := g.Exec(ctx, []string{"pwd"}, "", nil)
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", fmt.Errorf("`pwd` exited %d in %s: %s", code, g.name, strings.TrimSpace(string(stderr)))
	}
	return strings.TrimSpace(string(out)), nil
}

// waitReady waits until the machine runs commands: `start` returns once
// smolvm's agent answers, but an exec right after can still find the
// machine not running (contract §6, readiness). It polls `exec -- true`
// with exponential backoff (from 20 ms, doubling, at most 1 s apart) until
// b.readyTimeout, and fails naming it; an error other than "not running"
// ends it at once.
func (g vm) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.b.readyTimeout)
	defer cancel()
	delay := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		// Any exit of the guest's command (even 127, an image without
		// `true`) means the exec channel works.
		_, _, _, err := g.Exec(ctx, []string{"true"}, "", nil)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, ErrNotRunning) && !isConnect(err):
			if ctx.Err() != nil {
				return g.notReady(attempt, err)
			}
			return err
		}
		if serr := g.b.sleep(ctx, delay); serr != nil {
			return g.notReady(attempt, err)
		}
		delay = min(2*delay, time.Second)
	}
}

func (g vm) notReady(attempts int, last error) error {
	return &NotReadyError{Machine: g.name, Timeout: g.b.readyTimeout, Attempts: attempts, Last: last}
}

// NotReadyError is a machine that started but did not run a command in
// time.
type NotReadyError struct {
	Machine  string
	Timeout  time.Duration
	Attempts int
	Last     error
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("machine %s did not become ready to run commands within %s (%d attempts; last: %v): see `smolvm machine status --name %s`", e.Machine, e.Timeout, e.Attempts, e.Last, e.Machine)
}

func (e *NotReadyError) Unwrap() error { return e.Last }

// isConnect reports smolvm failing to reach the machine's agent.
func isConnect(err error) bool {
	var se *Error
	return errors.As(err, &se) && strings.HasPrefix(se.Msg, "agent operation failed: connect")
}

// writeSecretEnv writes the values of the references the bottle grants
// to the agent's env into ~/.bottleform/secret-env (0600, the agent
// user's), which the provider env file and attach read, or removes it
// when there are none. The values go over the exec's stdin: smolvm's
// `-e K=V` would put them on argv and in its machine record.
func (g vm) writeSecretEnv(ctx context.Context, lines []byte) error {
	const script = `umask 077
set -e
mkdir -p "$HOME/.bottleform"
f="$HOME/.bottleform/secret-env"
cat > "$f.new"
if [ -s "$f.new" ]; then mv "$f.new" "$f"; else rm -f "$f.new" "$f"; fi`
	_, stderr, code, err := g.Exec(ctx, []string{"/bin/sh", "-c", script}, "", bytes.NewReader(lines))
	clear(lines)
	if err != nil {
		return fmt.Errorf("write the agent's secret env in %s: %w", g.name, err)
	}
	if code != 0 {
		return fmt.Errorf("write the agent's secret env in %s (exit %d): %s", g.name, code, strings.TrimSpace(string(stderr)))
	}
	return nil
}

// attachScript reads the agent's secret env, as the Docker agent has it in
// its environment, then runs the command.
const attachScript = `if [ -r "$HOME/` + docker.SecretEnvPath + `" ]; then . "$HOME/` + docker.SecretEnvPath + `"; fi; exec "$@"`

// Attach runs argv in the agent VM of bottle as the agent user, wired to
// in, out and errw (`exec -i`, and `-t` with tty), with the secret env the
// apply granted it, and returns its exit code. This is `bottleform attach`.
func (b *Backend) Attach(ctx context.Context, lineage, bottle string, argv []string, tty bool, in io.Reader, out, errw io.Writer) (int, error) {
	if err := b.preflight(ctx); err != nil {
		return -1, err
	}
	name := resource.ObjectName(lineage, bottle, "agent")
	m, err := b.ours(ctx, lineage, name)
	switch {
	case err != nil:
		return -1, fmt.Errorf("attach bottle.%s: %w", bottle, err)
	case m == nil:
		return -1, fmt.Errorf("attach bottle.%s: it has no agent machine (%s): run `bottleform apply`", bottle, name)
	case m.State != StateRunning:
		return -1, fmt.Errorf("attach bottle.%s: its agent machine %s is %s: run `bottleform apply` to start it", bottle, name, m.State)
	}
	args := []string{"machine", "exec", "--name", name, "--stream"}
	if in != nil {
		args = append(args, "-i")
	}
	if tty {
		args = append(args, "-t")
	}
	args = append(append(args, "--", "/bin/sh", "-c", attachScript, "sh"), argv...)
	path := b.cli.Path
	if path == "" {
		path = "smolvm"
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = b.cli.env(), in, out, errw
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), nil
	case err != nil:
		return -1, fmt.Errorf("attach bottle.%s: %w", bottle, err)
	}
	return 0, nil
}
