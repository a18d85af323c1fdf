package docker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bottleform/bottleform/internal/hostenv"
)

// labelGitSHA256 records the digest of the git file set in the sidecar
// image ("none" without git), so a host git upgrade (or a new libc under
// it) builds a new image.
const labelGitSHA256 = "dev.bottleform.git-sha256"

// errNoGit: the host has no git for the sidecar image.
var errNoGit = errors.New("no git on this host")

// gitExcluded are programs of git's exec path the sidecar never runs and
// that would drag in libcurl and its TLS stack (the HTTP and IMAP
// clients), or are servers and tools the git gate does not use. Symlinks
// to them are left out too. The gate reaches upstreams over SSH, which
// needs no remote helper.
var gitExcluded = map[string]bool{
	"git-remote-http": true, "git-remote-https": true, "git-remote-ftp": true, "git-remote-ftps": true,
	"git-http-fetch": true, "git-http-push": true, "git-imap-send": true,
	"git-daemon": true, "git-shell": true, "scalar": true, "git-instaweb": true,
}

// gitFiles is the host's git as files of the sidecar image.
type gitFiles struct {
	// Git is git's path, in the image as on the host.
	Git string
	// Entries are the files, directories, symlinks and hardlinks, parents
	// first, named without the leading "/".
	Entries []tarEntry
	// Digest is the sha256 of Entries (names, modes, links and contents).
	Digest string
	// LibPath are the library directories the dynamic loader searches only
	// because the host's ld.so.conf names them; the image has no
	// ld.so.cache, so they go into LD_LIBRARY_PATH.
	LibPath []string
	// Size is the bytes of regular files (hardlinks counted once).
	Size int64
}

// collectGitFiles gathers the host's git for the sidecar image: the git
// binary, its exec path (but gitExcluded), its templates, /bin/sh (git's
// hooks and the gate's policy script are POSIX shell scripts; the policy
// script uses only shell builtins and git), and the shared library closure
// of every ELF executable among them with its program interpreter. Files
// of identical content and mode (or the same inode) become tar hardlinks.
// It returns errNoGit when there is no git on PATH.
func collectGitFiles() (*gitFiles, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, errNoGit
	}
	if git, err = filepath.Abs(git); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, git, "--exec-path")
	cmd.Env = hostenv.Env([]string{"GIT_EXEC_PATH"})
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s --exec-path: %w", git, err)
	}
	execPath := strings.TrimSpace(string(out))
	if !filepath.IsAbs(execPath) {
		return nil, fmt.Errorf("%s --exec-path: %q is not an absolute path", git, execPath)
	}
	c := newFileCollector()
	if err := c.add(git); err != nil {
		return nil, err
	}
	if err := c.addTree(execPath, func(name, real string) bool {
		return !gitExcluded[name] && !gitExcluded[filepath.Base(real)]
	}); err != nil {
		return nil, err
	}
	// The templates git init copies: PREFIX/share/git-core/templates, with
	// PREFIX two levels above the exec path (/usr/lib/git-core, or
	// /usr/libexec/git-core).
	for _, t := range []string{filepath.Join(filepath.Dir(filepath.Dir(execPath)), "share", "git-core", "templates"), "/usr/share/git-core/templates"} {
		if fi, err := os.Stat(t); err == nil && fi.IsDir() {
			if err := c.addTree(t, nil); err != nil {
				return nil, err
			}
			break
		}
	}
	if err := c.add("/bin/sh"); err != nil {
		return nil, fmt.Errorf("a POSIX shell for git's hooks: %w", err)
	}
	if err := c.closure(); err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, e := range c.entries {
		fmt.Fprintf(h, "%s %o %q %q %d\n", e.Name, e.Mode, e.Link, e.Hardlink, len(e.Data))
		h.Write(e.Data)
	}
	return &gitFiles{Git: git, Entries: c.entries, Digest: hex.EncodeToString(h.Sum(nil)), LibPath: c.libPath, Size: c.size}, nil
}

// fileCollector copies host paths into tar entries at the same paths,
// keeping symlinks (both the link and its target), and queues ELF files
// for their library closure.
type fileCollector struct {
	entries []tarEntry
	seen    map[string]bool // entry names
	// byInode and byContent name the first entry of each file, for
	// hardlinks.
	byInode   map[[2]uint64]string
	byContent map[string]string
	elfs      []string // host paths of the ELF files added, to scan
	scanned   int
	size      int64

	ldConf  []string // directories of /etc/ld.so.conf
	libPath []string
}

