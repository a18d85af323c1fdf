package gitgate

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The repository BenchmarkClone50MB clones: benchCommits commits, each
// adding benchFilesPerCommit files of benchFileSize pseudo-random bytes
// (ChaCha8 from a fixed seed, fixed dates: the same commits in every run).
// Random bytes neither compress nor delta, so the pack is about 50 MiB.
// There are more than 100 objects, as in any real repository of that size,
// so the gate's fetch keeps the pack as it comes (below git's
// fetch.unpackLimit of 100 objects it would explode it into loose objects).
const (
	benchCommits        = 4
	benchFilesPerCommit = 100
	benchFileSize       = 128 << 10
)

var benchSeed = [32]byte{'b', 'o', 't', 't', 'l', 'e', 'f', 'o', 'r', 'm', ' ', 'g', 'i', 't', 'g', 'a', 't', 'e'}

// benchUpstream is the 50 MiB upstream repository behind a loopback SSH
// server, with what a client needs to reach it.
type benchUpstream struct {
	dir        string // everything lives under it
	bare       string // the upstream repository
	g          *gate  // its cmd runs the git client with an isolated HOME
	sshd       *sshd
	repo       Repo     // the upstream as the gate declares it
	sshCommand []string // the SSH transport: this test binary running SSHMain
	sshEnv     []string // the transport's environment, as the gate sets it
	head       string   // the upstream's trunk
	packSize   int64    // bytes in the upstream's packs
	built      time.Duration
}

func (u *benchUpstream) close() {
	if u.sshd != nil {
		u.sshd.ln.Close()
	}
	os.RemoveAll(u.dir)
}

// buildBenchUpstream makes the upstream: a bare repository (default branch
// trunk, in one pack) served by a loopback SSH server that authorizes one
// client key.
func buildBenchUpstream(tb testing.TB) *benchUpstream {
	tb.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		tb.Skip("git not installed")
	}
	envBin, err := exec.LookPath("env")
	if err != nil {
		tb.Skip("no env program")
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "bottleform-gitgate-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	u := &benchUpstream{dir: dir}
	ok := false
	defer func() {
		if !ok {
			u.close()
		}
	}()
	u.g = &gate{home: filepath.Join(dir, "home")}
	if err := os.Mkdir(u.g.home, 0o755); err != nil {
		tb.Fatal(err)
	}

	uroot := filepath.Join(dir, "upstream")
	bare := filepath.Join(uroot, "o", "big.git")
	u.bare = bare
	benchGit(tb, u.g, "", nil, "-c", "init.defaultBranch=trunk", "init", "--bare", "--quiet", bare)
	work := filepath.Join(dir, "work")
	benchGit(tb, u.g, "", nil, "-c", "init.defaultBranch=trunk", "init", "--quiet", work)
	rng := mrand.NewChaCha8(benchSeed)
	buf := make([]byte, benchFileSize)
	for c := range benchCommits {
		part := filepath.Join(work, fmt.Sprintf("part%d", c))
		if err := os.Mkdir(part, 0o755); err != nil {
			tb.Fatal(err)
		}
		for f := range benchFilesPerCommit {
			rng.Read(buf)
			if err := os.WriteFile(filepath.Join(part, fmt.Sprintf("blob%03d.bin", f)), buf, 0o644); err != nil {
				tb.Fatal(err)
			}
		}
		date := fmt.Sprintf("@%d +0000", 1767225600+3600*c) // 2026-01-01, hourly
		dates := []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}
		benchGit(tb, u.g, work, nil, "add", ".")
		benchGit(tb, u.g, work, dates, "commit", "--quiet", "-m", fmt.Sprintf("part %d", c))
	}
	benchGit(tb, u.g, work, nil, "push", "--quiet", bare, "trunk")
	u.head = benchGit(tb, u.g, work, nil, "rev-parse", "HEAD")
	if err := os.RemoveAll(work); err != nil {
		tb.Fatal(err)
	}
	// One pack, as a served repository has: no loose objects, nothing to
	// re-deflate when a clone asks for everything.
	benchGit(tb, u.g, bare, nil, "repack", "-a", "-d", "--quiet")
	if n := benchGit(tb, u.g, bare, nil, "count-objects"); !strings.HasPrefix(n, "0 objects") {
		tb.Fatalf("upstream has loose objects after repack: %s", n)
	}
	packs, _ := filepath.Glob(filepath.Join(bare, "objects", "pack", "*.pack"))
	for _, p := range packs {
		fi, err := os.Stat(p)
		if err != nil {
			tb.Fatal(err)
		}
		u.packSize += fi.Size()
	}
	if len(packs) != 1 || u.packSize < benchCommits*benchFilesPerCommit*benchFileSize {
		tb.Fatalf("upstream packs %q hold %d bytes", packs, u.packSize)
	}

	host, _ := genKey(tb)
	client, keyPEM := genKey(tb)
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	u.sshd = startSSHD(tb, uroot, host, client.PublicKey())
	u.repo = Repo{
		Name: "big",
		Upstream: Upstream{User: "git", Host: "127.0.0.1", Port: u.sshd.port(), Path: "/o/big.git",
			HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(host.PublicKey())))},
		KeyFile: keyFile,
	}
	u.sshCommand = []string{envBin, testSSHEnv + "=1", exe}
	// The direct clone reaches upstream with exactly the environment the
	// gate gives its own git: the same transport, key and pinned host key.
	u.sshEnv, err = (&Server{SSHCommand: u.sshCommand}).upstreamEnv(u.repo)
	if err != nil {
		tb.Fatal(err)
	}
	ok = true
	return u
}

