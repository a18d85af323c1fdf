package main

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/views"
)

type validateOptions struct {
	json bool
}

func newValidate(g *globals) *cobra.Command {
	var o validateOptions
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the definitions without reading the host or the state",
		Long: `validate checks every *.hcl file of the directory against the bottle language.
It reads neither the state nor the host's environment, so it runs anywhere (CI
included). plan makes the checks that need the host: env variables and files.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runValidate(g, o) },
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the result as JSON")
	return cmd
}

func runValidate(g *globals, o validateOptions) error {
	_, files, diags := config.Load(g.dir(), config.Options{})
	if o.json {
		if err := views.DiagnosticsJSON(g.stdout, diags); err != nil {
			return err
		}
		if diags.HasErrors() {
			return silent(1)
		}
		return nil
	}
	if err := printDiags(g, diags, files); err != nil {
		return err
	}
	if diags.HasErrors() {
		return silent(1)
	}
	fmt.Fprintln(g.stdout, "Success! The configuration is valid.")
	return nil
}

// printDiags renders diagnostics on stderr.
func printDiags(g *globals, diags hcl.Diagnostics, files map[string]*hcl.File) error {
	if len(diags) == 0 {
		return nil
	}
	return views.Diagnostics(g.stderr, diags, files, views.Options{Color: g.colorErr()})
}

// loadConfig loads the configuration with the host checks plan and apply
// need, printing any diagnostics. It returns a silent exit error when the
// configuration has errors.
func loadConfig(g *globals) (*config.File, error) {
	cfg, files, diags := config.Load(g.dir(), config.Options{LookupEnv: lookupEnv})
	if err := printDiags(g, diags, files); err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		return nil, silent(1)
	}
	return cfg, nil
}
