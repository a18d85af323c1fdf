package gitgate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBody is Server.MaxBody's default: 1 GiB.
const DefaultMaxBody int64 = 1 << 30

// Repo is one repository the bottle may use.
type Repo struct {
	// Name is the repository's name: [A-Za-z0-9._-]+, not "." or "..". It
	// is served at /<Name>.git and stored in Root/<Name>.git.
	Name string
	// Push are the ref patterns the bottle may push to, git refspec globs
	// starting with "refs/" in which '*' matches any characters including
	// '/'. A leading '+' also grants non-fast-forward updates and
	// deletions. No pattern: the repository is read-only.
	Push []string
	// Upstream is the real remote. Set (Host non-empty), the gate fetches
	// from it before serving every read, and the pre-receive hook pushes
	// each accepted ref to it, so a push succeeds only once it is upstream.
	// Unset: the gate's own copy is all there is.
	Upstream Upstream
	// KeyFile is the path, inside the sidecar (on its tmpfs), of the
	// private key the SSH transport authenticates to Upstream with. The
	// gate passes the path to its SSH transport and never reads or logs
	// the key itself.
	KeyFile string
}

// Server is the git gate's HTTP handler. Set the fields, call SetRepos, then
// serve; the fields must not change after the first SetRepos.
type Server struct {
	// Root is the directory the bare repositories live in, as
	// Root/<name>.git.
	Root string
	// Log receives one line per request and the lines git and the hook
	// write to stderr. Nil: nothing is logged.
	Log *slog.Logger
	// MaxBody limits a POST body: a declared Content-Length above it is
	// refused with 413, and a chunked body is cut off after it. Zero or
	// negative: DefaultMaxBody.
	MaxBody int64
	// Hook is the pre-receive program, run as `Hook <repo> <policy-file>`
	// with git's pre-receive stdin. Empty: the built-in PolicyScript,
	// installed into each repository.
	Hook string
	// Git is the git binary. Empty: "git" from PATH.
	Git string
	// SSHCommand is the program, with its leading arguments, that git runs
	// as its ssh to reach an Upstream (GIT_SSH_COMMAND, with
	// GIT_SSH_VARIANT=ssh): a program that runs SSHMain, such as
	// {"/usr/local/bin/bottleform", "sidecar", "git-ssh"}. Empty: repositories
	// with an Upstream are refused.
	SSHCommand []string
	// FetchTimeout bounds each fetch from an upstream. Zero or negative:
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// ScanCommand is the program, with its leading arguments, that the
	// pre-receive hook runs to scan each push for secrets once the push
	// policy passed, before anything goes upstream: a program that runs
	// ScanMain, such as {"/usr/local/bin/bottleform", "sidecar",
	// "git-scan"}. Empty: SetRepos refuses every repository that takes
	// pushes, unless NoScan is set.
	ScanCommand []string
	// NoScan takes pushes without scanning them for secrets, and
	// ScanCommand is not used. Without it the gate fails closed: no
	// scanner, no pushes. A custom Hook needs it, because the scan lives
	// in the built-in policy script.
	NoScan bool

	repos    atomic.Pointer[map[string]Repo]
	canaries atomic.Pointer[string] // CanariesEnv's value
	mu       sync.Mutex             // serializes SetRepos
	locks    sync.Map               // repo name -> chan struct{} (capacity 1): the upstream lock
}

