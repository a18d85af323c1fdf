package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/state"
	"github.com/bottleform/bottleform/views"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// Version returns bottleform's version: the one set at build time, else the
// module version, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// exitError carries an exit code out of a command. A nil err means the
// command has already said everything it had to say.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// silent returns an error that sets the exit code and prints nothing more.
func silent(code int) error { return &exitError{code: code} }

// globals are the flags every command shares.
type globals struct {
	chdir   string
	noColor bool
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
}

// dir is the configuration directory.
func (g *globals) dir() string {
	if g.chdir == "" {
		return "."
	}
	return g.chdir
}

// color reports whether output to stdout may be coloured.
func (g *globals) color() bool {
	f, ok := g.stdout.(*os.File)
	return ok && !g.noColor && views.ColorEnabled(f)
}

func (g *globals) colorErr() bool {
	f, ok := g.stderr.(*os.File)
	return ok && !g.noColor && views.ColorEnabled(f)
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "bottleform",
		Short: "Plan and apply sandboxes for AI coding agents",
		Long: `bottleform brings up bottles: sandboxes in which AI coding agents run with only
what their owner granted. Bottles are defined in HCL files (*.hcl) kept in git;
plan shows what a change opens up, apply makes it so, destroy tears it down.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.chdir != "" {
				st, err := os.Stat(g.chdir)
				if err != nil || !st.IsDir() {
					return fmt.Errorf("--chdir %s: not a directory", g.chdir)
				}
			}
			return nil
		},
	}
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.PersistentFlags().StringVar(&g.chdir, "chdir", "", "run as if started in `DIR`")
	root.PersistentFlags().BoolVar(&g.noColor, "no-color", false, "never colour the output (NO_COLOR in the environment does the same)")
	root.AddCommand(
		newValidate(g), newFmt(g), newPlan(g), newShow(g), newApply(g), newDestroy(g),
		newState(g), newForceUnlock(g), newVersion(g), newSidecar(g),
		newStatus(g), newAttach(g), newLogs(g),
		newImport(g), newProposals(g), newVerify(g), newProbe(g),
	)
	return root
}

// Main runs bottleform with args and returns the exit code. It is the one
// place errors become messages and exit codes.
func Main(args []string) int {
	return run(args, os.Stdin, os.Stdout, os.Stderr)
}

// run is Main with its streams given, for tests that run commands in
// process.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	state.BottleformVersion = Version()
	planner.SidecarImage = "bottleform-sidecar:" + Version()
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(terraformFlags(args))
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(g.stderr, "Error: %s\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(g.stderr, "Error: %s\n", err)
	return 1
}

var singleDash = regexp.MustCompile(`^-[a-z][a-z-]+(=.*)?$`)

// terraformFlags accepts Terraform's single-dash spellings (-out=plan,
// -detailed-exitcode) by turning them into cobra's --name form. Arguments
// after "--" are left alone.
func terraformFlags(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if singleDash.MatchString(a) {
			out[i] = "-" + a
		}
	}
	return out
}

// lockInfo describes this process for the state lock.
func lockInfo(op string) state.LockInfo { return state.LockInfo{Operation: op} }

// lockFlag binds --lock-timeout.
func lockFlag(cmd *cobra.Command, d *time.Duration) {
	cmd.Flags().DurationVar(d, "lock-timeout", 0, "how long to wait for the state lock (0: fail at once if another process holds it)")
}

// abs returns p relative to the configuration directory when it is relative.
func (g *globals) path(p string) string {
	if filepath.IsAbs(p) || g.chdir == "" {
		return p
	}
	return filepath.Join(g.chdir, p)
}
