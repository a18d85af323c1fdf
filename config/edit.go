package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Edit is a change to one file of a configuration, made by AddEgress or
// AddPushRef and not yet written: Write writes it.
type Edit struct {
	Path          string // the file, as found in the directory
	Before, After []byte
}

// Write replaces the file's content with After, atomically, keeping its
// mode. It refuses if the file changed since the edit was made.
func (e *Edit) Write() error {
	cur, err := os.ReadFile(e.Path)
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, e.Before) {
		return fmt.Errorf("%s changed while the edit was being made; run the command again", e.Path)
	}
	st, err := os.Stat(e.Path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(e.Path), "."+filepath.Base(e.Path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(e.After)
	if err == nil {
		err = tmp.Chmod(st.Mode().Perm())
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), e.Path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// AddEgress adds `egress "HOST" {}` to bottle's own block, after a comment
// that says why (one line per line of why). The edited configuration must
// load: if it would not, nothing is returned but the diagnostics.
func AddEgress(dir, bottle, host, why string) (*Edit, error) {
	return edit(dir, bottle, func(body *hclwrite.Body) error {
		for _, b := range body.Blocks() {
			if b.Type() == "egress" && len(b.Labels()) == 1 && b.Labels()[0] == host {
				return fmt.Errorf("bottle %q already declares egress %q", bottle, host)
			}
		}
		body.AppendNewline()
		body.AppendUnstructuredTokens(comment(why))
		body.AppendNewBlock("egress", []string{host})
		return nil
	})
}

// AddPushRef adds pattern to the push patterns of the git entry repo in
// bottle's own block, with a comment that says why above the entry's push
// attribute.
func AddPushRef(dir, bottle, repo, pattern, why string) (*Edit, error) {
	return edit(dir, bottle, func(body *hclwrite.Body) error {
		var entry *hclwrite.Block
		for _, b := range body.Blocks() {
			if b.Type() == "git" && len(b.Labels()) == 1 && b.Labels()[0] == repo {
				entry = b
			}
		}
		if entry == nil {
			return fmt.Errorf("bottle %q declares no git entry %q in its own block (is it inherited through extends? add the pattern where the entry is declared)", bottle, repo)
		}
		eb := entry.Body()
		var push []string
		if a := eb.GetAttribute("push"); a != nil {
			vals, err := stringList(a.Expr().BuildTokens(nil).Bytes())
			if err != nil {
				return fmt.Errorf("git entry %q: push is not a list of strings bottleform can edit (%v); add %q by hand", repo, err, pattern)
			}
			push = vals
		}
		if slices.Contains(push, pattern) {
			return fmt.Errorf("git entry %q of bottle %q already allows %q", repo, bottle, pattern)
		}
		push = append(push, pattern)
		sort.Strings(push)
		vals := make([]cty.Value, len(push))
		for i, p := range push {
			vals[i] = cty.StringVal(p)
		}
		eb.RemoveAttribute("push")
		eb.AppendUnstructuredTokens(comment(why))
		eb.SetAttributeValue("push", cty.ListVal(vals))
		return nil
	})
}

// stringList evaluates src, a tuple of string literals.
func stringList(src []byte) ([]string, error) {
	expr, diags := hclsyntax.ParseExpression(src, "push", hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return nil, diags
	}
	if !v.Type().IsTupleType() && !v.Type().IsListType() {
		return nil, errors.New("not a list")
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() || e.Type() != cty.String {
			return nil, errors.New("an element is not a string")
		}
		out = append(out, e.AsString())
	}
	return out, nil
}

// comment renders why as # lines.
func comment(why string) hclwrite.Tokens {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(why), "\n") {
		l = strings.Map(func(r rune) rune {
			if r < 0x20 && r != '\t' || r == 0x7f {
				return ' '
			}
			return r
		}, l)
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	return hclwrite.Tokens{{Type: hclsyntax.TokenComment, Bytes: []byte(b.String())}}
}

// edit finds the file whose top level declares bottle, applies change to
// the bottle's body, formats the result and checks that the whole
// configuration still loads (host checks off) with the change.
func edit(dir, bottle string, change func(*hclwrite.Body) error) (*Edit, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.hcl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		f, diags := hclwrite.ParseConfig(src, name, hcl.InitialPos)
		if diags.HasErrors() {
			return nil, fmt.Errorf("%s: %s", name, diags.Error())
		}
		blk := f.Body().FirstMatchingBlock("bottle", []string{bottle})
		if blk == nil {
			continue
		}
		if err := change(blk.Body()); err != nil {
			return nil, err
		}
		out := hclwrite.Format(f.Bytes())
		if err := checkLoads(dir, name, out); err != nil {
			return nil, err
		}
		return &Edit{Path: name, Before: src, After: out}, nil
	}
	return nil, fmt.Errorf("no *.hcl file in %s declares bottle %q", dir, bottle)
}

// checkLoads loads dir with path's content replaced by src.
func checkLoads(dir, path string, src []byte) error {
	if _, _, diags := Load(dir, Options{Override: map[string][]byte{path: src}}); diags.HasErrors() {
		return fmt.Errorf("the edited configuration would not load, so nothing was changed: %s", diags.Error())
	}
	return nil
}