// ValidName reports whether name may name a repository.
func ValidName(name string) bool {
	if name == "" || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// validPattern checks a push pattern: an optional '+', then "refs/" and
// printable characters other than whitespace, quotes and the shell glob
// characters ? [ ] \, so that the hook's case statement sees only '*'.
func validPattern(p string) error {
	g := strings.TrimPrefix(p, "+")
	if !strings.HasPrefix(g, "refs/") || len(g) == len("refs/") {
		return fmt.Errorf("push pattern %q does not start with refs/", p)
	}
	for _, c := range g {
		if c <= ' ' || c == 0x7f || strings.ContainsRune(`?[]\'"`, c) {
			return fmt.Errorf("push pattern %q: character %q not allowed (only '*' is a wildcard)", p, c)
		}
	}
	return nil
}

func (s *Server) git() string {
	if s.Git != "" {
		return s.Git
	}
	return "git"
}

func (s *Server) maxBody() int64 {
	if s.MaxBody > 0 {
		return s.MaxBody
	}
	return DefaultMaxBody
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// SetCanaries sets the bottle's own secrets, name to value, that no push
// may add (see ScanMain; values shorter than MinCanaryLen are ignored). It
// copies m and takes effect from the next push; it may be called at any
// time. The values reach the scanner only through the environment of a
// push's git processes (CanariesEnv), never argv, disk or the log; Linux
// limits one environment entry to 128 KiB, which bounds their total size.
func (s *Server) SetCanaries(m map[string]string) {
	v := canariesJSON(m)
	s.canaries.Store(&v)
}

func (s *Server) scans() bool { return !s.NoScan && len(s.ScanCommand) > 0 }

// SetRepos declares the repositories served: it validates them, creates
// missing bare repositories with `git init --bare`, installs each one's
// policy and pre-receive hook, and then swaps the set atomically. On error
// nothing is swapped. Repositories no longer declared stay on disk but are
// not served.
func (s *Server) SetRepos(repos []Repo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Root == "" {
		return errors.New("gitgate: Root is not set")
	}
	root, err := filepath.Abs(s.Root)
	if err != nil {
		return fmt.Errorf("gitgate: %w", err)
	}
	hook := s.Hook
	if hook != "" {
		if hook, err = filepath.Abs(hook); err != nil {
			return fmt.Errorf("gitgate: %w", err)
		}
	}
	set := make(map[string]Repo, len(repos))
	for _, r := range repos {
		if !ValidName(r.Name) {
			return fmt.Errorf("gitgate: invalid repository name %q (want [A-Za-z0-9._-]+, not . or ..)", r.Name)
		}
		if _, dup := set[r.Name]; dup {
			return fmt.Errorf("gitgate: repository %q declared twice", r.Name)
		}
		for _, p := range r.Push {
			if err := validPattern(p); err != nil {
				return fmt.Errorf("gitgate: repository %q: %w", r.Name, err)
			}
		}
		if len(r.Push) > 0 && !s.NoScan {
			if len(s.ScanCommand) == 0 {
				return fmt.Errorf("gitgate: repository %q takes pushes, and the gate has no secret scanner (Server.ScanCommand); set one, or set Server.NoScan to take pushes unscanned", r.Name)
			}
			if hook != "" {
				return fmt.Errorf("gitgate: repository %q takes pushes, and the secret scan needs the built-in pre-receive hook (Server.Hook must be empty, or Server.NoScan set)", r.Name)
			}
		}
		if r.hasUpstream() {
			if err := r.Upstream.validate(); err != nil {
				return fmt.Errorf("gitgate: repository %q: %w", r.Name, err)
			}
			if hook != "" {
				// The push-through lives in the built-in policy script; a
				// custom hook would accept pushes that never reach upstream.
				return fmt.Errorf("gitgate: repository %q has an upstream, which needs the built-in pre-receive hook (Server.Hook must be empty)", r.Name)
			}
		}
		r.Push = append([]string(nil), r.Push...)
		set[r.Name] = r
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("gitgate: %w", err)
	}
	var scan string
	if s.scans() {
		scan = scanCommand(s.ScanCommand)
	}
	for _, r := range set {
		dir := filepath.Join(root, r.Name+".git")
		if _, err := os.Stat(filepath.Join(dir, "HEAD")); errors.Is(err, os.ErrNotExist) {
			cmd := exec.Command(s.git(), "-c", "init.defaultBranch=main", "init", "--bare", "--quiet", dir)
			cmd.Env = gitEnv(nil)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("gitgate: git init --bare %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
			}
		} else if err != nil {
			return fmt.Errorf("gitgate: %w", err)
		}
		if err := installPolicy(dir, hook, scan, r); err != nil {
			return err
		}
	}
	s.repos.Store(&set)
	return nil
}

// gitEnv is the process environment without any GIT_* variable (so the
// server's own environment cannot redirect git), plus extra.
func gitEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GIT_") || strings.HasPrefix(kv, "BOTTLEFORM_GATE_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// request is what one request did, for its log line.
type request struct {
	method, path, repo, service, protocol string
	chunked                               bool
	status                                int
	bytesIn                               atomic.Int64 // written by the stdin copier
	bytesOut                              int64
	exit                                  int
	err                                   string
}

// ServeHTTP serves git smart HTTP for the declared repositories:
//
//	GET  /<name>.git/info/refs?service=git-upload-pack|git-receive-pack
//	POST /<name>.git/git-upload-pack
//	POST /<name>.git/git-receive-pack
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rq := &request{method: r.Method, path: r.URL.Path, exit: -1}
	defer func() {
		lvl := slog.LevelInfo
		if rq.status >= 400 {
			lvl = slog.LevelWarn
		}
		attrs := []slog.Attr{
			slog.String("method", rq.method), slog.String("path", rq.path),
			slog.String("repo", rq.repo), slog.String("service", rq.service),
			slog.Int("status", rq.status),
			slog.Int64("bytes_in", rq.bytesIn.Load()), slog.Int64("bytes", rq.bytesOut),
			slog.Int64("duration_ms", time.Since(start).Milliseconds()),
		}
		if rq.protocol != "" {
			attrs = append(attrs, slog.String("protocol", rq.protocol))
		}
		if rq.chunked {
			attrs = append(attrs, slog.Bool("chunked", true))
		}
		if rq.exit >= 0 {
			attrs = append(attrs, slog.Int("exit", rq.exit))
		}
		if rq.err != "" {
			attrs = append(attrs, slog.String("error", rq.err))
		}
		s.log().LogAttrs(r.Context(), lvl, "git", attrs...)
	}()
	fail := func(code int, msg string) {
		rq.status = code
		rq.err = msg
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(code)
		n, _ := io.WriteString(w, msg+"\n")
		rq.bytesOut = int64(n)
	}

	// Route: /<name>.git/<rest>.
	p := strings.TrimPrefix(r.URL.Path, "/")
	seg, rest, _ := strings.Cut(p, "/")
	name, isGit := strings.CutSuffix(seg, ".git")
	repos := s.repos.Load()
	var repo Repo
	var ok bool
	if isGit && ValidName(name) && repos != nil {
		repo, ok = (*repos)[name]
	}
	if !ok {
		fail(http.StatusNotFound, s.notFound(repos, seg))
		return
	}
	rq.repo = repo.Name
	var method string
	switch rest {
	case "info/refs":
		method = http.MethodGet
		rq.service = r.URL.Query().Get("service")
		if rq.service != "git-upload-pack" && rq.service != "git-receive-pack" {
			fail(http.StatusForbidden, "bottleform git gate: only smart HTTP is served: ask for info/refs?service=git-upload-pack or git-receive-pack")
			return
		}
	case "git-upload-pack", "git-receive-pack":
		method = http.MethodPost
		rq.service = rest
	default:
		fail(http.StatusNotFound, fmt.Sprintf("bottleform git gate: %s: not a git smart-HTTP path (info/refs, git-upload-pack, git-receive-pack)", r.URL.Path))
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		fail(http.StatusMethodNotAllowed, fmt.Sprintf("bottleform git gate: %s wants %s", r.URL.Path, method))
		return
	}

	body := io.Reader(http.NoBody)
	var contentLength string
	if method == http.MethodPost {
		rq.chunked = len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked"
		if !rq.chunked {
			cl := r.Header.Values("Content-Length")
			if len(cl) != 1 || cl[0] == "" {
				fail(http.StatusBadRequest, "bottleform git gate: POST without Content-Length or chunked Transfer-Encoding")
				return
			}
			n, err := strconv.ParseInt(strings.TrimSpace(cl[0]), 10, 64)
			if err != nil || n < 0 {
				fail(http.StatusBadRequest, fmt.Sprintf("bottleform git gate: bad Content-Length %q", cl[0]))
				return
			}
			if n > s.maxBody() {
				fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("bottleform git gate: body of %d bytes is over the limit of %d", n, s.maxBody()))
				return
			}
			contentLength = strconv.FormatInt(n, 10)
		}
		body = &countReader{r: http.MaxBytesReader(w, r.Body, s.maxBody()), n: &rq.bytesIn}
	}
	var upstream []string
	if repo.hasUpstream() {
		env, err := s.upstreamEnv(repo)
		if err != nil {
			s.log().LogAttrs(r.Context(), slog.LevelWarn, "git upstream",
				slog.String("path", rq.path), slog.String("repo", repo.Name), slog.String("line", err.Error()))
			fail(http.StatusServiceUnavailable, "bottleform git gate: "+err.Error())
			return
		}
		unlock, err := s.lockRepo(r.Context(), repo.Name)
		if err != nil {
			fail(http.StatusServiceUnavailable, "bottleform git gate: "+err.Error())
			return
		}
		if rq.service == "git-receive-pack" && method == http.MethodPost {
			// The push: the hook pushes upstream. Holding the lock keeps
			// fetches from moving the refs under receive-pack.
			defer unlock()
			upstream = append(env, UpstreamEnv+"="+repo.Upstream.URL())
		} else {
			// A read (and the push's ref advertisement): fetch first, and
			// never serve what may be stale.
			root, _ := filepath.Abs(s.Root)
			err := s.fetch(rq, repo, filepath.Join(root, repo.Name+".git"), env)
			unlock()
			if err != nil {
				fail(http.StatusBadGateway, fmt.Sprintf("bottleform git gate: could not fetch from the upstream %s, so nothing is served (it may be stale): %s", repo.Upstream.URL(), oneLine(err.Error())))
				return
			}
		}
	}
	s.backend(w, r, rq, repo, body, contentLength, upstream)
}

