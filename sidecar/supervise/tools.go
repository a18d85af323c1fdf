package supervise

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/bottleform/bottleform/resource"
)

// The tools' inputs and outputs. Their JSON schemas are inferred from these
// types by the SDK, which validates every call against them.
type (
	// ListGrantsInput is list_grants's input: nothing.
	ListGrantsInput struct{}

	// ProposeEgressInput is propose_egress's input.
	ProposeEgressInput struct {
		Host          string   `json:"host" jsonschema:"the host name to reach, such as api.example.com: no scheme, port, path or IP address"`
		Justification string   `json:"justification" jsonschema:"why the task needs this host, in at most 2000 characters; a person reads it"`
		Paths         []string `json:"paths,omitempty" jsonschema:"path prefixes to limit the grant to, each starting with /; none asks for the whole host"`
		TLS           string   `json:"tls,omitempty" jsonschema:"intercept (the default: the gateway checks each request) or passthrough (for clients that pin certificates; no paths)"`
	}

	// ProposePushInput is propose_push's input.
	ProposePushInput struct {
		Repo          string `json:"repo" jsonschema:"the git entry's name, as list_grants shows it"`
		Ref           string `json:"ref" jsonschema:"the ref pattern to push to, such as refs/heads/agent/*: starts with refs/, '*' is the only wildcard, a leading + asks for force pushes"`
		Justification string `json:"justification" jsonschema:"why the task needs to push there, in at most 2000 characters; a person reads it"`
	}

	// Proposed is the output of propose_egress and propose_push.
	Proposed struct {
		ID      string `json:"id" jsonschema:"the proposal's id, for proposal_status"`
		Status  Status `json:"status" jsonschema:"pending"`
		Message string `json:"message" jsonschema:"what happens next"`
	}

	// StatusInput is proposal_status's input.
	StatusInput struct {
		ID string `json:"id" jsonschema:"the id propose_egress or propose_push returned"`
	}

	// StatusOutput is proposal_status's output.
	StatusOutput struct {
		Proposal Proposal `json:"proposal"`
		Message  string   `json:"message" jsonschema:"where the proposal stands, in words"`
	}
)

// Tool names.
const (
	ToolListGrants     = "list_grants"
	ToolProposeEgress  = "propose_egress"
	ToolProposePush    = "propose_push"
	ToolProposalStatus = "proposal_status"
)

func (s *Server) addTools() {
	falseV := false
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name: ToolListGrants,
		Description: "List what this bottle may reach now: its egress hosts (with TLS mode, path prefixes and methods) " +
			"and its git entries (with the ref patterns pushes may update). The egress gateway and the git gate refuse everything else.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &falseV},
	}, s.listGrants)
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name: ToolProposeEgress,
		Description: "Ask for a new egress host. This records a proposal for a person to review; nothing changes until they " +
			"approve it and apply the bottle's definition. Returns the proposal's id: follow it with proposal_status.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: &falseV, OpenWorldHint: &falseV},
	}, s.proposeEgress)
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name: ToolProposePush,
		Description: "Ask to push to a new ref pattern of one of the bottle's git entries. This records a proposal for a person " +
			"to review; nothing changes until they approve it and apply the bottle's definition. Returns the proposal's id: follow it with proposal_status.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: &falseV, OpenWorldHint: &falseV},
	}, s.proposePush)
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name:        ToolProposalStatus,
		Description: "Where a proposal stands: pending (no decision yet), approved (in the bottle's definition, not live until applied), rejected (with the reviewer's reason) or applied (live now).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &falseV},
	}, s.proposalStatus)
}

func (s *Server) listGrants(context.Context, *mcp.CallToolRequest, ListGrantsInput) (*mcp.CallToolResult, Grants, error) {
	c := s.config()
	if c == nil {
		return nil, Grants{}, errors.New("the sidecar has no configuration yet; try again after bottleform apply")
	}
	return nil, cloneGrants(c.Grants), nil
}

