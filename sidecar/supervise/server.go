package supervise

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/bottleform/bottleform/resource"
)

// Grants is what the bottle is granted now, as the agent sees it: hosts,
// modes, paths, methods and ref patterns; never a slot's name or value.
type Grants struct {
	Bottle string        `json:"bottle" jsonschema:"the bottle's name"`
	Egress []EgressGrant `json:"egress" jsonschema:"the hosts the egress gateway lets through; every other host is refused"`
	Git    []GitGrant    `json:"git" jsonschema:"the git entries served at http://git-gate/<name>.git"`
}

// EgressGrant is one egress route.
type EgressGrant struct {
	Host  string   `json:"host"`
	TLS   string   `json:"tls" jsonschema:"intercept (requests are checked; paths and methods apply) or passthrough (bytes pass unread)"`
	Paths []string `json:"paths,omitempty" jsonschema:"the path prefixes granted (none: every path)"`
	// Methods are the methods the gateway forwards: for a forge host whose
	// route lists none, the reads it forwards (GET, HEAD, OPTIONS).
	Methods []string `json:"methods,omitempty" jsonschema:"the HTTP methods granted (none: every method)"`
	// Credential is set when the gateway adds a credential to requests.
	Credential bool `json:"credential,omitempty" jsonschema:"the gateway adds the bottle's credential to requests to this host"`
}

// GitGrant is one git entry.
type GitGrant struct {
	Name string   `json:"name" jsonschema:"the entry's name: clone http://git-gate/<name>.git"`
	Host string   `json:"host" jsonschema:"the upstream's host"`
	Push []string `json:"push,omitempty" jsonschema:"the ref patterns pushes may update (none: read-only); a leading + allows force pushes"`
}

// Config is what the sidecar's configuration in force tells the server.
type Config struct {
	// Enabled is the bottle's supervise setting: off, the MCP endpoint
	// answers 404.
	Enabled bool
	// Digest identifies the configuration; it is recorded on the
	// proposals it makes live.
	Digest string
	Grants Grants
	// Secrets are the bottle's secret values by name (slot values and
	// canaries): a proposal that holds one is refused. Values shorter
	// than MinSecretLen are ignored.
	Secrets map[string]string
}

// Options configure New.
type Options struct {
	// Log receives the server's events: one line per HTTP request, per
	// proposal recorded, decided or applied. Nil: discarded.
	Log *slog.Logger
}

// Server is the supervise server: an http.Handler for the MCP endpoint
// (ServeHTTP, http.go) and the store of proposals, which the sidecar reads
// and updates for the host (Proposals, Decide, Load). Its methods may be
// called concurrently.
type Server struct {
	log      *slog.Logger
	mcp      *mcp.Server
	sdk      *mcp.StreamableHTTPHandler
	inflight chan struct{} // one token per request being served

	mu      sync.Mutex
	cfg     *Config // nil until Load
	secrets []resource.Secret
	byID    map[string]*Proposal
	order   []string // ids, oldest first
	open    int      // proposals pending or approved
}

// Path is where the MCP endpoint is served.
const Path = "/mcp"

// ErrUnknown is returned by Decide for an id the server does not hold.
var ErrUnknown = errors.New("no proposal has that id (the sidecar keeps the last 500, and none across a restart); list them with op proposals")

// New returns a server with no configuration: until Load, the endpoint
// answers 503.
func New(o Options) *Server {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log, byID: map[string]*Proposal{}, inflight: make(chan struct{}, maxInFlight)}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "bottleform-supervise", Title: "bottleform supervise", Version: "1"}, &mcp.ServerOptions{
		Instructions: "This bottle's egress gateway and git gate grant only what list_grants shows. " +
			"When the task needs more, ask with propose_egress or propose_push and say why: a person reviews every proposal, " +
			"and it takes effect only once they approve it and apply the bottle's definition. Follow it with proposal_status.",
	})
	s.addTools()
	s.sdk = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp }, &mcp.StreamableHTTPOptions{
		// No session state: each request stands alone, so an agent cannot
		// make the server hold sessions, and a restart breaks no session.
		Stateless:           true,
		JSONResponse:        true,
		MaxRequestBodyBytes: MaxBody,
	})
	return s
}

// Load takes the configuration now in force, and marks applied every
// pending or approved proposal it grants: an egress proposal whose host
// has a route, a push proposal whose ref pattern (or its force form) is
// among its git entry's. It returns the proposals it marked applied.
func (s *Server) Load(c Config) []Proposal {
	c.Grants = cloneGrants(c.Grants)
	var secrets []resource.Secret
	for _, v := range c.Secrets {
		if len(v) >= MinSecretLen {
			secrets = append(secrets, resource.NewSecret(v))
		}
	}
	c.Secrets = nil
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.secrets = &c, secrets
	now := time.Now().UTC()
	var applied []Proposal
	for _, id := range s.order {
		p := s.byID[id]
		if !p.Status.open() || !granted(c.Grants, p) {
			continue
		}
		p.Status, p.Decided, p.AppliedConfig = StatusApplied, now, c.Digest
		s.open--
		applied = append(applied, clone(p))
		s.log.Info("proposal applied", "id", p.ID, "kind", string(p.Kind), "config_digest", c.Digest)
	}
	return applied
}

// Proposals returns every proposal held, oldest first.
func (s *Server) Proposals() []Proposal {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Proposal, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, clone(s.byID[id]))
	}
	return out
}

