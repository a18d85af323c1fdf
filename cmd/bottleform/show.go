package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/state"
	"github.com/bottleform/bottleform/views"
)

type showOptions struct {
	json bool
	file string
}

func newShow(g *globals) *cobra.Command {
	var o showOptions
	cmd := &cobra.Command{
		Use:   "show [PLANFILE]",
		Short: "Show a saved plan, or the state",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.file = args[0]
			}
			return runShow(g, o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON: the plan format of docs/plan-json.md, or the state file format")
	return cmd
}

func runShow(g *globals, o showOptions) error {
	if o.file != "" {
		p, err := readPlan(g, o.file)
		if err != nil {
			return err
		}
		if o.json {
			return views.PlanJSON(g.stdout, p)
		}
		return views.Plan(g.stdout, p, views.Options{Color: g.color()})
	}
	s, err := state.Open(g.dir()).Load()
	if err != nil {
		return err
	}
	if o.json {
		return state.Write(g.stdout, s)
	}
	return views.State(g.stdout, s, views.Options{Color: g.color()})
}

func readPlan(g *globals, name string) (*planner.Plan, error) {
	f, err := os.Open(g.path(name))
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer f.Close()
	p, _, err := planner.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}
