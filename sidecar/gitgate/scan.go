package gitgate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
)

// The environment through which the gate and its pre-receive hook hand the
// secret scanner (ScanMain) what it needs.
const (
	// ScanEnv holds, in the pre-receive hook's environment, the command
	// that scans a push: Server.ScanCommand's words, each shell-quoted.
	// The generated hook wrapper sets it; empty, the hook does not scan.
	ScanEnv = "BOTTLEFORM_GATE_SCAN"
	// CanariesEnv holds the bottle's own secrets, which no push may add:
	// a JSON object from each secret's name to its value, base64-encoded.
	// The gate puts it only in the environment of a push (a receive-pack
	// POST), never in argv, on disk or in a log. Unset, ScanMain refuses.
	CanariesEnv = "BOTTLEFORM_GATE_CANARIES"
)

// MinCanaryLen is the shortest canary the scanner looks for: a shorter
// value ("true", a port number, a short user name) turns up in ordinary
// text too often to be worth refusing pushes over, so it is ignored.
const MinCanaryLen = 8

// maxReported is how many findings a refusal lists; the rest are counted.
// At most maxKept are held to choose them from.
const (
	maxReported = 20
	maxKept     = 1000
)

// ScanMain is the gate's secret scanner: the pre-receive hook runs it
// (Server.ScanCommand, the hidden `bottleform sidecar git-scan`) in the
// repository, after the push policy passed and before anything is pushed
// upstream, with git's "<old> <new> <ref>" lines on stdin.
//
// It scans only what the push adds to the repository: the commits
// `git rev-list <new>... --not --all` lists (in pre-receive the pushed
// objects are readable from quarantine and --all are the refs as they were),
// that is the lines each of them adds (`git log -p -U0 --cc`; a merge adds
// only what is new to all its parents), their messages, and the messages of
// pushed annotated tags. Deletions are not scanned. Added text is checked
// with gitleaks' default rules (a "gitleaks:allow" comment does not exempt a
// line) and for the bottle's secrets in CanariesEnv (each at least
// MinCanaryLen bytes). Files git finds binary are checked for the bottle's
// secrets only; file paths and ref names for the bottle's secrets too. A ref
// that peels to anything but a commit is refused.
//
// Exit status 0: nothing found; stdout has a one-line summary. 1: a
// finding; stdout has one line per finding naming where it is (file and
// line, commit, rule id or the secret's name), then what to do. Any other
// status: the scan failed, and stderr says why; the hook refuses the push
// either way. The scanner never prints, logs or echoes a secret's value.
func ScanMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	start := time.Now()
	fail := func(format string, v ...any) int {
		fmt.Fprintf(stderr, "bottleform git gate: the secret scan failed: "+format+"\n", v...)
		return 2
	}
	if len(args) > 0 {
		return fail("git-scan takes no arguments (the ref lines come on stdin)")
	}
	raw, ok := os.LookupEnv(CanariesEnv)
	if !ok {
		return fail("%s is not set (the scanner runs from the gate's pre-receive hook, which has the bottle's secrets)", CanariesEnv)
	}
	canaries, err := parseCanaries(raw)
	if err != nil {
		return fail("%v", err)
	}
	s := &scanner{canaries: canaries, seen: map[string]bool{}, blobs: map[string]bool{}}
	defer s.stopWorkers()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, CanariesEnv+"=") && !strings.HasPrefix(kv, ScanEnv+"=") {
			s.env = append(s.env, kv)
		}
	}
	refs, err := readRefLines(stdin)
	if err != nil {
		return fail("%v", err)
	}
	err = s.run(refs)
	s.stopWorkers()
	if err != nil {
		return fail("%s", oneLine(err.Error()))
	}
	if s.found > 0 {
		sort.Slice(s.kept, func(i, j int) bool {
			a, b := s.kept[i], s.kept[j]
			if a.seq != b.seq {
				return a.seq < b.seq
			}
			if a.line != b.line {
				return a.line < b.line
			}
			return a.msg < b.msg
		})
		listed := min(len(s.kept), maxReported)
		for _, f := range s.kept[:listed] {
			fmt.Fprintf(stdout, "bottleform git gate: refusing push: %s\n", f.msg)
		}
		more := ""
		if s.found > listed {
			more = fmt.Sprintf(" (%d more not listed)", s.found-listed)
		}
		fmt.Fprintf(stdout, "bottleform git gate: refusing push: %d finding(s)%s; nothing was pushed. Take the secrets out of every commit that adds them (git rebase -i, git commit --amend) and push again.\n", s.found, more)
		return 1
	}
	fmt.Fprintf(stdout, "bottleform git gate: secret scan: %d commit(s), %d KiB of text through gitleaks, %d binary file(s): nothing found (%d ms)\n",
		s.commits, s.text>>10, len(s.blobs), time.Since(start).Milliseconds())
	return 0
}

