package sidecar

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/sidecar/egress"
	"github.com/bottleform/bottleform/sidecar/gitgate"
	"github.com/bottleform/bottleform/sidecar/supervise"
)

// DefaultEgressAddr is where the egress gateway listens; the agent's proxy
// variables point at http://egress:9099.
const DefaultEgressAddr = ":9099"

// DefaultGitAddr is where the git gate listens: the agent's git rewrites
// each upstream URL to http://git-gate/<name>.git.
const DefaultGitAddr = ":80"

// DefaultSuperviseAddr is where the supervise MCP server listens: the
// agent has it registered as http://supervise:9100/mcp.
const DefaultSuperviseAddr = ":9100"

// DefaultGitRoot holds the gate's bare repositories: a tmpfs the backend
// mounts with exec, since the pre-receive hooks run from it.
const DefaultGitRoot = "/var/lib/bottleform/git"

// DefaultKeyDir holds the upstream keys, one file per repository, on the
// control socket's tmpfs: never on a disk.
const DefaultKeyDir = "/run/bottleform/keys"

// Options configure Run. Zero values take the defaults.
type Options struct {
	// ControlSocket is the control socket's path (DefaultControlSocket).
	// Its directory is created with mode 0700 if missing.
	ControlSocket string
	// EgressAddr is the egress listener's address (DefaultEgressAddr).
	EgressAddr string
	// GitAddr is the git gate's address (DefaultGitAddr).
	GitAddr string
	// SuperviseAddr is the supervise MCP server's address
	// (DefaultSuperviseAddr). It always listens; it serves the MCP
	// endpoint only while the configuration has supervise on.
	SuperviseAddr string
	// GitRoot is the directory of the gate's bare repositories
	// (DefaultGitRoot); KeyDir that of the upstream keys (DefaultKeyDir).
	GitRoot, KeyDir string
	// Self is the bottleform binary the gate runs as its SSH transport and
	// secret scanner (`Self sidecar git-ssh`, `Self sidecar git-scan`).
	// Empty: this process's executable.
	Self string
	// Git is the git binary (empty: git from PATH).
	Git string
	// Log receives one JSON line per event (os.Stderr). No slot value is
	// ever written to it.
	Log io.Writer
	// Ready, if set, is called once every listener is up with their
	// addresses (tests listen on port 0 and learn them here).
	Ready func(Addrs)
}

// Addrs are the addresses the sidecar's listeners are bound to.
type Addrs struct {
	Egress, Git, Supervise net.Addr
}

// loaded is one configuration in force with its slot values. It is
// replaced whole by a load and never changed in place.
type loaded struct {
	config Config
	digest string
	slots  map[string]resource.Secret
}

// missing returns the required slots that have no value.
func (l *loaded) missing() []string {
	out := []string{}
	for _, s := range l.config.RequiredSlots() {
		if v, ok := l.slots[s]; !ok || v.Empty() {
			out = append(out, s)
		}
	}
	return out
}

type server struct {
	log    *slog.Logger
	cur    atomic.Pointer[loaded]
	gw     *egress.Gateway
	gate   *gitgate.Server
	sup    *supervise.Server
	keyDir string

	loadMu sync.Mutex // serializes loads

	mu    sync.Mutex
	conns map[net.Conn]bool
}

