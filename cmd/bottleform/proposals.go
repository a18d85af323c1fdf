package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/sidecar"
	"github.com/bottleform/bottleform/sidecar/supervise"
	"github.com/bottleform/bottleform/state"
	"github.com/bottleform/bottleform/views"
)

// newProposals is `bottleform proposals`: what the bottles' agents asked
// for through supervise, and the person's answer. Approving edits the
// bottle's definition and leaves the change for review; it becomes live
// with the next apply, which marks the proposal applied.
func newProposals(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proposals",
		Short: "List, approve and reject what the agents asked for through supervise",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return runProposalsList(g) },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List every bottle's proposals",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return runProposalsList(g) },
	})
	var apply, autoApprove bool
	approve := &cobra.Command{
		Use:   "approve ID",
		Short: "Edit a proposal into its bottle's definition (and, with --apply, make it live)",
		Long: `approve adds what the proposal asks for to the bottle's own block in its
*.hcl file, with a comment carrying the agent's justification, prints the
diff and marks the proposal approved. Review the diff and commit it like
any change; it is live after the next apply (or at once with --apply),
which marks the proposal applied.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return runProposalsApprove(g, args[0], apply, autoApprove)
		},
	}
	approve.Flags().BoolVar(&apply, "apply", false, "run apply after the edit")
	approve.Flags().BoolVar(&autoApprove, "auto-approve", false, "with --apply: apply without asking")
	var reason string
	reject := &cobra.Command{
		Use:   "reject ID --reason TEXT",
		Short: "Refuse a proposal; the agent reads the reason",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required: the agent reads it to know what to do instead")
			}
			bs := newBackendSet(g)
			defer bs.Close()
			p, err := findProposal(g, bs, args[0])
			if err != nil {
				return err
			}
			if _, err := p.decide(supervise.StatusRejected, reason); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Rejected %s (%s of bottle %s).\n", p.ID, describe(p.Proposal), p.bottle)
			return nil
		},
	}
	reject.Flags().StringVar(&reason, "reason", "", "why, in words the agent can act on")
	cmd.AddCommand(approve, reject)
	return cmd
}

// located is a proposal with the bottle whose sidecar holds it.
type located struct {
	supervise.Proposal
	bottle  string
	lineage string
	call    func(sidecar.Request) (*sidecar.Reply, error)
}

func (p *located) decide(status supervise.Status, reason string) (*supervise.Proposal, error) {
	rep, err := p.call(sidecar.Request{Op: sidecar.OpDecide, ID: p.ID, Status: string(status), Reason: reason})
	if err != nil {
		return nil, err
	}
	return rep.Proposal, nil
}

// allProposals asks every bottle's sidecar for its proposals, through the
// backends of bs.
func allProposals(g *globals, bs *backendSet) ([]*located, error) {
	s, err := state.Open(g.dir()).Load()
	if err != nil {
		return nil, err
	}
	if s == nil || len(s.Bottles) == 0 {
		return nil, errors.New("no bottles: the state is empty; run `bottleform apply` first")
	}
	d, err := bs.dockerBackend()
	if err != nil {
		return nil, err
	}
	var out []*located
	names := make([]string, 0, len(s.Bottles))
	for n := range s.Bottles {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		call := func(req sidecar.Request) (*sidecar.Reply, error) {
			return d.SidecarCall(context.Background(), s.Lineage, name, req)
		}
		rep, err := call(sidecar.Request{Op: sidecar.OpProposals})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range rep.Proposals {
			out = append(out, &located{Proposal: p, bottle: name, lineage: s.Lineage, call: call})
		}
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func findProposal(g *globals, bs *backendSet, id string) (*located, error) {
	all, err := allProposals(g, bs)
	if err != nil {
		return nil, err
	}
	var found []*located
	for _, p := range all {
		if p.ID == id {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no proposal %s; run `bottleform proposals` to see them", id)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("proposal id %s is held by more than one bottle; approve it by hand", id)
}

func describe(p supervise.Proposal) string {
	switch p.Kind {
	case supervise.KindEgress:
		s := "egress to " + p.Host
		if len(p.Paths) > 0 {
			s += " (paths " + strings.Join(p.Paths, ", ") + ")"
		}
		return s
	case supervise.KindPush:
		return fmt.Sprintf("push to %s on git entry %s", p.Ref, p.Repo)
	}
	return string(p.Kind)
}

func runProposalsList(g *globals) error {
	bs := newBackendSet(g)
	defer bs.Close()
	all, err := allProposals(g, bs)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		fmt.Fprintln(g.stdout, "No proposals.")
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tBOTTLE\tASKS FOR\tSTATUS\tASKED\tJUSTIFICATION")
	for _, p := range all {
		just := strings.Join(strings.Fields(p.Justification), " ")
		if len(just) > 80 {
			just = just[:77] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.bottle, describe(p.Proposal), p.Status, p.Created.UTC().Format(time.RFC3339), views.CleanText(just))
	}
	return tw.Flush()
}

func runProposalsApprove(g *globals, id string, apply, autoApprove bool) error {
	bs := newBackendSet(g)
	defer bs.Close()
	p, err := findProposal(g, bs, id)
	if err != nil {
		return err
	}
	if p.Status != supervise.StatusPending {
		return fmt.Errorf("proposal %s is %s, not pending", p.ID, p.Status)
	}
	why := fmt.Sprintf("Approved proposal %s of bottle %s's agent, which said:\n%s", p.ID, p.bottle, p.Justification)
	var e *config.Edit
	switch p.Kind {
	case supervise.KindEgress:
		e, err = config.AddEgress(g.dir(), p.bottle, p.Host, why)
	case supervise.KindPush:
		e, err = config.AddPushRef(g.dir(), p.bottle, p.Repo, p.Ref, why)
	default:
		err = fmt.Errorf("proposal %s asks for %q, which this bottleform cannot approve", p.ID, p.Kind)
	}
	if err != nil {
		return err
	}
	if err := views.FileDiff(g.stdout, e.Path, e.Before, e.After, g.color()); err != nil {
		return err
	}
	if err := e.Write(); err != nil {
		return err
	}
	if _, err := p.decide(supervise.StatusApproved, "edited into "+e.Path+"; live after the next apply"); err != nil {
		return fmt.Errorf("%s was edited, but the proposal could not be marked approved: %w", e.Path, err)
	}
	fmt.Fprintf(g.stdout, "\nApproved %s: %s is edited. Review it, then run `bottleform apply` to make it live.\n", p.ID, e.Path)
	if !apply {
		return nil
	}
	fmt.Fprintln(g.stdout)
	return runApply(g, applyOptions{autoApprove: autoApprove, parallelism: 4, lockTimeout: 0})
}
