package importer

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// frontMatter splits a manifest into its YAML front matter and its
// Markdown body. offset is the number of file lines before the YAML text,
// so YAML line n is file line n+offset.
func frontMatter(file string, data []byte) (yamlText string, offset int, body string, err *Error) {
	text := strings.TrimPrefix(string(data), "\ufeff")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	lines := strings.SplitAfter(text, "\n")
	if len(lines) == 0 || strings.TrimRight(lines[0], " \t\n") != "---" {
		return "", 0, "", &Error{File: file, Line: 1, Msg: "no front matter: a bot-bottle manifest starts with a line \"---\", then its YAML settings, then \"---\" and the prompt"}
	}
	for i := 1; i < len(lines); i++ {
		if l := strings.TrimRight(lines[i], " \t\n"); l == "---" || l == "..." {
			return strings.Join(lines[1:i], ""), 1, strings.Join(lines[i+1:], ""), nil
		}
	}
	return "", 0, "", &Error{File: file, Line: 1, Msg: "the front matter opened on line 1 is never closed: end the YAML with a line \"---\""}
}

var yamlPosRe = regexp.MustCompile(`\[\d+:\d+\]`)

// entry is one key of a YAML mapping.
type entry struct {
	key  string
	line int      // the key's line in the file
	val  ast.Node // resolved (anchors, aliases and tags followed); nil when empty
}

// yamlReader reads a front matter's YAML AST, giving file lines and
// collecting errors. It follows the schema of the caller, so aliases are
// expanded only as deep as the schema goes.
type yamlReader struct {
	file    string
	offset  int
	anchors map[string]ast.Node
	errs    []*Error
}

// parseYAML parses the front matter and returns its top-level mapping.
func (r *yamlReader) parseYAML(text string) ([]entry, bool) {
	f, err := parser.ParseBytes([]byte(text), 0)
	if err != nil {
		line, msg := 1, err.Error()
		var se *yaml.SyntaxError
		if errors.As(err, &se) {
			msg = se.Message
			if se.Token != nil && se.Token.Position != nil {
				line = se.Token.Position.Line
			}
		}
		// Positions in the message are the YAML's; name file lines.
		msg = yamlPosRe.ReplaceAllStringFunc(msg, func(p string) string {
			var l, col int
			fmt.Sscanf(p, "[%d:%d]", &l, &col)
			return fmt.Sprintf("line %d", l+r.offset)
		})
		r.errorf(line+r.offset, "invalid YAML in the front matter: %s", msg)
		return nil, false
	}
	r.anchors = map[string]ast.Node{}
	var body ast.Node
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if body != nil {
			r.errorf(r.line(d.Body, 1), "the front matter holds more than one YAML document; keep one")
			return nil, false
		}
		body = d.Body
		ast.Walk(anchorVisitor(r.anchors), d.Body)
	}
	return r.mapping(body, "the front matter", 1+r.offset)
}

type anchorVisitor map[string]ast.Node

func (v anchorVisitor) Visit(n ast.Node) ast.Visitor {
	if a, ok := n.(*ast.AnchorNode); ok && a.Name != nil && a.Name.GetToken() != nil {
		v[a.Name.GetToken().Value] = a.Value
	}
	return v
}

func (r *yamlReader) errorf(line int, format string, args ...any) {
	r.errs = append(r.errs, &Error{File: r.file, Line: line, Msg: printable(fmt.Sprintf(format, args...))})
}

// line is n's line in the file, or fallback when n has no position.
func (r *yamlReader) line(n ast.Node, fallback int) int {
	if n == nil {
		return fallback
	}
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 {
		n = m.Values[0].Key
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return fallback
	}
	return tk.Position.Line + r.offset
}

// resolve follows tags, anchors and aliases to the node they stand for.
func (r *yamlReader) resolve(n ast.Node) ast.Node {
	for range 64 {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			if v.Value == nil || v.Value.GetToken() == nil {
				return nil
			}
			n = r.anchors[v.Value.GetToken().Value]
		default:
			return n
		}
	}
	return nil
}

// mapping reads n as a mapping; an empty value is an empty mapping.
func (r *yamlReader) mapping(n ast.Node, what string, line int) ([]entry, bool) {
	n = r.resolve(n)
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case nil, *ast.NullNode:
		return nil, true
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		r.errorf(r.line(n, line), "%s must be a mapping of key: value lines, not %s", what, kind(n))
		return nil, false
	}
	var out []entry
	seen := map[string]int{}
	ok := true
	for _, mv := range values {
		kl := r.line(mv.Key, line)
		if _, merge := mv.Key.(*ast.MergeKeyNode); merge {
			r.errorf(kl, "%s: YAML merge keys (<<) are not supported; write the keys out", what)
			ok = false
			continue
		}
		key, good := scalar(r.resolve(mv.Key))
		if !good {
			r.errorf(kl, "%s: a key must be a plain word", what)
			ok = false
			continue
		}
		if prev, dup := seen[key]; dup {
			r.errorf(kl, "%s: the key %q appears twice (first on line %d); keep one", what, key, prev)
			ok = false
			continue
		}
		seen[key] = kl
		out = append(out, entry{key: key, line: kl, val: r.resolve(mv.Value)})
	}
	return out, ok
}

// list reads n as a sequence; an empty value is an empty list.
func (r *yamlReader) list(n ast.Node, what string, line int) ([]ast.Node, bool) {
	switch s := r.resolve(n).(type) {
	case nil, *ast.NullNode:
		return nil, true
	case *ast.SequenceNode:
		out := make([]ast.Node, len(s.Values))
		for i, v := range s.Values {
			out[i] = r.resolve(v)
		}
		return out, true
	default:
		r.errorf(r.line(s, line), "%s must be a list, not %s", what, kind(s))
		return nil, false
	}
}

// str reads n as a string; any scalar but null is taken as written.
func (r *yamlReader) str(n ast.Node, what string, line int) (text, bool) {
	n = r.resolve(n)
	s, ok := scalar(n)
	if !ok {
		r.errorf(r.line(n, line), "%s must be a string, not %s", what, kind(n))
		return text{}, false
	}
	return text{s: s, line: r.line(n, line)}, true
}

// strs reads n as a list of strings.
func (r *yamlReader) strs(n ast.Node, what string, line int) ([]text, bool) {
	items, ok := r.list(n, what, line)
	var out []text
	for i, it := range items {
		t, good := r.str(it, fmt.Sprintf("%s[%d]", what, i), line)
		ok = ok && good
		if good {
			out = append(out, t)
		}
	}
	return out, ok
}

// boolean reads n as true or false.
func (r *yamlReader) boolean(n ast.Node, what string, line int) (flag, bool) {
	b, ok := r.resolve(n).(*ast.BoolNode)
	if !ok {
		r.errorf(r.line(n, line), "%s must be true or false, not %s", what, kind(r.resolve(n)))
		return flag{}, false
	}
	return flag{v: b.Value, line: r.line(b, line)}, true
}

// scalar is the text of a scalar node as written, without quotes.
func scalar(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true
		}
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, true
	}
	return "", false
}

// kind names a node's type for messages.
func kind(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "empty"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	}
	return "a " + n.Type().String()
}