// Run is `bottleform sidecar`: it serves the control socket and the egress
// gateway until ctx is done, then closes both and returns nil. Until a
// configuration is loaded the gateway grants nothing: every request is
// refused with a 403 that says what was refused and why.
func Run(ctx context.Context, o Options) error {
	if o.ControlSocket == "" {
		o.ControlSocket = DefaultControlSocket
	}
	if o.EgressAddr == "" {
		o.EgressAddr = DefaultEgressAddr
	}
	if o.GitAddr == "" {
		o.GitAddr = DefaultGitAddr
	}
	if o.SuperviseAddr == "" {
		o.SuperviseAddr = DefaultSuperviseAddr
	}
	if o.GitRoot == "" {
		o.GitRoot = DefaultGitRoot
	}
	if o.KeyDir == "" {
		o.KeyDir = DefaultKeyDir
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Self == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find bottleform's own binary for the git gate: %w", err)
		}
		o.Self = exe
	}
	// TMPDIR may name a directory on a tmpfs that starts empty.
	if err := os.MkdirAll(os.TempDir(), 0o700); err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	s := &server{log: slog.New(slog.NewJSONHandler(o.Log, nil)), conns: map[net.Conn]bool{}, keyDir: o.KeyDir}
	s.gate = &gitgate.Server{
		Root:        o.GitRoot,
		Log:         s.log.With("component", "git-gate"),
		Git:         o.Git,
		SSHCommand:  []string{o.Self, "sidecar", "git-ssh"},
		ScanCommand: []string{o.Self, "sidecar", "git-scan"},
	}
	if err := s.gate.SetRepos(nil); err != nil {
		return fmt.Errorf("git gate: %w", err)
	}
	s.sup = supervise.New(supervise.Options{Log: s.log.With("component", "supervise")})

	ctl, err := listenControl(o.ControlSocket)
	if err != nil {
		return err
	}
	defer os.Remove(o.ControlSocket)
	defer ctl.Close()
	eg, err := net.Listen("tcp", o.EgressAddr)
	if err != nil {
		return fmt.Errorf("egress listener: %w", err)
	}
	if s.gw, err = egress.New(egress.Options{Log: s.log}); err != nil {
		eg.Close()
		return fmt.Errorf("egress gateway: %w", err)
	}
	gl, err := net.Listen("tcp", o.GitAddr)
	if err != nil {
		s.gw.Close()
		eg.Close()
		return fmt.Errorf("git gate listener: %w", err)
	}
	// No write timeout: a clone of a large repository streams for long.
	// Reading headers is bounded; bodies are bounded by the gate.
	gsrv := &http.Server{Handler: s.gate, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	sl, err := net.Listen("tcp", o.SuperviseAddr)
	if err != nil {
		gl.Close()
		s.gw.Close()
		eg.Close()
		return fmt.Errorf("supervise listener: %w", err)
	}
	// Requests and replies are small (bodies at most supervise.MaxBody)
	// and answered at once: every phase is bounded.
	ssrv := &http.Server{
		Handler: s.sup, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}

	errc := make(chan error, 4)
	go func() { errc <- s.serveControl(ctl) }()
	go func() { errc <- s.gw.Serve(eg) }()
	go func() {
		if err := gsrv.Serve(gl); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("git gate: %w", err)
		}
	}()
	go func() {
		if err := ssrv.Serve(sl); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("supervise: %w", err)
		}
	}()
	s.log.Info("sidecar started", "control_socket", o.ControlSocket, "egress", eg.Addr().String(),
		"git_gate", gl.Addr().String(), "supervise", sl.Addr().String())
	if o.Ready != nil {
		o.Ready(Addrs{Egress: eg.Addr(), Git: gl.Addr(), Supervise: sl.Addr()})
	}

	var failed error
	select {
	case <-ctx.Done():
		s.log.Info("sidecar stopping", "reason", context.Cause(ctx).Error())
	case failed = <-errc:
		s.log.Error("sidecar listener failed", "error", failed.Error())
	}
	ctl.Close()
	s.closeConns()
	gsrv.Close()
	ssrv.Close()
	s.gw.Close()
	return failed
}

// listenControl listens on the unix socket at path, in a 0700 directory,
// with mode 0600. A stale socket from an earlier run is replaced; any other
// file at path is an error.
func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

