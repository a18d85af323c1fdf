package views

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bottleform/bottleform/resource"
	"github.com/sergi/go-diff/diffmatchpatch"
)

// maxInline is the longest list written on one line.
const maxInline = 70

// Context kept around changes when unchanged runs are hidden.
const (
	listContext = 1
	textContext = 2
)

// entries writes the difference between two sets of named values (the
// attributes of an object, or a map value), sorted by name, with names
// padded so that the "=" line up. A nil before shows every entry as added,
// a nil after every entry as removed. Unchanged entries are counted, not
// shown, as "# (N unchanged <noun>s hidden)". Names in forces get
// "# forces replacement".
func (p *printer) entries(indent int, before, after map[string]resource.Value, noun string, forces map[string]bool) {
	names := unionKeys(before, after)
	width := 0
	for _, n := range names {
		if !sameEntry(before, after, n) {
			width = max(width, utf8.RuneCountInString(keyText(n)))
		}
	}
	hidden := 0
	for _, n := range names {
		if sameEntry(before, after, n) {
			hidden++
			continue
		}
		head := assignHead(n, width)
		note := ""
		if forces[n] {
			note = " " + paint(p.color, ansiRed, "# forces replacement")
		}
		b, hasB := before[n]
		a, hasA := after[n]
		switch {
		case !hasB:
			p.value(indent, markCreate, head, a, note, "")
		case !hasA:
			p.value(indent, markDelete, head, b, note, " -> null")
		default:
			p.changed(indent, head, b, a, note)
		}
	}
	p.hidden(indent, hidden, noun)
}

func sameEntry(before, after map[string]resource.Value, name string) bool {
	b, hasB := before[name]
	a, hasA := after[name]
	return hasB && hasA && b.Equal(a)
}

func (p *printer) hidden(indent, n int, noun string) {
	if n == 0 {
		return
	}
	if n != 1 {
		noun += "s"
	}
	p.line(indent, markNone, fmt.Sprintf("# (%d unchanged %s hidden)", n, noun))
}

// value writes v with every line of it marked m (blank for unchanged
// values). head starts the first line and note ends it; tail ends the last.
func (p *printer) value(indent int, m mark, head string, v resource.Value, note, tail string) {
	if s, ok := inline(v); ok {
		p.line(indent, m, head+s+tail+note)
		return
	}
	switch v.Kind {
	case resource.ValueList:
		p.line(indent, m, head+"["+note)
		for _, e := range v.List {
			p.value(indent+4, m, "", e, "", ",")
		}
		p.line(indent, markNone, "]"+tail)
	case resource.ValueMap:
		p.line(indent, m, head+"{"+note)
		p.mapBody(indent+4, m, v.Map)
		p.line(indent, markNone, "}"+tail)
	default: // a multi-line string
		p.line(indent, m, head+"<<-EOT"+note)
		for _, l := range lines(v.Str) {
			p.line(indent+4, markNone, clean(l))
		}
		p.line(indent, markNone, "EOT"+tail)
	}
}

// mapBody writes every entry of a map shown whole, each marked m; removed
// entries end in "-> null".
func (p *printer) mapBody(indent int, m mark, entries map[string]resource.Value) {
	tail := ""
	if m == markDelete {
		tail = " -> null"
	}
	names := unionKeys(entries, nil)
	width := 0
	for _, n := range names {
		width = max(width, utf8.RuneCountInString(keyText(n)))
	}
	for _, n := range names {
		p.value(indent, m, assignHead(n, width), entries[n], "", tail)
	}
}

// changed writes the difference between two values of one entry: element by
// element for lists and maps, line by line for multi-line strings, and as
// "old -> new" otherwise.
func (p *printer) changed(indent int, head string, before, after resource.Value, note string) {
	switch {
	case before.Kind == resource.ValueList && after.Kind == resource.ValueList:
		p.listDiff(indent, head, before.List, after.List, note)
	case before.Kind == resource.ValueMap && after.Kind == resource.ValueMap:
		p.line(indent, markUpdate, head+"{"+note)
		p.entries(indent+4, before.Map, after.Map, "element", nil)
		p.line(indent, markNone, "}")
	case before.Kind == resource.ValueString && after.Kind == resource.ValueString &&
		(before.MultiLine() || after.MultiLine()):
		p.textDiff(indent, head, before.Str, after.Str, note)
	default:
		b, okB := inline(before)
		a, okA := inline(after)
		if okB && okA {
			p.line(indent, markUpdate, head+b+" -> "+a+note)
			return
		}
		// A change of shape: show the old value removed, the new one added.
		p.value(indent, markDelete, head, before, note, "")
		p.value(indent, markCreate, head, after, "", "")
	}
}

