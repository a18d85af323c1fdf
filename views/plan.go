package views

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
)

// Plan writes the human rendering of p to w: warnings, drift, the security
// summary, a legend of the symbols used, one block per object that changes
// and the summary line. The same plan always gives the same bytes: nothing
// depends on the terminal's width, the clock or map order. Text taken from
// the plan has its control characters escaped. The only error is w's.
func Plan(w io.Writer, p *planner.Plan, opts Options) error {
	pr := &printer{color: opts.Color}
	pr.plan(p)
	_, err := io.WriteString(w, pr.b.String())
	return err
}

// printer accumulates rendered text.
type printer struct {
	b     strings.Builder
	color bool
}

// mark is the action symbol in front of a line.
type mark string

const (
	markNone    mark = ""
	markCreate  mark = "+"
	markUpdate  mark = "~"
	markDelete  mark = "-"
	markReplace mark = "-/+"
)

func (p *printer) plan(pl *planner.Plan) {
	p.warnings(pl.Warnings)
	if !pl.HasChanges() {
		if pl.Mode == planner.ModeDestroy {
			p.b.WriteString("No objects to destroy: the state is empty.\n")
		} else {
			p.b.WriteString("No changes. Your bottles match the configuration.\n")
		}
		return
	}
	p.drift(pl.Changes)
	p.security(pl.Security)
	p.legend(pl.Changes)
	p.b.WriteString("bottleform will perform the following actions:\n\n")
	for _, c := range pl.Changes {
		if c.Action.Changes() {
			p.object(c)
		}
	}
	add, change, destroy := pl.Count()
	fmt.Fprintf(&p.b, "%s %d to add, %d to change, %d to destroy.\n",
		paint(p.color, ansiBold, "Plan:"), add, change, destroy)
}

func (p *printer) warnings(ws []planner.Warning) {
	for _, w := range ws {
		fmt.Fprintf(&p.b, "%s %s\n\n", paint(p.color, ansiBold+ansiYellow, "Warning:"), paint(p.color, ansiBold, clean(w.Summary)))
		if w.Bottle != "" {
			fmt.Fprintf(&p.b, "  in bottle %s:\n", strconv.Quote(w.Bottle))
		}
		for _, l := range strings.Split(w.Detail, "\n") {
			p.line(0, markNone, clean(l))
		}
		p.b.WriteByte('\n')
	}
}

func (p *printer) drift(cs []planner.Change) {
	first := true
	for _, c := range cs {
		if !c.Drift {
			continue
		}
		if first {
			fmt.Fprintf(&p.b, "%s\n\n", paint(p.color, ansiBold, "Note: Objects have changed outside of bottleform"))
			first = false
		}
		text := clean(c.Addr.String())
		if len(c.Reasons) > 0 {
			text += ": " + clean(strings.Join(c.Reasons, "; "))
		}
		p.line(0, markNone, text)
	}
	if !first {
		p.b.WriteByte('\n')
	}
}

func (p *printer) security(lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(&p.b, "%s\n", paint(p.color, ansiBold, "Security summary:"))
	for _, l := range lines {
		fmt.Fprintf(&p.b, "  • %s\n", clean(l))
	}
	p.b.WriteByte('\n')
}

// legend lists the symbols of the actions that occur, in a fixed order.
func (p *printer) legend(cs []planner.Change) {
	used := map[planner.Action]bool{}
	for _, c := range cs {
		used[c.Action] = true
	}
	p.b.WriteString("Resource actions are indicated with the following symbols:\n")
	for _, a := range []planner.Action{planner.Create, planner.Update, planner.Delete, planner.Replace} {
		if used[a] {
			p.line(2, actionMark(a), legendText[a])
		}
	}
	p.b.WriteByte('\n')
}

var legendText = map[planner.Action]string{
	planner.Create:  "create",
	planner.Update:  "update in-place",
	planner.Delete:  "destroy",
	planner.Replace: "destroy and then create replacement",
}

var headerText = map[planner.Action]string{
	planner.Create:  "will be created",
	planner.Update:  "will be updated in-place",
	planner.Delete:  "will be destroyed",
	planner.Replace: "must be replaced",
}

func actionMark(a planner.Action) mark {
	switch a {
	case planner.Create:
		return markCreate
	case planner.Update:
		return markUpdate
	case planner.Delete:
		return markDelete
	case planner.Replace:
		return markReplace
	}
	return markNone
}

// object writes the block of one object that changes.
func (p *printer) object(c planner.Change) {
	p.line(0, markNone, paint(p.color, ansiBold, fmt.Sprintf("# %s %s", clean(c.Addr.String()), headerText[c.Action])))
	if len(c.Reasons) > 0 {
		p.line(0, markNone, "# ("+clean(strings.Join(c.Reasons, "; "))+")")
	}
	before, after := c.Before, c.After
	switch c.Action {
	case planner.Create:
		before = nil
	case planner.Delete:
		after = nil
	}
	forces := map[string]bool{}
	for _, n := range c.ReplacePaths {
		forces[n] = true
	}
	p.line(2, actionMark(c.Action), blockLabel(c.Addr)+" {")
	p.entries(6, before, after, "attribute", forces)
	p.line(2, markNone, "}")
	p.b.WriteByte('\n')
}

// blockLabel is the block header of an object: its kind, then its key
// quoted for keyed kinds (a deploy key shows its git entry's name).
func blockLabel(a resource.Address) string {
	if a.Kind.Keyed() {
		return a.Kind.String() + " " + strconv.Quote(a.Key)
	}
	return a.Kind.String()
}

// line writes text behind m, right-aligned so that m's last character sits
// at column indent; markNone leaves those columns blank. Trailing blanks
// are trimmed.
func (p *printer) line(indent int, m mark, text string) {
	var s string
	if m == markNone {
		s = strings.Repeat(" ", indent+2) + text
	} else {
		s = strings.Repeat(" ", max(0, indent+1-len(m))) + p.paintMark(m) + " " + text
	}
	p.b.WriteString(strings.TrimRight(s, " "))
	p.b.WriteByte('\n')
}

func (p *printer) paintMark(m mark) string {
	switch m {
	case markCreate:
		return paint(p.color, ansiGreen, string(m))
	case markUpdate:
		return paint(p.color, ansiYellow, string(m))
	case markDelete:
		return paint(p.color, ansiRed, string(m))
	case markReplace:
		return paint(p.color, ansiRed, "-") + "/" + paint(p.color, ansiGreen, "+")
	}
	return string(m)
}