func (s *server) serveControl(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control socket: %w", err)
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// serveConn answers requests on one connection, one reply line per
// request line, until the peer closes it or stays idle for 30 seconds.
func (s *server) serveConn(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	enc := json.NewEncoder(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if !sc.Scan() {
			if errors.Is(sc.Err(), bufio.ErrTooLong) {
				s.log.Warn("control request rejected", "reason", "request too long")
				_ = enc.Encode(s.refuse(fmt.Sprintf("request longer than %d bytes", maxLine)))
			}
			return
		}
		if err := enc.Encode(s.handle(sc.Bytes())); err != nil {
			return
		}
	}
}

// handle answers one request line. Nothing derived from the line's raw
// bytes is logged or echoed: it may carry slot values.
func (s *server) handle(line []byte) *Reply {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		s.log.Warn("control request rejected", "reason", "malformed JSON")
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return s.refuse(fmt.Sprintf("malformed JSON at byte %d: want one JSON object per line", se.Offset))
		}
		return s.refuse("malformed request: want {\"op\": \"ping\" | \"load\" | \"status\" | \"proposals\" | \"decide\", ...}")
	}
	switch req.Op {
	case OpPing:
		return s.reply(nil)
	case OpStatus:
		rep := s.reply(nil)
		st := &Status{MissingSlots: []string{}}
		if l := s.cur.Load(); l != nil {
			st.Bottle, st.Routes, st.Repos = l.config.Bottle, len(l.config.Routes), len(l.config.Repos)
			st.MissingSlots = l.missing()
		}
		st.SlotsComplete = rep.Configured && len(st.MissingSlots) == 0
		rep.Status = st
		return rep
	case OpLoad:
		return s.load(req.Delivery)
	case OpProposals:
		rep := s.reply(nil)
		rep.Proposals = s.sup.Proposals()
		return rep
	case OpDecide:
		p, err := s.sup.Decide(req.ID, supervise.Status(req.Status), req.Reason)
		if err != nil {
			// Decide's errors quote neither the id nor the reason.
			s.log.Warn("control request rejected", "reason", "decide: "+err.Error())
			return s.refuse("decide: " + err.Error())
		}
		rep := s.reply(nil)
		rep.Proposal = &p
		return rep
	}
	s.log.Warn("control request rejected", "reason", "unknown op")
	return s.refuse("unknown op: want ping, load, status, proposals or decide")
}