func newFileCollector() *fileCollector {
	return &fileCollector{seen: map[string]bool{}, byInode: map[[2]uint64]string{}, byContent: map[string]string{}}
}

func (c *fileCollector) emit(e tarEntry) {
	if c.seen[e.Name] {
		return
	}
	c.seen[e.Name] = true
	c.entries = append(c.entries, e)
}

// add copies the absolute host path p: its parent directories, each
// symlink on the way (and what it points to), and the file or directory
// itself (not a directory's contents).
func (c *fileCollector) add(p string) error {
	_, err := c.resolve(p, 0)
	return err
}

// resolve adds p as add does and returns its real path.
func (c *fileCollector) resolve(p string, depth int) (string, error) {
	if depth > 40 {
		return "", fmt.Errorf("%s: too many levels of symbolic links", p)
	}
	p = filepath.Clean(p)
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%s: not an absolute path", p)
	}
	if p == "/" {
		return p, nil
	}
	parts := strings.Split(p[1:], "/")
	cur := "/"
	for i, part := range parts {
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		name := next[1:]
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			c.emit(tarEntry{Name: name, Mode: 0o777, Link: target})
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			return c.resolve(filepath.Join(append([]string{target}, parts[i+1:]...)...), depth+1)
		case fi.IsDir():
			c.emit(tarEntry{Name: name + "/", Mode: int64(fi.Mode().Perm())})
		case i < len(parts)-1:
			return "", fmt.Errorf("%s: not a directory", next)
		case fi.Mode().IsRegular():
			if err := c.addFile(next, fi); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("%s: not a regular file, directory or symlink", next)
		}
		cur = next
	}
	return cur, nil
}

// addFile adds the regular file p, as a hardlink to an earlier entry of
// the same inode, or of the same content and mode.
func (c *fileCollector) addFile(p string, fi os.FileInfo) error {
	name, mode := p[1:], int64(fi.Mode().Perm())
	if c.seen[name] {
		return nil
	}
	var ino [2]uint64
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st != nil {
		ino = [2]uint64{uint64(st.Dev), st.Ino}
		if first, ok := c.byInode[ino]; ok {
			c.emit(tarEntry{Name: name, Mode: mode, Hardlink: first})
			return nil
		}
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	key := fmt.Sprintf("%x %o", sum, mode)
	if first, ok := c.byContent[key]; ok {
		c.emit(tarEntry{Name: name, Mode: mode, Hardlink: first})
	} else {
		c.byContent[key] = name
		c.emit(tarEntry{Name: name, Mode: mode, Data: data})
		c.size += int64(len(data))
		if bytes.HasPrefix(data, []byte(elf.ELFMAG)) {
			c.elfs = append(c.elfs, p)
		}
	}
	if st != nil {
		c.byInode[ino] = name
	}
	return nil
}

// addTree adds the directory dir and everything under it for which keep
// (given the entry's name and real path) is true; keep nil keeps all.
func (c *fileCollector) addTree(dir string, keep func(name, real string) bool) error {
	real, err := c.resolve(dir, 0)
	if err != nil {
		return err
	}
	des, err := os.ReadDir(real)
	if err != nil {
		return err
	}
	for _, de := range des {
		p := filepath.Join(real, de.Name())
		if keep != nil {
			r, err := filepath.EvalSymlinks(p)
			if err != nil {
				// A dangling symlink: nothing to copy.
				continue
			}
			if !keep(de.Name(), r) {
				continue
			}
		}
		if de.IsDir() {
			if err := c.addTree(p, keep); err != nil {
				return err
			}
		} else if err := c.add(p); err != nil {
			return err
		}
	}
	return nil
}

// closure adds the program interpreter and the shared libraries (DT_NEEDED,
// transitively) of every ELF file added, resolved as the dynamic loader
// would: DT_RPATH (without DT_RUNPATH), DT_RUNPATH, the directories of
// /etc/ld.so.conf, then the system directories.
func (c *fileCollector) closure() error {
	c.ldConf = readLdSoConf("/etc/ld.so.conf", 0)
	for c.scanned < len(c.elfs) {
		p := c.elfs[c.scanned]
		c.scanned++
		if err := c.scanELF(p); err != nil {
			return err
		}
	}
	return nil
}

func (c *fileCollector) scanELF(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return fmt.Errorf("%s: program interpreter: %w", p, err)
		}
		if err := c.add(string(bytes.TrimRight(b, "\x00"))); err != nil {
			return fmt.Errorf("%s: program interpreter: %w", p, err)
		}
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		// Not dynamically linked (no dynamic section).
		return nil
	}
	rpath, _ := f.DynString(elf.DT_RPATH)
	runpath, _ := f.DynString(elf.DT_RUNPATH)
	origin := filepath.Dir(p)
	expand := func(list []string) []string {
		var dirs []string
		for _, l := range list {
			for d := range strings.SplitSeq(l, ":") {
				d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
				if filepath.IsAbs(d) && !strings.Contains(d, "$") {
					dirs = append(dirs, d)
				}
			}
		}
		return dirs
	}
	var first []string
	if len(runpath) == 0 {
		first = expand(rpath)
	}
	first = append(first, expand(runpath)...)
	system := systemLibDirs(f.Machine, f.Class)
	for _, lib := range needed {
		if strings.Contains(lib, "/") {
			if err := c.add(lib); err != nil {
				return fmt.Errorf("%s needs %s: %w", p, lib, err)
			}
			continue
		}
		dir, ok := "", false
		for _, group := range [][]string{first, c.ldConf, system} {
			for _, d := range group {
				if compatibleELF(filepath.Join(d, lib), f.Machine, f.Class) {
					dir, ok = d, true
					break
				}
			}
			if ok {
				break
			}
		}
		if !ok {
			return fmt.Errorf("%s needs %s, which is in none of the loader's directories", p, lib)
		}
		if !slices.Contains(first, dir) && !slices.Contains(system, dir) && !slices.Contains(c.libPath, dir) {
			c.libPath = append(c.libPath, dir)
		}
		if err := c.add(filepath.Join(dir, lib)); err != nil {
			return fmt.Errorf("%s needs %s: %w", p, lib, err)
		}
	}
	return nil
}

