package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bottleform/bottleform/agent"
	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/forge"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
	"github.com/bottleform/bottleform/views"
)

type applyOptions struct {
	planFile    string
	destroy     bool
	autoApprove bool
	json        bool
	targets     []string
	replace     []string
	parallelism int
	lockTimeout time.Duration
	verify      bool
}

func newApply(g *globals) *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply [PLANFILE]",
		Short: "Make the bottles match the definitions",
		Long: `apply makes the bottles match the definitions. Without a PLANFILE it plans,
shows the plan and asks for confirmation (--auto-approve skips the question).
Given a PLANFILE saved by "plan --out", it carries out exactly that plan, and
refuses it if the state or the definitions moved since it was made.

The state is saved after every step. Ctrl-C finishes the step in flight, saves
the state and stops; apply again to finish. With --verify it then runs
"bottleform verify" on every bottle.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.planFile = args[0]
			}
			if err := runApply(g, o); err != nil || !o.verify {
				return err
			}
			if !o.json {
				fmt.Fprintln(g.stdout)
			}
			return runVerify(cmd.Context(), g, verifyOptions{json: o.json, dnsName: "example.com", ungranted: "bottleform-verify.invalid"}, "", nil)
		},
	}
	applyFlags(cmd, &o)
	cmd.Flags().StringArrayVar(&o.replace, "replace", nil, "replace `ADDR` even if it has not changed (repeatable)")
	cmd.Flags().BoolVar(&o.verify, "verify", false, "after applying, run `bottleform verify` on every bottle; exit 1 if a check fails")
	return cmd
}

func newDestroy(g *globals) *cobra.Command {
	o := applyOptions{destroy: true}
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Tear down the bottles in the state and revoke the keys it minted",
		Long: `destroy tears down every bottle in the state (or those --target names): the
containers first, then the minted deploy keys are revoked, then the networks.
A key whose revocation fails stays in the state, and destroy exits non-zero,
so running it again finishes the job.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runApply(g, o) },
	}
	applyFlags(cmd, &o)
	return cmd
}

func applyFlags(cmd *cobra.Command, o *applyOptions) {
	f := cmd.Flags()
	f.BoolVar(&o.autoApprove, "auto-approve", false, "do not ask for confirmation")
	f.BoolVar(&o.json, "json", false, "stream progress as JSON, one event per line (implies no question: use with --auto-approve or a plan file)")
	f.StringArrayVar(&o.targets, "target", nil, "limit to `ADDR` and what it needs (repeatable)")
	f.IntVar(&o.parallelism, "parallelism", 4, "how many bottles to work on at once")
	lockFlag(cmd, &o.lockTimeout)
}

