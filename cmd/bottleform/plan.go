package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/renameio/v2"
	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
	"github.com/bottleform/bottleform/views"
)

// lookupEnv is how plan and apply read the host's environment; tests
// replace it.
var lookupEnv = os.LookupEnv

type planOptions struct {
	out              string
	json             bool
	detailedExitcode bool
	destroy          bool
	targets          []string
	replace          []string
	lockTimeout      time.Duration
	refresh          bool
}

func newPlan(g *globals) *cobra.Command {
	var o planOptions
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change, and what that opens up",
		Long: `plan compares the definitions with the state and what is running, and shows
what apply would do: first, in plain words, what the change grants or takes
away, then each object's change with its reasons.

With --out FILE the plan is saved; "bottleform apply FILE" then does exactly
that, and refuses if the state or the definitions moved in between.

Exit status: 0 success; 1 error; with --detailed-exitcode, 0 when nothing
would change and 2 when something would.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runPlan(g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "save the plan to `FILE` for apply")
	f.BoolVar(&o.json, "json", false, "print the plan in the JSON format of docs/plan-json.md")
	f.BoolVar(&o.detailedExitcode, "detailed-exitcode", false, "exit 2 when the plan has changes, 0 when it has none")
	f.BoolVar(&o.destroy, "destroy", false, "plan to destroy everything in the state")
	f.StringArrayVar(&o.targets, "target", nil, "limit the plan to `ADDR` and what it needs (repeatable)")
	f.StringArrayVar(&o.replace, "replace", nil, "replace `ADDR` even if it has not changed (repeatable)")
	f.BoolVar(&o.refresh, "refresh", true, "ask the backends what is live (--refresh=false takes the state at its word)")
	lockFlag(cmd, &o.lockTimeout)
	return cmd
}

func parseAddrs(flag string, ss []string) ([]resource.Address, error) {
	var out []resource.Address
	for _, s := range ss {
		a, err := resource.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// makePlan loads the configuration and the state under the lock and
// returns the plan.
func makePlan(g *globals, mode planner.Mode, targets, replace []string, lockTimeout time.Duration, refresh bool, op string) (*planner.Plan, error) {
	opts := planner.Options{Mode: mode}
	var err error
	if opts.Targets, err = parseAddrs("--target", targets); err != nil {
		return nil, err
	}
	if opts.Replace, err = parseAddrs("--replace", replace); err != nil {
		return nil, err
	}
	var cfg *config.File
	if mode == planner.ModeNormal {
		if cfg, err = loadConfig(g); err != nil {
			return nil, err
		}
	}
	mgr := state.Open(g.dir())
	lock, err := mgr.Lock(context.Background(), lockInfo(op), lockTimeout)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	prior, err := mgr.Load()
	if err != nil {
		return nil, err
	}
	var observed resource.Observed
	if refresh {
		bs := newBackendSet(g)
		defer bs.Close()
		if observed, err = bs.Observe(context.Background(), prior); err != nil {
			return nil, err
		}
	}
	return planner.Diff(cfg, prior, observed, opts)
}

func runPlan(g *globals, o planOptions) error {
	mode := planner.ModeNormal
	if o.destroy {
		mode = planner.ModeDestroy
	}
	p, err := makePlan(g, mode, o.targets, o.replace, o.lockTimeout, o.refresh, "plan")
	if err != nil {
		return err
	}
	if o.json {
		err = views.PlanJSON(g.stdout, p)
	} else {
		err = views.Plan(g.stdout, p, views.Options{Color: g.color()})
	}
	if err != nil {
		return err
	}
	if o.out != "" {
		var buf bytes.Buffer
		if err := planner.WriteFile(&buf, p, Version()); err != nil {
			return err
		}
		if err := renameio.WriteFile(g.path(o.out), buf.Bytes(), 0o600); err != nil {
			return fmt.Errorf("save plan: %w", err)
		}
		if !o.json {
			fmt.Fprintf(g.stdout, "\nSaved the plan to %s. To make it so, run:\n    bottleform apply %s\n", o.out, o.out)
		}
	}
	if o.detailedExitcode && p.HasChanges() {
		return silent(2)
	}
	return nil
}
