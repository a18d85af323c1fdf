package importer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Source is one manifest to convert.
type Source struct {
	// Path names the manifest in notes and errors; its base name without
	// .md is the bottle's name.
	Path string
	Data []byte
	// Agent marks a manifest from an agents/ directory. A manifest with a
	// `bottle` key is an agent anyway.
	Agent bool
}

// Result is the converted configuration.
type Result struct {
	// HCL is one file of secret and bottle blocks, in `bottleform fmt` form.
	HCL []byte
	// Bottles are the names of the bottles written, sorted.
	Bottles []string
	// Warnings are what could not be carried over as written, by file and
	// line. Each is also a comment in HCL at the place it concerns.
	Warnings []Note
}

// Note is a setting the importer could not carry over as written.
type Note struct {
	File string
	Line int
	Text string
}

func (n Note) String() string { return fmt.Sprintf("%s:%d: %s", n.File, n.Line, n.Text) }

// Error is a manifest problem that stops the import: one bot-bottle would
// have refused too, or one the output could not be written for.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Errors are the problems of every manifest of an import, by file and line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// maxManifest bounds a manifest read: settings and a prompt, not data.
const maxManifest = 1 << 20

// Import converts the manifest at path, or every *.md manifest of the
// directory path. Problems in the manifests are returned as Errors.
func Import(path string) (*Result, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	files := []string{path}
	if st.IsDir() {
		files = nil
		// The directory's manifests, and those of its bottles/ and agents/,
		// so that ~/.bot-bottle imports whole.
		for _, d := range []string{path, filepath.Join(path, "bottles"), filepath.Join(path, "agents")} {
			found, err := filepath.Glob(filepath.Join(d, "*.md"))
			if err != nil {
				return nil, fmt.Errorf("import %s: %w", path, err)
			}
			sort.Strings(found)
			files = append(files, found...)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("import %s: no *.md manifests in the directory or its bottles/ and agents/; give a manifest or a directory of them", path)
		}
	}
	var srcs []Source
	for _, f := range files {
		data, err := readManifest(f)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", f, err)
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", f, err)
		}
		srcs = append(srcs, Source{Path: f, Data: data, Agent: filepath.Base(filepath.Dir(abs)) == "agents"})
	}
	return Convert(srcs)
}

func readManifest(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxManifest {
		return nil, fmt.Errorf("larger than %d bytes; a manifest holds settings and a prompt", maxManifest)
	}
	return data, nil
}

// Convert converts manifests already read. Two sources may not name the
// same bottle.
func Convert(srcs []Source) (*Result, error) {
	var errs Errors
	byName := map[string]*manifest{}
	for _, src := range srcs {
		m, es := parse(src.Path, src.Data, src.Agent)
		errs = append(errs, es...)
		if m == nil {
			continue
		}
		if prev, dup := byName[m.name]; dup {
			errs = append(errs, &Error{File: src.Path, Line: 1, Msg: fmt.Sprintf("the bottle %q is also imported from %s; bottle names must be unique", m.name, prev.file)})
			continue
		}
		byName[m.name] = m
	}
	if len(errs) == 0 {
		if len(byName) == 0 {
			return nil, errors.New("import: no manifests given")
		}
		c := &converter{byName: byName, secrets: map[string]secretDecl{}}
		res := c.convert()
		if len(c.errs) == 0 {
			return res, nil
		}
		errs = c.errs
	}
	sort.SliceStable(errs, func(i, j int) bool {
		if errs[i].File != errs[j].File {
			return errs[i].File < errs[j].File
		}
		return errs[i].Line < errs[j].Line
	})
	return nil, errs
}
