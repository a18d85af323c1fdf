package smolmachines

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/gofrs/flock"
)

// Allocator hands out the host loopback address a bottle's sidecar
// publishes its agent-facing ports on. On Linux every bottle shares
// 127.0.0.1 (Docker gives each sidecar its own ports); on macOS each
// running sidecar has an alias of its own from 127.0.0.16–31, the aliases
// bot-bottle's users configured on lo0, so that a VM's allow-list can name
// its own sidecar's address and no other.
type Allocator struct {
	// Pool are the addresses, lowest first.
	Pool []netip.Addr
	// Shared: every allocation gets Pool[0], whether in use or not.
	Shared bool
	// LockPath is the file whose exclusive flock(2) serialises allocations
	// across bottleform processes.
	LockPath string
	// InUse reports the addresses running sidecars publish on: Docker is
	// the record, nothing is reserved on disk.
	InUse func(ctx context.Context) (map[netip.Addr]bool, error)

	// noLock is for the test that shows the lock is needed.
	noLock bool
}

// DefaultAllocator is the allocator for this operating system, with its
// lock in dir.
func DefaultAllocator(dir string, inUse func(context.Context) (map[netip.Addr]bool, error)) *Allocator {
	a := &Allocator{LockPath: filepath.Join(dir, "loopback.lock"), InUse: inUse}
	if runtime.GOOS == "darwin" {
		for i := 16; i <= 31; i++ {
			a.Pool = append(a.Pool, netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}))
		}
		return a
	}
	a.Pool, a.Shared = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}, true
	return a
}

// Allocate picks prefer, if it is in the pool and free (a sidecar created
// again keeps its address), else the lowest address of the pool that no
// running sidecar publishes on, and calls publish with it, holding the lock until publish
// returns: "in use" is read from the sidecars, so a second allocation must
// not look before the first sidecar's ports are published. An address
// that was in use before is reused once it is free again.
func (a *Allocator) Allocate(ctx context.Context, prefer netip.Addr, publish func(netip.Addr) error) error {
	if len(a.Pool) == 0 {
		return fmt.Errorf("no loopback addresses to publish the sidecar on")
	}
	if !a.noLock {
		if err := os.MkdirAll(filepath.Dir(a.LockPath), 0o700); err != nil {
			return fmt.Errorf("loopback address lock: %w", err)
		}
		l := flock.New(a.LockPath)
		ok, err := l.TryLockContext(ctx, 20*time.Millisecond)
		if err != nil || !ok {
			return fmt.Errorf("lock %s to allocate a loopback address: %v", a.LockPath, err)
		}
		defer l.Unlock()
	}
	if a.Shared {
		return publish(a.Pool[0])
	}
	used, err := a.InUse(ctx)
	if err != nil {
		return fmt.Errorf("find the loopback addresses in use: %w", err)
	}
	for _, ip := range a.Pool {
		if ip == prefer && !used[ip] {
			return publish(ip)
		}
	}
	for _, ip := range a.Pool {
		if !used[ip] {
			return publish(ip)
		}
	}
	return fmt.Errorf("every loopback address from %s to %s is in use by a running bottle's sidecar: destroy or stop one, or add aliases", a.Pool[0], a.Pool[len(a.Pool)-1])
}
