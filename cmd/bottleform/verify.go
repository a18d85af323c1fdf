package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/backends/docker"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
	"github.com/bottleform/bottleform/verify"
)

type verifyOptions struct {
	json      bool
	dnsName   string
	ungranted string
}

func newVerify(g *globals) *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify [BOTTLE]",
		Short: "Check from inside each bottle that it keeps its definition's promises",
		Long: `verify runs checks inside each running bottle (or BOTTLE) and prints what it
saw as evidence: the agent's proxy variables point at the gateway; it cannot
reach the sidecar's egress network or the host directly; an external name
does not resolve; the gateway refuses a host that is not granted and lets
each granted route through (intercepted ones with the bottle's CA); each git
gate answers and refuses a push its patterns do not allow; supervise
answers; and no secret the agent was not granted is in its env or in the
files under its home and /etc/bottleform (compared inside bottleform, never
printed). The network checks run in the agent, as the agent user, in a copy
of bottleform's static binary that is removed afterwards. It exits 1 if any
check fails.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			only := ""
			if len(args) == 1 {
				only = args[0]
			}
			return runVerify(cmd.Context(), g, o, only, nil)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the checks as JSON")
	cmd.Flags().StringVar(&o.dnsName, "dns-probe", "example.com", "an external `NAME` that must not resolve in the agent")
	cmd.Flags().StringVar(&o.ungranted, "ungranted-probe", "bottleform-verify.invalid", "a `HOST` the gateway must refuse")
	return cmd
}

// verifiedBottle is one bottle's checks, for --json.
type verifiedBottle struct {
	Bottle  string         `json:"bottle"`
	Backend string         `json:"backend"`
	Agent   string         `json:"agent"`
	Checks  []verify.Check `json:"checks"`
	Error   string         `json:"error,omitempty"`
}

// runVerify verifies the bottles of the state that the configuration
// still defines (only, if set; or those names when bottles is given).
func runVerify(ctx context.Context, g *globals, o verifyOptions, only string, bottles []string) error {
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	st, err := state.Open(g.dir()).Load()
	if err != nil {
		return err
	}
	if st == nil || len(st.Bottles) == 0 {
		return errors.New("no bottles are up: the state is empty; run `bottleform apply` first")
	}
	p, err := planner.Diff(cfg, st, nil, planner.Options{})
	if err != nil {
		return err
	}
	names := bottles
	if names == nil {
		for n := range st.Bottles {
			if _, ok := p.Bottles[n]; ok && (only == "" || n == only) {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	if only != "" && len(names) == 0 {
		return fmt.Errorf("bottle %q is not both defined and up (defined and applied bottles are checked); run `bottleform apply` first", only)
	}
	var refs []resource.Ref
	for _, n := range names {
		refs = append(refs, p.Bottles[n].Refs()...)
	}
	secrets, err := applier.ResolveRefs(refs, p.Secrets, secretSource(g))
	if err != nil {
		return fmt.Errorf("resolve secrets (verify compares their values with what the agent holds): %w", err)
	}
	probe, err := probeBinary()
	if err != nil {
		return err
	}
	bs := newBackendSet(g)
	defer bs.Close()
	var results []verifiedBottle
	failed := 0
	for _, name := range names {
		vb := verifiedBottle{Bottle: name, Backend: st.Bottles[name].Backend, Agent: resource.ObjectName(st.Lineage, name, "agent")}
		t, err := verifyTarget(ctx, bs, st, p.Bottles[name], secrets, probe)
		if err == nil {
			t.DNSName, t.Ungranted = o.dnsName, o.ungranted
			vb.Checks, err = verify.Run(ctx, t)
		}
		if err != nil {
			vb.Error = err.Error()
			failed++
		}
		for _, c := range vb.Checks {
			if c.Status == verify.Fail {
				failed++
			}
		}
		results = append(results, vb)
	}
	if o.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"ok": failed == 0, "bottles": results}); err != nil {
			return err
		}
	} else {
		printVerify(g, results, failed)
	}
	if failed > 0 {
		return silent(1)
	}
	return nil
}

func verifyTarget(ctx context.Context, bs *backendSet, st *state.State, spec *resource.Bottle, secrets applier.Secrets, probe string) (verify.Target, error) {
	t := verify.Target{Bottle: spec, Secrets: secrets, ProbeBinary: probe}
	switch st.Bottles[spec.Name].Backend {
	case resource.BackendDocker:
		d, err := bs.dockerBackend()
		if err != nil {
			return t, err
		}
		outside, err := d.Outside(ctx, st.Lineage, spec.Name)
		if err != nil {
			return t, err
		}
		for _, o := range outside {
			t.Direct = append(t.Direct, verify.Endpoint{Addr: o[0], What: o[1]})
		}
		t.Agent = d.AgentHandle(st.Lineage, spec.Name)
		ep := docker.DockerEndpoints
		t.Proxy, t.NoProxy, t.Gate, t.Supervise = ep.Proxy, ep.NoProxy, ep.Gate, planner.SuperviseURL
	case resource.BackendSmolmachines:
		sm, err := bs.smolBackend()
		if err != nil {
			return t, err
		}
		a, ep, err := sm.AgentFor(ctx, st.Lineage, spec.Name)
		if err != nil {
			return t, err
		}
		t.Agent = a
		t.Proxy, t.NoProxy, t.Gate, t.Supervise = ep.Proxy, ep.NoProxy, ep.Gate, ep.Supervise
		t.Direct = []verify.Endpoint{{Addr: "1.1.1.1:443", What: "an address on the internet, which the VM's allow-list must deny"}}
	default:
		return t, fmt.Errorf("backend %q cannot be verified", st.Bottles[spec.Name].Backend)
	}
	return t, nil
}

// probeBinary is the static bottleform copied into agents to probe from
// there: the sidecar's binary.
func probeBinary() (string, error) {
	if bin := os.Getenv("BOTTLEFORM_SIDECAR_BINARY"); bin != "" {
		return bin, nil
	}
	bin, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find bottleform's own binary to probe the agent with: %w", err)
	}
	return bin, nil
}

func printVerify(g *globals, results []verifiedBottle, failed int) {
	marks := map[verify.Status]string{verify.Pass: "ok  ", verify.Fail: "FAIL", verify.Skip: "skip"}
	checks := 0
	for _, r := range results {
		fmt.Fprintf(g.stdout, "bottle.%s (%s, agent %s)\n", r.Bottle, r.Backend, r.Agent)
		if r.Error != "" {
			fmt.Fprintf(g.stdout, "  FAIL could not be verified: %s\n", r.Error)
		}
		for _, c := range r.Checks {
			checks++
			fmt.Fprintf(g.stdout, "  %s %s\n       %s\n", marks[c.Status], c.Title, strings.ReplaceAll(c.Evidence, "\n", " "))
		}
		fmt.Fprintln(g.stdout)
	}
	if failed > 0 {
		fmt.Fprintf(g.stdout, "Verify failed: %d of %d check(s) in %d bottle(s) did not hold.\n", failed, checks, len(results))
		return
	}
	fmt.Fprintf(g.stdout, "Verify passed: %d check(s) in %d bottle(s).\n", checks, len(results))
}

func newProbe(g *globals) *cobra.Command {
	var tarMode bool
	cmd := &cobra.Command{
		Use:    "probe [--tar DIR...]",
		Short:  "Run verify's probes inside an agent (a request on stdin, the result on stdout)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tarMode {
				return verify.ProbeTar(args, g.stdout)
			}
			return verify.Probe(g.stdin, g.stdout)
		},
	}
	cmd.Flags().BoolVar(&tarMode, "tar", false, "write a tar of the files under DIR... instead")
	return cmd
}
