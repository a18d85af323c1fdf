package gitgate

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// awsKey is a realistic AWS access key id, new each time: gitleaks
// allowlists the documentation's AKIA...EXAMPLE keys.
func awsKey(t *testing.T) string {
	t.Helper()
	const b32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = b32[int(b[i])%len(b32)]
	}
	return "AKIA" + string(b)
}

// token is a random canary value.
func token(t *testing.T) string {
	b := make([]byte, 20)
	rand.Read(b)
	return fmt.Sprintf("gtk_%x", b)
}

// hookLines are the lines the hook wrote to the gate's log.
func (g *gate) hookLines(t *testing.T) []string {
	var out []string
	for _, m := range g.log.lines(t) {
		if m["msg"] == "git hook" {
			out = append(out, m["line"].(string))
		}
	}
	return out
}

func noSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Fatalf("%s holds a secret value:\n%s", what, text)
		}
	}
}

func TestScanRefusesSecret(t *testing.T) {
	g := newGate(t, 0)
	key := awsKey(t)
	a := g.clone(t)
	g.git(t, a, "checkout", "--quiet", "-b", "agent/leak")
	os.MkdirAll(filepath.Join(a, "config"), 0o755)
	commitFile(t, g, a, "config/aws.env", []byte("# aws\nregion = eu-west-1\naws_access_key_id = "+key+"\n"))
	commit := g.git(t, a, "rev-parse", "--short=7", "HEAD")
	out := g.gitFail(t, a, "push", "origin", "agent/leak")
	want := "remote: bottleform git gate: refusing push: secret found: config/aws.env:3 (commit " + commit + ", rule aws-access-token)"
	if !strings.Contains(out, want) {
		t.Fatalf("push stderr lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, "nothing was pushed") {
		t.Fatalf("push stderr does not say nothing was pushed:\n%s", out)
	}
	bare := filepath.Join(g.srv.Root, "repo.git")
	if out, err := g.cmd(bare, "rev-parse", "--verify", "--quiet", "refs/heads/agent/leak").Output(); err == nil {
		t.Fatalf("the gate took agent/leak: %s", out)
	}
	noSecret(t, "client output", out, key)
	noSecret(t, "gate log", g.log.String(), key)
	var logged bool
	for _, l := range g.hookLines(t) {
		logged = logged || strings.Contains(l, "secret found: config/aws.env:3 (commit "+commit+", rule aws-access-token)")
	}
	if !logged {
		t.Fatalf("refusal not in the gate log:\n%s", g.log.String())
	}

	// The same branch, without the secret, goes through.
	commitFile(t, g, a, "config/aws.env", []byte("# aws\nregion = eu-west-1\n"))
	g.git(t, a, "reset", "--quiet", "--soft", "HEAD~2")
	g.git(t, a, "commit", "--quiet", "-m", "config without the key")
	g.git(t, a, "push", "--quiet", "origin", "agent/leak")
	if got, want := g.git(t, bare, "rev-parse", "refs/heads/agent/leak"), g.git(t, a, "rev-parse", "HEAD"); got != want {
		t.Fatalf("clean push: gate has %s, want %s", got, want)
	}
	var summary bool
	for _, l := range g.hookLines(t) {
		summary = summary || strings.Contains(l, "secret scan: 1 commit(s)")
	}
	if !summary {
		t.Fatalf("clean scan's summary not in the gate log:\n%s", g.log.String())
	}
}

func TestScanCanaries(t *testing.T) {
	g := newGate(t, 0)
	tok := token(t)
	g.srv.SetCanaries(map[string]string{"secret.gitea_token": tok, "secret.short": "abc1234"})
	a := g.clone(t)
	g.git(t, a, "checkout", "--quiet", "-b", "agent/c")
	commitFile(t, g, a, "notes.md", []byte("# notes\nthe token is "+tok+" ok\n"))
	commit := g.git(t, a, "rev-parse", "--short=7", "HEAD")
	out := g.gitFail(t, a, "push", "origin", "agent/c")
	want := "refusing push: secret found: notes.md:2 (commit " + commit + ", the bottle's secret secret.gitea_token)"
	if !strings.Contains(out, want) {
		t.Fatalf("push stderr lacks %q:\n%s", want, out)
	}
	noSecret(t, "client output", out, tok)
	noSecret(t, "gate log", g.log.String(), tok)

	// A canary shorter than MinCanaryLen is ignored; the message of a
	// commit is scanned too.
	g.git(t, a, "reset", "--quiet", "--hard", "origin/main")
	commitFile(t, g, a, "short", []byte("abc1234\n"))
	g.git(t, a, "push", "--quiet", "origin", "agent/c")
	g.git(t, a, "commit", "--quiet", "--allow-empty", "-m", "subject", "-m", "body\nkey: "+tok)
	commit = g.git(t, a, "rev-parse", "--short=7", "HEAD")
	out = g.gitFail(t, a, "push", "origin", "agent/c")
	want = "secret found: commit message:4 (commit " + commit + ", the bottle's secret secret.gitea_token)"
	if !strings.Contains(out, want) {
		t.Fatalf("push stderr lacks %q:\n%s", want, out)
	}
	noSecret(t, "client output", out, tok)
	noSecret(t, "gate log", g.log.String(), tok)
}

// TestScanOlderCommit: a secret added in the first commit of a push and
// removed in the next is still found, in the commit that added it.
func TestScanOlderCommit(t *testing.T) {
	g := newGate(t, 0)
	key := awsKey(t)
	a := g.clone(t)
	g.git(t, a, "checkout", "--quiet", "-b", "agent/multi")
	commitFile(t, g, a, "app.cfg", []byte("x = 1\nAWS_ACCESS_KEY_ID="+key+"\n"))
	first := g.git(t, a, "rev-parse", "--short=7", "HEAD")
	commitFile(t, g, a, "app.cfg", []byte("x = 1\n"))
	commitFile(t, g, a, "other", []byte("other\n"))
	out := g.gitFail(t, a, "push", "origin", "agent/multi")
	want := "secret found: app.cfg:2 (commit " + first + ", rule aws-access-token)"
	if !strings.Contains(out, want) {
		t.Fatalf("push stderr lacks %q:\n%s", want, out)
	}
	noSecret(t, "client output", out, key)
	noSecret(t, "gate log", g.log.String(), key)
}

// TestScanOnlyNewContent: what the gate already holds is not scanned
// again, and a deletion is not scanned at all.
func TestScanOnlyNewContent(t *testing.T) {
	g := newGate(t, 0)
	key := awsKey(t)
	// scratch/old, holding a secret, reaches the gate without its hook
	// (a fetch runs no hooks), as if it had been there before.
	w := g.clone(t)
	g.git(t, w, "checkout", "--quiet", "-b", "scratch/old")
	commitFile(t, g, w, "leak.env", []byte("AWS_ACCESS_KEY_ID="+key+"\n"))
	bare := filepath.Join(g.srv.Root, "repo.git")
	g.git(t, bare, "fetch", "--quiet", w, "scratch/old:refs/heads/scratch/old")

	a := g.clone(t)
	g.git(t, a, "checkout", "--quiet", "-b", "agent/on-top", "origin/scratch/old")
	commitFile(t, g, a, "clean", []byte("clean\n"))
	g.git(t, a, "push", "--quiet", "origin", "agent/on-top")
	g.git(t, a, "push", "--quiet", "origin", ":scratch/old")
	if out, err := g.cmd(bare, "rev-parse", "--verify", "--quiet", "refs/heads/scratch/old").Output(); err == nil {
		t.Fatalf("scratch/old still exists: %s", out)
	}
	var scans []string
	for _, l := range g.hookLines(t) {
		if strings.Contains(l, "secret scan:") {
			scans = append(scans, l)
		}
	}
	if len(scans) != 2 || !strings.Contains(scans[0], "secret scan: 1 commit(s)") || !strings.Contains(scans[1], "secret scan: 0 commit(s)") {
		t.Fatalf("scan summaries %q, want one commit, then none", scans)
	}
}

// TestScanFailsClosed: a scanner that fails, or is missing, refuses the
// push.
func TestScanFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  []string
		want []string
	}{
		{"fails", []string{"/bin/sh", "-c", "echo scanner broke >&2; exit 3"}, []string{"remote: scanner broke", "the secret scan failed (exit 3)"}},
		{"missing", []string{filepath.Join(t.TempDir(), "no-such-scanner")}, []string{"the secret scan failed (exit 127)"}},
		{"bad args", append(testScanCommand(t), "extra"), []string{"git-scan takes no arguments", "the secret scan failed (exit 2)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate(t, 0)
			g.srv.ScanCommand = tc.cmd
			if err := g.srv.SetRepos([]Repo{testRepo}); err != nil {
				t.Fatal(err)
			}
			a := g.clone(t)
			g.git(t, a, "checkout", "--quiet", "-b", "agent/x")
			commitFile(t, g, a, "x", []byte("x\n"))
			out := g.gitFail(t, a, "push", "origin", "agent/x")
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("push stderr lacks %q:\n%s", w, out)
				}
			}
			bare := filepath.Join(g.srv.Root, "repo.git")
			if out, err := g.cmd(bare, "rev-parse", "--verify", "--quiet", "refs/heads/agent/x").Output(); err == nil {
				t.Fatalf("the gate took agent/x: %s", out)
			}
			if !strings.Contains(g.log.String(), "the secret scan failed") {
				t.Fatalf("failure not in the gate log:\n%s", g.log.String())
			}
		})
	}
}

