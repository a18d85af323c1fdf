package docker

import (
	"bytes"
	"context"
	"debug/elf"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/bottleform/bottleform/sidecar/gitgate"
)

// hostGit is git on this host and its exec path; the test is skipped
// without it.
func hostGit(t *testing.T) (string, string) {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git on this host")
	}
	out, err := exec.Command(git, "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	return git, strings.TrimSpace(string(out))
}

// interpreter is the PT_INTERP of the ELF file p.
func interpreter(t *testing.T, p string) string {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				t.Fatal(err)
			}
			return string(bytes.TrimRight(b, "\x00"))
		}
	}
	t.Fatalf("%s has no program interpreter", p)
	return ""
}

func TestCollectGitFiles(t *testing.T) {
	git, execPath := hostGit(t)
	g, err := collectGitFiles()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]tarEntry{}
	var hardlinks int
	for _, e := range g.Entries {
		if _, dup := byName[e.Name]; dup {
			t.Errorf("%s twice", e.Name)
		}
		if e.Hardlink != "" {
			hardlinks++
			if first, ok := byName[e.Hardlink]; !ok || first.Data == nil {
				t.Errorf("%s: hardlink to %s, which is not an earlier regular file", e.Name, e.Hardlink)
			}
		}
		byName[e.Name] = e
	}
	// resolved follows the entries' symlinks from the image path p to the
	// entry of a file, as the kernel would in the container.
	var resolved func(p string, depth int) (tarEntry, bool)
	resolved = func(p string, depth int) (tarEntry, bool) {
		parts := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
		cur := ""
		for i, part := range parts {
			cur = filepath.Join(cur, part)
			e, ok := byName[cur]
			if !ok {
				e, ok = byName[cur+"/"]
			}
			if !ok || depth > 40 {
				return tarEntry{}, false
			}
			if e.Link != "" {
				target := e.Link
				if !filepath.IsAbs(target) {
					target = filepath.Join("/", filepath.Dir(cur), target)
				}
				return resolved(filepath.Join(append([]string{target}, parts[i+1:]...)...), depth+1)
			}
			if i == len(parts)-1 {
				return e, true
			}
		}
		return tarEntry{}, false
	}
	hasFile := func(p string) {
		t.Helper()
		if e, ok := resolved(p, 0); !ok || (e.Data == nil && e.Hardlink == "") {
			t.Errorf("no file at %s in the git file set", p)
		}
	}
	interp := interpreter(t, git)
	for _, p := range []string{git, filepath.Join(execPath, "git"), filepath.Join(execPath, "git-http-backend"),
		filepath.Join(execPath, "git-upload-pack"), filepath.Join(execPath, "git-receive-pack"), "/bin/sh", interp} {
		hasFile(p)
	}
	var libc bool
	for name, e := range byName {
		if strings.HasPrefix(filepath.Base(name), "libc.so.") && (e.Data != nil || e.Hardlink != "") {
			libc = true
		}
	}
	if !libc {
		t.Error("no libc.so.* in the git file set")
	}
	for _, p := range []string{"git-remote-http", "git-remote-https", "git-http-push", "git-imap-send"} {
		if _, ok := byName[filepath.Join(execPath, p)[1:]]; ok {
			t.Errorf("%s is in the git file set", p)
		}
	}
	for name := range byName {
		if strings.Contains(name, "libcurl") {
			t.Errorf("%s: libcurl is in the git file set", name)
		}
	}
	if hardlinks == 0 {
		t.Error("no hardlinks: identical files (git in PATH and in the exec path) are stored twice")
	}
	again, err := collectGitFiles()
	if err != nil || again.Digest != g.Digest {
		t.Errorf("digest %s then %s (%v): not stable", g.Digest, again.Digest, err)
	}
	t.Logf("%d entries, %d hardlinks, %.1f MB of files, LD_LIBRARY_PATH %q, digest %s", len(g.Entries), hardlinks, float64(g.Size)/1e6, g.LibPath, g.Digest[:12])
}

