package smolmachines

import (
	"context"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// inUse is a shared record of published addresses standing in for
// Docker's: an allocation marks its address when it publishes.
type inUse struct {
	mu   sync.Mutex
	used map[netip.Addr]bool
	// arrive, when set, holds every reader until n have read: the
	// interleaving that makes an unlocked allocator hand out one address
	// twice.
	arrive *sync.WaitGroup
}

func (u *inUse) read(ctx context.Context) (map[netip.Addr]bool, error) {
	u.mu.Lock()
	cp := map[netip.Addr]bool{}
	for k, v := range u.used {
		cp[k] = v
	}
	u.mu.Unlock()
	if u.arrive != nil {
		u.arrive.Done()
		done := make(chan struct{})
		go func() { u.arrive.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second): // a lock serialises readers: none waits forever
		}
	} else {
		time.Sleep(5 * time.Millisecond) // a Docker round trip
	}
	return cp, nil
}

// allocateAll runs n allocations at once, each with its own Allocator (its
// own lock file descriptor, as separate bottleform processes have), and
// returns the addresses they got.
func allocateAll(t *testing.T, n int, lock bool, u *inUse) []netip.Addr {
	t.Helper()
	path := filepath.Join(t.TempDir(), "loopback.lock")
	got := make([]netip.Addr, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		a := DefaultAllocator(filepath.Dir(path), u.read)
		a.Pool, a.Shared, a.noLock = aliasPool(), false, !lock
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := a.Allocate(context.Background(), netip.Addr{}, func(ip netip.Addr) error {
				u.mu.Lock()
				u.used[ip] = true
				u.mu.Unlock()
				got[i] = ip
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	return got
}

func aliasPool() []netip.Addr {
	var p []netip.Addr
	for i := 16; i <= 31; i++ {
		p = append(p, netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}))
	}
	return p
}

func distinct(addrs []netip.Addr) int {
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		seen[a] = true
	}
	return len(seen)
}

// TestAllocateDistinct: N concurrent allocations from the macOS alias pool
// get N distinct addresses, the lowest ones.
func TestAllocateDistinct(t *testing.T) {
	const n = 8
	u := &inUse{used: map[netip.Addr]bool{}}
	got := allocateAll(t, n, true, u)
	if distinct(got) != n {
		t.Fatalf("%d allocations got %d distinct addresses: %v", n, distinct(got), got)
	}
	for _, ip := range got {
		if ip.As4()[3] >= 16+n {
			t.Errorf("got %s, not one of the %d lowest aliases", ip, n)
		}
	}
}

// TestAllocateNeedsTheLock is the same race without the lock: the
// allocations read "in use" before any publishes, and hand out one address
// more than once. It shows what the lock is for.
func TestAllocateNeedsTheLock(t *testing.T) {
	const n = 8
	var wg sync.WaitGroup
	wg.Add(n)
	u := &inUse{used: map[netip.Addr]bool{}, arrive: &wg}
	got := allocateAll(t, n, false, u)
	if distinct(got) == n {
		t.Fatalf("without the lock %d allocations still got distinct addresses %v: the test no longer shows the race", n, got)
	}
	// With the lock and the same interleaving forced, they are distinct:
	// each reader waits out the barrier's timeout alone.
	var wg2 sync.WaitGroup
	wg2.Add(2)
	u2 := &inUse{used: map[netip.Addr]bool{}, arrive: &wg2}
	if got := allocateAll(t, 2, true, u2); distinct(got) != 2 {
		t.Fatalf("with the lock: %v", got)
	}
}

// TestAllocatePrefersAndExhausts: a sidecar made again keeps its address if
// it is free; a full pool is an error that says what to do.
func TestAllocatePrefersAndExhausts(t *testing.T) {
	u := &inUse{used: map[netip.Addr]bool{}}
	a := DefaultAllocator(t.TempDir(), u.read)
	a.Pool, a.Shared = aliasPool(), false
	want := netip.AddrFrom4([4]byte{127, 0, 0, 20})
	var got netip.Addr
	if err := a.Allocate(context.Background(), want, func(ip netip.Addr) error { got = ip; return nil }); err != nil || got != want {
		t.Fatalf("preferred %s, got %s (%v)", want, got, err)
	}
	for _, ip := range aliasPool() {
		u.used[ip] = true
	}
	err := a.Allocate(context.Background(), netip.Addr{}, func(netip.Addr) error { return nil })
	if err == nil {
		t.Fatal("a full pool allocated an address")
	}
	t.Log(err)
	// Linux shares 127.0.0.1, in use or not.
	l := DefaultAllocator(t.TempDir(), u.read)
	l.Pool, l.Shared = []netip.Addr{netip.MustParseAddr("127.0.0.1")}, true
	if err := l.Allocate(context.Background(), netip.Addr{}, func(ip netip.Addr) error { got = ip; return nil }); err != nil || got.String() != "127.0.0.1" {
		t.Fatalf("shared: %s %v", got, err)
	}
}
