package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/state"
)

// errNoBackend is what apply and destroy say until a backend is built in.
var errNoBackend = errors.New("this build of bottleform has no backend to apply with yet, so nothing was changed; run `bottleform plan` to review what apply would do")

type applyOptions struct {
	planFile    string
	lockTimeout time.Duration
}

func newApply(g *globals) *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply [PLANFILE]",
		Short: "Make the bottles match the definitions",
		Long: `apply makes the bottles match the definitions. Given a PLANFILE saved by
"plan --out", it does exactly that plan, and refuses it if the state or the
definitions moved since it was made.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.planFile = args[0]
			}
			return runApply(g, o)
		},
	}
	lockFlag(cmd, &o.lockTimeout)
	return cmd
}

func runApply(g *globals, o applyOptions) error {
	if o.planFile != "" {
		if _, err := loadSavedPlan(g, o.planFile, o.lockTimeout); err != nil {
			return err
		}
	}
	return &exitError{code: 1, err: errNoBackend}
}

// loadSavedPlan reads a saved plan and refuses it when the state or the
// configuration moved since it was made, naming what moved.
func loadSavedPlan(g *globals, name string, lockTimeout time.Duration) (*planner.Plan, error) {
	p, err := readPlan(g, name)
	if err != nil {
		return nil, err
	}
	digest := ""
	if p.Mode == planner.ModeNormal {
		cfg, err := loadConfig(g)
		if err != nil {
			return nil, err
		}
		digest = cfg.Digest
	}
	mgr := state.Open(g.dir())
	lock, err := mgr.Lock(context.Background(), lockInfo("apply"), lockTimeout)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	s, err := mgr.Load()
	if err != nil {
		return nil, err
	}
	var lineage string
	var serial uint64
	if s != nil {
		lineage, serial = s.Lineage, s.Serial
	}
	if why := planner.Stale(p, lineage, serial, digest); why != "" {
		return nil, fmt.Errorf("the saved plan %s is stale: %s; run `bottleform plan --out %s` again", name, why, name)
	}
	return p, nil
}

func newDestroy(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "destroy",
		Short: "Tear down every bottle in the state and revoke the keys it minted",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return &exitError{code: 1, err: errNoBackend}
		},
	}
}