// parseCanaries decodes CanariesEnv's value. The error never quotes it.
func parseCanaries(raw string) ([]canary, error) {
	var m map[string][]byte
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("%s does not hold a JSON object of base64-encoded values", CanariesEnv)
	}
	var out []canary
	for name, v := range m {
		if len(v) >= MinCanaryLen {
			out = append(out, canary{name: name, value: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// canariesJSON encodes canaries as CanariesEnv holds them.
func canariesJSON(m map[string]string) string {
	enc := make(map[string][]byte, len(m))
	for k, v := range m {
		enc[k] = []byte(v)
	}
	b, err := json.Marshal(enc)
	if err != nil {
		panic(err) // a map of strings to bytes always encodes
	}
	return string(b)
}

type refLine struct{ old, new, ref string }

// readRefLines reads pre-receive's "<old> <new> <ref>" lines.
func readRefLines(r io.Reader) ([]refLine, error) {
	var out []refLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || !isObjectID(f[0]) || !isObjectID(f[1]) {
			return nil, fmt.Errorf("bad ref line on stdin (want \"<old> <new> <ref>\")")
		}
		out = append(out, refLine{f[0], f[1], f[2]})
	}
	return out, sc.Err()
}

func isObjectID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

func isZeroID(s string) bool { return strings.Trim(s, "0") == "" }

type canary struct {
	name  string
	value []byte
}

// scanner is one run of ScanMain. gitleaks runs on fragments in parallel
// (it takes about a second per MiB and core); everything else runs on the
// main goroutine.
type scanner struct {
	env      []string // for git: the hook's, without the canaries
	canaries []canary
	det      *detect.Detector
	seq      int // fragments handed out, to order findings

	jobs chan leakJob
	wg   sync.WaitGroup

	mu    sync.Mutex      // guards seen, kept, found
	seen  map[string]bool // findings already counted
	kept  []finding       // up to maxKept of them
	found int

	commits int
	text    int64           // bytes handed to gitleaks (overlaps count twice)
	blobs   map[string]bool // binary blobs already scanned
}

// source is where scanned text comes from.
type source struct {
	kind  string // "commit" or "tag"; "" for a ref name
	id    string // the object's id
	path  string // the file's path, for gitleaks' path rules; "" for a message
	where string // as printed: the path, "commit message", ...
}

// finding is one reason to refuse the push, as printed.
type finding struct {
	seq, line int
	msg       string
}

// leakJob is a fragment for gitleaks.
type leakJob struct {
	seq  int
	src  source
	line int
	raw  string
}

func short(id string) string { return id[:min(7, len(id))] }

// add counts a finding once. what is "rule ID" or the canary's name, never
// a value.
func (s *scanner) add(seq int, src source, line int, what string) {
	loc := src.where
	if line > 0 {
		loc += ":" + strconv.Itoa(line)
	}
	obj := ""
	if src.id != "" {
		obj = src.kind + " " + short(src.id) + ", "
	}
	s.refuse(seq, line, fmt.Sprintf("secret found: %s (%s%s)", loc, obj, what))
}

func (s *scanner) refuse(seq, line int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[msg] {
		return
	}
	s.found++
	if len(s.kept) < maxKept {
		s.seen[msg] = true
		s.kept = append(s.kept, finding{seq, line, msg})
	}
}

func canaryWhat(c canary) string { return "the bottle's secret " + displayPath(c.name) }

// scanText looks for the canaries in data, and with leaks hands it to
// gitleaks' rules; line is data's first line.
func (s *scanner) scanText(src source, line int, data []byte, leaks bool) error {
	seq := s.seq
	s.seq++
	for _, c := range s.canaries {
		for off := 0; ; {
			i := bytes.Index(data[off:], c.value)
			if i < 0 {
				break
			}
			at := off + i
			s.add(seq, src, line+bytes.Count(data[:at], []byte{'\n'}), canaryWhat(c))
			off = at + len(c.value)
		}
	}
	if !leaks {
		return nil
	}
	s.text += int64(len(data))
	if s.jobs == nil {
		d, err := s.detector()
		if err != nil {
			return err
		}
		s.jobs = make(chan leakJob)
		for range max(1, runtime.GOMAXPROCS(0)) {
			s.wg.Add(1)
			go s.leaks(d)
		}
	}
	s.jobs <- leakJob{seq, src, line, string(data)}
	return nil
}

// leaks runs gitleaks on fragments until the jobs end.
func (s *scanner) leaks(d *detect.Detector) {
	defer s.wg.Done()
	for j := range s.jobs {
		// Finding.StartLine is 0-based within the fragment. Its Secret,
		// Match and Line hold the value: only RuleID is used.
		for _, f := range d.Detect(detect.Fragment{Raw: j.raw, FilePath: j.src.path}) {
			s.add(j.seq, j.src, j.line+f.StartLine, "rule "+f.RuleID)
		}
	}
}

// stopWorkers waits for gitleaks to finish the fragments handed out.
func (s *scanner) stopWorkers() {
	if s.jobs != nil {
		close(s.jobs)
		s.wg.Wait()
		s.jobs = nil
	}
}

// shown is name (a path, a ref) as findings print it, or instead when it
// holds a canary.
func (s *scanner) shown(name, instead string) string {
	for _, c := range s.canaries {
		if strings.Contains(name, string(c.value)) {
			return instead
		}
	}
	return displayPath(name)
}

// scanName checks a name (a path, a ref) for the canaries; a finding does
// not print the name, which holds the secret.
func (s *scanner) scanName(src source, name string) {
	seq := s.seq
	s.seq++
	for _, c := range s.canaries {
		if strings.Contains(name, string(c.value)) {
			s.add(seq, src, 0, canaryWhat(c))
		}
	}
}

// builder cuts text for scanText: small fragments for gitleaks, whose time
// grows with the square of a fragment's size, large ones for the canaries
// alone. Fragments overlap by at least the longest canary.
func (s *scanner) builder(src source, leaks bool) *builder {
	overlap := max(fragmentOverlap, s.longestCanary())
	size := maxFragment
	if !leaks {
		size = maxCanaryFragment
	}
	return &builder{max: max(size, 4*overlap), overlap: overlap, emit: func(line int, data []byte) error {
		return s.scanText(src, line, data, leaks)
	}}
}

func (s *scanner) longestCanary() int {
	n := 0
	for _, c := range s.canaries {
		n = max(n, len(c.value))
	}
	return n
}

var detectorMu sync.Mutex

// detector makes the gitleaks detector on first use (it takes a fifth of
// a second), with its logging off: its trace lines quote secrets.
func (s *scanner) detector() (*detect.Detector, error) {
	if s.det != nil {
		return s.det, nil
	}
	detectorMu.Lock()
	defer detectorMu.Unlock()
	logging.Logger = logging.Logger.Output(io.Discard)
	d, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		return nil, fmt.Errorf("loading gitleaks' rules: %w", err)
	}
	d.IgnoreGitleaksAllow = true // the pusher could add it to any line
	d.MaxDecodeDepth = 5         // as gitleaks' own CLI: finds base64/hex/percent-encoded secrets
	s.det = d
	return d, nil
}

// run scans what refs add.
func (s *scanner) run(refs []refLine) error {
	var updates []refLine
	for _, r := range refs {
		s.scanName(source{where: "the name of a pushed ref"}, r.ref)
		if !isZeroID(r.new) {
			updates = append(updates, r) // not a deletion, which adds nothing
		}
	}
	if len(updates) == 0 {
		return nil
	}
	cat, err := s.startCatFile()
	if err != nil {
		return err
	}
	defer cat.close()

	// Each ref must peel to a commit; annotated tags' own text is new too.
	var tips []string
	have := map[string]bool{}
	for _, r := range updates {
		commit, err := s.peel(cat, r)
		if err != nil {
			return err
		}
		if commit && !have[r.new] {
			have[r.new] = true
			tips = append(tips, r.new)
		}
	}
	if len(tips) == 0 {
		return nil
	}
	revs := append(tips, "--not", "--all")

	// The new commits' headers and messages.
	rl := s.git("rev-list", append([]string{"rev-list"}, revs...)...)
	out, err := rl.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := rl.cmd.Start(); err != nil {
		return fmt.Errorf("git rev-list: %w", err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		id := sc.Text()
		s.commits++
		if err := cat.read(id, func(typ string, r io.Reader) error {
			if typ != "commit" {
				return fmt.Errorf("rev-list listed %s, a %s", id, typ)
			}
			_, _, err := s.scanObject("commit", id, r)
			return err
		}); err != nil {
			io.Copy(io.Discard, out)
			rl.wait()
			return err
		}
	}
	if err := rl.wait(); err != nil {
		return err
	}

	// The lines they add, and their binary files.
	type blob struct{ commit, path, id string }
	var binaries []blob
	p := &diffParser{
		text: func(commit, path string, line int, data []byte) error {
			return s.scanText(source{"commit", commit, path, s.shown(path, "a file")}, line, data, true)
		},
		binary: func(commit, path, id string) error {
			if !s.blobs[id] {
				s.blobs[id] = true
				binaries = append(binaries, blob{commit, path, id})
			}
			return nil
		},
		file: func(commit, path string) error {
			s.scanName(source{"commit", commit, "", "the path of a file"}, path)
			return nil
		},
	}
	lg := s.git("log", append([]string{"-c", "core.quotePath=false", "-c", "log.showSignature=false",
		"log", "-p", "-U0", "--cc", "--root", "-M", "--no-color", "--no-ext-diff", "--no-textconv",
		"--full-index", "--src-prefix=a/", "--dst-prefix=b/", "--format=%x00%H"}, revs...)...)
	out, err = lg.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := lg.cmd.Start(); err != nil {
		return fmt.Errorf("git log: %w", err)
	}
	if err := p.parse(out); err != nil {
		io.Copy(io.Discard, out)
		lg.wait()
		return fmt.Errorf("reading the pushed commits' diffs: %w", err)
	}
	if err := lg.wait(); err != nil {
		return err
	}
	for _, b := range binaries {
		bl := s.builder(source{"commit", b.commit, b.path, s.shown(b.path, "a file")}, false)
		if err := cat.read(b.id, func(_ string, r io.Reader) error {
			buf := make([]byte, 64<<10)
			for {
				n, err := r.Read(buf)
				if n > 0 {
					if aerr := bl.add(1, buf[:n]); aerr != nil {
						return aerr
					}
				}
				if err == io.EOF {
					return bl.flush()
				}
				if err != nil {
					return err
				}
			}
		}); err != nil {
			return err
		}
	}
	return nil
}

// peel follows r's new value through annotated tags, scanning each tag's
// text; it refuses a ref that does not end at a commit and reports whether
// it does.
func (s *scanner) peel(cat *catFile, r refLine) (bool, error) {
	id := r.new
	for depth := 0; depth < 10; depth++ {
		var typ, next string
		err := cat.read(id, func(t string, rd io.Reader) error {
			typ = t
			if t != "tag" {
				return nil
			}
			var err error
			next, _, err = s.scanObject("tag", id, rd)
			return err
		})
		if err != nil {
			return false, err
		}
		switch typ {
		case "commit":
			return true, nil
		case "tag":
			if !isObjectID(next) {
				return false, fmt.Errorf("tag %s has no object line", short(id))
			}
			id = next
		default:
			s.refuse(-1, 0, fmt.Sprintf("%s points at a %s, not a commit (the gate takes commits and annotated tags of commits)", s.shown(r.ref, "a pushed ref"), typ))
			return false, nil
		}
	}
	s.refuse(-1, 0, fmt.Sprintf("%s is a chain of more than 10 tags", s.shown(r.ref, "a pushed ref")))
	return false, nil
}

// scanObject scans a commit or tag object: its header for the canaries,
// its message for everything. For a tag it returns the tagged object's id
// and type.
func (s *scanner) scanObject(kind, id string, r io.Reader) (string, string, error) {
	hdr := s.builder(source{kind, id, "", kind + " header"}, false)
	msg := s.builder(source{kind, id, "", kind + " message"}, true)
	var object, typ string
	inHeader, line := true, 0
	err := eachPiece(bufio.NewReaderSize(r, 64<<10), func(piece []byte, first bool) error {
		if first {
			line++
		}
		if !inHeader {
			return msg.add(line, piece)
		}
		if first {
			switch l := strings.TrimSuffix(string(piece), "\n"); {
			case l == "":
				inHeader, line = false, 0
				return nil
			case strings.HasPrefix(l, "object "):
				object = l[len("object "):]
			case strings.HasPrefix(l, "type "):
				typ = l[len("type "):]
			}
		}
		return hdr.add(line, piece)
	})
	if err == nil {
		err = hdr.flush()
	}
	if err == nil {
		err = msg.flush()
	}
	return object, typ, err
}

// gitRun is a git command with its stderr kept (the first 4 KiB).
type gitRun struct {
	name   string // the git command, for errors
	cmd    *exec.Cmd
	stderr *capBuffer
}

func (s *scanner) git(name string, args ...string) *gitRun {
	cmd := exec.Command("git", args...)
	cmd.Env = s.env
	g := &gitRun{name: name, cmd: cmd, stderr: &capBuffer{max: 4 << 10}}
	cmd.Stderr = g.stderr
	return g
}

func (g *gitRun) wait() error {
	if err := g.cmd.Wait(); err != nil {
		return fmt.Errorf("git %s: %v: %s", g.name, err, strings.TrimSpace(g.stderr.String()))
	}
	return nil
}

// capBuffer keeps the first max bytes written to it.
type capBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// catFile is a `git cat-file --batch` that objects are read from one at a
// time.
type catFile struct {
	run *gitRun
	in  io.WriteCloser
	out *bufio.Reader
}

func (s *scanner) startCatFile() (*catFile, error) {
	g := s.git("cat-file", "cat-file", "--batch")
	in, err := g.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := g.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	return &catFile{run: g, in: in, out: bufio.NewReaderSize(out, 64<<10)}, nil
}

// read hands fn the object id's type and content; what fn leaves unread is
// skipped.
func (c *catFile) read(id string, fn func(typ string, r io.Reader) error) error {
	if _, err := io.WriteString(c.in, id+"\n"); err != nil {
		return fmt.Errorf("git cat-file: %w: %s", err, strings.TrimSpace(c.run.stderr.String()))
	}
	hdr, err := c.out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("git cat-file: %w: %s", err, strings.TrimSpace(c.run.stderr.String()))
	}
	f := strings.Fields(hdr)
	if len(f) != 3 || f[0] != id {
		return fmt.Errorf("git cat-file: object %s: %s", short(id), strings.TrimSpace(hdr))
	}
	size, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("git cat-file: object %s: bad size %q", short(id), f[2])
	}
	lr := &io.LimitedReader{R: c.out, N: size}
	ferr := fn(f[1], lr)
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return err
	}
	if lr.N > 0 {
		return fmt.Errorf("git cat-file: object %s: %w", short(id), io.ErrUnexpectedEOF)
	}
	if b, err := c.out.ReadByte(); err != nil || b != '\n' {
		return errors.New("git cat-file: object not followed by a newline")
	}
	return ferr
}

func (c *catFile) close() {
	c.in.Close()
	io.Copy(io.Discard, c.out)
	c.run.cmd.Wait()
}
