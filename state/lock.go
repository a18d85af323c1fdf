package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"github.com/google/uuid"
)

// lockRetry is how often Lock tries again while it waits.
const lockRetry = 50 * time.Millisecond

// ErrLocked is what the error from Lock matches (errors.Is) when another
// process holds the lock. errors.As with *LockedError gives the holder.
var ErrLocked = errors.New("state is locked")

// LockInfo describes the holder of the state lock. The holder writes it to
// .bottleform/state.lock.info (mode 0600) for others to read.
type LockInfo struct {
	// ID identifies this holding of the lock; force-unlock takes it.
	ID string `json:"id"`
	// Operation is the command holding the lock: "plan", "apply", ...
	Operation string `json:"operation"`
	// Who is user@host.
	Who     string    `json:"who"`
	PID     int       `json:"pid"`
	Version string    `json:"version"`
	Created time.Time `json:"created"`
}

// LockedError is the error Lock returns when the lock stays held. It
// unwraps to ErrLocked.
type LockedError struct {
	// Info is the holder as its info file records it; zero if the holder
	// has not recorded itself (yet).
	Info LockInfo
	// Waited is how long Lock retried; zero for a single try.
	Waited time.Duration
}

func (e *LockedError) Error() string {
	var b strings.Builder
	i := e.Info
	if i.ID == "" {
		b.WriteString("state is locked by another process, which has not recorded who it is")
	} else {
		b.WriteString("state is locked by ")
		b.WriteString(describe(i))
		b.WriteString(", lock ID ")
		b.WriteString(i.ID)
	}
	retry := "retry with --lock-timeout"
	if e.Waited > 0 {
		fmt.Fprintf(&b, "; still locked after %s", e.Waited)
		retry = "retry with a longer --lock-timeout"
	}
	if i.ID == "" {
		fmt.Fprintf(&b, "; wait for it to finish or %s", retry)
		return b.String()
	}
	fmt.Fprintf(&b, "; wait for it to finish, %s, or run \"bottleform force-unlock %s\" if that process is gone", retry, i.ID)
	return b.String()
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// describe names a holder: plan (pid 4121, root@host) since 2026-11-27T12:03:00Z.
func describe(i LockInfo) string {
	op := i.Operation
	if op == "" {
		op = "an unnamed operation"
	}
	return fmt.Sprintf("%s (pid %d, %s) since %s", op, i.PID, i.Who, i.Created.UTC().Format(time.RFC3339))
}

// Lock is a held state lock. It is an advisory kernel lock (flock(2)) on
// .bottleform/state.lock, so the kernel releases it when the holder dies,
// even by kill -9.
type Lock struct {
	mu       sync.Mutex
	fl       *flock.Flock // nil once released
	infoPath string
	info     LockInfo
}

// Lock takes the state lock for an operation described by info, whose zero
// ID, Who, PID, Version and Created Lock fills in. While another process
// holds the lock it retries until timeout has passed (0: one try) and then
// returns a *LockedError; it returns early with ctx's error. A stale info
// file left by a holder that died does not block it.
func (m *Manager) Lock(ctx context.Context, info LockInfo, timeout time.Duration) (*Lock, error) {
	lockPath, infoPath := m.path(lockName), m.path(lockInfoName)
	fail := func(err error) error { return fmt.Errorf("lock state %s: %w", lockPath, err) }
	if err := ctx.Err(); err != nil {
		return nil, fail(err)
	}
	if err := m.ensureDir(); err != nil {
		return nil, fail(err)
	}
	fl := flock.New(lockPath, flock.SetPermissions(0o600))
	start := time.Now()
	for {
		ok, err := tryLock(fl)
		if err != nil {
			return nil, fail(err)
		}
		if ok {
			break
		}
		waited := time.Since(start)
		if waited >= timeout {
			holder := holderInfo(infoPath)
			if timeout <= 0 {
				waited = 0
			}
			return nil, &LockedError{Info: holder, Waited: waited.Round(time.Millisecond)}
		}
		t := time.NewTimer(min(lockRetry, timeout-waited))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fail(ctx.Err())
		case <-t.C:
		}
	}
	if err := fillInfo(&info); err != nil {
		_ = fl.Unlock()
		return nil, fail(err)
	}
	data, err := json.MarshalIndent(info, "", "  ")
	if err == nil {
		err = writeAtomic(infoPath, append(data, '\n'))
	}
	if err != nil {
		_ = fl.Unlock()
		return nil, fail(fmt.Errorf("record the holder: %w", err))
	}
	return &Lock{fl: fl, infoPath: infoPath, info: info}, nil
}

