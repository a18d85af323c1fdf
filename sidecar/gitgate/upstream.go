package gitgate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Upstream is the real remote behind a repository, reached over SSH.
type Upstream struct {
	// User, Host, Port and Path make up ssh://User@Host:Port/Path. Port 0
	// means 22. Host empty: the repository has no upstream and is served
	// from the gate's own copy only.
	User string
	Host string
	Port int
	Path string
	// HostKey is the upstream's pinned host key in authorized_keys form
	// ("TYPE BASE64 [comment]"). Without it the gate never contacts the
	// upstream: every request to the repository is refused (no trust on
	// first use).
	HostKey string
}

// DefaultFetchTimeout is Server.FetchTimeout's default.
const DefaultFetchTimeout = 2 * time.Minute

// URL is the upstream's ssh:// URL.
func (u Upstream) URL() string {
	host := u.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port
	if port == 0 {
		port = 22
	}
	return fmt.Sprintf("ssh://%s@%s:%d%s", u.User, host, port, u.Path)
}

func validWord(s, extra string) bool {
	if s == "" || strings.HasPrefix(s, "-") {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune(extra, c):
		default:
			return false
		}
	}
	return true
}

// validate checks the upstream's parts; they end up in a URL, in git's
// argv and in the SSH transport's argv, so only plain characters pass.
func (u Upstream) validate() error {
	if !validWord(u.User, "._-") {
		return fmt.Errorf("upstream user %q: want [A-Za-z0-9._-]+", u.User)
	}
	if !validWord(u.Host, ".-:") {
		return fmt.Errorf("upstream host %q: want a host name or IP address", u.Host)
	}
	if u.Port < 0 || u.Port > 65535 {
		return fmt.Errorf("upstream port %d out of range", u.Port)
	}
	if !strings.HasPrefix(u.Path, "/") || !validWord(strings.TrimPrefix(u.Path, "/"), "._-~/+@") || strings.Contains(u.Path, "..") {
		return fmt.Errorf("upstream path %q: want /[A-Za-z0-9._~/+@-]+ without ..", u.Path)
	}
	if u.HostKey != "" {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(u.HostKey)); err != nil {
			return fmt.Errorf("upstream host key does not parse: %v", err)
		}
	}
	return nil
}

func (r Repo) hasUpstream() bool { return r.Upstream.Host != "" }

// upstreamEnv is the environment git needs to reach r's upstream through
// the SSH transport, or an error saying why the gate refuses to contact it.
func (s *Server) upstreamEnv(r Repo) ([]string, error) {
	u := r.Upstream
	if strings.TrimSpace(u.HostKey) == "" {
		return nil, fmt.Errorf("no host key is pinned for the upstream %s, so the gate refuses to contact it (no trust on first use)", u.URL())
	}
	if r.KeyFile == "" {
		return nil, fmt.Errorf("no key file is set for the upstream %s", u.URL())
	}
	if len(s.SSHCommand) == 0 {
		return nil, fmt.Errorf("the gate has no SSH transport (Server.SSHCommand) to reach the upstream %s", u.URL())
	}
	words := make([]string, len(s.SSHCommand))
	for i, w := range s.SSHCommand {
		words[i] = shellQuote(w)
	}
	return []string{
		"GIT_SSH_COMMAND=" + strings.Join(words, " "),
		"GIT_SSH_VARIANT=ssh",
		"GIT_TERMINAL_PROMPT=0",
		HostKeyEnv + "=" + strings.TrimSpace(u.HostKey),
		KeyFileEnv + "=" + r.KeyFile,
	}, nil
}

// lockRepo takes r's upstream lock: at most one fetch, and no fetch during
// a push, per repository. It returns the unlock function, or an error if ctx
// ends first.
func (s *Server) lockRepo(ctx context.Context, name string) (func(), error) {
	v, _ := s.locks.LoadOrStore(name, make(chan struct{}, 1))
	sem := v.(chan struct{})
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Server) fetchTimeout() time.Duration {
	if s.FetchTimeout > 0 {
		return s.FetchTimeout
	}
	return DefaultFetchTimeout
}

// upstreamGit runs git in dir with the upstream environment and returns its
// stdout; on failure the error carries git's stderr (which holds the SSH
// transport's own errors).
func (s *Server) upstreamGit(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.git(), args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(env)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			msg = strings.TrimSpace(msg + "\ntimed out after " + s.fetchTimeout().String())
		}
		if msg == "" {
			msg = err.Error()
		}
		return "", errors.New(msg)
	}
	return stdout.String(), nil
}

// fetch brings the repository in dir up to date with its upstream: every
// ref is mirrored (`+refs/*:refs/*`, pruned), then HEAD is repaired if it
// does not resolve. The caller holds the repository's lock.
func (s *Server) fetch(rq *request, r Repo, dir string, env []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.fetchTimeout())
	defer cancel()
	start := time.Now()
	url := r.Upstream.URL()
	if _, err := s.upstreamGit(ctx, dir, env, "fetch", "--quiet", "--prune", "--no-write-fetch-head", url, "+refs/*:refs/*"); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			s.log().LogAttrs(context.Background(), slog.LevelWarn, "git upstream",
				slog.String("path", rq.path), slog.String("repo", r.Name), slog.String("op", "fetch"),
				slog.String("upstream", url), slog.String("line", line))
		}
		return err
	}
	s.log().LogAttrs(context.Background(), slog.LevelDebug, "git upstream",
		slog.String("path", rq.path), slog.String("repo", r.Name), slog.String("op", "fetch"),
		slog.String("upstream", url), slog.Int64("duration_ms", time.Since(start).Milliseconds()))
	s.repairHEAD(ctx, rq, r, dir, env)
	return nil
}

// repairHEAD points HEAD at the upstream's default branch when it does not
// resolve (a fresh repository's HEAD names main, which upstream may lack).
// Failures are logged, not fatal: the refs themselves are fresh.
func (s *Server) repairHEAD(ctx context.Context, rq *request, r Repo, dir string, env []string) {
	if _, err := s.upstreamGit(ctx, dir, env, "rev-parse", "--verify", "--quiet", "HEAD"); err == nil {
		return
	}
	warn := func(msg string) {
		s.log().LogAttrs(context.Background(), slog.LevelWarn, "git upstream",
			slog.String("path", rq.path), slog.String("repo", r.Name), slog.String("op", "repair HEAD"), slog.String("line", msg))
	}
	out, err := s.upstreamGit(ctx, dir, env, "ls-remote", "--symref", r.Upstream.URL(), "HEAD")
	if err != nil {
		warn(err.Error())
		return
	}
	for _, line := range strings.Split(out, "\n") {
		target, ok := strings.CutPrefix(line, "ref: ")
		if !ok {
			continue
		}
		target, _, _ = strings.Cut(target, "\t")
		if !strings.HasPrefix(target, "refs/heads/") {
			warn("upstream HEAD points outside refs/heads: " + strconv.Quote(target))
			return
		}
		if _, err := s.upstreamGit(ctx, dir, env, "symbolic-ref", "HEAD", target); err != nil {
			warn(err.Error())
		}
		return
	}
	warn("upstream has no symbolic HEAD (empty repository?)")
}