func (s *server) load(d *Delivery) *Reply {
	if d == nil {
		s.log.Warn("configuration rejected", "reason", "no delivery")
		return s.refuse("load needs a delivery")
	}
	if err := d.Validate(); err != nil {
		s.log.Warn("configuration rejected", "reason", err.Error())
		return s.refuse("invalid delivery: " + err.Error())
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	l := &loaded{config: d.Config, digest: d.Config.Digest(), slots: make(map[string]resource.Secret, len(d.Slots))}
	for k, v := range d.Slots {
		l.slots[k] = resource.NewSecret(v)
	}
	if prev := s.cur.Load(); prev != nil {
		for _, k := range d.Keep {
			if v, ok := prev.slots[k]; ok {
				l.slots[k] = v
			}
		}
	}
	repos, err := s.writeKeys(l)
	if err == nil {
		err = s.gate.SetRepos(repos)
	}
	if err == nil {
		err = s.gw.SetPolicy(egressPolicy(d))
	}
	if err != nil {
		s.log.Warn("configuration rejected", "reason", err.Error())
		return s.refuse("invalid delivery: " + err.Error())
	}
	secrets := canaries(l, d.Canaries)
	s.gate.SetCanaries(secrets)
	s.cur.Store(l)
	// After the store: a proposal this configuration grants is live now,
	// and Load marks it applied.
	s.sup.Load(superviseConfig(l, secrets))
	s.log.Info("configuration loaded", "bottle", l.config.Bottle, "config_digest", l.digest,
		"routes", len(l.config.Routes), "repos", len(l.config.Repos), "missing_slots", l.missing())
	return s.reply(nil)
}

func (s *server) reply(err error) *Reply {
	rep := &Reply{OK: err == nil}
	if err != nil {
		rep.Error = err.Error()
	}
	if s.gw != nil {
		rep.CACert = string(s.gw.CACertPEM())
	}
	if l := s.cur.Load(); l != nil {
		rep.Configured, rep.ConfigDigest = true, l.digest
	}
	return rep
}

func (s *server) refuse(msg string) *Reply { return s.reply(errors.New(msg)) }

// egressPolicy is the gateway's view of a delivery.
func egressPolicy(d *Delivery) egress.Policy {
	c := d.Config
	p := egress.Policy{Bottle: c.Bottle, Slots: d.Slots, UpstreamCAs: []byte(c.UpstreamCAs)}
	if c.Supervise {
		p.Supervise = "propose_egress"
	}
	for _, r := range c.Routes {
		p.Routes = append(p.Routes, egress.Route{Host: r.Host, TLS: r.TLS, Paths: r.Paths,
			AuthScheme: r.AuthScheme, TokenSlot: r.TokenSlot, AllowPrivate: r.AllowPrivate, Methods: r.Methods})
	}
	// The hosts of the repos are forges: the gate is their only write
	// path, so their routes forward reads only unless they list methods.
	for _, g := range c.Repos {
		if !slices.Contains(p.ForgeHosts, g.Host) {
			p.ForgeHosts = append(p.ForgeHosts, g.Host)
		}
	}
	return p
}

// superviseConfig is the supervise server's view of a configuration: its
// grants as the agent may see them (no slot names or values), and the
// secret values no proposal may hold.
func superviseConfig(l *loaded, secrets map[string]string) supervise.Config {
	c := l.config
	g := supervise.Grants{Bottle: c.Bottle}
	forge := map[string]bool{}
	for _, r := range c.Repos {
		forge[r.Host] = true
		g.Git = append(g.Git, supervise.GitGrant{Name: r.Name, Host: r.Host, Push: r.Push})
	}
	for _, r := range c.Routes {
		m := r.Methods
		if len(m) == 0 && forge[r.Host] {
			m = []string{http.MethodGet, http.MethodHead, http.MethodOptions}
		}
		g.Egress = append(g.Egress, supervise.EgressGrant{Host: r.Host, TLS: r.TLS, Paths: r.Paths, Methods: m, Credential: r.TokenSlot != ""})
	}
	return supervise.Config{Enabled: c.Supervise, Digest: l.digest, Grants: g, Secrets: secrets}
}

// writeKeys writes the key of every repository that has one to its file
// in the key directory (a tmpfs), mode 0600, removes the files of keys no
// longer delivered, and returns the gate's view of the repositories.
func (s *server) writeKeys(l *loaded) ([]gitgate.Repo, error) {
	if err := os.MkdirAll(s.keyDir, 0o700); err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	keep := map[string]bool{}
	var repos []gitgate.Repo
	for _, g := range l.config.Repos {
		if !gitgate.ValidName(g.Name) {
			return nil, fmt.Errorf("invalid repository name %q", g.Name)
		}
		r := gitgate.Repo{Name: g.Name, Push: g.Push, Upstream: gitgate.Upstream{
			User: g.User, Host: g.Host, Port: g.Port, Path: g.Path, HostKey: g.HostKey,
		}}
		if v, ok := l.slots[g.KeySlot]; ok && !v.Empty() {
			r.KeyFile = filepath.Join(s.keyDir, g.Name)
			if err := writeSecretFile(r.KeyFile, v); err != nil {
				return nil, fmt.Errorf("repo %s: write its key: %w", g.Name, err)
			}
			keep[g.Name] = true
		}
		repos = append(repos, r)
	}
	entries, err := os.ReadDir(s.keyDir)
	if err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			os.Remove(filepath.Join(s.keyDir, e.Name()))
		}
	}
	return repos, nil
}

// writeSecretFile writes v to path with mode 0600, through a temporary
// file and a rename, so that git never reads half a key.
func writeSecretFile(path string, v resource.Secret) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.WriteString(v.Reveal())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// canaries are the values the gate refuses to let a push carry: every
// slot's (tokens, keys), named by what it is, and the delivery's others.
func canaries(l *loaded, extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range extra {
		out[k] = v
	}
	for _, r := range l.config.Routes {
		if v, ok := l.slots[r.TokenSlot]; ok && r.TokenSlot != "" && !v.Empty() {
			out["the credential of egress route "+r.Host] = v.Reveal()
		}
	}
	for _, g := range l.config.Repos {
		if v, ok := l.slots[g.KeySlot]; ok && !v.Empty() {
			out["the upstream key of git entry "+g.Name] = v.Reveal()
		}
	}
	return out
}