// newGate serves the upstream through a gate whose repositories live in
// root.
func (u *benchUpstream) newGate(tb testing.TB, root string) (*Server, *httptest.Server) {
	tb.Helper()
	srv := &Server{
		Root:       root,
		Log:        slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SSHCommand: u.sshCommand,
	}
	if err := srv.SetRepos([]Repo{u.repo}); err != nil {
		tb.Fatal(err)
	}
	return srv, httptest.NewServer(srv)
}

// clone runs `git clone url` into a new directory under dir, checks that
// it checked out the upstream's trunk, removes it, and returns how long
// the clone took. Only the clone runs with b's timer on.
func (u *benchUpstream) clone(b *testing.B, dir, url string, env []string) time.Duration {
	b.Helper()
	dst := filepath.Join(dir, "clone")
	b.StartTimer()
	start := time.Now()
	benchGit(b, u.g, "", env, "clone", "--quiet", url, dst)
	d := time.Since(start)
	b.StopTimer()
	if got := benchGit(b, u.g, dst, nil, "rev-parse", "HEAD"); got != u.head {
		b.Fatalf("clone of %s checked out %s, want %s", url, got, u.head)
	}
	if err := os.RemoveAll(dst); err != nil {
		b.Fatal(err)
	}
	return d
}

// report adds the median clone time and the upstream SSH connections per
// clone to the benchmark's results.
func (u *benchUpstream) report(b *testing.B, times []time.Duration, conns0 int32) {
	slices.Sort(times)
	n := len(times)
	med := times[n/2]
	if n%2 == 0 {
		med = (times[n/2-1] + times[n/2]) / 2
	}
	b.ReportMetric(float64(med)/1e6, "median-ms/op")
	b.ReportMetric(float64(u.sshd.Conns()-conns0)/float64(n), "upstream-ssh/op")
	b.ReportMetric(float64(u.packSize), "pack-B")
}

