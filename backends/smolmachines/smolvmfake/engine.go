package smolvmfake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execReq is one guest command (§8.4).
type execReq struct {
	argv        []string
	workdir     string
	env         []string // exec -e
	secretEnv   []string
	secretFile  []string
	timeout     time.Duration
	interactive bool
	stream      bool
	detach      bool
	user        string // exec --user (1.14.0+); "" is the image's USER
}

type execResult struct {
	stdout, stderr string
	exit           int
}

// resolveSecrets turns GUEST=HOSTVAR / GUEST=/path refs into K=V from the
// fake's own environment and files.
func (s *session) resolveSecrets(envRefs, fileRefs []string) ([]string, error) {
	var out []string
	for _, ref := range envRefs {
		g, h, _ := strings.Cut(ref, "=")
		v := s.env(h)
		if v == "" {
			return nil, errorf("config operation failed: secret-env: host environment variable '%s' is not set (for %s)", h, g)
		}
		out = append(out, g+"="+v)
	}
	for _, ref := range fileRefs {
		g, p, _ := strings.Cut(ref, "=")
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, errorf("config operation failed: secret-file: read %s (for %s): %v", p, g, errors.Unwrap(err))
		}
		out = append(out, g+"="+strings.TrimRight(string(b), "\n"))
	}
	return out, nil
}

// runGuest runs argv as the guest would: env and workdir resolved per §5,
// then responder mode or host passthrough. Output goes to the session's
// stdout/stderr, after exit unless req.stream.
func (s *session) runGuest(r *Record, req execReq) (execResult, error) {
	var img ImageConf
	if r.Image != nil {
		img = s.faults.Images[*r.Image]
	}
	env := []string{defaultPath}
	if len(img.Env) > 0 {
		env = mergeEnv(nil, img.Env)
	}
	env = mergeEnv(env, r.Fake.Env)
	sec, err := s.resolveSecrets(r.Fake.SecretEnv, r.Fake.SecretFile)
	if err != nil {
		return execResult{}, err
	}
	env = mergeEnv(env, sec)
	sec, err = s.resolveSecrets(req.secretEnv, req.secretFile)
	if err != nil {
		return execResult{}, err
	}
	env = mergeEnv(env, sec)
	for _, e := range req.env {
		k, v, ok := strings.Cut(e, "=")
		if k == "" {
			continue
		}
		if !ok {
			if v = s.env(k); v == "" {
				continue
			}
		}
		env = mergeEnv(env, []string{k + "=" + v})
	}
	workdir := "/"
	switch {
	case req.workdir != "":
		workdir = req.workdir
	case r.Fake.Workdir != "":
		workdir = r.Fake.Workdir
	case img.Workdir != "":
		workdir = img.Workdir
	}
	ctx := context.Background()
	if req.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.timeout)
		defer cancel()
	}
	switch s.env(EnvExec) {
	case "host":
		return s.hostExec(ctx, r, req, env, workdir)
	case ExecDocker:
		return s.dockerExec(ctx, r, req, env, workdir)
	}
	if req.detach {
		fmt.Fprintf(s.stdout, "%d\n", s.store.nextPID())
		return execResult{}, nil
	}
	res := s.respond(ctx, r, req.argv, env, workdir)
	fmt.Fprint(s.stdout, res.stdout)
	fmt.Fprint(s.stderr, res.stderr)
	return res, nil
}

// sleepCtx sleeps d, or returns false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var timedOut = execResult{exit: 124}

// respond is responder mode: the first matching faults.json responder, else
// the built-ins of §8.4.
func (s *session) respond(ctx context.Context, r *Record, argv, env []string, workdir string) execResult {
	if res, ok := s.responder(ctx, r, argv, env, workdir); ok {
		return res
	}
	return s.builtin(ctx, r, argv, env, workdir)
}

// responder answers from the first matching faults.json responder.
func (s *session) responder(ctx context.Context, r *Record, argv, env []string, workdir string) (execResult, bool) {
	for _, rs := range s.faults.Responders {
		if rs.Machine != "" && rs.Machine != r.Name {
			continue
		}
		if len(rs.ArgvPrefix) > len(argv) || !equal(rs.ArgvPrefix, argv[:len(rs.ArgvPrefix)]) {
			continue
		}
		if rs.Workdir != "" && rs.Workdir != workdir {
			continue
		}
		if !hasAll(env, rs.Env) {
			continue
		}
		if rs.DelayMs > 0 && !sleepCtx(ctx, time.Duration(rs.DelayMs)*time.Millisecond) {
			return timedOut, true
		}
		return execResult{stdout: rs.Stdout, stderr: rs.Stderr, exit: rs.Exit}, true
	}
	return execResult{}, false
}

