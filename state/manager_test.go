package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/resource"
	"github.com/google/uuid"
)

func TestLoadMissing(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string)
	}{
		{"empty directory", func(string) {}},
		{"folder without state", func(dir string) { os.Mkdir(filepath.Join(dir, dirName), 0o700) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(dir)
			s, err := Open(dir).Load()
			if s != nil || err != nil {
				t.Errorf("Load() = %+v, %v; want nil, nil", s, err)
			}
		})
	}
}

func TestLoadError(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, dirName), 0o700)
	os.WriteFile(filepath.Join(dir, dirName, fileName), []byte(`{"version": 9}`), 0o600)
	_, err := Open(dir).Load()
	want := "load state " + filepath.Join(dir, ".bottleform/state.json") + ": state format version 9 was written by a newer bottleform"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load() error %v, want prefix %q", err, want)
	}
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSave(t *testing.T) {
	defer func(v string) { BottleformVersion = v }(BottleformVersion)
	BottleformVersion = "1.2.3"

	dir := t.TempDir()
	m := Open(dir)
	s := goldenState()
	s.Lineage, s.Serial, s.BottleformVersion = "", 0, ""

	if err := m.Save(s); err != nil {
		t.Fatal(err)
	}
	if s.Serial != 1 {
		t.Errorf("serial after first save = %d, want 1", s.Serial)
	}
	id, err := uuid.Parse(s.Lineage)
	if err != nil || id.Version() != 4 {
		t.Errorf("lineage %q is not a version 4 UUID (%v)", s.Lineage, err)
	}
	if s.BottleformVersion != "1.2.3" {
		t.Errorf("bottleform version %q, want 1.2.3", s.BottleformVersion)
	}
	lineage := s.Lineage
	first := readFile(t, m.Path())
	if _, err := os.Stat(m.BackupPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("backup after the first save: %v, want none", err)
	}
	loaded, err := m.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded, s) {
		t.Errorf("Load() after Save differs from the saved state")
	}

	gitignore := filepath.Join(dir, dirName, ".gitignore")
	if got := string(readFile(t, gitignore)); got != "*\n" {
		t.Errorf(".gitignore = %q, want %q", got, "*\n")
	}
	// The user's edits to .gitignore survive.
	os.WriteFile(gitignore, []byte("*\n!notes.md\n"), 0o644)

	loaded.Remove(addr("scratch", resource.KindAgent, ""))
	if err := m.Save(loaded); err != nil {
		t.Fatal(err)
	}
	if loaded.Serial != 2 || loaded.Lineage != lineage {
		t.Errorf("after second save: serial %d lineage %s; want 2, %s", loaded.Serial, loaded.Lineage, lineage)
	}
	if got := readFile(t, m.BackupPath()); string(got) != string(first) {
		t.Errorf("backup does not hold the first state file")
	}
	again, err := m.Load()
	if err != nil {
		t.Fatal(err)
	}
	if again.Serial != 2 || again.Lookup(addr("scratch", resource.KindAgent, "")) != nil {
		t.Errorf("Load() after second save: serial %d, agent still there: %v", again.Serial, again.Lookup(addr("scratch", resource.KindAgent, "")) != nil)
	}
	if got := string(readFile(t, gitignore)); got != "*\n!notes.md\n" {
		t.Errorf(".gitignore overwritten: %q", got)
	}

	for _, c := range []struct {
		path string
		want fs.FileMode
	}{
		{filepath.Join(dir, dirName), 0o700},
		{m.Path(), 0o600},
		{m.BackupPath(), 0o600},
	} {
		if got := mode(t, c.path); got != c.want {
			t.Errorf("mode of %s = %o, want %o", c.path, got, c.want)
		}
	}

	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Join(dir, dirName))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if want := []string{".gitignore", "state.json", "state.json.backup"}; !reflect.DeepEqual(names, want) {
		t.Errorf(".bottleform holds %q, want %q", names, want)
	}
}

