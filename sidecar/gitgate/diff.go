package gitgate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The secret scan reads text in fragments of about maxFragment bytes
// (maxCanaryFragment when only the canaries are looked for); a longer run
// of added lines (or one very long line) is cut into several, each starting
// with the last fragmentOverlap bytes of the one before, so that a secret
// shorter than the overlap (a 4096-bit RSA key in PEM is 3.2 KiB) is whole
// in at least one of them.
const (
	maxFragment       = 16 << 10
	maxCanaryFragment = 1 << 20
	fragmentOverlap   = 4 << 10
)

// builder collects a run of consecutive lines of one file and hands it to
// emit in fragments. line is the 1-based line of buf[0] in the file.
type builder struct {
	max, overlap int
	emit         func(line int, data []byte) error
	buf          []byte
	line         int
	fresh        bool // buf holds bytes not yet emitted
}

// add appends p; line is the line p starts on, used when buf is empty.
func (b *builder) add(line int, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if len(b.buf) == 0 {
		b.line = line
	}
	b.buf = append(b.buf, p...)
	b.fresh = true
	if len(b.buf) < b.max {
		return nil
	}
	if err := b.emit(b.line, b.buf); err != nil {
		return err
	}
	keep := min(b.overlap, len(b.buf))
	b.line += bytes.Count(b.buf[:len(b.buf)-keep], []byte{'\n'})
	b.buf = append(b.buf[:0], b.buf[len(b.buf)-keep:]...)
	b.fresh = false
	return nil
}

// flush emits what is left of the run and starts a new one.
func (b *builder) flush() error {
	var err error
	if b.fresh {
		err = b.emit(b.line, b.buf)
	}
	b.buf, b.fresh = b.buf[:0], false
	return err
}

// diffParser reads the output of
//
//	git -c core.quotePath=false log -p -U0 --cc --full-index --format=%x00%H ...
//
// and reports the lines each commit adds, as fragments of consecutive lines
// of one file, and the files git found binary (which have no lines).
type diffParser struct {
	// text receives each fragment of added lines: the commit, the file's
	// path, the line of data's first byte and the text (valid only during
	// the call).
	text func(commit, path string, line int, data []byte) error
	// binary receives each binary file a commit adds or changes, with the
	// id of its new blob.
	binary func(commit, path, blob string) error
	// file receives the new path of each file a commit touches.
	file func(commit, path string) error

	commit, path, blob string
	inHunk             bool
	width              int // hunk line prefix: 1, or the number of parents of a merge
	next               int // the line number in the new file of the next line that is in it
	b                  builder
}

func (p *diffParser) fragment(line int, data []byte) error {
	return p.text(p.commit, p.path, line, data)
}