// tryLock takes fl without waiting. It holds only a lock on the file that
// is at fl's path now: if the file was removed or replaced (ForceUnlock)
// between open and lock, it tries the new one.
func tryLock(fl *flock.Flock) (bool, error) {
	for range 10 {
		ok, err := fl.TryLock()
		if err != nil || !ok {
			return false, err
		}
		held, err := fl.Stat()
		if err != nil {
			_ = fl.Unlock()
			return false, err
		}
		if cur, err := os.Stat(fl.Path()); err == nil && os.SameFile(held, cur) {
			return true, nil
		}
		_ = fl.Unlock()
	}
	return false, errors.New("the lock file keeps being replaced")
}

func fillInfo(i *LockInfo) error {
	if i.ID == "" {
		id, err := uuid.NewRandom()
		if err != nil {
			return err
		}
		i.ID = id.String()
	}
	if i.Who == "" {
		i.Who = who()
	}
	if i.PID == 0 {
		i.PID = os.Getpid()
	}
	if i.Version == "" {
		i.Version = BottleformVersion
	}
	if i.Created.IsZero() {
		i.Created = time.Now().UTC().Truncate(time.Second)
	}
	return nil
}

// who returns user@host for this process.
func who() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return name + "@" + host
}

// holderGrace is how long a process that found the lock taken waits for
// the holder to record who it is.
const holderGrace = 500 * time.Millisecond

// holderInfo reads who holds the lock, for the error of a process that did
// not get it. The holder records itself just after it takes the lock, so
// a process that lost the race by an instant would find no record yet:
// it waits up to holderGrace for one.
func holderInfo(path string) LockInfo {
	deadline := time.Now().Add(holderGrace)
	for {
		i, err := readInfo(path)
		if (err == nil && i.ID != "") || time.Now().After(deadline) {
			return i
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readInfo(path string) (LockInfo, error) {
	var i LockInfo
	data, err := os.ReadFile(path)
	if err != nil {
		return i, err
	}
	if err := json.Unmarshal(data, &i); err != nil {
		return LockInfo{}, fmt.Errorf("read %s: %w", path, err)
	}
	return i, nil
}

// Info returns the holder information this lock recorded.
func (l *Lock) Info() LockInfo { return l.info }

// Unlock removes the info file and releases the lock. Calling it again is
// a no-op returning nil.
func (l *Lock) Unlock() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fl == nil {
		return nil
	}
	path := l.fl.Path()
	var errs []error
	// After a ForceUnlock the info file may be the next holder's; leave it.
	if cur, err := readInfo(l.infoPath); err == nil && cur.ID == l.info.ID {
		if err := os.Remove(l.infoPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := l.fl.Unlock(); err != nil {
		errs = append(errs, err)
	}
	l.fl = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unlock state %s: %w", path, err)
	}
	return nil
}

// ForceUnlock breaks the state lock of the configuration directory dir,
// for a holder that is stuck or gone.
//
// If no process holds the kernel lock, a leftover info file is stale: it
// is removed and id is not checked. Otherwise id must be the holder's lock
// ID (it is refused, naming the real one, if not), and the info file and
// the lock file are removed so the next Lock proceeds.
//
// Danger: a holder that is still alive keeps running as if it held the
// lock, and the next process runs alongside it. Their Saves then race;
// Save's ErrConflict check catches the loser, but whatever the holder was
// doing to the backends is not coordinated with the newcomer.
func ForceUnlock(dir, id string) error {
	m := Open(dir)
	lockPath, infoPath := m.path(lockName), m.path(lockInfoName)
	fail := func(err error) error { return fmt.Errorf("force-unlock %s: %w", lockPath, err) }
	removeInfo := func() error {
		if err := os.Remove(infoPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(err)
		}
		return nil
	}
	if _, err := os.Stat(lockPath); errors.Is(err, fs.ErrNotExist) {
		return removeInfo()
	} else if err != nil {
		return fail(err)
	}
	fl := flock.New(lockPath, flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil {
		return fail(err)
	}
	if ok {
		defer fl.Unlock()
		return removeInfo()
	}
	holder, err := readInfo(infoPath)
	if err != nil || holder.ID == "" {
		return fail(fmt.Errorf("the lock is held but its holder has not recorded who it is, so lock ID %s cannot be checked; if no bottleform process is running, remove %s", id, lockPath))
	}
	if holder.ID != id {
		return fail(fmt.Errorf("lock ID %s is not the holder's: the lock is held by %s with lock ID %s", id, describe(holder), holder.ID))
	}
	if err := removeInfo(); err != nil {
		return err
	}
	if err := os.Remove(lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	return nil
}