// builtin is the built-in guest commands of §8.4.
func (s *session) builtin(ctx context.Context, r *Record, argv, env []string, workdir string) execResult {
	notFound := execResult{stderr: fmt.Sprintf("sh: %s: not found\n", argv[0]), exit: 127}
	switch filepath.Base(argv[0]) {
	case "true":
		return execResult{}
	case "false":
		return execResult{exit: 1}
	case "echo":
		return execResult{stdout: strings.Join(argv[1:], " ") + "\n"}
	case "pwd":
		return execResult{stdout: workdir + "\n"}
	case "env":
		sorted := append([]string{}, env...)
		sort.Strings(sorted)
		return execResult{stdout: strings.Join(sorted, "\n") + "\n"}
	case "id":
		if len(argv) == 2 && (argv[1] == "-u" || argv[1] == "-g") {
			return execResult{stdout: "0\n"}
		}
	case "cat":
		var out bytes.Buffer
		for _, p := range argv[1:] {
			gp := p
			if !strings.HasPrefix(gp, "/") {
				gp = filepath.Join(workdir, gp)
			}
			b, err := os.ReadFile(s.guestPath(r.Name, gp))
			if err != nil {
				return execResult{stdout: out.String(), stderr: fmt.Sprintf("cat: can't open '%s': No such file or directory\n", p), exit: 1}
			}
			out.Write(b)
		}
		return execResult{stdout: out.String()}
	case "sleep":
		if len(argv) == 2 {
			f, err := strconv.ParseFloat(argv[1], 64)
			if err == nil {
				if !sleepCtx(ctx, time.Duration(f*float64(time.Second))) {
					return timedOut
				}
				return execResult{}
			}
		}
	case "sh":
		if len(argv) == 3 && argv[1] == "-c" {
			f := strings.Fields(argv[2])
			if len(f) == 2 && f[0] == "exit" {
				if n, err := strconv.Atoi(f[1]); err == nil {
					return execResult{exit: n & 0xff}
				}
			}
			if len(f) > 0 {
				return s.respond(ctx, r, f, env, workdir)
			}
		}
	}
	return notFound
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func hasAll(env, want []string) bool {
	for _, w := range want {
		found := false
		for _, e := range env {
			if e == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// hostExec is host passthrough (SMOLVM_FAKE_EXEC=host): argv runs on the
// host in rootfs+workdir with the merged env and SMOLVM_FAKE_ROOTFS.
func (s *session) hostExec(ctx context.Context, r *Record, req execReq, env []string, workdir string) (execResult, error) {
	rootfs := s.store.rootfs(r.Name)
	dir := s.guestPath(r.Name, workdir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return execResult{}, err
	}
	env = mergeEnv(env, []string{"SMOLVM_FAKE_ROOTFS=" + rootfs})
	// Guest PATH names guest directories; keep the host's so real tools run.
	if hp := s.env("PATH"); hp != "" {
		env = mergeEnv(env, []string{"PATH=" + hp})
	}
	if req.detach {
		cmd := exec.Command(req.argv[0], req.argv[1:]...)
		cmd.Dir, cmd.Env = dir, env
		if err := cmd.Start(); err != nil {
			return execResult{}, errorf("agent operation failed: exec: %v", err)
		}
		fmt.Fprintf(s.stdout, "%d\n", cmd.Process.Pid)
		_ = cmd.Process.Release()
		return execResult{}, nil
	}
	cmd := exec.CommandContext(ctx, req.argv[0], req.argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.WaitDelay = time.Second
	if req.interactive {
		cmd.Stdin = s.stdin
	}
	var outBuf, errBuf bytes.Buffer
	if req.stream {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(s.stdout, &outBuf), io.MultiWriter(s.stderr, &errBuf)
	} else {
		cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	}
	err := cmd.Run()
	res := execResult{stdout: outBuf.String(), stderr: errBuf.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		res.exit = 124
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.exit = 128 + int(ws.Signal())
		}
	case errors.Is(err, exec.ErrNotFound) || os.IsNotExist(err):
		res.stderr, res.exit = fmt.Sprintf("sh: %s: not found\n", req.argv[0]), 127
		if !req.stream {
			break
		}
		fmt.Fprint(s.stderr, res.stderr)
		return res, nil
	case err != nil:
		return res, errorf("agent operation failed: exec: %v", err)
	}
	if !req.stream {
		fmt.Fprint(s.stdout, res.stdout)
		fmt.Fprint(s.stderr, res.stderr)
	}
	return res, nil
}
