package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"github.com/google/uuid"
)

// BottleformVersion is recorded in every state file and lock this process
// writes. The CLI sets it at startup.
var BottleformVersion = "dev"

// Names inside the configuration directory.
const (
	dirName      = ".bottleform"
	fileName     = "state.json"
	backupName   = "state.json.backup"
	lockName     = "state.lock"
	lockInfoName = "state.lock.info"
)

// ErrConflict means the state file on disk is not the one the state being
// saved was loaded from: another lineage, or a newer serial written by a
// process that did not hold the lock. Save refuses rather than lose its
// changes.
var ErrConflict = errors.New("state file changed since it was loaded")

// Manager reads and writes the state of one configuration directory, in
// DIR/.bottleform/state.json. The .bottleform folder is created 0700 with
// a .gitignore that ignores everything in it; the state, backup and lock
// files are 0600.
type Manager struct {
	dir string
}

// Open returns the manager for the configuration directory dir. It does
// not touch the disk.
func Open(dir string) *Manager { return &Manager{dir: dir} }

// Path is the state file's path.
func (m *Manager) Path() string { return m.path(fileName) }

// BackupPath is where Save keeps the previous state file.
func (m *Manager) BackupPath() string { return m.path(backupName) }

func (m *Manager) path(name string) string { return filepath.Join(m.dir, dirName, name) }

// Load reads the state file. A missing file is not an error: it returns a
// nil (empty) state.
func (m *Manager) Load() (*State, error) {
	data, err := os.ReadFile(m.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load state %s: %w", m.Path(), err)
	}
	s, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("load state %s: %w", m.Path(), err)
	}
	return s, nil
}

// Save writes s as the new state file, atomically: a reader sees the old
// file or the new one, never a mix. It sets s.Lineage if empty, increments
// s.Serial and records BottleformVersion, but only once the file is in
// place; on error s is unchanged and so is the file on disk. The file it
// replaces is first copied to state.json.backup.
//
// Save refuses, with ErrConflict, to replace a file of another lineage or
// with a serial above s.Serial, and a file it cannot read. Callers hold the
// lock from Load to Save.
func (m *Manager) Save(s *State) error {
	path := m.Path()
	fail := func(err error) error { return fmt.Errorf("save state %s: %w", path, err) }
	if s == nil {
		return fail(errors.New("nil state (an empty state is &State{})"))
	}
	next := *s
	if next.Lineage == "" {
		id, err := uuid.NewRandom()
		if err != nil {
			return fail(err)
		}
		next.Lineage = id.String()
	}
	next.Serial = s.Serial + 1
	next.BottleformVersion = BottleformVersion
	data, err := encode(&next)
	if err != nil {
		return fail(err)
	}
	if err := m.ensureDir(); err != nil {
		return fail(err)
	}
	prev, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := checkReplace(prev, s); err != nil {
			return fail(err)
		}
		if err := writeAtomic(m.BackupPath(), prev); err != nil {
			return fail(fmt.Errorf("back up the previous state: %w", err))
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fail(err)
	}
	if err := writeAtomic(path, data); err != nil {
		return fail(err)
	}
	s.Lineage, s.Serial, s.BottleformVersion = next.Lineage, next.Serial, next.BottleformVersion
	return nil
}

// checkReplace reports whether the file prev may be replaced by a state
// loaded as s.
func checkReplace(prev []byte, s *State) error {
	old, err := decode(prev)
	if err != nil {
		return fmt.Errorf("the existing state file cannot be read (%v); move it away to start a new state", err)
	}
	switch {
	case old.Lineage != s.Lineage && s.Lineage == "":
		return fmt.Errorf("%w: a state file already exists (lineage %s, serial %d); load it instead of starting a new state", ErrConflict, old.Lineage, old.Serial)
	case old.Lineage != s.Lineage:
		return fmt.Errorf("%w: it is lineage %s, this state is lineage %s", ErrConflict, old.Lineage, s.Lineage)
	case old.Serial > s.Serial:
		return fmt.Errorf("%w: it has serial %d, this state was loaded at serial %d (did another bottleform run without the lock?); plan again", ErrConflict, old.Serial, s.Serial)
	}
	return nil
}

// ensureDir creates the .bottleform folder (0700) and its .gitignore if
// they are missing. The configuration directory itself must exist.
func (m *Manager) ensureDir() error {
	d := filepath.Join(m.dir, dirName)
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	f, err := os.OpenFile(filepath.Join(d, ".gitignore"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString("*\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeAtomic replaces path with data: a temporary file in the same
// folder, mode 0600, fsynced, then renamed over path.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	t, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(0o600))
	if err != nil {
		return err
	}
	defer t.Cleanup()
	if _, err := t.Write(data); err != nil {
		return err
	}
	if err := t.CloseAtomicallyReplace(); err != nil {
		return err
	}
	// Make the rename itself durable; best effort, the data is in place.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