func TestSaveResetsMode(t *testing.T) {
	// A state file someone made world-readable is written back 0600.
	dir := t.TempDir()
	m := Open(dir)
	s := &State{}
	if err := m.Save(s); err != nil {
		t.Fatal(err)
	}
	os.Chmod(m.Path(), 0o644)
	if err := m.Save(s); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, m.Path()); got != 0o600 {
		t.Errorf("mode %o, want 600", got)
	}
}

func TestSaveFailureChangesNothing(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares dir (which holds a state saved at serial 1 when
		// saved is true) and returns the state to save.
		saved bool
		setup func(t *testing.T, dir string) (*Manager, *State)
		want  string
		is    error
	}{
		{
			name: "configuration directory is a regular file",
			setup: func(t *testing.T, dir string) (*Manager, *State) {
				file := filepath.Join(dir, "main.hcl")
				os.WriteFile(file, []byte("bottle {}"), 0o644)
				return Open(file), goldenState()
			},
			want: "not a directory",
		},
		{
			name:  "backup cannot be written",
			saved: true,
			setup: func(t *testing.T, dir string) (*Manager, *State) {
				m := Open(dir)
				os.MkdirAll(filepath.Join(m.BackupPath(), "in-the-way"), 0o700)
				s, _ := m.Load()
				return m, s
			},
			want: "back up the previous state",
		},
		{
			name:  "invalid state",
			saved: true,
			setup: func(t *testing.T, dir string) (*Manager, *State) {
				m := Open(dir)
				s, _ := m.Load()
				s.Bottles["reviewer"].Backend = "podman"
				return m, s
			},
			want: `unknown backend "podman"`,
		},
		{
			name:  "file written by another process since load",
			saved: true,
			setup: func(t *testing.T, dir string) (*Manager, *State) {
				m := Open(dir)
				stale, _ := m.Load()
				other, _ := m.Load()
				if err := m.Save(other); err != nil {
					t.Fatal(err)
				}
				return m, stale
			},
			want: "it has serial 2, this state was loaded at serial 1",
			is:   ErrConflict,
		},
		{
			name:  "new state over an existing one",
			saved: true,
			setup: func(t *testing.T, dir string) (*Manager, *State) {
				s := goldenState()
				s.Lineage, s.Serial = "", 0
				return Open(dir), s
			},
			want: "a state file already exists",
			is:   ErrConflict,
		},
		{
			name:  "another lineage",
			saved: true,
			setup: func(t *testing.T, dir string) (*Manager, *State) {
				s := goldenState()
				s.Serial = 99
				return Open(dir), s
			},
			want: "this state is lineage 6f1c2b8e-4d3a-4f7b-9e21-0c5d8a7b3e10",
			is:   ErrConflict,
		},
		{
			name:  "existing file unreadable",
			saved: true,
			setup: func(t *testing.T, dir string) (*Manager, *State) {
				m := Open(dir)
				s, _ := m.Load()
				os.WriteFile(m.Path(), []byte("{ corrupt"), 0o600)
				return m, s
			},
			want: "the existing state file cannot be read",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.saved {
				s := goldenState()
				s.Lineage, s.Serial = "", 0
				if err := Open(dir).Save(s); err != nil {
					t.Fatal(err)
				}
			}
			m, s := tt.setup(t, dir)
			before, _ := os.ReadFile(m.Path())
			lineage, serial, version := s.Lineage, s.Serial, s.BottleformVersion

			err := m.Save(s)
			if err == nil {
				t.Fatal("Save succeeded")
			}
			if prefix := "save state " + m.Path() + ": "; !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want prefix %q and %q", err, prefix, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if s.Lineage != lineage || s.Serial != serial || s.BottleformVersion != version {
				t.Errorf("failed Save changed the state: lineage %q→%q serial %d→%d", lineage, s.Lineage, serial, s.Serial)
			}
			if after, _ := os.ReadFile(m.Path()); string(after) != string(before) {
				t.Errorf("failed Save changed the state file")
			}
		})
	}
}

func TestSaveNil(t *testing.T) {
	if err := Open(t.TempDir()).Save(nil); err == nil || !strings.Contains(err.Error(), "nil state") {
		t.Errorf("Save(nil) = %v", err)
	}
}
