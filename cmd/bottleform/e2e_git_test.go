package main

// TestE2EGit proves the git gate end to end on this machine's Docker
// engine: a bottle with two git entries, one whose deploy key bottleform
// mints on a (fake) Gitea at apply and one whose key is a file on the
// host; an SSH git server (internal/testgitd, the real git-upload-pack and
// git-receive-pack) running as a container on the bottle's egress network;
// and the real git in the agent cloning and pushing through the gate by
// the upstream URLs, which the agent's git rewrites to the gate.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bottleform/bottleform/forge/giteatest"
	"github.com/bottleform/bottleform/resource"
)

const (
	gitBottle   = "gg"
	gitUpHost   = "gitea.example.test"
	giteaCanary = "gitea-token-canary-"
)

func gitMain(api, hostKey string) string {
	return fmt.Sprintf(`secret "gitea_admin" {
  env = "E2E_GITEA_TOKEN"
}

bottle "gg" {
  image = "bottleform-agent:test"

  git "app" {
    upstream = "ssh://git@%[3]s/acme/app.git"
    host_key = %[2]q
    key "gitea" {
      api_url = %[1]q
      token   = secret.gitea_admin
    }
    push = ["refs/heads/agent/*"]
  }

  git "lib" {
    upstream = "ssh://git@%[3]s/acme/lib.git"
    host_key = %[2]q
    key "file" {
      path = "lib_key"
    }
    push = ["refs/heads/agent/*"]
  }

  git_user {
    name  = "E2E Bot"
    email = "e2e@example.test"
  }
}
`, api, hostKey, gitUpHost)
}

// e2eKey makes an ed25519 key: its private half in OpenSSH PEM and its
// public half as an authorized_keys line.
func e2eKey(t *testing.T) (privPEM []byte, authorized string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(blk), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(spub)))
}

// hostGit runs git on the host in dir.
func hostGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=seed", "GIT_AUTHOR_EMAIL=seed@example.test",
		"GIT_COMMITTER_NAME=seed", "GIT_COMMITTER_EMAIL=seed@example.test", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// seedRepos makes root/acme/{app,lib}.git, each with one commit on main.
