package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/sidecar"
	"github.com/bottleform/bottleform/sidecar/gitgate"
)

type sidecarOptions struct {
	controlSocket string
	egressAddr    string
}

// newSidecar is `bottleform sidecar`, the process inside a bottle's sidecar
// container, with `ctl` (deliver a request from stdin) and `health` (the
// container's HEALTHCHECK), and the git gate's helper programs `git-ssh`
// (git's ssh, SSHMain) and `git-scan` (the pre-receive secret scan,
// ScanMain). It is hidden: people never run it by hand.
func newSidecar(g *globals) *cobra.Command {
	var o sidecarOptions
	cmd := &cobra.Command{
		Use:    "sidecar",
		Short:  "Run a bottle's sidecar (inside its container)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return sidecar.Run(ctx, sidecar.Options{
				ControlSocket: o.controlSocket,
				EgressAddr:    o.egressAddr,
				Log:           g.stderr,
			})
		},
	}
	cmd.PersistentFlags().StringVar(&o.controlSocket, "control-socket", sidecar.DefaultControlSocket, "the control socket's `PATH`")
	cmd.Flags().StringVar(&o.egressAddr, "egress-listen", sidecar.DefaultEgressAddr, "the egress listener's `ADDRESS`")
	cmd.AddCommand(&cobra.Command{
		Use:   "ctl",
		Short: "Send one control request read from stdin to the sidecar; print the reply",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sidecar.Ctl(cmd.Context(), o.controlSocket, cmd.InOrStdin(), g.stdout)
		},
	}, &cobra.Command{
		Use:   "health",
		Short: "Exit 0 if the sidecar answers on its control socket, 1 otherwise",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sidecar.Health(cmd.Context(), o.controlSocket)
		},
	}, &cobra.Command{
		Use:    "git-ssh [SSH-ARGS...]",
		Short:  "The git gate's ssh for git (GIT_SSH_COMMAND): dial with the pinned host key, run the git command",
		Hidden: true,
		// git passes OpenSSH's flags (-o, -p, -4, -6); SSHMain parses them.
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return exitCode(gitgate.SSHMain(args, g.stdin, g.stdout, g.stderr))
		},
	}, &cobra.Command{
		Use:                "git-scan",
		Short:              "The git gate's secret scan of a push, run by its pre-receive hook (ref lines on stdin)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return exitCode(gitgate.ScanMain(args, g.stdin, g.stdout, g.stderr))
		},
	})
	return cmd
}

// exitCode turns a Main's exit status into the command's result: the Main
// has said everything already.
func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return silent(code)
}
