package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/state"
	"github.com/bottleform/bottleform/views"
)

type logsOptions struct {
	follow, denied, json bool
}

func newLogs(g *globals) *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs BOTTLE",
		Short: "Show the egress gateway's decisions and the git gate's requests for a bottle",
		Long: `logs shows every decision the bottle's egress gateway made: time, method,
host, path, the route that matched, the verdict and its reason; and every
request to its git gate, with what the push policy, the secret scan and the
upstream said. --denied shows only refusals, which are what a bottle that
cannot do its job needs.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return runLogs(g, args[0], o) },
	}
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "keep printing new decisions")
	cmd.Flags().BoolVar(&o.denied, "denied", false, "only refusals")
	cmd.Flags().BoolVar(&o.json, "json", false, "print each decision as its JSON line")
	return cmd
}

func runLogs(g *globals, bottle string, o logsOptions) error {
	s, err := state.Open(g.dir()).Load()
	if err != nil {
		return err
	}
	if s == nil || s.Bottles[bottle] == nil {
		return fmt.Errorf("no bottle %q in the state; run `bottleform state list` to see what is live", bottle)
	}
	bs := newBackendSet(g)
	defer bs.Close()
	d, err := bs.dockerBackend()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	w := views.NewDecisionWriter(g.stdout, views.DecisionOptions{Denied: o.denied, JSON: o.json, Color: g.color()})
	defer w.Flush()
	return d.SidecarLogs(ctx, s.Lineage, bottle, o.follow, w)
}
