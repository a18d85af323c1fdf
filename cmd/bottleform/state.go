package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
	"github.com/bottleform/bottleform/views"
)

func newState(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Inspect and edit the state",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newStateList(g), newStateShow(g), newStateRm(g))
	return cmd
}

func newStateList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list [ADDR]...",
		Short: "List the addresses in the state, or those under ADDR",
		RunE: func(_ *cobra.Command, args []string) error {
			filters, err := parseAddrs("state list", args)
			if err != nil {
				return err
			}
			s, err := state.Open(g.dir()).Load()
			if err != nil {
				return err
			}
			for _, r := range s.Resources() {
				if matchesAny(filters, r.Addr) {
					fmt.Fprintln(g.stdout, r.Addr)
				}
			}
			return nil
		},
	}
}

func matchesAny(filters []resource.Address, a resource.Address) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if f.Contains(a) {
			return true
		}
	}
	return false
}

func newStateShow(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ADDR",
		Short: "Show one object of the state",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			addr, err := resource.ParseAddress(args[0])
			if err != nil {
				return err
			}
			s, err := state.Open(g.dir()).Load()
			if err != nil {
				return err
			}
			r := s.Lookup(addr)
			if r == nil {
				return fmt.Errorf("no object %s in the state; run `bottleform state list` to see the addresses", addr)
			}
			return views.Resource(g.stdout, r, views.Options{Color: g.color()})
		},
	}
}

func newStateRm(g *globals) *cobra.Command {
	var lockTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "rm ADDR...",
		Short: "Forget objects without destroying them",
		Long: `state rm makes bottleform forget objects: they keep running, and bottleform no
longer manages or destroys them. The previous state is kept in
.bottleform/state.json.backup. A minted deploy key that is forgotten is not
revoked: revoke it on the forge yourself.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			addrs, err := parseAddrs("state rm", args)
			if err != nil {
				return err
			}
			mgr := state.Open(g.dir())
			lock, err := mgr.Lock(context.Background(), lockInfo("state rm"), lockTimeout)
			if err != nil {
				return err
			}
			defer lock.Unlock()
			s, err := mgr.Load()
			if err != nil {
				return err
			}
			var removed []resource.Address
			for _, r := range s.Resources() {
				if matchesAny(addrs, r.Addr) {
					removed = append(removed, r.Addr)
				}
			}
			if len(removed) == 0 {
				return fmt.Errorf("no object in the state matches %v; run `bottleform state list` to see the addresses", args)
			}
			for _, a := range removed {
				s.Remove(a)
			}
			if err := mgr.Save(s); err != nil {
				return err
			}
			for _, a := range removed {
				fmt.Fprintf(g.stdout, "Removed %s\n", a)
			}
			fmt.Fprintf(g.stdout, "Forgot %d object(s); they were not destroyed.\n", len(removed))
			return nil
		},
	}
	lockFlag(cmd, &lockTimeout)
	return cmd
}

func newForceUnlock(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "force-unlock LOCK_ID",
		Short: "Release a state lock whose holder is gone",
		Long: `force-unlock releases the state lock. Use it only when the process named in
the lock error is gone: two processes writing one state can lose objects.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := state.ForceUnlock(g.dir(), args[0]); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "The state lock was released.")
			return nil
		},
	}
}

func newVersion(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print bottleform's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if asJSON {
				fmt.Fprintf(g.stdout, "{\n  \"bottleform_version\": %q,\n  \"state_version\": %d\n}\n", Version(), state.Version)
				return nil
			}
			fmt.Fprintf(g.stdout, "bottleform %s (state format %d)\n", Version(), state.Version)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