// oneLine joins the lines of s with "; ".
func oneLine(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// notFound is the 404 body for an undeclared repository: it names the
// declared ones.
func (s *Server) notFound(repos *map[string]Repo, seg string) string {
	var names []string
	if repos != nil {
		for n := range *repos {
			names = append(names, "/"+n+".git")
		}
	}
	sort.Strings(names)
	list := "none"
	if len(names) > 0 {
		list = strings.Join(names, " ")
	}
	return fmt.Sprintf("bottleform git gate: no repository %q in this bottle; declared repositories: %s", "/"+seg, list)
}

// backend runs `git http-backend` for the request, streaming body to its
// stdin and its CGI response to w.
//
// For a repository with an upstream, ServeHTTP has already fetched (for a
// read) or passes upstream, the SSH transport's environment and UpstreamEnv,
// through to the pre-receive hook, which pushes each accepted ref upstream
// and refuses the push if that fails. A push's environment also carries the
// canaries (CanariesEnv) for the hook's secret scan, and nothing else does.
func (s *Server) backend(w http.ResponseWriter, r *http.Request, rq *request, repo Repo, body io.Reader, contentLength string, upstream []string) {
	root, _ := filepath.Abs(s.Root)
	env := []string{
		"GATEWAY_INTERFACE=CGI/1.1",
		"GIT_PROJECT_ROOT=" + root,
		"GIT_HTTP_EXPORT_ALL=1",
		"PATH_INFO=" + r.URL.Path, // routed above: /<name>.git/<service path>
		"QUERY_STRING=" + r.URL.RawQuery,
		"REQUEST_METHOD=" + r.Method,
		"REMOTE_USER=bottle",
		"REMOTE_ADDR=" + hostOf(r.RemoteAddr),
		"GIT_CONFIG_COUNT=1",
		"GIT_CONFIG_KEY_0=http.receivepack",
		"GIT_CONFIG_VALUE_0=true",
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && r.Method == http.MethodPost {
		env = append(env, "CONTENT_TYPE="+ct)
	}
	if contentLength != "" {
		env = append(env, "CONTENT_LENGTH="+contentLength)
	}
	if gp := r.Header.Get("Git-Protocol"); gp != "" && printable(gp) {
		rq.protocol = gp
		env = append(env, "GIT_PROTOCOL="+gp)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && r.Method == http.MethodPost {
		if ce != "gzip" && ce != "x-gzip" {
			fail415(w, rq, ce)
			return
		}
		env = append(env, "HTTP_CONTENT_ENCODING="+ce)
	}
	// The hook appends why it refused a push here (LogEnv); the lines are
	// logged when the request ends.
	var hookLog string
	if rq.service == "git-receive-pack" && r.Method == http.MethodPost {
		if f, err := os.CreateTemp("", "bottleform-gate-hook-*.log"); err == nil {
			hookLog = f.Name()
			f.Close()
			defer os.Remove(hookLog)
			env = append(env, LogEnv+"="+hookLog)
		}
		if s.scans() {
			c := "{}"
			if p := s.canaries.Load(); p != nil {
				c = *p
			}
			env = append(env, CanariesEnv+"="+c)
		}
		env = append(env, upstream...)
	}

	cmd := exec.CommandContext(r.Context(), s.git(), "http-backend")
	cmd.Env = gitEnv(env)
	cmd.Dir = root
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.internal(w, rq, err)
		return
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.internal(w, rq, err)
		return
	}
	var stdin io.WriteCloser
	if r.Method == http.MethodPost {
		if stdin, err = cmd.StdinPipe(); err != nil {
			s.internal(w, rq, err)
			return
		}
	}
	if err := cmd.Start(); err != nil {
		s.internal(w, rq, err)
		return
	}
	if stdin != nil {
		go func() {
			io.Copy(stdin, body)
			stdin.Close()
		}()
	}
	// stderr is logged line by line as it comes; errDone closes when it
	// is drained, so error statuses are written only after it was logged.
	errDone := make(chan struct{})
	go func() {
		defer close(errDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 4096), 64<<10)
		for sc.Scan() {
			s.log().LogAttrs(context.Background(), slog.LevelWarn, "git stderr",
				slog.String("path", rq.path), slog.String("repo", rq.repo), slog.String("line", sc.Text()))
		}
		io.Copy(io.Discard, stderr)
	}()
	finish := func() {
		<-errDone
		err := cmd.Wait()
		rq.exit = cmd.ProcessState.ExitCode()
		if err != nil && rq.err == "" {
			rq.err = err.Error()
		}
		s.logHookLines(rq, hookLog)
	}

	br := bufio.NewReaderSize(stdout, 32<<10)
	hdr, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil && !(errors.Is(err, io.EOF) && len(hdr) > 0) {
		io.Copy(io.Discard, br)
		finish()
		s.internal(w, rq, fmt.Errorf("git http-backend: bad CGI response: %v", err))
		return
	}
	code := http.StatusOK
	if st := hdr.Get("Status"); st != "" {
		f, _, _ := strings.Cut(strings.TrimSpace(st), " ")
		if code, err = strconv.Atoi(f); err != nil || code < 100 || code > 999 {
			io.Copy(io.Discard, br)
			finish()
			s.internal(w, rq, fmt.Errorf("git http-backend: bad Status %q", st))
			return
		}
	}
	hdr.Del("Status")
	for k, vs := range hdr {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	rq.status = code
	if code >= 400 {
		// Error: log what git said first (E10), then answer.
		rest, _ := io.ReadAll(io.LimitReader(br, 64<<10))
		io.Copy(io.Discard, br)
		finish()
		w.WriteHeader(code)
		n, _ := w.Write(rest)
		rq.bytesOut = int64(n)
		return
	}
	w.WriteHeader(code)
	n, _ := io.Copy(flushWriter{w, http.NewResponseController(w)}, br)
	rq.bytesOut = n
	io.Copy(io.Discard, br)
	finish()
}

func fail415(w http.ResponseWriter, rq *request, ce string) {
	rq.status = http.StatusUnsupportedMediaType
	rq.err = "unsupported Content-Encoding " + ce
	http.Error(w, "bottleform git gate: unsupported Content-Encoding "+strconv.Quote(ce)+" (gzip only)", rq.status)
}

func (s *Server) internal(w http.ResponseWriter, rq *request, err error) {
	rq.status = http.StatusInternalServerError
	rq.err = err.Error()
	http.Error(w, "bottleform git gate: "+err.Error(), rq.status)
}

// logHookLines logs each line the hook appended to the LogEnv file.
func (s *Server) logHookLines(rq *request, path string) {
	if path == "" {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return
	}
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		s.log().LogAttrs(context.Background(), slog.LevelWarn, "git hook",
			slog.String("path", rq.path), slog.String("repo", rq.repo), slog.String("line", line))
	}
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// flushWriter flushes after every write, so git's side-band progress and
// the pack reach the client as they are produced.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		_ = f.rc.Flush()
	}
	return n, err
}