func runApply(g *globals, o applyOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mode := planner.ModeNormal
	if o.destroy {
		mode = planner.ModeDestroy
	}
	var cfg *config.File
	var saved *planner.Plan
	var err error
	if o.planFile != "" {
		if len(o.targets) > 0 || len(o.replace) > 0 {
			return errors.New("--target and --replace belong to the plan; they cannot be given with a saved plan")
		}
		if saved, err = readPlan(g, o.planFile); err != nil {
			return err
		}
		mode = saved.Mode
	}
	if mode == planner.ModeNormal {
		if cfg, err = loadConfig(g); err != nil {
			return err
		}
	}

	mgr := state.Open(g.dir())
	op := "apply"
	if mode == planner.ModeDestroy {
		op = "destroy"
	}
	lock, err := mgr.Lock(ctx, lockInfo(op), o.lockTimeout)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	prior, err := mgr.Load()
	if err != nil {
		return err
	}
	bs := newBackendSet(g)
	defer bs.Close()

	p := saved
	if p != nil {
		var lineage, digest string
		var serial uint64
		if prior != nil {
			lineage, serial = prior.Lineage, prior.Serial
		}
		if cfg != nil {
			digest = cfg.Digest
		}
		if why := planner.Stale(p, lineage, serial, digest); why != "" {
			return fmt.Errorf("the saved plan %s is stale: %s; run `bottleform plan --out %s` again", o.planFile, why, o.planFile)
		}
	} else {
		observed, err := bs.Observe(ctx, prior)
		if err != nil {
			return err
		}
		opts := planner.Options{Mode: mode}
		if opts.Targets, err = parseAddrs("--target", o.targets); err != nil {
			return err
		}
		if opts.Replace, err = parseAddrs("--replace", o.replace); err != nil {
			return err
		}
		if p, err = planner.Diff(cfg, prior, observed, opts); err != nil {
			return err
		}
		if !o.json {
			if err := views.Plan(g.stdout, p, views.Options{Color: g.color()}); err != nil {
				return err
			}
		}
		if !p.HasChanges() {
			return nil
		}
		if !o.autoApprove {
			if err := confirm(g, mode); err != nil {
				return err
			}
		}
	}
	if !p.HasChanges() {
		fmt.Fprintln(g.stdout, "No changes. Your bottles match the configuration.")
		return nil
	}

	secrets, err := applier.Resolve(p, secretSource(g))
	if err != nil {
		return fmt.Errorf("resolve secrets (nothing was changed): %w", err)
	}
	backends, err := bs.For(ctx, p, prior)
	if err != nil {
		return err
	}
	var hook applier.Hook
	jsonView := &views.ApplyJSON{W: g.stdout}
	if o.json {
		hook = jsonView
	} else {
		fmt.Fprintln(g.stdout)
		hook = &views.ApplyHuman{W: g.stdout, Color: g.color()}
	}
	final, applyErr := applier.Apply(ctx, p, prior, mgr, applier.Options{
		Backends:    backends,
		Keys:        &forge.DeployKeys{},
		Parallelism: o.parallelism,
		Hook:        hook,
		Secrets:     secrets,
		Checkpoint:  testCheckpoint(),
	})
	add, change, destroy := p.Count()
	summary := fmt.Sprintf("Apply complete! Objects: %d added, %d changed, %d destroyed.", add, change, destroy)
	if mode == planner.ModeDestroy {
		summary = fmt.Sprintf("Destroy complete! Objects: %d destroyed.", destroy)
	}
	if applyErr != nil {
		if errors.Is(applyErr, applier.ErrInterrupted) {
			return fmt.Errorf("%w\nThe state records every step that finished (serial %d); run `bottleform %s` again to finish", applyErr, final.Serial, op)
		}
		return fmt.Errorf("%w\nThe state records every step that finished; fix the cause and run `bottleform %s` again", applyErr, op)
	}
	if o.json {
		jsonView.Event("summary", summary)
	} else {
		fmt.Fprintf(g.stdout, "\n%s\n", summary)
	}
	return nil
}

// confirm asks before applying. Without a terminal it refuses rather than
// guess.
func confirm(g *globals, mode planner.Mode) error {
	in, ok := g.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return errors.New("apply needs confirmation: run it in a terminal, pass --auto-approve, or apply a saved plan (plan --out FILE, then apply FILE)")
	}
	what := "perform these actions"
	if mode == planner.ModeDestroy {
		what = "destroy these bottles and revoke their keys"
	}
	fmt.Fprintf(g.stdout, "\nDo you want to %s?\n  Only 'yes' will be accepted.\n\n  Enter a value: ", what)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if strings.TrimSpace(line) != "yes" {
		return &exitError{code: 1, err: errors.New("apply cancelled; nothing was changed")}
	}
	return nil
}

// secretSource reads secrets from this process's environment, the host's
// files (a provider's login among them: codex's ~/.codex/auth.json) and
// the terminal.
func secretSource(g *globals) applier.Source {
	src := applier.Source{LookupEnv: lookupEnv, ReadFile: os.ReadFile, Dir: g.dir()}
	src.HostCredential = func(provider string) (resource.Secret, error) {
		return agent.ReadHostCredential(provider, agent.Host{LookupEnv: lookupEnv, ReadFile: os.ReadFile, Now: time.Now})
	}
	if in, ok := g.stdin.(*os.File); ok && term.IsTerminal(int(in.Fd())) {
		src.Prompt = func(text string) (string, error) {
			fmt.Fprintf(g.stderr, "%s: ", text)
			b, err := term.ReadPassword(int(in.Fd()))
			fmt.Fprintln(g.stderr)
			return string(b), err
		}
	}
	return src
}

// testCheckpoint kills this process with SIGKILL at the Nth checkpoint of
// an apply when BOTTLEFORM_TEST_KILL_AT=N is set, and appends every
// checkpoint's name to BOTTLEFORM_TEST_CHECKPOINTS when that names a file.
// It exists for the crash-safety tests, which prove an apply killed at any
// step is finished by the next.
func testCheckpoint() func(string) {
	killAt := 0
	fmt.Sscan(os.Getenv("BOTTLEFORM_TEST_KILL_AT"), &killAt)
	logPath := os.Getenv("BOTTLEFORM_TEST_CHECKPOINTS")
	if killAt == 0 && logPath == "" {
		return nil
	}
	n := 0
	return func(point string) {
		n++
		if logPath != "" {
			if f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
				fmt.Fprintln(f, point)
				f.Close()
			}
		}
		if n == killAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // wait for the signal
		}
	}
}