func TestUpstreamScanRefusal(t *testing.T) {
	g := newUpstreamGate(t, nil)
	tok := token(t)
	g.srv.SetCanaries(map[string]string{"secret.gitea_token": tok, "key": string(g.keyPEM)})
	key := awsKey(t)
	a := g.clone(t)
	before := g.upstreamRef(t, "refs/heads/trunk")
	g.git(t, a, "checkout", "--quiet", "-b", "agent/leak")
	commitFile(t, g.gate, a, "aws.env", []byte("AWS_ACCESS_KEY_ID="+key+"\n"))
	commitFile(t, g.gate, a, "token", []byte("x\ny\n"+tok+"\n"))
	commitFile(t, g.gate, a, "id_ed25519", g.keyPEM)
	out := g.gitFail(t, a, "push", "origin", "agent/leak")
	for _, w := range []string{
		"secret found: aws.env:1 (commit " + g.git(t, a, "rev-parse", "--short=7", "HEAD~2") + ", rule aws-access-token)",
		"secret found: token:3 (commit " + g.git(t, a, "rev-parse", "--short=7", "HEAD~1") + ", the bottle's secret secret.gitea_token)",
		"secret found: id_ed25519:1 (commit " + g.git(t, a, "rev-parse", "--short=7", "HEAD") + ", the bottle's secret key)",
		"secret found: id_ed25519:1 (commit " + g.git(t, a, "rev-parse", "--short=7", "HEAD") + ", rule private-key)",
	} {
		if !strings.Contains(out, w) {
			t.Fatalf("push stderr lacks %q:\n%s", w, out)
		}
	}
	if n := g.receivePacks(); n != 0 {
		t.Fatalf("upstream saw %d receive-packs, want 0: %q", n, g.sshd.execLog())
	}
	if got := g.upstreamRef(t, "refs/heads/agent/leak"); got != "" {
		t.Fatalf("upstream got agent/leak: %s", got)
	}
	if got := g.gateRef(t, "refs/heads/agent/leak"); got != "" {
		t.Fatalf("the gate took agent/leak: %s", got)
	}
	if got := g.upstreamRef(t, "refs/heads/trunk"); got != before {
		t.Fatalf("upstream trunk moved to %s", got)
	}
	noSecret(t, "client output", out, key, tok)
	noSecret(t, "gate log", g.log.String(), key, tok)
	g.noKeyIn(t, "client output", out)

	// Clean: pushed through.
	g.git(t, a, "reset", "--quiet", "--hard", "origin/trunk")
	commitFile(t, g.gate, a, "fine", []byte("fine\n"))
	g.git(t, a, "push", "--quiet", "origin", "agent/leak")
	if got, want := g.upstreamRef(t, "refs/heads/agent/leak"), g.git(t, a, "rev-parse", "HEAD"); got != want {
		t.Fatalf("upstream agent/leak = %q, want %s", got, want)
	}
}