// compatibleELF reports whether p is an ELF file of the machine and class
// given: the loader skips a library of another architecture.
func compatibleELF(p string, m elf.Machine, class elf.Class) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Machine == m && f.Class == class
}

// multiarch are Debian's multiarch triplets, for the loader's system
// directories.
var multiarch = map[elf.Machine]string{
	elf.EM_X86_64: "x86_64-linux-gnu", elf.EM_AARCH64: "aarch64-linux-gnu", elf.EM_386: "i386-linux-gnu",
	elf.EM_ARM: "arm-linux-gnueabihf", elf.EM_PPC64: "powerpc64le-linux-gnu", elf.EM_S390: "s390x-linux-gnu",
	elf.EM_RISCV: "riscv64-linux-gnu",
}

// systemLibDirs are the directories the dynamic loader searches without an
// ld.so.cache.
func systemLibDirs(m elf.Machine, class elf.Class) []string {
	var dirs []string
	if t, ok := multiarch[m]; ok {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	if class == elf.ELFCLASS64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	}
	return append(dirs, "/lib", "/usr/lib")
}

// readLdSoConf lists the directories of an ld.so.conf, following its
// include lines.
func readLdSoConf(path string, depth int) []string {
	f, err := os.Open(path)
	if err != nil || depth > 8 {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "include") && len(line) > 7 && (line[7] == ' ' || line[7] == '\t'):
			pat := strings.TrimSpace(line[8:])
			if !filepath.IsAbs(pat) {
				pat = filepath.Join(filepath.Dir(path), pat)
			}
			matches, _ := filepath.Glob(pat)
			for _, m := range matches {
				dirs = append(dirs, readLdSoConf(m, depth+1)...)
			}
		case strings.HasPrefix(line, "hwcap"):
		default:
			for d := range strings.FieldsFuncSeq(line, func(r rune) bool { return r == ':' || r == ',' || r == ' ' || r == '\t' }) {
				if filepath.IsAbs(d) {
					dirs = append(dirs, filepath.Clean(d))
				}
			}
		}
	}
	return dirs
}