// parse reads the whole diff from r.
func (p *diffParser) parse(r io.Reader) error {
	if p.b.max == 0 {
		p.b.max, p.b.overlap = maxFragment, fragmentOverlap
	}
	p.b.emit = p.fragment
	added := false
	err := eachPiece(bufio.NewReaderSize(r, 64<<10), func(piece []byte, first bool) error {
		var err error
		if first {
			added, err = p.line(piece)
		} else if added {
			// The rest of a line longer than the read buffer.
			err = p.b.add(p.next-1, piece)
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := p.b.flush(); err != nil {
		return err
	}
	return p.fileDone()
}

// eachPiece calls fn with each line read from br, in pieces of at most
// br's buffer size (the last line may lack its "\n"); first is true for
// the first piece of a line.
func eachPiece(br *bufio.Reader, fn func(piece []byte, first bool) error) error {
	first := true
	for {
		piece, err := br.ReadSlice('\n')
		more := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !more && err != io.EOF {
			return err
		}
		if len(piece) > 0 {
			if ferr := fn(piece, first); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		first = !more
	}
}

// fileDone reports the file whose section of the diff just ended.
func (p *diffParser) fileDone() error {
	path := p.path
	p.path = ""
	if path == "" || p.file == nil {
		return nil
	}
	return p.file(p.commit, path)
}

// line handles the first piece of a line of the diff; it reports whether
// the line is an added one, whose further pieces are added text too.
func (p *diffParser) line(l []byte) (bool, error) {
	switch {
	case l[0] == 0:
		// %x00%H: a commit starts.
		if err := p.b.flush(); err != nil {
			return false, err
		}
		if err := p.fileDone(); err != nil {
			return false, err
		}
		p.commit = string(bytes.TrimRight(l[1:], "\n"))
		p.blob, p.inHunk = "", false
		return false, nil
	case p.inHunk && (l[0] == '+' || l[0] == '-' || l[0] == ' ' || l[0] == '\\'):
		return p.hunkLine(l)
	}
	if p.inHunk || bytes.HasPrefix(l, []byte("diff ")) {
		if err := p.b.flush(); err != nil {
			return false, err
		}
		p.inHunk = false
	}
	s := strings.TrimRight(string(l), "\n")
	switch {
	case strings.HasPrefix(s, "diff --git "):
		if err := p.fileDone(); err != nil {
			return false, err
		}
		p.path, p.blob = diffGitPath(s[len("diff --git "):]), ""
	case strings.HasPrefix(s, "diff --cc "), strings.HasPrefix(s, "diff --combined "):
		if err := p.fileDone(); err != nil {
			return false, err
		}
		_, rest, _ := strings.Cut(s[len("diff --"):], " ")
		p.path, p.blob = headerPath(rest, ""), ""
	case strings.HasPrefix(s, "deleted file mode "):
		p.path = "" // nothing new: not reported to file
	case strings.HasPrefix(s, "rename to "):
		p.path = headerPath(s[len("rename to "):], "")
	case strings.HasPrefix(s, "copy to "):
		p.path = headerPath(s[len("copy to "):], "")
	case strings.HasPrefix(s, "+++ "):
		if rest := s[len("+++ "):]; rest != "/dev/null" {
			p.path = headerPath(rest, "b/")
		}
	case strings.HasPrefix(s, "index "):
		if _, after, ok := strings.Cut(s, ".."); ok {
			p.blob, _, _ = strings.Cut(after, " ")
		}
	case strings.HasPrefix(s, "Binary files "):
		if p.blob != "" && strings.Trim(p.blob, "0") != "" && p.binary != nil {
			return false, p.binary(p.commit, p.path, p.blob)
		}
	case strings.HasPrefix(s, "@@"):
		n := len(s) - len(strings.TrimLeft(s, "@"))
		line, err := hunkNewStart(s, n)
		if err != nil {
			return false, err
		}
		p.inHunk, p.width, p.next = true, n-1, line
	}
	return false, nil
}

// hunkLine handles a line inside a hunk: its first width bytes say, per
// parent, whether the line was added (+), removed (-) or kept (space).
func (p *diffParser) hunkLine(l []byte) (bool, error) {
	if l[0] == '\\' { // "\ No newline at end of file"
		return false, nil
	}
	if len(l) < p.width {
		return false, fmt.Errorf("diff of %s in commit %s: short hunk line", displayPath(p.path), p.commit)
	}
	pre := l[:p.width]
	switch {
	case bytes.IndexByte(pre, '-') >= 0:
		// Not in the new file: does not break a run of added lines.
		return false, nil
	case bytes.Count(pre, []byte{'+'}) == p.width:
		// New to every parent.
		p.next++
		return true, p.b.add(p.next-1, l[p.width:])
	default:
		// In the new file but taken from a parent.
		p.next++
		return false, p.b.flush()
	}
}

// hunkNewStart parses a hunk header, "@@ -a,b +c,d @@" or, for a merge of
// n-1 parents, n '@' and n-1 '-' ranges, and returns c, the new file's
// line of the hunk's first line.
func hunkNewStart(s string, n int) (int, error) {
	bad := fmt.Errorf("bad hunk header %q", s)
	if n < 2 {
		return 0, bad
	}
	// n-1 "-" ranges, the "+" range, then n '@' again.
	fields := strings.Fields(s[n:])
	if len(fields) < n+1 || fields[n] != strings.Repeat("@", n) {
		return 0, bad
	}
	for _, f := range fields[:n-1] {
		if !strings.HasPrefix(f, "-") {
			return 0, bad
		}
	}
	plus, ok := strings.CutPrefix(fields[n-1], "+")
	if !ok {
		return 0, bad
	}
	start, _, _ := strings.Cut(plus, ",")
	c, err := strconv.Atoi(start)
	if err != nil || c < 0 {
		return 0, bad
	}
	return c, nil
}

// headerPath decodes a path as git writes it in a diff header: in C-style
// double quotes when it holds a quote, backslash or control character, and
// otherwise as is, followed by a tab when it holds a space (in the ---/+++
// lines). prefix ("b/") is removed.
func headerPath(s, prefix string) string {
	if strings.HasPrefix(s, `"`) {
		if p, _, ok := cUnquote(s); ok {
			return strings.TrimPrefix(p, prefix)
		}
		return ""
	}
	return strings.TrimPrefix(strings.TrimSuffix(s, "\t"), prefix)
}

// diffGitPath is the new path of "diff --git a/OLD b/NEW" when it can be
// told; a rename's "rename to" line or the "+++" line overrides it.
func diffGitPath(s string) string {
	if strings.HasPrefix(s, `"`) {
		_, rest, ok := cUnquote(s)
		if !ok || !strings.HasPrefix(rest, " ") {
			return ""
		}
		return headerPath(rest[1:], "b/")
	}
	if strings.HasSuffix(s, `"`) {
		if i := strings.Index(s, ` "b/`); i >= 0 {
			return headerPath(s[i+1:], "b/")
		}
		return ""
	}
	// Unquoted: "a/P b/P" when old and new are the same path.
	n := (len(s) - len("a/ b/")) / 2
	if n > 0 && len(s) == 2*n+len("a/ b/") && s[:2] == "a/" && s[2+n:5+n] == " b/" && s[2:2+n] == s[5+n:] {
		return s[5+n:]
	}
	return ""
}

// cUnquote decodes a C-style quoted string at the start of s, as git's
// quote.c writes it, and returns it and what follows the closing quote.
func cUnquote(s string) (string, string, bool) {
	if !strings.HasPrefix(s, `"`) {
		return "", s, false
	}
	var out []byte
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return string(out), s[i+1:], true
		case '\\':
			i++
			if i >= len(s) {
				return "", s, false
			}
			switch e := s[i]; e {
			case 'a':
				out = append(out, '\a')
			case 'b':
				out = append(out, '\b')
			case 't':
				out = append(out, '\t')
			case 'n':
				out = append(out, '\n')
			case 'v':
				out = append(out, '\v')
			case 'f':
				out = append(out, '\f')
			case 'r':
				out = append(out, '\r')
			case '"', '\\':
				out = append(out, e)
			case '0', '1', '2', '3':
				if i+2 >= len(s) || s[i+1] < '0' || s[i+1] > '7' || s[i+2] < '0' || s[i+2] > '7' {
					return "", s, false
				}
				out = append(out, (e-'0')<<6|(s[i+1]-'0')<<3|(s[i+2]-'0'))
				i += 2
			default:
				return "", s, false
			}
		default:
			out = append(out, c)
		}
	}
	return "", s, false
}

// displayPath is p as the gate prints it: as is when it is printable UTF-8
// without quotes, else Go-quoted, so that a path cannot break or forge a
// line of the gate's messages.
func displayPath(p string) string {
	if p == "" {
		return `""`
	}
	if !utf8.ValidString(p) {
		return strconv.Quote(p)
	}
	for _, r := range p {
		if r < ' ' || r == 0x7f || r == '"' || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return strconv.Quote(p)
		}
	}
	return p
}
