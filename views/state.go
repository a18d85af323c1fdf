package views

import (
	"fmt"
	"io"
	"sort"
	"unicode/utf8"

	"github.com/bottleform/bottleform/state"
)

// Resource writes one object of the state as a block: its attributes, then
// the backend's identifiers as comments.
func Resource(w io.Writer, r *state.Resource, opts Options) error {
	p := &printer{color: opts.Color}
	p.resource(r)
	_, err := io.WriteString(w, p.b.String())
	return err
}

// State writes every object of s, sorted by address, or a line saying the
// state is empty.
func State(w io.Writer, s *state.State, opts Options) error {
	p := &printer{color: opts.Color}
	rs := s.Resources()
	if len(rs) == 0 {
		p.b.WriteString("The state is empty: nothing is live.\n")
	}
	for i, r := range rs {
		if i > 0 {
			p.b.WriteByte('\n')
		}
		p.resource(r)
	}
	_, err := io.WriteString(w, p.b.String())
	return err
}

func (p *printer) resource(r *state.Resource) {
	p.line(0, markNone, paint(p.color, ansiBold, "# "+clean(r.Addr.String())+":"))
	p.line(0, markNone, blockLabel(r.Addr)+" {")
	names := r.Attrs.Names()
	width := 0
	for _, n := range names {
		width = max(width, utf8.RuneCountInString(keyText(n)))
	}
	for _, n := range names {
		p.value(4, markNone, assignHead(n, width), r.Attrs[n], "", "")
	}
	ids := make([]string, 0, len(r.IDs))
	for k := range r.IDs {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	for _, k := range ids {
		p.line(4, markNone, clean(fmt.Sprintf("# %s: %s", k, r.IDs[k])))
	}
	p.line(0, markNone, "}")
}
