package views

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcled"
	"github.com/mitchellh/go-wordwrap"
)

// detailWidth is the column at which a diagnostic's detail is wrapped.
const detailWidth = 78

// maxSnippetLines is how many source lines a snippet shows at most.
const maxSnippetLines = 3

// Diagnostics writes diags as Terraform does: "Error: summary" (or
// "Warning:"), the file, line and enclosing block of the subject, the source
// line(s) with the subject underlined by carets when it fits on one line,
// and the detail wrapped at 78 columns. files maps a range's filename to
// its parsed file; a missing file just has no snippet. The only error is w's.
func Diagnostics(w io.Writer, diags hcl.Diagnostics, files map[string]*hcl.File, opts Options) error {
	var b strings.Builder
	for _, d := range diags {
		if d != nil {
			writeDiagnostic(&b, d, files, opts.Color)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeDiagnostic(b *strings.Builder, d *hcl.Diagnostic, files map[string]*hcl.File, color bool) {
	label, code := "Error:", ansiRed
	if d.Severity == hcl.DiagWarning {
		label, code = "Warning:", ansiYellow
	}
	fmt.Fprintf(b, "%s %s\n\n", paint(color, ansiBold+code, label), paint(color, ansiBold, clean(d.Summary)))
	if d.Subject != nil {
		writeSubject(b, *d.Subject, files[d.Subject.Filename], color)
	}
	if d.Detail != "" {
		for _, l := range strings.Split(wordwrap.WrapString(d.Detail, detailWidth), "\n") {
			b.WriteString(strings.TrimRight(clean(l), " "))
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
}

// writeSubject writes where r is and, when the source is known, the lines
// it covers.
func writeSubject(b *strings.Builder, r hcl.Range, f *hcl.File, color bool) {
	in := ""
	if f != nil {
		if c := hcled.ContextString(f, r.Start.Byte); c != "" {
			in = ", in " + clean(c)
		}
	}
	fmt.Fprintf(b, "  on %s line %d%s:\n", clean(r.Filename), r.Start.Line, in)
	if f == nil || f.Bytes == nil {
		b.WriteString("  (source code not available)\n\n")
		return
	}
	writeSnippet(b, r, f.Bytes, color)
	b.WriteByte('\n')
}

// writeSnippet writes the source lines r covers (at most maxSnippetLines),
// each behind its number, and a line of carets under r when r is on one line.
func writeSnippet(b *strings.Builder, r hcl.Range, src []byte, color bool) {
	sc := hcl.NewRangeScanner(src, r.Filename, bufio.ScanLines)
	for sc.Scan() {
		lr := sc.Range()
		if lr.Start.Line < r.Start.Line {
			continue
		}
		if lr.Start.Line > r.End.Line || lr.Start.Line >= r.Start.Line+maxSnippetLines {
			return
		}
		line := sc.Bytes()
		num := fmt.Sprintf("%4d: ", lr.Start.Line)
		b.WriteString(strings.TrimRight(num+clean(string(line)), " "))
		b.WriteByte('\n')
		if r.Start.Line == r.End.Line {
			from := clamp(r.Start.Byte-lr.Start.Byte, 0, len(line))
			to := clamp(r.End.Byte-lr.Start.Byte, from, len(line))
			fmt.Fprintf(b, "%s%s%s\n", strings.Repeat(" ", len(num)), blanks(clean(string(line[:from]))),
				paint(color, ansiRed, strings.Repeat("^", max(1, utf8.RuneCountInString(clean(string(line[from:to])))))))
			return
		}
	}
}

// blanks turns s into as many blanks as it is wide, keeping tabs as tabs so
// that carets line up under the source.
func blanks(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func clamp(n, lo, hi int) int {
	return max(lo, min(n, hi))
}

// DiagnosticsJSON writes diags in the shape of `terraform validate -json`:
// {format_version "1.0", valid, error_count, warning_count, diagnostics[]},
// each diagnostic {severity "error"|"warning", summary, detail, range?}. A
// range has filename and start and end positions {line, column, byte}: lines
// and columns count from 1, bytes from 0. The only error is w's.
func DiagnosticsJSON(w io.Writer, diags hcl.Diagnostics) error {
	doc := jsonDiagnostics{FormatVersion: diagnosticsFormatVersion, Diagnostics: []jsonDiagnostic{}}
	for _, d := range diags {
		if d == nil {
			continue
		}
		jd := jsonDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
			doc.WarningCount++
		} else {
			doc.ErrorCount++
		}
		if d.Subject != nil {
			jd.Range = &jsonRange{Filename: d.Subject.Filename, Start: jsonPos(d.Subject.Start), End: jsonPos(d.Subject.End)}
		}
		doc.Diagnostics = append(doc.Diagnostics, jd)
	}
	doc.Valid = doc.ErrorCount == 0
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		panic("views: encode diagnostics: " + err.Error()) // every field is plain data
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// diagnosticsFormatVersion is the version of DiagnosticsJSON's format,
// following the same rule as the plan's: minor is additive, major breaking.
const diagnosticsFormatVersion = "1.0"

type jsonDiagnostics struct {
	FormatVersion string           `json:"format_version"`
	Valid         bool             `json:"valid"`
	ErrorCount    int              `json:"error_count"`
	WarningCount  int              `json:"warning_count"`
	Diagnostics   []jsonDiagnostic `json:"diagnostics"`
}

type jsonDiagnostic struct {
	Severity string     `json:"severity"`
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail"`
	Range    *jsonRange `json:"range,omitempty"`
}

type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}
