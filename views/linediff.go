package views

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/bottleform/bottleform/resource"
	"github.com/sergi/go-diff/diffmatchpatch"
)

// op is one element of a sequence diff: an element of a kept (a and b
// set), removed (a set) or added (b set).
type op struct {
	kind diffmatchpatch.Operation
	a, b int
}

// diffSeq diffs two sequences of single-line strings with go-diff's line
// mode, one op per element. It sets no deadline, so the same input always
// gives the same diff.
func diffSeq(before, after []string) []op {
	dmp := diffmatchpatch.New()
	dmp.DiffTimeout = 0
	c1, c2, table := dmp.DiffLinesToChars(joinLines(before), joinLines(after))
	diffs := dmp.DiffCharsToLines(dmp.DiffMain(c1, c2, false), table)
	var ops []op
	i, j := 0, 0
	for _, d := range diffs {
		for range strings.Count(d.Text, "\n") {
			switch d.Type {
			case diffmatchpatch.DiffEqual:
				ops = append(ops, op{d.Type, i, j})
				i++
				j++
			case diffmatchpatch.DiffDelete:
				ops = append(ops, op{d.Type, i, -1})
				i++
			case diffmatchpatch.DiffInsert:
				ops = append(ops, op{d.Type, -1, j})
				j++
			}
		}
	}
	return ops
}

// joinLines ends every element with a newline, so that the last one is a
// line like the others.
func joinLines(ss []string) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.String()
}

// elementKeys gives each list element a single-line identity to diff on.
func elementKeys(vs []resource.Value) []string {
	keys := make([]string, len(vs))
	for i, v := range vs {
		b, err := json.Marshal(v) // map keys sorted, newlines escaped
		if err != nil {
			panic("views: marshal value: " + err.Error())
		}
		keys[i] = string(b)
	}
	return keys
}

// item is an op to show, or (hidden > 0) a run of unchanged elements left out.
type item struct {
	op
	hidden int
}

// collapse keeps every change and the unchanged ops within context of one,
// and replaces each other run of unchanged ops by its length.
func collapse(ops []op, context int) []item {
	keep := make([]bool, len(ops))
	last := -context - 1
	for i, o := range ops {
		if o.kind != diffmatchpatch.DiffEqual {
			last = i
		}
		keep[i] = i-last <= context
	}
	next := len(ops) + context + 1
	for i := len(ops) - 1; i >= 0; i-- {
		if ops[i].kind != diffmatchpatch.DiffEqual {
			next = i
		}
		keep[i] = keep[i] || next-i <= context
	}
	var items []item
	for i, o := range ops {
		switch {
		case keep[i]:
			items = append(items, item{op: o})
		case len(items) > 0 && items[len(items)-1].hidden > 0:
			items[len(items)-1].hidden++
		default:
			items = append(items, item{hidden: 1})
		}
	}
	return items
}

// FileDiff writes the line diff of a file's content before and after an
// edit, with three lines of context: "--- path", "+++ path", then kept
// lines indented, removed lines with "-", added lines with "+", and each
// run of unchanged lines left out as one "@@ N unchanged lines @@" line.
func FileDiff(w io.Writer, path string, before, after []byte, color bool) error {
	a := strings.Split(strings.TrimSuffix(string(before), "\n"), "\n")
	b := strings.Split(strings.TrimSuffix(string(after), "\n"), "\n")
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", path, path)
	for _, it := range collapse(diffSeq(a, b), 3) {
		switch {
		case it.hidden > 0:
			fmt.Fprintf(&out, "@@ %d unchanged lines @@\n", it.hidden)
		case it.kind == diffmatchpatch.DiffEqual:
			fmt.Fprintf(&out, " %s\n", clean(a[it.a]))
		case it.kind == diffmatchpatch.DiffDelete:
			out.WriteString(paint(color, ansiRed, "-"+clean(a[it.a])) + "\n")
		default:
			out.WriteString(paint(color, ansiGreen, "+"+clean(b[it.b])) + "\n")
		}
	}
	_, err := io.WriteString(w, out.String())
	return err
}
