package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bottleform/bottleform/backends/docker"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

func newStatus(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each bottle's objects, their health and any drift",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := state.Open(g.dir()).Load()
			if err != nil {
				return err
			}
			if s == nil || len(s.Bottles) == 0 {
				fmt.Fprintln(g.stdout, "No bottles: the state is empty. Run `bottleform apply` to bring them up.")
				return nil
			}
			bs := newBackendSet(g)
			defer bs.Close()
			d, err := bs.dockerBackend()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			objs, err := d.Status(ctx, s)
			if err != nil {
				return err
			}
			observed, err := bs.Observe(ctx, s)
			if err != nil {
				return err
			}
			smol, err := smolStatus(ctx, d, s, observed)
			if err != nil {
				return err
			}
			objs = append(objs, smol...)
			sort.SliceStable(objs, func(i, j int) bool { return objs[i].Addr.Less(objs[j].Addr) })
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tOBJECT\tSTATE\tHEALTH\tDRIFT")
			for _, o := range objs {
				drift := "-"
				if ob, ok := observed[o.Addr]; ok && ob.Reason != "" {
					drift = ob.Reason
				}
				health := o.Health
				if health == "" {
					health = "-"
				}
				fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\n", o.Addr, o.Type, o.Name, o.State, health, drift)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			n := 0
			for _, ob := range observed {
				if ob.Reason != "" {
					n++
				}
			}
			if n > 0 {
				fmt.Fprintf(g.stdout, "\n%d object(s) drifted; `bottleform plan` shows the repair and `bottleform apply` makes it.\n", n)
			}
			return nil
		},
	}
}

func newAttach(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "attach BOTTLE [-- CMD...]",
		Short: "Run a command (by default a shell) in a bottle's agent",
		Long: `attach runs CMD, or a login shell, in the bottle's agent container as the agent
user, with the provider's env (placeholders and flags) loaded. It uses a
terminal when stdin is one. Its exit status is the command's.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			s, err := state.Open(g.dir()).Load()
			if err != nil {
				return err
			}
			if s == nil || s.Bottles[name] == nil {
				known := []string{}
				if s != nil {
					for n := range s.Bottles {
						known = append(known, n)
					}
				}
				sort.Strings(known)
				return fmt.Errorf("no bottle %q in the state (bottles: %v); run `bottleform apply` first", name, known)
			}
			argv := []string{"/bin/sh", "-c", `. "$HOME/.bottleform/env" 2>/dev/null; if [ $# -eq 0 ]; then exec "${SHELL:-/bin/sh}" -l; fi; exec "$@"`, "sh"}
			argv = append(argv, args[1:]...)
			bs := newBackendSet(g)
			defer bs.Close()
			var attach func(ctx context.Context, lineage, bottle string, argv []string, tty bool, in io.Reader, out, errw io.Writer) (int, error)
			switch backend := s.Bottles[name].Backend; backend {
			case resource.BackendDocker:
				d, err := bs.dockerBackend()
				if err != nil {
					return err
				}
				attach = d.Attach
			case resource.BackendSmolmachines:
				b, err := bs.smolBackend()
				if err != nil {
					return err
				}
				attach = b.Attach
			default:
				return fmt.Errorf("bottle %q: attach does not support the %s backend", name, backend)
			}
			tty := false
			var restore func()
			if in, ok := g.stdin.(*os.File); ok && term.IsTerminal(int(in.Fd())) {
				tty = true
				if old, err := term.MakeRaw(int(in.Fd())); err == nil {
					restore = func() { term.Restore(int(in.Fd()), old) }
				}
			}
			code, err := attach(context.WithoutCancel(cmd.Context()), s.Lineage, name, argv, tty, g.stdin, g.stdout, g.stderr)
			if restore != nil {
				restore()
			}
			if err != nil {
				return err
			}
			if code != 0 {
				return silent(code)
			}
			return nil
		},
	}
}

// smolStatus is the status of the state's smolmachines bottles: their
// network and sidecar as Docker lists them, and their agent machine as the
// backend observed it (Observe calls a machine present only when it runs).
func smolStatus(ctx context.Context, d *docker.Backend, s *state.State, observed resource.Observed) ([]docker.ObjectStatus, error) {
	out, err := d.StatusSidecars(ctx, s, resource.BackendSmolmachines)
	if err != nil {
		return nil, err
	}
	for _, r := range s.Resources() {
		if bt := s.Bottles[r.Addr.Bottle]; bt == nil || bt.Backend != resource.BackendSmolmachines || r.Addr.Kind != resource.KindAgent {
			continue
		}
		st := "unknown"
		if ob, ok := observed[r.Addr]; ok {
			st = ob.Status.String()
			if ob.Status == resource.StatusPresent {
				st = "running"
			}
		}
		out = append(out, docker.ObjectStatus{Addr: r.Addr, Type: "machine", Name: resource.ObjectName(s.Lineage, r.Addr.Bottle, "agent"), State: st})
	}
	return out, nil
}
