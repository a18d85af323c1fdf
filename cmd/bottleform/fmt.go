package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/renameio/v2"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/sergi/go-diff/diffmatchpatch"
	"github.com/spf13/cobra"
)

type fmtOptions struct {
	check, diff, recursive bool
	paths                  []string
}

func newFmt(g *globals) *cobra.Command {
	var o fmtOptions
	cmd := &cobra.Command{
		Use:   "fmt [PATH]...",
		Short: "Rewrite definitions in the canonical format",
		Long: `fmt rewrites *.hcl files in the canonical format (hclwrite): two-space
indents, aligned equals signs. It never touches a file with syntax errors.

Exit status: 0 when every file is formatted (or was rewritten), 3 with --check
when a file needs formatting, 1 when a file has syntax errors.`,
		RunE: func(_ *cobra.Command, args []string) error {
			o.paths = args
			return runFmt(g, o)
		},
	}
	cmd.Flags().BoolVar(&o.check, "check", false, "only check; exit 3 if a file needs formatting")
	cmd.Flags().BoolVar(&o.diff, "diff", false, "print the changes formatting makes")
	cmd.Flags().BoolVarP(&o.recursive, "recursive", "r", false, "also format the files in subdirectories")
	return cmd
}

func runFmt(g *globals, o fmtOptions) error {
	paths := o.paths
	if len(paths) == 0 {
		paths = []string{"."}
	}
	var files []string
	for _, p := range paths {
		found, err := hclFiles(g.path(p), o.recursive)
		if err != nil {
			return err
		}
		files = append(files, found...)
	}
	parser := hclparse.NewParser()
	var diags hcl.Diagnostics
	unformatted := 0
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("fmt %s: %w", name, err)
		}
		if _, d := parser.ParseHCL(src, name); d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		out := hclwrite.Format(src)
		if bytes.Equal(src, out) {
			continue
		}
		unformatted++
		fmt.Fprintln(g.stdout, name)
		if o.diff {
			fmt.Fprint(g.stdout, lineDiff(name, string(src), string(out)))
		}
		if o.check {
			continue
		}
		st, err := os.Stat(name)
		if err != nil {
			return fmt.Errorf("fmt %s: %w", name, err)
		}
		if err := renameio.WriteFile(name, out, st.Mode().Perm()); err != nil {
			return fmt.Errorf("fmt %s: %w", name, err)
		}
	}
	if err := printDiags(g, diags, parser.Files()); err != nil {
		return err
	}
	if diags.HasErrors() {
		return silent(1)
	}
	if o.check && unformatted > 0 {
		return silent(3)
	}
	return nil
}

// hclFiles lists the *.hcl files at p: p itself, or the files in the
// directory p (and below it with recursive), sorted.
func hclFiles(p string, recursive bool) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("fmt: %w", err)
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var out []string
	err = filepath.WalkDir(p, func(q string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if q != p && (!recursive || strings.HasPrefix(e.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(q, ".hcl") {
			out = append(out, q)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fmt: %w", err)
	}
	if len(out) == 0 && !recursive {
		return nil, errors.New("fmt: no *.hcl files in " + p + "; pass --recursive to look in subdirectories")
	}
	sort.Strings(out)
	return out, nil
}

// lineDiff renders a unified-style line diff of two texts.
func lineDiff(name, a, b string) string {
	dmp := diffmatchpatch.New()
	ca, cb, lines := dmp.DiffLinesToChars(a, b)
	diffs := dmp.DiffCharsToLines(dmp.DiffMain(ca, cb, false), lines)
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- old/%s\n+++ new/%s\n", name, name)
	for _, d := range diffs {
		prefix := " "
		switch d.Type {
		case diffmatchpatch.DiffDelete:
			prefix = "-"
		case diffmatchpatch.DiffInsert:
			prefix = "+"
		}
		for _, l := range strings.SplitAfter(d.Text, "\n") {
			if l == "" {
				continue
			}
			sb.WriteString(prefix + strings.TrimSuffix(l, "\n") + "\n")
		}
	}
	return sb.String()
}
