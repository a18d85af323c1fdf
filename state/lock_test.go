package state

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottleform/bottleform/resource"
)

// holderEnv makes the test binary a lock holder for TestLockCrossProcess:
// it locks the state in that directory, prints "locked" and sleeps.
const holderEnv = "BOTTLEFORM_STATE_TEST_LOCK_HOLDER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holderEnv); dir != "" {
		if _, err := Open(dir).Lock(context.Background(), LockInfo{Operation: "apply"}, 0); err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func mustLock(t *testing.T, m *Manager, op string, timeout time.Duration) *Lock {
	t.Helper()
	l, err := m.Lock(context.Background(), LockInfo{Operation: op}, timeout)
	if err != nil {
		t.Fatalf("Lock(%s): %v", op, err)
	}
	t.Cleanup(func() { l.Unlock() })
	return l
}

func TestLockInfoFile(t *testing.T) {
	dir := t.TempDir()
	m := Open(dir)
	l := mustLock(t, m, "plan", 0)
	infoPath := filepath.Join(dir, ".bottleform/state.lock.info")

	raw := readFile(t, infoPath)
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "operation", "who", "pid", "version", "created"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("info file lacks %q:\n%s", k, raw)
		}
	}
	if len(fields) != 6 {
		t.Errorf("info file has %d fields, want 6:\n%s", len(fields), raw)
	}
	info := l.Info()
	if fields["operation"] != "plan" || fields["pid"] != float64(os.Getpid()) || fields["id"] != info.ID || fields["version"] != BottleformVersion {
		t.Errorf("info file %s does not describe this holder %+v", raw, info)
	}
	if !regexp.MustCompile(`^.+@.+$`).MatchString(info.Who) {
		t.Errorf("who = %q, want user@host", info.Who)
	}
	if created, _ := fields["created"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(created) {
		t.Errorf("created = %q, want RFC 3339 in UTC", created)
	}
	if got := mode(t, infoPath); got != 0o600 {
		t.Errorf("info file mode %o, want 600", got)
	}
	if got := mode(t, filepath.Join(dir, ".bottleform/state.lock")); got != 0o600 {
		t.Errorf("lock file mode %o, want 600", got)
	}
	if got := string(readFile(t, filepath.Join(dir, ".bottleform/.gitignore"))); got != "*\n" {
		t.Errorf("Lock did not create .gitignore: %q", got)
	}

	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(infoPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("info file after Unlock: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Errorf("second Unlock = %v, want nil", err)
	}
	// Released: the next Lock gets it at once.
	mustLock(t, m, "apply", 0)
}

func TestLockContention(t *testing.T) {
	m := Open(t.TempDir())
	holder := mustLock(t, m, "plan", 0)

	tests := []struct {
		name    string
		timeout time.Duration
		waited  bool
	}{
		{"one try", 0, false},
		{"timeout", 200 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			l, err := m.Lock(context.Background(), LockInfo{Operation: "apply"}, tt.timeout)
			if err == nil {
				l.Unlock()
				t.Fatal("second Lock succeeded while the lock is held")
			}
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("error %v is not ErrLocked", err)
			}
			var le *LockedError
			if !errors.As(err, &le) {
				t.Fatalf("error %T is not a *LockedError", err)
			}
			if !sameInfo(le.Info, holder.Info()) {
				t.Errorf("LockedError.Info = %+v, want the holder %+v", le.Info, holder.Info())
			}
			if elapsed := time.Since(start); elapsed < tt.timeout {
				t.Errorf("gave up after %s, before the %s timeout", elapsed, tt.timeout)
			}
			if (le.Waited > 0) != tt.waited {
				t.Errorf("Waited = %s", le.Waited)
			}
			for _, want := range []string{"state is locked by plan", "pid " + strconv.Itoa(os.Getpid()), holder.Info().ID, `"bottleform force-unlock ` + holder.Info().ID + `"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}

	t.Run("released while waiting", func(t *testing.T) {
		go func() {
			time.Sleep(100 * time.Millisecond)
			holder.Unlock()
		}()
		l, err := m.Lock(context.Background(), LockInfo{Operation: "apply"}, 5*time.Second)
		if err != nil {
			t.Fatalf("Lock after release: %v", err)
		}
		defer l.Unlock()
		if info, err := readInfo(filepath.Join(m.dir, ".bottleform/state.lock.info")); err != nil || info.ID != l.Info().ID || info.Operation != "apply" {
			t.Errorf("info file after takeover: %+v, %v", info, err)
		}
	})
}

func sameInfo(a, b LockInfo) bool {
	ca, cb := a.Created, b.Created
	a.Created, b.Created = time.Time{}, time.Time{}
	return a == b && ca.Equal(cb)
}

func TestLockContextCanceled(t *testing.T) {
	m := Open(t.TempDir())
	mustLock(t, m, "apply", 0)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := m.Lock(ctx, LockInfo{Operation: "plan"}, time.Minute)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrLocked) {
		t.Errorf("Lock with a canceled context: %v", err)
	}
}

func TestLockedErrorMessage(t *testing.T) {
	info := LockInfo{
		ID:        "1f2e3d4c-5b6a-4978-8877-665544332211",
		Operation: "plan",
		Who:       "root@host",
		PID:       4121,
		Created:   time.Date(2026, 11, 27, 12, 3, 0, 0, time.UTC),
	}
	tests := []struct {
		name string
		err  *LockedError
		want string
	}{
		{"holder known", &LockedError{Info: info},
			`state is locked by plan (pid 4121, root@host) since 2026-11-27T12:03:00Z, lock ID 1f2e3d4c-5b6a-4978-8877-665544332211; wait for it to finish, retry with --lock-timeout, or run "bottleform force-unlock 1f2e3d4c-5b6a-4978-8877-665544332211" if that process is gone`},
		{"after waiting", &LockedError{Info: info, Waited: 2 * time.Second},
			`state is locked by plan (pid 4121, root@host) since 2026-11-27T12:03:00Z, lock ID 1f2e3d4c-5b6a-4978-8877-665544332211; still locked after 2s; wait for it to finish, retry with a longer --lock-timeout, or run "bottleform force-unlock 1f2e3d4c-5b6a-4978-8877-665544332211" if that process is gone`},
		{"holder unknown", &LockedError{},
			`state is locked by another process, which has not recorded who it is; wait for it to finish or retry with --lock-timeout`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestLockCrossProcess takes the lock in a child process, then kills it
// with SIGKILL: the kernel releases the lock and the stale info file the
// child leaves does not block the next Lock.
func TestLockCrossProcess(t *testing.T) {
	dir := t.TempDir()
	m := Open(dir)
	infoPath := filepath.Join(dir, ".bottleform/state.lock.info")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitOnce sync.Once
	wait := func() { waitOnce.Do(func() { cmd.Wait() }) }
	t.Cleanup(func() { cmd.Process.Kill(); wait() })

	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Scan()
		line <- sc.Text()
	}()
	select {
	case l := <-line:
		if l != "locked" {
			t.Fatalf("child said %q, want \"locked\"", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child did not take the lock within 30s")
	}
	child := cmd.Process.Pid

	_, err = m.Lock(context.Background(), LockInfo{Operation: "plan"}, 0)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock while the child holds it: %v", err)
	}
	if le.Info.PID != child || le.Info.Operation != "apply" {
		t.Errorf("holder %+v, want the child (pid %d, apply)", le.Info, child)
	}
	if want := fmt.Sprintf("state is locked by apply (pid %d,", child); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	wait()
	if stale, err := readInfo(infoPath); err != nil || stale.PID != child {
		t.Fatalf("stale info file after kill -9: %+v, %v; want the child's", stale, err)
	}

	l, err := m.Lock(context.Background(), LockInfo{Operation: "apply"}, 5*time.Second)
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	defer l.Unlock()
	if info, err := readInfo(infoPath); err != nil || info.PID != os.Getpid() || info.ID != l.Info().ID {
		t.Errorf("info file after takeover: %+v, %v; want this process", info, err)
	}
}

func TestForceUnlock(t *testing.T) {
	t.Run("stale info file removed", func(t *testing.T) {
		dir := t.TempDir()
		m := Open(dir)
		l := mustLock(t, m, "apply", 0)
		stale := readFile(t, filepath.Join(dir, ".bottleform/state.lock.info"))
		l.Unlock()
		infoPath := filepath.Join(dir, ".bottleform/state.lock.info")
		os.WriteFile(infoPath, stale, 0o600) // as a kill -9 leaves it

		if err := ForceUnlock(dir, "any-id"); err != nil {
			t.Fatalf("ForceUnlock of a free lock: %v", err)
		}
		if _, err := os.Stat(infoPath); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale info file still there: %v", err)
		}
	})

	t.Run("nothing to unlock", func(t *testing.T) {
		if err := ForceUnlock(t.TempDir(), "any-id"); err != nil {
			t.Errorf("ForceUnlock without a lock: %v", err)
		}
	})

	t.Run("wrong id refused", func(t *testing.T) {
		dir := t.TempDir()
		m := Open(dir)
		l := mustLock(t, m, "apply", 0)
		err := ForceUnlock(dir, "0000")
		if err == nil {
			t.Fatal("ForceUnlock with a wrong id succeeded")
		}
		for _, want := range []string{"force-unlock ", "lock ID 0000 is not the holder's", "lock ID " + l.Info().ID} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
		if _, err := m.Lock(context.Background(), LockInfo{Operation: "plan"}, 0); !errors.Is(err, ErrLocked) {
			t.Errorf("lock no longer held after a refused force-unlock: %v", err)
		}
	})

	t.Run("live holder", func(t *testing.T) {
		dir := t.TempDir()
		m := Open(dir)
		stuck := mustLock(t, m, "apply", 0)
		if err := ForceUnlock(dir, stuck.Info().ID); err != nil {
			t.Fatalf("ForceUnlock: %v", err)
		}
		next, err := m.Lock(context.Background(), LockInfo{Operation: "apply"}, 0)
		if err != nil {
			t.Fatalf("Lock after force-unlock: %v", err)
		}
		defer next.Unlock()
		// The stuck holder finishing must not remove the new holder's info.
		if err := stuck.Unlock(); err != nil {
			t.Fatal(err)
		}
		info, err := readInfo(filepath.Join(dir, ".bottleform/state.lock.info"))
		if err != nil || info.ID != next.Info().ID {
			t.Errorf("info file after the old holder's Unlock: %+v, %v; want the new holder's", info, err)
		}
		if _, err := m.Lock(context.Background(), LockInfo{Operation: "plan"}, 0); !errors.Is(err, ErrLocked) {
			t.Errorf("new holder's lock not held: %v", err)
		}
	})
}

// TestConcurrentWriters runs locked read-modify-write cycles from many
// goroutines while a reader reads the file without the lock: no update is
// lost and no read sees a partial file.
func TestConcurrentWriters(t *testing.T) {
	const workers, rounds = 8, 10
	dir := t.TempDir()
	path := Open(dir).Path()

	stop := make(chan struct{})
	var reads int
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, p := range []string{path, path + ".backup"} {
				f, err := os.Open(p)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					t.Errorf("open %s: %v", p, err)
					return
				}
				_, err = Read(f)
				f.Close()
				if err != nil {
					t.Errorf("unlocked read of %s: %v", p, err)
					return
				}
				reads++
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := Open(dir)
			for r := range rounds {
				if err := cycle(m, w, r); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-readerDone

	s, err := Open(dir).Load()
	if err != nil {
		t.Fatal(err)
	}
	if s.Serial != workers*rounds {
		t.Errorf("final serial %d, want %d", s.Serial, workers*rounds)
	}
	if n := len(s.Resources()); n != workers*rounds {
		t.Errorf("%d resources, want %d: updates were lost", n, workers*rounds)
	}
	if reads == 0 {
		t.Error("the reader never read the file")
	}
	t.Logf("%d unlocked reads", reads)
}

func cycle(m *Manager, w, r int) error {
	l, err := m.Lock(context.Background(), LockInfo{Operation: "apply"}, 30*time.Second)
	if err != nil {
		return err
	}
	defer l.Unlock()
	s, err := m.Load()
	if err != nil {
		return err
	}
	if s == nil {
		s = &State{}
	}
	a := resource.Address{Bottle: fmt.Sprintf("w%d", w), Kind: resource.KindEgress, Key: fmt.Sprintf("h%d.example", r)}
	attrs := resource.Attrs{"tls": resource.String(resource.TLSIntercept)}
	s.Set(resource.BackendDocker, &Resource{Addr: a, Attrs: attrs, Digest: attrs.Digest()})
	return m.Save(s)
}