// scanRepo runs ScanMain in process on the repository at dir (GIT_DIR),
// with canaries and the ref lines.
func scanRepo(t *testing.T, dir string, canaries map[string]string, lines ...string) (int, string, string) {
	t.Helper()
	t.Setenv("GIT_DIR", dir)
	t.Setenv(CanariesEnv, canariesJSON(canaries))
	var stdout, stderr bytes.Buffer
	code := ScanMain(nil, strings.NewReader(strings.Join(lines, "\n")+"\n"), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

const zeroID = "0000000000000000000000000000000000000000"

// TestScanMain runs the scanner the way pre-receive does: in a bare
// repository whose refs are what it already holds, with the pushed objects
// readable but unreferenced (here through an alternate object directory,
// the work repository's, in place of the quarantine).
func TestScanMain(t *testing.T) {
	requireGit(t)
	g := &gate{home: t.TempDir()}
	w, bare := t.TempDir(), filepath.Join(t.TempDir(), "r.git")
	g.git(t, w, "-c", "init.defaultBranch=main", "init", "--quiet", ".")
	g.git(t, "", "init", "--quiet", "--bare", bare)
	os.WriteFile(filepath.Join(bare, "objects", "info", "alternates"), []byte(filepath.Join(w, ".git", "objects")+"\n"), 0o644)
	os.WriteFile(filepath.Join(bare, "info", "attributes"), []byte(attributes), 0o644)
	key, tok := awsKey(t), token(t)
	rev := func(r string) string { return g.git(t, w, "rev-parse", r) }
	short := func(r string) string { return rev(r)[:7] }
	hold := func(id string) { g.git(t, bare, "update-ref", "refs/heads/main", id) } // the gate has id
	scan := func(want int, lines ...string) string {
		t.Helper()
		code, stdout, stderr := scanRepo(t, bare, map[string]string{"secret.tok": tok}, lines...)
		noSecret(t, "scanner output", stdout+stderr, key, tok)
		if code != want {
			t.Fatalf("scan of %q: exit %d, want %d\n%s%s", lines, code, want, stdout, stderr)
		}
		return stdout
	}
	has := func(out string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Fatalf("scanner output lacks %q:\n%s", w, out)
			}
		}
	}

	// The root commit and the next, with paths git quotes.
	commitFile(t, g, w, "tab\tname.env", []byte("one\nAWS_ACCESS_KEY_ID="+key+"\n"))
	commitFile(t, g, w, "sp ace \u00fc\"q.txt", []byte("a\nb\n"+tok+"\n"))
	out := scan(1, zeroID+" "+rev("HEAD")+" refs/heads/main")
	has(out, `secret found: "tab\tname.env":2 (commit `+short("HEAD~1")+", rule aws-access-token)",
		`secret found: "sp ace ü\"q.txt":3 (commit `+short("HEAD")+", the bottle's secret secret.tok)",
		"2 finding(s)")

	// What the repository holds is not scanned again.
	hold(rev("HEAD"))
	commitFile(t, g, w, "f.txt", []byte("1\n2\n3\n4\n5\n6\n7\n8\n"))
	has(scan(0, rev("HEAD~1")+" "+rev("HEAD")+" refs/heads/agent/a"), "secret scan: 1 commit(s)")
	hold(rev("HEAD"))
	base := rev("HEAD")

	// Several hunks: each one's lines numbered from its header. A
	// "gitleaks:allow" comment exempts nothing. A deletion is not scanned.
	commitFile(t, g, w, "f.txt", []byte("1\nx = "+tok+"\n3\n4\n5\n6\n7\nAWS="+key+" # gitleaks:allow\n8\n"))
	out = scan(1, base+" "+rev("HEAD")+" refs/heads/agent/a", rev("HEAD~1")+" "+zeroID+" refs/heads/gone")
	has(out, "secret found: f.txt:2 (commit "+short("HEAD")+", the bottle's secret secret.tok)",
		"secret found: f.txt:8 (commit "+short("HEAD")+", rule aws-access-token)", "2 finding(s)")
	has(scan(0, rev("HEAD")+" "+zeroID+" refs/heads/agent/a"), "secret scan: 0 commit(s)")

	// Binary files: checked for the canaries, with their line.
	g.git(t, w, "reset", "--quiet", "--hard", base)
	commitFile(t, g, w, "blob.bin", []byte("\x00\x01\n\n"+tok+"\x00\n"))
	has(scan(1, base+" "+rev("HEAD")+" refs/heads/agent/b"), "secret found: blob.bin:3 (commit "+short("HEAD")+", the bottle's secret secret.tok)")

	// A canary in a path: found, and the path is not printed.
	g.git(t, w, "reset", "--quiet", "--hard", base)
	commitFile(t, g, w, "x-"+tok, nil)
	has(scan(1, base+" "+rev("HEAD")+" refs/heads/agent/b"), "secret found: the path of a file (commit "+short("HEAD")+", the bottle's secret secret.tok)")

	// A merge: what it adds to all of its parents is its own; what it takes
	// from one of them is that one's.
	g.git(t, w, "reset", "--quiet", "--hard", base)
	g.git(t, w, "checkout", "--quiet", "-b", "side")
	commitFile(t, g, w, "m.txt", []byte("a\nside\n"))
	g.git(t, w, "checkout", "--quiet", "main")
	commitFile(t, g, w, "m.txt", []byte("a\nmain "+tok+"\n"))
	g.cmd(w, "merge", "--quiet", "side").Run() // conflicts
	os.WriteFile(filepath.Join(w, "m.txt"), []byte("a\nmain "+tok+"\nside\nAWS_ACCESS_KEY_ID="+key+"\n"), 0o644)
	g.git(t, w, "commit", "--quiet", "-a", "-m", "merge")
	out = scan(1, base+" "+rev("HEAD")+" refs/heads/agent/m")
	has(out, "secret found: m.txt:4 (commit "+short("HEAD")+", rule aws-access-token)",
		"secret found: m.txt:2 (commit "+short("HEAD^1")+", the bottle's secret secret.tok)", "2 finding(s)")

	// Annotated tags: their message is scanned. A ref must end at a commit.
	g.git(t, w, "tag", "-a", "v1", "-m", "release\n\nsigned off with "+tok, base)
	tag := rev("refs/tags/v1")
	has(scan(1, zeroID+" "+tag+" refs/tags/v1"), "secret found: tag message:3 (tag "+tag[:7]+", the bottle's secret secret.tok)")
	blob := g.git(t, w, "rev-parse", base+":f.txt")
	has(scan(1, zeroID+" "+blob+" refs/tags/b"), "refusing push: refs/tags/b points at a blob, not a commit")
}