// Decide records a person's decision on the proposal id: approved,
// rejected or applied, with an optional reason the agent reads. An applied
// proposal is live and stays applied. Errors never quote id or reason.
func (s *Server) Decide(id string, st Status, reason string) (Proposal, error) {
	switch st {
	case StatusApproved, StatusRejected, StatusApplied:
	default:
		return Proposal{}, errors.New("status must be approved, rejected or applied")
	}
	if err := checkText("reason", reason, MaxReason, false); err != nil {
		return Proposal{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.byID[id]
	if !ok {
		return Proposal{}, ErrUnknown
	}
	if p.Status == StatusApplied && st != StatusApplied {
		return Proposal{}, errors.New("the proposal is applied (live): to withdraw the grant, edit the bottle's definition and apply it")
	}
	if p.Status.open() && !st.open() {
		s.open--
	} else if !p.Status.open() && st.open() {
		s.open++
	}
	p.Status, p.Reason, p.Decided = st, reason, time.Now().UTC()
	s.log.Info("proposal decided", "id", p.ID, "kind", string(p.Kind), "status", string(st), "reason_chars", len([]rune(reason)))
	return clone(p), nil
}

// config returns the configuration in force, or nil.
func (s *Server) config() *Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// propose records p (validated by the caller) as pending, after checking
// it against the configuration in force, the open proposals, the limits
// and the bottle's secrets.
func (s *Server) propose(p *Proposal) (Proposal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil {
		return Proposal{}, errors.New("the sidecar has no configuration yet; try again after bottleform apply")
	}
	for _, v := range s.secrets {
		for _, f := range append([]string{p.Host, p.Repo, p.Ref, p.Justification}, p.Paths...) {
			if strings.Contains(f, v.Reveal()) {
				s.log.Warn("proposal refused", "kind", string(p.Kind), "reason", "holds a secret value")
				return Proposal{}, errors.New("the proposal holds one of this bottle's secret values; proposals are shown to people and logged: leave it out")
			}
		}
	}
	if granted(s.cfg.Grants, p) {
		if p.Kind == KindEgress {
			return Proposal{}, fmt.Errorf("%s is already granted (see list_grants); if a request to it is refused, the gateway's 403 says why", p.Host)
		}
		return Proposal{}, fmt.Errorf("pushes to %s in %s are already granted (see list_grants)", p.Ref, p.Repo)
	}
	for _, id := range s.order {
		if q := s.byID[id]; q.Status.open() && q.Kind == p.Kind && q.Host == p.Host && q.Repo == p.Repo && q.Ref == p.Ref {
			return Proposal{}, fmt.Errorf("proposal %s already asks for this and is %s; follow it with proposal_status", q.ID, q.Status)
		}
	}
	if s.open >= MaxOpen {
		return Proposal{}, fmt.Errorf("%d proposals already wait for a person; wait for decisions on them (proposal_status) before proposing more", s.open)
	}
	for len(s.order) >= MaxKept {
		s.forgetOldestDecided()
	}
	p.ID = s.newID()
	p.Status, p.Created = StatusPending, time.Now().UTC()
	q := clone(p)
	s.byID[p.ID] = &q
	s.order = append(s.order, p.ID)
	s.open++
	attrs := []any{"id", p.ID, "kind", string(p.Kind)}
	if p.Kind == KindEgress {
		attrs = append(attrs, "host", p.Host, "tls", p.TLS, "paths", len(p.Paths))
	} else {
		attrs = append(attrs, "repo", p.Repo, "ref", p.Ref)
	}
	s.log.Info("proposal recorded", attrs...)
	return clone(&q), nil
}

// forgetOldestDecided drops the oldest proposal that is neither pending
// nor approved. There is one whenever len(order) > MaxOpen.
func (s *Server) forgetOldestDecided() {
	for i, id := range s.order {
		if !s.byID[id].Status.open() {
			delete(s.byID, id)
			s.order = slices.Delete(s.order, i, i+1)
			return
		}
	}
	panic("supervise: proposal store full of open proposals")
}

// newID returns an id no proposal held has: "p-" and 8 hex digits.
func (s *Server) newID() string {
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		id := "p-" + hex.EncodeToString(b[:])
		if _, taken := s.byID[id]; !taken {
			return id
		}
	}
}

// granted reports whether g grants what p asks for.
func granted(g Grants, p *Proposal) bool {
	switch p.Kind {
	case KindEgress:
		for _, r := range g.Egress {
			if normalizeHost(r.Host) == p.Host {
				return true
			}
		}
	case KindPush:
		for _, e := range g.Git {
			if e.Name == p.Repo && (slices.Contains(e.Push, p.Ref) || slices.Contains(e.Push, "+"+p.Ref)) {
				return true
			}
		}
	}
	return false
}

func clone(p *Proposal) Proposal {
	q := *p
	q.Paths = slices.Clone(p.Paths)
	return q
}

func cloneGrants(g Grants) Grants {
	out := Grants{Bottle: g.Bottle, Egress: make([]EgressGrant, 0, len(g.Egress)), Git: make([]GitGrant, 0, len(g.Git))}
	for _, r := range g.Egress {
		r.Paths, r.Methods = slices.Clone(r.Paths), slices.Clone(r.Methods)
		out.Egress = append(out.Egress, r)
	}
	for _, e := range g.Git {
		e.Push = slices.Clone(e.Push)
		out.Git = append(out.Git, e)
	}
	return out
}