// listDiff writes a list element by element: added and removed elements
// marked, unchanged ones hidden beyond listContext elements of a change.
func (p *printer) listDiff(indent int, head string, before, after []resource.Value, note string) {
	p.line(indent, markUpdate, head+"["+note)
	for _, it := range collapse(diffSeq(elementKeys(before), elementKeys(after)), listContext) {
		switch {
		case it.hidden > 0:
			p.hidden(indent+4, it.hidden, "element")
		case it.kind == diffmatchpatch.DiffEqual:
			p.value(indent+4, markNone, "", before[it.a], "", ",")
		case it.kind == diffmatchpatch.DiffDelete:
			p.value(indent+4, markDelete, "", before[it.a], "", ",")
		default:
			p.value(indent+4, markCreate, "", after[it.b], "", ",")
		}
	}
	p.line(indent, markNone, "]")
}

// textDiff writes a multi-line string as a heredoc diffed line by line,
// unchanged lines hidden beyond textContext lines of a change.
func (p *printer) textDiff(indent int, head, before, after, note string) {
	bl, al := lines(before), lines(after)
	p.line(indent, markUpdate, head+"<<-EOT"+note)
	for _, it := range collapse(diffSeq(bl, al), textContext) {
		switch {
		case it.hidden > 0:
			p.hidden(indent+4, it.hidden, "line")
		case it.kind == diffmatchpatch.DiffEqual:
			p.line(indent+4, markNone, clean(bl[it.a]))
		case it.kind == diffmatchpatch.DiffDelete:
			p.line(indent+4, markDelete, clean(bl[it.a]))
		default:
			p.line(indent+4, markCreate, clean(al[it.b]))
		}
	}
	p.line(indent, markNone, "EOT")
}

// inline renders v on one line. It fails for a multi-line string, a
// non-empty map, and a list that is longer than maxInline or holds a value
// that is not inline itself.
func inline(v resource.Value) (string, bool) {
	switch v.Kind {
	case resource.ValueString:
		if v.MultiLine() {
			return "", false
		}
		return strconv.Quote(v.Str), true
	case resource.ValueExpr:
		return clean(v.Str), true
	case resource.ValueList:
		parts := make([]string, len(v.List))
		for i, e := range v.List {
			s, ok := inline(e)
			if !ok {
				return "", false
			}
			parts[i] = s
		}
		s := "[" + strings.Join(parts, ", ") + "]"
		return s, len(s) <= maxInline
	case resource.ValueMap:
		return "{}", len(v.Map) == 0
	}
	return "null", true
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// assignHead is `name = ` with the name padded to width runes.
func assignHead(name string, width int) string {
	k := keyText(name)
	return k + strings.Repeat(" ", width-utf8.RuneCountInString(k)) + " = "
}

// keyText is a map key or attribute name: bare when it is an identifier,
// quoted otherwise.
func keyText(k string) string {
	if identRe.MatchString(k) {
		return k
	}
	return strconv.Quote(k)
}

// lines splits a string into lines; a final newline ends the last line
// rather than starting an empty one.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func unionKeys(a, b map[string]resource.Value) []string {
	seen := make(map[string]bool, len(a)+len(b))
	var keys []string
	for _, m := range []map[string]resource.Value{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// clean escapes control and bidirectional-formatting characters (tabs
// excepted), so that text from a plan or a file cannot move the cursor,
// forge colour or reorder what the reader sees.
func clean(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r))
}

// CleanText is clean for text from outside (an agent's justification)
// that a command prints.
func CleanText(s string) string { return clean(s) }