// TestScanAttributesHideNothing: git reads attributes from a work tree (and,
// since git 2.42, a bare repository's HEAD); a pushed "*.env binary" would
// make git call the file binary and gitleaks never see it, but the gate's
// info/attributes outranks it.
func TestScanAttributesHideNothing(t *testing.T) {
	requireGit(t)
	g := &gate{home: t.TempDir()}
	w := t.TempDir()
	g.git(t, w, "-c", "init.defaultBranch=main", "init", "--quiet", ".")
	commitFile(t, g, w, "README", []byte("hi\n"))
	key := awsKey(t)
	os.WriteFile(filepath.Join(w, ".gitattributes"), []byte("*.env binary\n"), 0o644)
	os.WriteFile(filepath.Join(w, "x.env"), []byte("AWS_ACCESS_KEY_ID="+key+"\n"), 0o644)
	g.git(t, w, "add", ".gitattributes", "x.env")
	c := g.git(t, w, "commit-tree", "-p", "HEAD", "-m", "attrs", g.git(t, w, "write-tree"))
	t.Chdir(w)
	line := g.git(t, w, "rev-parse", "HEAD") + " " + c + " refs/heads/agent/x"
	code, out, _ := scanRepo(t, filepath.Join(w, ".git"), nil, line)
	t.Logf("without info/attributes: exit %d", code) // 0: the work tree's attributes hid it
	os.WriteFile(filepath.Join(w, ".git", "info", "attributes"), []byte(attributes), 0o644)
	code, out, _ = scanRepo(t, filepath.Join(w, ".git"), nil, line)
	if code != 1 || !strings.Contains(out, "secret found: x.env:1 (commit "+c[:7]+", rule aws-access-token)") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestScanMainEnv(t *testing.T) {
	var stdout, stderr bytes.Buffer
	os.Unsetenv(CanariesEnv)
	if code := ScanMain(nil, strings.NewReader(""), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), CanariesEnv+" is not set") {
		t.Fatalf("no canaries: %d %q", code, stderr.String())
	}
	t.Setenv(CanariesEnv, `{"a": "not base64 s3cr3tvalue"}`)
	stderr.Reset()
	if code := ScanMain(nil, strings.NewReader(""), &stdout, &stderr); code != 2 || strings.Contains(stderr.String(), "s3cr3t") {
		t.Fatalf("bad canaries: %d %q", code, stderr.String())
	}
	t.Setenv(CanariesEnv, "{}")
	stderr.Reset()
	if code := ScanMain(nil, strings.NewReader("x y\n"), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "bad ref line") {
		t.Fatalf("bad stdin: %d %q", code, stderr.String())
	}
	// Short canaries are dropped; the rest come back sorted.
	c, err := parseCanaries(canariesJSON(map[string]string{"b": "12345678", "a": "abcdefghi", "short": "1234567"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []canary{{"a", []byte("abcdefghi")}, {"b", []byte("12345678")}}; !reflect.DeepEqual(c, want) {
		t.Fatalf("canaries = %q", c)
	}
	// SetCanaries copies.
	s := &Server{}
	m := map[string]string{"k": "value-one"}
	s.SetCanaries(m)
	m["k"] = "changed!!"
	var got map[string][]byte
	json.Unmarshal([]byte(*s.canaries.Load()), &got)
	if string(got["k"]) != "value-one" {
		t.Fatalf("SetCanaries did not copy: %q", got)
	}
}