// BenchmarkClone50MB clones a 50 MiB repository (one pack, 400 files of
// random bytes over 4 commits) with the real git client, from the same
// loopback SSH upstream, in the same run:
//
//   - direct-ssh: `git clone ssh://…` straight from the upstream, through
//     the gate's own SSH transport (this binary running SSHMain, with the
//     same key and pinned host key the gate uses);
//   - gate: `git clone http://127.0.0.1:…/big.git` through a gate that has
//     already fetched the repository (an untimed clone first): each clone
//     is the gate's fetches that find nothing new, plus serving the pack
//     from its own copy;
//   - gate-cold: the same through a new gate, with an empty root, every
//     time: the full fetch from upstream, then serving;
//   - local-file: `git clone file://…` of the upstream's directory, with
//     no transport and no gate: the floor.
//
// SetBytes is the upstream's pack size, so MB/s is pack bytes per second.
// It runs only with -bench; the repository is built inside it, once per
// process. bench/gitgate runs it and tabulates the ratios.
func BenchmarkClone50MB(b *testing.B) {
	// The testing package calls a benchmark that has sub-benchmarks once
	// per process (-count and -cpu repeat the sub-benchmarks), so the
	// upstream is built once and removed when everything has run.
	start := time.Now()
	u := buildBenchUpstream(b)
	u.built = time.Since(start)
	b.Cleanup(u.close)

	b.Run("direct-ssh", func(b *testing.B) {
		b.StopTimer()
		b.SetBytes(u.packSize)
		dir := b.TempDir()
		if b.N == 1 { // once, not again in the run with the full b.N
			b.Logf("upstream: %d commits, %d files, one pack of %d bytes, built in %v (untimed)",
				benchCommits, benchCommits*benchFilesPerCommit, u.packSize, u.built.Round(time.Millisecond))
		}
		conns0 := u.sshd.Conns()
		var times []time.Duration
		for range b.N {
			times = append(times, u.clone(b, dir, u.repo.Upstream.URL(), u.sshEnv))
		}
		u.report(b, times, conns0)
	})

	// The warm gate lives across the runs of its sub-benchmark (the
	// testing package calls it with b.N = 1, then with the full b.N).
	var warm *httptest.Server
	b.Run("gate", func(b *testing.B) {
		b.StopTimer()
		b.SetBytes(u.packSize)
		dir := b.TempDir()
		if warm == nil {
			_, warm = u.newGate(b, filepath.Join(u.dir, "gate-warm"))
			u.clone(b, dir, warm.URL+"/big.git", nil)
			b.ResetTimer()
		}
		conns0 := u.sshd.Conns()
		var times []time.Duration
		for range b.N {
			times = append(times, u.clone(b, dir, warm.URL+"/big.git", nil))
		}
		u.report(b, times, conns0)
	})
	b.Cleanup(func() {
		if warm != nil {
			warm.Close()
		}
		os.RemoveAll(filepath.Join(u.dir, "gate-warm"))
	})

	b.Run("gate-cold", func(b *testing.B) {
		b.StopTimer()
		b.SetBytes(u.packSize)
		dir := b.TempDir()
		conns0 := u.sshd.Conns()
		var times []time.Duration
		for i := range b.N {
			root := filepath.Join(dir, fmt.Sprintf("gate%d", i))
			_, ts := u.newGate(b, root)
			times = append(times, u.clone(b, dir, ts.URL+"/big.git", nil))
			ts.Close()
			if err := os.RemoveAll(root); err != nil {
				b.Fatal(err)
			}
		}
		u.report(b, times, conns0)
	})

	// The floor: the same clone with no transport and no gate, git's
	// upload-pack on the upstream's directory over a pipe.
	b.Run("local-file", func(b *testing.B) {
		b.StopTimer()
		b.SetBytes(u.packSize)
		dir := b.TempDir()
		conns0 := u.sshd.Conns()
		var times []time.Duration
		for range b.N {
			times = append(times, u.clone(b, dir, "file://"+u.bare, nil))
		}
		u.report(b, times, conns0)
	})
}

// benchGit is gate.git for any testing.TB, with extra environment.
func benchGit(tb testing.TB, g *gate, dir string, env []string, args ...string) string {
	tb.Helper()
	cmd := g.cmd(dir, args...)
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