func (s *Server) proposeEgress(_ context.Context, _ *mcp.CallToolRequest, in ProposeEgressInput) (*mcp.CallToolResult, Proposed, error) {
	p := &Proposal{Kind: KindEgress, Host: normalizeHost(in.Host), TLS: in.TLS, Paths: in.Paths, Justification: in.Justification}
	if p.TLS == "" {
		p.TLS = resource.TLSIntercept
	}
	if p.TLS != resource.TLSIntercept && p.TLS != resource.TLSPassthrough {
		return nil, Proposed{}, fmt.Errorf("tls %s: want %s or %s", quote(p.TLS), resource.TLSIntercept, resource.TLSPassthrough)
	}
	if err := checkHost(p.Host); err != nil {
		return nil, Proposed{}, err
	}
	if err := checkPaths(p.Paths, p.TLS); err != nil {
		return nil, Proposed{}, err
	}
	return s.record(p)
}

func (s *Server) proposePush(_ context.Context, _ *mcp.CallToolRequest, in ProposePushInput) (*mcp.CallToolResult, Proposed, error) {
	p := &Proposal{Kind: KindPush, Repo: in.Repo, Ref: strings.TrimSpace(in.Ref), Justification: in.Justification}
	if err := checkRef(p.Ref); err != nil {
		return nil, Proposed{}, err
	}
	c := s.config()
	if c == nil {
		return nil, Proposed{}, errors.New("the sidecar has no configuration yet; try again after bottleform apply")
	}
	var names []string
	found := false
	for _, e := range c.Grants.Git {
		names = append(names, e.Name)
		found = found || e.Name == p.Repo
	}
	if !found {
		if len(names) == 0 {
			return nil, Proposed{}, fmt.Errorf("repo %s: this bottle has no git entries; a person adds those to its definition", quote(p.Repo))
		}
		return nil, Proposed{}, fmt.Errorf("repo %s is not one of this bottle's git entries (%s)", quote(p.Repo), strings.Join(names, ", "))
	}
	return s.record(p)
}

// record checks the justification and stores p.
func (s *Server) record(p *Proposal) (*mcp.CallToolResult, Proposed, error) {
	if err := checkText("justification", p.Justification, MaxJustification, true); err != nil {
		return nil, Proposed{}, err
	}
	q, err := s.propose(p)
	if err != nil {
		return nil, Proposed{}, err
	}
	return nil, Proposed{ID: q.ID, Status: q.Status, Message: fmt.Sprintf(
		"Proposal %s is recorded and pending. A person must approve it (bottleform proposals approve %s) and apply the bottle's definition before it takes effect; until then nothing changes. Check on it with proposal_status.",
		q.ID, q.ID)}, nil
}

func (s *Server) proposalStatus(_ context.Context, _ *mcp.CallToolRequest, in StatusInput) (*mcp.CallToolResult, StatusOutput, error) {
	s.mu.Lock()
	p, ok := s.byID[strings.TrimSpace(in.ID)]
	var q Proposal
	if ok {
		q = clone(p)
	}
	s.mu.Unlock()
	if !ok {
		return nil, StatusOutput{}, fmt.Errorf("no proposal %s: ids are the ones propose_egress and propose_push return (the sidecar forgets them when it restarts)", quote(in.ID))
	}
	return nil, StatusOutput{Proposal: q, Message: describe(q)}, nil
}

// describe says where a proposal stands.
func describe(p Proposal) string {
	what := "egress to " + p.Host
	if p.Kind == KindPush {
		what = "pushes to " + p.Ref + " in " + p.Repo
	}
	switch p.Status {
	case StatusPending:
		return fmt.Sprintf("Pending: no person has decided on %s yet (bottleform proposals approve %s).", what, p.ID)
	case StatusApproved:
		return fmt.Sprintf("Approved: %s is in the bottle's definition but not live yet; it takes effect when the definition is applied.", what)
	case StatusRejected:
		if p.Reason == "" {
			return fmt.Sprintf("Rejected: a person refused %s and gave no reason.", what)
		}
		return fmt.Sprintf("Rejected: a person refused %s: %s", what, p.Reason)
	case StatusApplied:
		return fmt.Sprintf("Applied: %s is granted now.", what)
	}
	return string(p.Status)
}
