package gitgate

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

type parsed struct {
	frags, binaries, files []string
}

func parseDiffText(t testing.TB, diff string, max, overlap int) (parsed, error) {
	var got parsed
	p := &diffParser{
		text: func(commit, path string, line int, data []byte) error {
			got.frags = append(got.frags, fmt.Sprintf("%s %q:%d %q", commit, path, line, data))
			return nil
		},
		binary: func(commit, path, blob string) error {
			got.binaries = append(got.binaries, fmt.Sprintf("%s %q %s", commit, path, blob))
			return nil
		},
		file: func(commit, path string) error {
			got.files = append(got.files, fmt.Sprintf("%s %q", commit, path))
			return nil
		},
	}
	p.b.max, p.b.overlap = max, overlap
	err := p.parse(strings.NewReader(diff))
	return got, err
}

func TestDiffParser(t *testing.T) {
	long := strings.Repeat("x", 100<<10) + "TAIL"
	for _, tc := range []struct {
		name, diff string
		want       parsed
	}{
		{"hunk headers", "\x00c1\n\ndiff --git a/f b/f\nindex 1111111..2222222 100644\n--- a/f\n+++ b/f\n@@ -2 +2 @@ ctx\n-old\n+new2\n@@ -5,0 +6,2 @@ five\n+six\n+seven\n",
			parsed{frags: []string{`c1 "f":2 "new2\n"`, `c1 "f":6 "six\nseven\n"`}, files: []string{`c1 "f"`}}},
		{"root commit", "\x00c0\n\ndiff --git a/r b/r\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/r\n@@ -0,0 +1,3 @@\n+a\n+b\n+c\n",
			parsed{frags: []string{`c0 "r":1 "a\nb\nc\n"`}, files: []string{`c0 "r"`}}},
		{"lines that look like headers", "\x00c1\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1,3 @@\n-x\n+++ b/g\n+--- a/h\n+diff --git a/i b/i\n",
			parsed{frags: []string{`c1 "f":1 "++ b/g\n--- a/h\ndiff --git a/i b/i\n"`}, files: []string{`c1 "f"`}}},
		{"quoted paths", "\x00c1\n\ndiff --git \"a/t\\tb\" \"b/t\\tb\"\nnew file mode 100644\n--- /dev/null\n+++ \"b/t\\tb\"\n@@ -0,0 +1 @@\n+1\n" +
			"diff --git \"a/\\303\\274\\\".txt\" \"b/\\303\\274\\\".txt\"\n--- /dev/null\n+++ \"b/\\303\\274\\\".txt\"\n@@ -0,0 +1 @@\n+2\n" +
			"diff --git a/sp ace b/sp ace\n--- a/sp ace\t\n+++ b/sp ace\t\n@@ -3,0 +4 @@\n+3\n",
			parsed{frags: []string{`c1 "t\tb":1 "1\n"`, `c1 "ü\".txt":1 "2\n"`, `c1 "sp ace":4 "3\n"`}, files: []string{`c1 "t\tb"`, `c1 "ü\".txt"`, `c1 "sp ace"`}}},
		{"quotePath=false paths", "\x00c1\ndiff --git a/ü b/ü\n--- a/ü\n+++ b/ü\n@@ -1 +1 @@\n-a\n+b\n",
			parsed{frags: []string{`c1 "ü":1 "b\n"`}, files: []string{`c1 "ü"`}}},
		{"binary", "\x00c1\n\ndiff --git a/b.bin b/b.bin\nnew file mode 100644\nindex 0000000000000000000000000000000000000000..d50dd30cc644860f8a7c0b28eaca594b389dfd0b\nBinary files /dev/null and b/b.bin differ\n" +
			"diff --git a/gone.bin b/gone.bin\ndeleted file mode 100644\nindex d50dd30cc644860f8a7c0b28eaca594b389dfd0b..0000000000000000000000000000000000000000\nBinary files a/gone.bin and /dev/null differ\n",
			parsed{binaries: []string{`c1 "b.bin" d50dd30cc644860f8a7c0b28eaca594b389dfd0b`}, files: []string{`c1 "b.bin"`}}},
		{"rename", "\x00c1\ndiff --git a/old name b/new name\nsimilarity index 68%\nrename from old name\nrename to new name\nindex 1..2 100644\n--- a/old name\t\n+++ b/new name\t\n@@ -5,0 +6 @@ x\n+added\n",
			parsed{frags: []string{`c1 "new name":6 "added\n"`}, files: []string{`c1 "new name"`}}},
		{"empty new file", "\x00c1\ndiff --git a/e b/e\nnew file mode 100644\nindex 0000000..e69de29\n\x00c2\n",
			parsed{files: []string{`c1 "e"`}}},
		{"no newline at end", "\x00c1\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n-a\n\\ No newline at end of file\n+a\n+b\n\\ No newline at end of file\n",
			parsed{frags: []string{`c1 "f":1 "a\nb\n"`}, files: []string{`c1 "f"`}}},
		{"merge", "\x00m1\n\ndiff --cc m.txt\nindex 1,2..3\n--- a/m.txt\n+++ b/m.txt\n@@@ -2,1 -2,1 +2,5 @@@\n- main\n -side\n++new1\n +main\n++new3\n++new4\n+ side\n",
			parsed{frags: []string{`m1 "m.txt":2 "new1\n"`, `m1 "m.txt":4 "new3\nnew4\n"`}, files: []string{`m1 "m.txt"`}}},
		{"octopus", "\x00m1\ndiff --cc f\n--- a/f\n+++ b/f\n@@@@ -1 -1 -1 +1,2 @@@@\n+++x\n ++y\n",
			parsed{frags: []string{`m1 "f":1 "x\n"`}, files: []string{`m1 "f"`}}},
		{"commits", "\x00c1\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n+one\n\x00c2\n\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n+two\n",
			parsed{frags: []string{`c1 "f":1 "one\n"`, `c2 "f":1 "two\n"`}, files: []string{`c1 "f"`, `c2 "f"`}}},
		{"line longer than the read buffer", "\x00c1\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n+" + long + "\n+next\n",
			parsed{frags: []string{fmt.Sprintf(`c1 "f":1 %q`, long+"\nnext\n")}, files: []string{`c1 "f"`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDiffText(t, tc.diff, 1<<20, fragmentOverlap)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"@@ -1 +x @@", "@@ -1 @@", "@@@ -1 +1 @@@", "@@ +1 -1 @@"} {
		if _, err := parseDiffText(t, "\x00c\ndiff --git a/f b/f\n"+bad+"\n", maxFragment, fragmentOverlap); err == nil {
			t.Errorf("hunk header %q parsed", bad)
		}
	}
}

// TestBuilder: a long run is cut into fragments that each say the line of
// their first byte, overlap, and together hold all of it.
func TestBuilder(t *testing.T) {
	var text bytes.Buffer
	for i := 1; i <= 200; i++ {
		fmt.Fprintf(&text, "line %d %s\n", i, strings.Repeat("-", i%13))
	}
	all := text.Bytes()
	type frag struct {
		line int
		data string
	}
	var got []frag
	b := &builder{max: 300, overlap: 40, emit: func(line int, data []byte) error {
		got = append(got, frag{line, string(data)})
		return nil
	}}
	for p := all; len(p) > 0; {
		n := min(len(p), 17) // pieces that split lines
		b.add(10, p[:n])
		p = p[n:]
	}
	b.flush()
	if len(got) < 5 {
		t.Fatalf("%d fragments", len(got))
	}
	end := 0
	for i, f := range got {
		at := bytes.Index(all, []byte(f.data))
		if at < 0 {
			t.Fatalf("fragment %d is not part of the text", i)
		}
		if want := 10 + bytes.Count(all[:at], []byte{'\n'}); f.line != want {
			t.Fatalf("fragment %d says line %d, starts on %d", i, f.line, want)
		}
		if i > 0 && at > end-40 {
			t.Fatalf("fragment %d starts at %d, overlapping the previous (ending %d) by less than 40", i, at, end)
		}
		end = at + len(f.data)
	}
	if end != len(all) {
		t.Fatalf("fragments end at %d of %d", end, len(all))
	}
}

func TestCUnquote(t *testing.T) {
	for in, want := range map[string]string{
		`"a\tb"x`: "a\tb", `"\303\274"`: "ü", `"q\"b\\s"`: `q"b\s`, `"\a\b\f\n\r\v"`: "\a\b\f\n\r\v",
	} {
		got, _, ok := cUnquote(in)
		if !ok || got != want {
			t.Errorf("cUnquote(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{`"open`, `"\x"`, `"\4"`, `"\39"`, `x`} {
		if _, _, ok := cUnquote(bad); ok {
			t.Errorf("cUnquote(%q) succeeded", bad)
		}
	}
	for in, want := range map[string]string{"a/b c": "a/b c", "a\nb": `"a\nb"`, `q"`: `"q\""`, "\xff": `"\xff"`, "ü": "ü", "": `""`} {
		if got := displayPath(in); got != want {
			t.Errorf("displayPath(%q) = %s, want %s", in, got, want)
		}
	}
}

func FuzzDiffParser(f *testing.F) {
	f.Add("\x00c1\n\ndiff --git a/f b/f\nindex 1..2 100644\n--- a/f\n+++ b/f\n@@ -2 +2 @@ ctx\n-old\n+new2\n@@ -5,0 +6,2 @@\n+six\n+seven\n")
	f.Add("\x00m1\ndiff --cc m.txt\nindex 1,2..3\n--- a/m.txt\n+++ b/m.txt\n@@@ -2,1 -2,1 +2,5 @@@\n- main\n -side\n++new1\n +main\n")
	f.Add("\x00c\ndiff --git \"a/t\\tb\" \"b/t\\tb\"\nindex 0..d5\nBinary files /dev/null and \"b/t\\tb\" differ\n")
	f.Fuzz(func(t *testing.T, diff string) {
		var total int
		p := &diffParser{
			text: func(_, _ string, line int, data []byte) error {
				if line < 0 || len(data) == 0 || len(data) > 32+len(diff) {
					t.Fatalf("fragment at line %d of %d bytes", line, len(data))
				}
				total += len(data)
				return nil
			},
			binary: func(_, _, _ string) error { return nil },
			file:   func(_, _ string) error { return nil },
		}
		p.b.max, p.b.overlap = 32, 8
		p.parse(strings.NewReader(diff))
		if total > 4*len(diff)+64 {
			t.Fatalf("%d bytes of fragments from %d bytes of diff", total, len(diff))
		}
	})
}
