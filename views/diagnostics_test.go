package views_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/bottleform/bottleform/views"
)

const badFile = "examples/bad/main.hcl"

// badSrc has a missing comma on line 5.
const badSrc = `bottle "reviewer" {
  image = "ghcr.io/acme/claude-agent:2.1"

  egress "api.github.com" {
    paths = ["/repos/acme/app/" "/repos/acme/app/pulls/"]
  }
}
`

const typoFile = "examples/typo/main.hcl"

// typoSrc parses, but config would reject the block type on line 3.
const typoSrc = "bottle \"reviewer\" {\n  image = \"ghcr.io/acme/claude-agent:2.1\"\n\tegres \"api.github.com\" {}\n}\n"

// parsed returns the parse diagnostics of badSrc, a warning the way config
// would report the typo in typoSrc, and both files.
func parsed(t *testing.T) (hcl.Diagnostics, map[string]*hcl.File) {
	t.Helper()
	bad, diags := hclsyntax.ParseConfig([]byte(badSrc), badFile, hcl.InitialPos)
	if !diags.HasErrors() {
		t.Fatal("badSrc parsed without errors")
	}
	typo, tdiags := hclsyntax.ParseConfig([]byte(typoSrc), typoFile, hcl.InitialPos)
	if tdiags.HasErrors() {
		t.Fatal(tdiags)
	}
	block := typo.Body.(*hclsyntax.Body).Blocks[0].Body.Blocks[0]
	diags = append(diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  "Unsupported block type",
		Detail: `Blocks of type "egres" are not expected here. Did you mean "egress"? ` +
			`This warning is long on purpose, so that the detail has to be wrapped at seventy-eight columns.`,
		Subject: block.TypeRange.Ptr(),
	})
	return diags, map[string]*hcl.File{badFile: bad, typoFile: typo}
}

func TestDiagnostics(t *testing.T) {
	diags, files := parsed(t)
	var buf bytes.Buffer
	if err := views.Diagnostics(&buf, diags, files, views.Options{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"Error: Missing item separator\n\n",
		"  on examples/bad/main.hcl line 5, in bottle \"reviewer\":\n",
		"   5:     paths = [\"/repos/acme/app/\" \"/repos/acme/app/pulls/\"]\n" +
			strings.Repeat(" ", len("   5: ")+32) + "^\n",
		"Warning: Unsupported block type\n\n  on examples/typo/main.hcl line 3, in bottle \"reviewer\":\n",
		"   3: \tegres \"api.github.com\" {}\n      \t^^^^^\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 78 && !strings.HasPrefix(l, "   ") {
			t.Errorf("line longer than 78 columns: %q", l)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("colour off, output has an escape byte")
	}
	golden(t, "diagnostics.golden", buf.Bytes())

	buf.Reset()
	if err := views.Diagnostics(&buf, diags, files, views.Options{Color: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\x1b") {
		t.Error("colour on, output has no escape byte")
	}
}

func TestDiagnosticsWithoutSource(t *testing.T) {
	diags, _ := parsed(t)
	var buf bytes.Buffer
	if err := views.Diagnostics(&buf, diags[:1], nil, views.Options{}); err != nil {
		t.Fatal(err)
	}
	want := "  on examples/bad/main.hcl line 5:\n  (source code not available)\n"
	if !strings.Contains(buf.String(), want) {
		t.Errorf("output lacks %q\n%s", want, buf.String())
	}
}

func TestDiagnosticsJSON(t *testing.T) {
	diags, _ := parsed(t)
	var buf bytes.Buffer
	if err := views.DiagnosticsJSON(&buf, diags); err != nil {
		t.Fatal(err)
	}
	golden(t, "diagnostics.json.golden", buf.Bytes())
	type pos struct{ Line, Column, Byte int }
	var doc struct {
		FormatVersion string `json:"format_version"`
		Valid         bool
		ErrorCount    int `json:"error_count"`
		WarningCount  int `json:"warning_count"`
		Diagnostics   []struct {
			Severity string
			Summary  string
			Range    struct {
				Filename   string
				Start, End pos
			}
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.FormatVersion != "1.0" || doc.Valid || doc.ErrorCount != len(diags)-1 || doc.WarningCount != 1 {
		t.Errorf("header = %q valid %v, %d errors, %d warnings", doc.FormatVersion, doc.Valid, doc.ErrorCount, doc.WarningCount)
	}
	first := doc.Diagnostics[0]
	if first.Severity != "error" || first.Range.Filename != badFile || first.Range.Start.Line != 5 || first.Range.Start.Column != 33 {
		t.Errorf("first diagnostic = %+v, want an error at %s:5:33", first, badFile)
	}
	last := doc.Diagnostics[len(doc.Diagnostics)-1]
	if last.Severity != "warning" || last.Range.Start != (pos{3, 2, 63}) || last.Range.End != (pos{3, 7, 68}) {
		t.Errorf("last diagnostic = %+v, want a warning at %s:3:2-7", last, typoFile)
	}

	buf.Reset()
	if err := views.DiagnosticsJSON(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"valid": true`) || !strings.Contains(buf.String(), `"diagnostics": []`) {
		t.Errorf("no diagnostics:\n%s", buf.String())
	}
}