func seedRepos(t *testing.T, root string) {
	t.Helper()
	for _, name := range []string{"app", "lib"} {
		bare := filepath.Join(root, "acme", name+".git")
		if err := os.MkdirAll(bare, 0o755); err != nil {
			t.Fatal(err)
		}
		hostGit(t, bare, "init", "-q", "--bare", "-b", "main")
		work := t.TempDir()
		hostGit(t, work, "init", "-q", "-b", "main")
		if err := os.WriteFile(filepath.Join(work, "README"), []byte(name+" upstream\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		hostGit(t, work, "add", "README")
		hostGit(t, work, "commit", "-q", "-m", "seed "+name)
		hostGit(t, work, "push", "-q", bare, "main")
	}
}

type gitFixture struct {
	dir, lineage, upstream string
	env                    []string
	gitea                  *giteatest.Server
	libKey                 []byte
}

func (f *gitFixture) name(component string) string {
	return resource.ObjectName(f.lineage, gitBottle, component)
}

// agent runs a shell script in the agent, as the agent user.
func (f *gitFixture) agent(t *testing.T, script string) bfResult {
	t.Helper()
	return bfRun(t, f.dir, nil, "attach", gitBottle, "--", "sh", "-c", script)
}

// upstreamRef is ref in the upstream's repo, or "" if it does not exist.
func (f *gitFixture) upstreamRef(t *testing.T, repo, ref string) string {
	t.Helper()
	out, err := dockerRun("exec", f.upstream, "git", "--git-dir=/srv/repos/acme/"+repo+".git", "-c", "safe.directory=*", "rev-parse", "--verify", "-q", ref)
	if err != nil {
		return ""
	}
	return out
}

func TestE2EGit(t *testing.T) {
	e2eRequire(t)
	token := giteaCanary + randomHex(12)
	f := &gitFixture{dir: t.TempDir(), env: []string{"E2E_GITEA_TOKEN=" + token}}
	f.gitea = giteatest.New(t, token, "acme/app")
	t.Cleanup(func() { cleanupDir(t, f.dir) })

	hostPEM, hostPub := e2eKey(t)
	var libPub string
	f.libKey, libPub = e2eKey(t)
	if err := os.WriteFile(filepath.Join(f.dir, "lib_key"), f.libKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "main.hcl"), []byte(gitMain(f.gitea.URL, hostPub)), 0o644); err != nil {
		t.Fatal(err)
	}

	r := bfRun(t, f.dir, f.env, "apply", "--auto-approve")
	wantCode(t, "apply", r, 0)
	f.lineage = lineageOf(f.dir)
	keys := f.gitea.Keys("acme/app")
	if len(keys) != 1 || keys[0].ReadOnly {
		t.Fatalf("deploy keys on acme/app after apply: %+v, want one read-write key", keys)
	}

	// The upstream: testgitd on the bottle's egress network, trusting the
	// minted key (its public half, as Gitea holds it) and lib's.
	bin := filepath.Join(t.TempDir(), "testgitd")
	build := exec.Command("go", "build", "-o", bin, "./internal/testgitd")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./internal/testgitd: %v\n%s", err, out)
	}
	srv := t.TempDir()
	seedRepos(t, filepath.Join(srv, "repos"))
	if err := os.WriteFile(filepath.Join(srv, "host_key"), hostPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv, "authorized_keys"), []byte(keys[0].Key+"\n"+libPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin, filepath.Join(srv, "testgitd")); err != nil {
		t.Fatal(err)
	}
	f.upstream = "bfe2e-gitd-" + randomHex(4)
	dockerCLI(t, "create", "--name", f.upstream, "--user", "0", "--network", f.name("egress"),
		"--network-alias", gitUpHost, "--label", "dev.bottleform.e2e=upstream",
		"--entrypoint", "/srv/testgitd", e2eAgentImage)
	t.Cleanup(func() {
		if _, err := dockerRun("rm", "-f", f.upstream); err != nil {
			t.Errorf("cleanup: remove the upstream: %v", err)
		}
	})
	dockerCLI(t, "cp", srv+"/.", f.upstream+":/srv")
	dockerCLI(t, "start", f.upstream)
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs, _ := exec.Command("docker", "logs", f.upstream).CombinedOutput()
		if strings.Contains(string(logs), "testgitd ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("testgitd did not come up:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Run("clone-and-push", func(t *testing.T) { gitCloneAndPush(t, f) })
	t.Run("refusals", func(t *testing.T) { gitRefusals(t, f) })
	t.Run("verify", func(t *testing.T) { gitVerify(t, f, token) })
	t.Run("no-key-in-agent", func(t *testing.T) { gitNoKeyInAgent(t, f, token) })
	t.Run("entry-in-place", func(t *testing.T) { gitEntryInPlace(t, f, hostPub) })
	t.Run("destroy-revokes", func(t *testing.T) { gitDestroyRevokes(t, f) })
}

// gitVerify: verify checks each gate from inside the agent, with a push
// the gate refuses, and finds no key or token there.
func gitVerify(t *testing.T, f *gitFixture, token string) {
	code, st, ev := verifyRun(t, f.dir, f.env, token, string(f.libKey))
	for _, id := range []string{"git_gate:app", "git_gate:lib", "git_push_refused:app", "git_push_refused:lib", "no_secrets_in_agent"} {
		if st[id] != "pass" {
			t.Errorf("%s is %q: %s", id, st[id], ev[id])
		}
	}
	if code != 0 {
		t.Errorf("verify exited %d: %v", code, ev)
	}
	for _, repo := range []string{"app", "lib"} {
		refs, err := dockerRun("exec", f.upstream, "git", "--git-dir=/srv/repos/acme/"+repo+".git", "-c", "safe.directory=*", "for-each-ref", "refs/bottleform-verify/")
		if err != nil || refs != "" {
			t.Errorf("verify's refused push reached %s upstream: %s %v", repo, refs, err)
		}
	}
	t.Logf("%s; %s", ev["git_push_refused:app"], ev["no_secrets_in_agent"])
}

// gitCloneAndPush: both repositories clone by their upstream URLs, and a
// push to a granted ref lands upstream.
func gitCloneAndPush(t *testing.T, f *gitFixture) {
	for _, repo := range []string{"app", "lib"} {
		r := f.agent(t, fmt.Sprintf(`set -e
rm -rf /tmp/%[1]s
git clone -q ssh://git@%[2]s/acme/%[1]s.git /tmp/%[1]s
cd /tmp/%[1]s
git remote get-url origin
cat README
echo change > change.txt
git add change.txt
git commit -q -m "agent change"
git push -q origin HEAD:refs/heads/agent/e2e 2>&1
git rev-parse HEAD`, repo, gitUpHost))
		wantCode(t, "clone and push "+repo, r, 0)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		// git shows the remote as it resolves it: the gate.
		if len(lines) < 3 || lines[0] != "http://git-gate/"+repo+".git" || lines[1] != repo+" upstream" {
			t.Fatalf("%s: unexpected output:\n%s", repo, r)
		}
		head := lines[len(lines)-1]
		if got := f.upstreamRef(t, repo, "refs/heads/agent/e2e"); got != head {
			t.Errorf("%s: upstream refs/heads/agent/e2e = %q, want the agent's commit %s", repo, got, head)
		}
		author := f.agent(t, "git -C /tmp/"+repo+" log -1 --format='%an <%ae>'")
		if strings.TrimSpace(author.stdout) != "E2E Bot <e2e@example.test>" {
			t.Errorf("%s: the commit's author is %q, want the git_user", repo, author.stdout)
		}
	}
}

// gitRefusals: a ref outside the push patterns and a commit holding a
// secret are refused, with the reason the agent can act on, and neither
// reaches upstream.
func gitRefusals(t *testing.T, f *gitFixture) {
	main := f.upstreamRef(t, "app", "refs/heads/main")
	r := f.agent(t, `cd /tmp/app && git push origin HEAD:refs/heads/main 2>&1`)
	if r.code == 0 || !strings.Contains(r.stdout, "not in the bottle's push patterns") {
		t.Errorf("push to main: %s", r)
	}
	if got := f.upstreamRef(t, "app", "refs/heads/main"); got != main {
		t.Errorf("upstream main moved from %s to %s", main, got)
	}

	// A realistic AWS access key id, made here so no file holds it.
	aws := "AKIA" + randomBase32(16)
	before := f.upstreamRef(t, "app", "refs/heads/agent/e2e")
	r = f.agent(t, `set -e
cd /tmp/app
printf 'region=eu-west-1\naws_access_key_id=`+aws+`\n' > deploy.env
git add deploy.env
git commit -q -m "add deploy settings"
git push origin HEAD:refs/heads/agent/e2e 2>&1 || echo "push failed: $?"`)
	if !strings.Contains(r.stdout, "push failed") || !strings.Contains(r.stdout, "deploy.env:2") {
		t.Errorf("push of a commit with a secret: want a refusal naming deploy.env:2:\n%s", r)
	}
	if strings.Contains(r.stdout, aws) {
		t.Errorf("the refusal echoes the secret:\n%s", r.stdout)
	}
	if got := f.upstreamRef(t, "app", "refs/heads/agent/e2e"); got != before {
		t.Errorf("the secret reached upstream: agent/e2e moved from %s to %s", before, got)
	}
	logs := bfOK(t, f.dir, nil, "logs", gitBottle)
	if !strings.Contains(logs, "deploy.env:2") {
		t.Errorf("the sidecar's log does not record the refusal:\n%s", logs)
	}
	if strings.Contains(logs, aws) {
		t.Error("the sidecar's log holds the secret")
	}
}

// gitNoKeyInAgent: neither key, nor the Gitea token, is anywhere in the
// agent: its environment, its processes, its file system.
func gitNoKeyInAgent(t *testing.T, f *gitFixture, token string) {
	// A line of each key's base64: lib's from the host file, app's (minted
	// at apply, known only to the sidecar) read from the sidecar's tmpfs
	// with the shell's builtins (the sidecar image has no cat).
	libBody := strings.Split(strings.TrimSpace(string(f.libKey)), "\n")[2]
	minted := dockerCLI(t, "exec", f.name("sidecar"), "sh", "-c", `while IFS= read -r l; do printf '%s\n' "$l"; done < /run/bottleform/keys/app`)
	mintedLines := strings.Split(strings.TrimSpace(minted), "\n")
	if len(mintedLines) < 4 || !strings.Contains(mintedLines[0], "BEGIN OPENSSH PRIVATE KEY") {
		t.Fatalf("the sidecar's copy of the minted key is not a key:\n%s", minted)
	}
	needles := []string{libBody, mintedLines[2], token}
	places := map[string]string{}
	places["docker inspect of the agent"] = dockerCLI(t, "inspect", f.name("agent"))
	procs, err := dockerRun("exec", "-u", "0", f.name("agent"), "sh", "-c", `for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null; echo; done`)
	if err != nil {
		t.Fatal(err)
	}
	places["the environ and cmdline of every process in the agent"] = procs
	for where, text := range places {
		for _, n := range needles {
			if strings.Contains(text, n) {
				t.Errorf("%q is in %s", n, where)
			}
		}
	}
	hits, files := exportSearch(t, f.name("agent"), append(needles, "insteadOf")...)
	if len(hits["insteadOf"]) == 0 {
		t.Error("control: the agent's gitconfig (insteadOf) is not found by the export search")
	}
	for _, n := range needles {
		for _, p := range hits[n] {
			t.Errorf("%q is in the agent's file %s", n, p)
		}
	}
	t.Logf("searched %d files of the agent", files)
}

// gitEntryInPlace: removing a git entry changes the sidecar's and the
// agent's configuration in place; adding it back does too.
func gitEntryInPlace(t *testing.T, f *gitFixture, hostPub string) {
	agentID := dockerCLI(t, "inspect", "--format", "{{.Id}}", f.name("agent"))
	sidecarID := dockerCLI(t, "inspect", "--format", "{{.Id}}", f.name("sidecar"))
	src, err := os.ReadFile(filepath.Join(f.dir, "main.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(src), `  git "lib" {`)
	end := strings.Index(string(src), `  git_user {`)
	without := string(src[:start]) + string(src[end:])
	if err := os.WriteFile(filepath.Join(f.dir, "main.hcl"), []byte(without), 0o644); err != nil {
		t.Fatal(err)
	}
	r := bfRun(t, f.dir, f.env, "apply", "--auto-approve")
	wantCode(t, "apply without lib", r, 0)
	wantLines(t, "apply without lib", r.stdout, "Apply complete! Objects: 0 added, 1 changed, 1 destroyed.")
	if got := f.agent(t, "git ls-remote ssh://git@"+gitUpHost+"/acme/lib.git 2>&1; echo exit=$?"); !strings.Contains(got.stdout, "exit=") || strings.Contains(got.stdout, "exit=0") {
		t.Errorf("lib is still reachable after its entry was removed:\n%s", got)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "main.hcl"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	r = bfRun(t, f.dir, f.env, "apply", "--auto-approve")
	wantCode(t, "apply with lib again", r, 0)
	wantLines(t, "apply with lib again", r.stdout, "Apply complete! Objects: 1 added, 1 changed, 0 destroyed.")
	wantCode(t, "ls-remote lib", f.agent(t, "git ls-remote ssh://git@"+gitUpHost+"/acme/lib.git"), 0)
	// The app key was kept by the sidecar across both loads: app still works.
	wantCode(t, "ls-remote app", f.agent(t, "git ls-remote ssh://git@"+gitUpHost+"/acme/app.git"), 0)
	if got := dockerCLI(t, "inspect", "--format", "{{.Id}}", f.name("agent")); got != agentID {
		t.Error("the agent was replaced")
	}
	if got := dockerCLI(t, "inspect", "--format", "{{.Id}}", f.name("sidecar")); got != sidecarID {
		t.Error("the sidecar was replaced")
	}
	if n := len(f.gitea.CallsWith(http.MethodPost)); n != 1 {
		t.Errorf("%d deploy keys minted, want 1 (the app key is kept in the sidecar)", n)
	}
}

// gitDestroyRevokes: a revocation that fails fails destroy and keeps the
// key in the state; the next destroy finishes.
func gitDestroyRevokes(t *testing.T, f *gitFixture) {
	// The upstream holds the bottle's egress network: it goes first.
	if _, err := dockerRun("rm", "-f", f.upstream); err != nil {
		t.Fatal(err)
	}
	f.gitea.FailDelete(http.StatusInternalServerError)
	r := bfRun(t, f.dir, f.env, "destroy", "--auto-approve")
	if r.code == 0 || !strings.Contains(r.stderr, "500") {
		t.Fatalf("destroy with Gitea failing: %s", r)
	}
	if out := bfOK(t, f.dir, nil, "state", "list"); !strings.Contains(out, `git["app"].deploy_key`) {
		t.Errorf("the state no longer records the key:\n%s", out)
	}
	if objs := lineageObjects(t, f.lineage); strings.Contains(strings.Join(objs, " "), "agent") || strings.Contains(strings.Join(objs, " "), "sidecar") {
		t.Errorf("containers left after the failed destroy: %v", objs)
	}
	f.gitea.FailDelete(0)
	r = bfRun(t, f.dir, f.env, "destroy", "--auto-approve")
	wantCode(t, "destroy again", r, 0)
	if n := len(f.gitea.Keys("acme/app")); n != 0 {
		t.Errorf("%d deploy keys left on Gitea", n)
	}
}

// randomBase32 is n random characters of the base32 alphabet, the
// alphabet of AWS access key ids.
func randomBase32(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
