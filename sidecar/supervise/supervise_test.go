package supervise

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// secret is a slot value: it must never appear in a reply, a proposal or
// the log.
const secret = "canary-5e1d0b7a-do-not-echo"

// syncBuffer is a log sink tests can read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testConfig() Config {
	return Config{
		Enabled: true,
		Digest:  "sha256:one",
		Grants: Grants{
			Bottle: "reviewer",
			Egress: []EgressGrant{
				{Host: "api.anthropic.com", TLS: "intercept", Credential: true},
				{Host: "api.github.com", TLS: "intercept", Paths: []string{"/repos/acme/"}, Methods: []string{"GET", "HEAD", "OPTIONS"}},
			},
			Git: []GitGrant{{Name: "app", Host: "gitea.example", Push: []string{"refs/heads/agent/*"}}},
		},
		Secrets: map[string]string{"the credential of egress route api.anthropic.com": secret, "short": "abc"},
	}
}

// serve runs s behind a real HTTP server on a loopback port.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return hs.URL
}

func newServer(t *testing.T) (*Server, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	s := New(Options{Log: slog.New(slog.NewJSONHandler(log, nil))})
	return s, log
}

func connect(t *testing.T, url string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url + Path, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool and returns its structured output decoded into out,
// or the text of its error.
func call(t *testing.T, cs *mcp.ClientSession, tool string, args any, out any) (errText string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	var text []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	if res.IsError {
		return strings.Join(text, "\n")
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("call %s: structured output %s: %v", tool, b, err)
	}
	return ""
}

var idRe = regexp.MustCompile(`^p-[0-9a-f]{8}$`)

func TestMCPClient(t *testing.T) {
	s, log := newServer(t)
	s.Load(testConfig())
	cs := connect(t, serve(t, s))
	ctx := context.Background()

	if got := cs.InitializeResult().ServerInfo.Name; got != "bottleform-supervise" {
		t.Errorf("server name = %q", got)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
		if tl.Description == "" {
			t.Errorf("tool %s has no description", tl.Name)
		}
	}
	slices.Sort(names)
	if want := []string{"list_grants", "proposal_status", "propose_egress", "propose_push"}; !slices.Equal(names, want) {
		t.Errorf("tools = %v, want %v", names, want)
	}
	for _, tl := range tools.Tools {
		if tl.Name != ToolProposeEgress {
			continue
		}
		schema, _ := json.Marshal(tl.InputSchema)
		var sch struct {
			Required []string `json:"required"`
		}
		_ = json.Unmarshal(schema, &sch)
		if slices.Sort(sch.Required); !slices.Equal(sch.Required, []string{"host", "justification"}) {
			t.Errorf("propose_egress requires %v, want [host justification]", sch.Required)
		}
	}

	var g Grants
	if e := call(t, cs, ToolListGrants, map[string]any{}, &g); e != "" {
		t.Fatalf("list_grants: %s", e)
	}
	if g.Bottle != "reviewer" || len(g.Egress) != 2 || g.Egress[1].Host != "api.github.com" || !slices.Equal(g.Egress[1].Paths, []string{"/repos/acme/"}) ||
		!g.Egress[0].Credential || len(g.Git) != 1 || !slices.Equal(g.Git[0].Push, []string{"refs/heads/agent/*"}) {
		t.Errorf("list_grants = %+v", g)
	}

	var pe Proposed
	if e := call(t, cs, ToolProposeEgress, map[string]any{"host": "Registry.NPMJS.org.", "justification": "npm install needs the registry"}, &pe); e != "" {
		t.Fatalf("propose_egress: %s", e)
	}
	if !idRe.MatchString(pe.ID) || pe.Status != StatusPending || !strings.Contains(pe.Message, "bottleform proposals approve "+pe.ID) {
		t.Errorf("propose_egress = %+v", pe)
	}
	var pp Proposed
	if e := call(t, cs, ToolProposePush, map[string]any{"repo": "app", "ref": "+refs/heads/fix/*", "justification": "rebase the fix branch"}, &pp); e != "" {
		t.Fatalf("propose_push: %s", e)
	}
	if !idRe.MatchString(pp.ID) || pp.ID == pe.ID {
		t.Errorf("propose_push = %+v", pp)
	}

	long := strings.Repeat("x", MaxJustification+1)
	errs := []struct {
		name, tool string
		args       map[string]any
		want       string
	}{
		{"IP literal", ToolProposeEgress, map[string]any{"host": "93.184.216.34", "justification": "j"}, "IP address"},
		{"IPv6 literal", ToolProposeEgress, map[string]any{"host": "[2001:db8::1]", "justification": "j"}, "IP address"},
		{"inet_aton form", ToolProposeEgress, map[string]any{"host": "0x7f.1", "justification": "j"}, "IP address"},
		{"port", ToolProposeEgress, map[string]any{"host": "example.com:8443", "justification": "j"}, "port"},
		{"URL", ToolProposeEgress, map[string]any{"host": "https://example.com/x", "justification": "j"}, "not a host name"},
		{"wildcard", ToolProposeEgress, map[string]any{"host": "*.example.com", "justification": "j"}, "wildcard"},
		{"single label", ToolProposeEgress, map[string]any{"host": "supervise", "justification": "j"}, "fully qualified"},
		{"bad label", ToolProposeEgress, map[string]any{"host": "-a.example.com", "justification": "j"}, "not a DNS name"},
		{"already granted", ToolProposeEgress, map[string]any{"host": "API.github.com", "justification": "j"}, "already granted"},
		{"already proposed", ToolProposeEgress, map[string]any{"host": "registry.npmjs.org", "justification": "again"}, pe.ID},
		{"no justification", ToolProposeEgress, map[string]any{"host": "a.example.com"}, "justification"},
		{"blank justification", ToolProposeEgress, map[string]any{"host": "a.example.com", "justification": "  \n"}, "justification is required"},
		{"long justification", ToolProposeEgress, map[string]any{"host": "a.example.com", "justification": long}, "the limit is 2000"},
		{"escape in justification", ToolProposeEgress, map[string]any{"host": "a.example.com", "justification": "ok\x1b[2Jcleared"}, "control character"},
		{"bidi in justification", ToolProposeEgress, map[string]any{"host": "a.example.com", "justification": "ok\u202egnp.exe"}, "control character"},
		{"secret in justification", ToolProposeEgress, map[string]any{"host": "a.example.com", "justification": "token " + secret}, "secret"},
		{"bad tls", ToolProposeEgress, map[string]any{"host": "a.example.com", "justification": "j", "tls": "open"}, "tls"},
		{"paths on passthrough", ToolProposeEgress, map[string]any{"host": "a.example.com", "justification": "j", "tls": "passthrough", "paths": []string{"/v1/"}}, "intercept"},
		{"relative path", ToolProposeEgress, map[string]any{"host": "a.example.com", "justification": "j", "paths": []string{"v1/"}}, "does not start with '/'"},
		{"path with query", ToolProposeEgress, map[string]any{"host": "a.example.com", "justification": "j", "paths": []string{"/v1?x"}}, "'?'"},
		{"extra argument", ToolProposeEgress, map[string]any{"host": "a.example.com", "justification": "j", "port": 1}, "port"},
		{"unknown repo", ToolProposePush, map[string]any{"repo": "nope", "ref": "refs/heads/x", "justification": "j"}, "not one of this bottle's git entries (app)"},
		{"ref outside refs/", ToolProposePush, map[string]any{"repo": "app", "ref": "heads/x", "justification": "j"}, "starting with refs/"},
		{"two wildcards", ToolProposePush, map[string]any{"repo": "app", "ref": "refs/*/x/*", "justification": "j"}, "more than one '*'"},
		{"glob character", ToolProposePush, map[string]any{"repo": "app", "ref": "refs/heads/[ab]", "justification": "j"}, "only '*' is a wildcard"},
		{"dotdot", ToolProposePush, map[string]any{"repo": "app", "ref": "refs/heads/../x", "justification": "j"}, "not a valid ref pattern"},
		{"push already granted", ToolProposePush, map[string]any{"repo": "app", "ref": "refs/heads/agent/*", "justification": "j"}, "already granted"},
		{"unknown id", ToolProposalStatus, map[string]any{"id": "p-00000000"}, "no proposal"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			var out any
			e := call(t, cs, tt.tool, tt.args, &out)
			if e == "" || !strings.Contains(e, tt.want) {
				t.Errorf("error = %q, want one containing %q (output %v)", e, tt.want, out)
			}
			if strings.Contains(e, secret) {
				t.Errorf("the error echoes a secret: %s", e)
			}
		})
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "no_such_tool"}); err == nil {
		t.Error("an unknown tool: no error")
	}

	status := func(id string) StatusOutput {
		t.Helper()
		var st StatusOutput
		if e := call(t, cs, ToolProposalStatus, map[string]any{"id": id}, &st); e != "" {
			t.Fatalf("proposal_status: %s", e)
		}
		return st
	}
	st := status(pe.ID)
	if st.Proposal.Status != StatusPending || st.Proposal.Host != "registry.npmjs.org" || st.Proposal.TLS != "intercept" ||
		st.Proposal.Justification != "npm install needs the registry" || !strings.HasPrefix(st.Message, "Pending") {
		t.Errorf("status of %s = %+v", pe.ID, st)
	}
	if _, err := s.Decide(pe.ID, StatusApproved, ""); err != nil {
		t.Fatal(err)
	}
	if st = status(pe.ID); st.Proposal.Status != StatusApproved || !strings.Contains(st.Message, "not live yet") {
		t.Errorf("approved status = %+v", st)
	}
	if _, err := s.Decide(pp.ID, StatusRejected, "force pushes are not allowed here"); err != nil {
		t.Fatal(err)
	}
	if st = status(pp.ID); st.Proposal.Status != StatusRejected || !strings.Contains(st.Message, "force pushes are not allowed here") {
		t.Errorf("rejected status = %+v", st)
	}
	// The apply that makes it live marks it applied.
	c := testConfig()
	c.Digest = "sha256:two"
	c.Grants.Egress = append(c.Grants.Egress, EgressGrant{Host: "registry.npmjs.org", TLS: "intercept"})
	if got := s.Load(c); len(got) != 1 || got[0].ID != pe.ID {
		t.Errorf("Load applied %+v, want %s", got, pe.ID)
	}
	if st = status(pe.ID); st.Proposal.Status != StatusApplied || st.Proposal.AppliedConfig != "sha256:two" || !strings.HasPrefix(st.Message, "Applied") {
		t.Errorf("applied status = %+v", st)
	}

	logs := log.String()
	if strings.Contains(logs, secret) || strings.Contains(logs, "npm install needs") {
		t.Errorf("the log holds a secret or a justification:\n%s", logs)
	}
	for _, want := range []string{`"msg":"proposal recorded"`, `"msg":"proposal decided"`, `"msg":"proposal applied"`, `"msg":"supervise"`, `"path":"/mcp"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestDecide(t *testing.T) {
	s, _ := newServer(t)
	s.Load(testConfig())
	p, err := s.propose(&Proposal{Kind: KindEgress, Host: "a.example.com", TLS: "intercept", Justification: "j"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id string
		status   Status
		reason   string
		want     string
	}{
		{"unknown id", secret, StatusApproved, "", "no proposal has that id"},
		{"bad status", p.ID, Status(secret), "", "status must be"},
		{"pending", p.ID, StatusPending, "", "status must be"},
		{"control character in reason", p.ID, StatusRejected, "no\x1b]0;", "control character"},
		{"long reason", p.ID, StatusRejected, strings.Repeat("r", MaxReason+1), "the limit is 2000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Decide(tt.id, tt.status, tt.reason)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), secret) {
				t.Errorf("Decide = %v, want an error with %q and no echo", err, tt.want)
			}
		})
	}
	// Rejected, then approved after all: both allowed; applied is final.
	for _, st := range []Status{StatusRejected, StatusApproved, StatusApplied} {
		if q, err := s.Decide(p.ID, st, "because"); err != nil || q.Status != st || q.Decided.IsZero() {
			t.Fatalf("Decide %s = %+v, %v", st, q, err)
		}
	}
	if _, err := s.Decide(p.ID, StatusRejected, ""); err == nil || !strings.Contains(err.Error(), "applied") {
		t.Errorf("rejecting an applied proposal: %v", err)
	}
	if s.open != 0 {
		t.Errorf("open = %d after the only proposal was applied", s.open)
	}
}

func TestLimits(t *testing.T) {
	s, _ := newServer(t)
	s.Load(testConfig())
	host := func(i int) string { return "h" + strconv.Itoa(i) + ".example" }
	var ids []string
	for i := range MaxOpen {
		p, err := s.propose(&Proposal{Kind: KindEgress, Host: host(i), TLS: "intercept", Justification: "j"})
		if err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
		ids = append(ids, p.ID)
	}
	if _, err := s.propose(&Proposal{Kind: KindEgress, Host: "one-more.example", TLS: "intercept", Justification: "j"}); err == nil || !strings.Contains(err.Error(), "wait for a person") {
		t.Fatalf("proposal %d: %v, want refused", MaxOpen+1, err)
	}
	// Deciding frees room; the store keeps at most MaxKept, forgetting the
	// oldest decided ones first.
	for n := MaxOpen; n < MaxKept+50; n++ {
		if _, err := s.Decide(ids[0], StatusRejected, ""); err != nil {
			t.Fatal(err)
		}
		ids = ids[1:]
		p, err := s.propose(&Proposal{Kind: KindEgress, Host: host(n), TLS: "intercept", Justification: "j"})
		if err != nil {
			t.Fatalf("proposal %d: %v", n, err)
		}
		ids = append(ids, p.ID)
	}
	all := s.Proposals()
	if len(all) != MaxKept || s.open != MaxOpen {
		t.Errorf("held %d proposals, %d open; want %d, %d", len(all), s.open, MaxKept, MaxOpen)
	}
	if all[len(all)-1].ID != ids[len(ids)-1] {
		t.Errorf("the newest proposal is not last")
	}
	paths := slices.Repeat([]string{"/v1/"}, MaxPaths+1)
	if err := checkPaths(paths, "intercept"); err == nil || !strings.Contains(err.Error(), "the limit is 32") {
		t.Errorf("checkPaths of %d paths = %v", len(paths), err)
	}
}

func TestCheckHost(t *testing.T) {
	for _, tt := range []struct {
		host string
		ok   bool
	}{
		{"api.example.com", true},
		{"xn--bcher-kva.example", true},
		{"a.b", true},
		{"1.example.com", true},
		{"example.123", false},
		{"127.0.0.1", false},
		{"127.1", false},
		{"0x7f.0x1", false},
		{"::1", false},
		{"[::1]", false},
		{"example.com:443", false},
		{"exa_mple.com", false},
		{"example..com", false},
		{"", false},
		{strings.Repeat("a.", 127) + "com", false},
		{"a" + strings.Repeat("b", 63) + ".com", false},
		{"bücher.example", false},
	} {
		if err := checkHost(normalizeHost(tt.host)); (err == nil) != tt.ok {
			t.Errorf("checkHost(%q) = %v, want ok %v", tt.host, err, tt.ok)
		}
	}
}

func TestCheckRef(t *testing.T) {
	for _, tt := range []struct {
		ref string
		ok  bool
	}{
		{"refs/heads/agent/*", true},
		{"+refs/heads/agent/*", true},
		{"refs/tags/v1.2", true},
		{"refs/heads/*/wip", true},
		{"refs/", false},
		{"++refs/heads/x", false},
		{"refs/heads/x y", false},
		{"refs/heads/x.lock", false},
		{"refs/heads/.hidden", false},
		{"refs/heads/x/", false},
		{"refs/heads/@{1}", false},
		{"refs/heads/a?", false},
		{"refs/heads/'x'", false},
		{"refs/heads/é", false},
	} {
		if err := checkRef(tt.ref); (err == nil) != tt.ok {
			t.Errorf("checkRef(%q) = %v, want ok %v", tt.ref, err, tt.ok)
		}
	}
}