func TestSidecarImageGit(t *testing.T) {
	git, _ := hostGit(t)
	ctx := context.Background()
	tag, img, b := buildSidecarImage(t, "test-git-", nil)
	g, err := collectGitFiles()
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Config.Labels[labelGitSHA256]; got != g.Digest {
		t.Errorf("label %s = %q, want %q", labelGitSHA256, got, g.Digest)
	}
	t.Logf("sidecar image with git: %.1f MB", float64(img.Size)/1e6)

	// A container as the sidecar runs (its user, read-only root, no
	// capabilities, no network), with a tmpfs /tmp, kept alive by a shell
	// waiting on a stdin nobody writes to.
	name := "bf-test-git-" + randomHex(6)
	resp, err := cli.ContainerCreate(ctx, &container.Config{
		Image: tag, User: sidecarUser, Entrypoint: []string{"/bin/sh", "-c", "read x"}, Cmd: []string{}, OpenStdin: true,
	}, &container.HostConfig{
		NetworkMode: "none", ReadonlyRootfs: true, CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
		// Docker mounts a tmpfs noexec unless told: git would ignore the
		// hooks in it.
		Tmpfs: map[string]string{"/tmp": "mode=1777,exec"},
	}, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	run := func(script, stdin string) (string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var in *strings.Reader
		var out, errb []byte
		var code int
		var err error
		if stdin != "" {
			in = strings.NewReader(stdin)
			out, errb, code, err = b.exec(ctx, resp.ID, []string{"/bin/sh", "-c", script}, "", in)
		} else {
			out, errb, code, err = b.exec(ctx, resp.ID, []string{"/bin/sh", "-c", script}, "", nil)
		}
		if err != nil || code != 0 {
			t.Fatalf("%s: exit %d, %v\nstdout: %s\nstderr: %s", script, code, err, out, errb)
		}
		return string(out), string(errb)
	}

	want, _ := exec.Command(git, "--version").Output()
	if out, _ := run("git --version", ""); out != string(want) {
		t.Errorf("git --version in the image: %q, want %q", out, want)
	}
	run("git init --quiet --bare /tmp/r.git", "")
	out, _ := run("REQUEST_METHOD=GET PATH_INFO=/r.git/info/refs QUERY_STRING=service=git-upload-pack GIT_PROJECT_ROOT=/tmp GIT_HTTP_EXPORT_ALL=1 exec git http-backend", "")
	if !strings.Contains(out, "Content-Type: application/x-git-upload-pack-advertisement") || !strings.Contains(out, "# service=git-upload-pack") {
		t.Errorf("git http-backend in the image:\n%s", out)
	}

	// The gate's policy script as the pre-receive hook, run by the image's
	// shell and git alone: a push the policy grants is taken, a ref outside
	// it and a non-fast-forward update are refused. The image has no chmod:
	// git checkout-index writes the hooks with their executable mode.
	policy, _ := run("cd /tmp && git init --quiet w && cd w && git hash-object -w --stdin", gitgate.PolicyScript)
	wrapper, _ := run("cd /tmp/w && git hash-object -w --stdin", "#!/bin/sh\nexec /tmp/r.git/hooks/bottleform-policy r /tmp/r.git/policy\n")
	run("cd /tmp/w && printf 'refs/heads/*\\n' >/tmp/r.git/policy && git update-index --add --cacheinfo 100755,"+strings.TrimSpace(policy)+",bottleform-policy --cacheinfo 100755,"+strings.TrimSpace(wrapper)+",pre-receive && git checkout-index -a --prefix=/tmp/r.git/hooks/", "")
	const commit = "git -c user.name=t -c user.email=t@example.dev commit --quiet --allow-empty -m "
	run("cd /tmp/w && "+commit+"one && git push --quiet /tmp/r.git HEAD:refs/heads/main", "")
	push := func(script, refusal string) {
		t.Helper()
		out, errb, code, err := b.exec(ctx, resp.ID, []string{"/bin/sh", "-c", script}, "", nil)
		if err != nil || code == 0 || !strings.Contains(string(errb), refusal) {
			t.Errorf("%s: exit %d, %v, want a refusal %q\nstdout: %s\nstderr: %s", script, code, err, refusal, out, errb)
		}
	}
	push("cd /tmp/w && git push /tmp/r.git HEAD:refs/tags/v1", "not in the bottle's push patterns")
	push("cd /tmp/w && git checkout --quiet --orphan other && "+commit+"two && git push /tmp/r.git +HEAD:refs/heads/main", "non-fast-forward update")
	if out, _ := run("git --git-dir=/tmp/r.git for-each-ref --format='%(refname)'", ""); out != "refs/heads/main\n" {
		t.Errorf("refs after the pushes: %q", out)
	}
}

// Without git on the host, the sidecar image is built without it, says so,
// and records "none".
func TestSidecarImageWithoutGit(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := collectGitFiles(); err != errNoGit {
		t.Fatalf("collectGitFiles with no git on PATH: %v, want errNoGit", err)
	}
	var logs []string
	_, img, _ := buildSidecarImage(t, "test-nogit-", func(s string) { logs = append(logs, s) })
	if got := img.Config.Labels[labelGitSHA256]; got != "none" {
		t.Errorf("label %s = %q, want none", labelGitSHA256, got)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "the git gate will be unavailable") {
		t.Errorf("logs %q: nothing says the git gate is unavailable", logs)
	}
	t.Logf("sidecar image without git: %.1f MB", float64(img.Size)/1e6)
}
