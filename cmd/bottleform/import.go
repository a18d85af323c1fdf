package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/renameio/v2"
	"github.com/spf13/cobra"

	"github.com/bottleform/bottleform/importer"
)

type importOptions struct {
	out   string
	force bool
}

func newImport(g *globals) *cobra.Command {
	var o importOptions
	cmd := &cobra.Command{
		Use:   "import PATH",
		Short: "Convert bot-bottle manifests into bottle definitions",
		Long: `import converts a bot-bottle manifest (Markdown with YAML front matter), or
every *.md manifest of a directory and of its bottles/ and agents/, into one
HCL file of bottles: front matter to blocks, the Markdown body to the prompt,
"?" env entries to prompt secrets, "${VAR}" to host_env("VAR"). It reads no
secret value.

What the language cannot express is a warning on stderr and a comment at its
place in the output. The output goes to stdout, or to --out FILE, which is
never overwritten without --force.

Exit status: 0 success, warnings or not; 1 when a manifest cannot be read or
converted, with its file and line.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return runImport(g, o, args[0]) },
	}
	cmd.Flags().StringVar(&o.out, "out", "", "write the definitions to `FILE` instead of stdout")
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite the --out file if it exists")
	return cmd
}

func runImport(g *globals, o importOptions, path string) error {
	if o.force && o.out == "" {
		return errors.New("--force only applies to --out FILE")
	}
	res, err := importer.Import(g.path(path))
	var errs importer.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintf(g.stderr, "Error: %s\n", e)
		}
		return silent(1)
	}
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(g.stderr, "Warning: %s\n", w)
	}
	if o.out == "" {
		_, err := g.stdout.Write(res.HCL)
		return err
	}
	if err := writeNew(g.path(o.out), res.HCL, o.force); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Imported %s into %s (%s). Next: bottleform validate, then bottleform plan.\n",
		plural(len(res.Bottles), "bottle"), o.out, strings.Join(res.Bottles, ", "))
	return nil
}

// writeNew writes data to name, refusing to replace an existing file
// unless force is set.
func writeNew(name string, data []byte, force bool) error {
	if force {
		if err := renameio.WriteFile(name, data, 0o644); err != nil {
			return fmt.Errorf("import: write %s: %w", name, err)
		}
		return nil
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("import: %s exists; pass --force to replace it, or choose another --out", name)
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("import: write %s: %w", name, err)
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
