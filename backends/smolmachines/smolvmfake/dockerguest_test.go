package smolvmfake

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

const testImageTag = "smolvmfake-test:busybox"

// testPrintenv stands in for coreutils' printenv, which busybox lacks.
const testPrintenv = `#!/bin/sh
[ $# -eq 0 ] && exec env
rc=0
for n in "$@"; do
  if eval "[ -n \"\${$n+x}\" ]"; then eval "printf '%s\n' \"\$$n\""; else rc=1; fi
done
exit $rc
`

type testTarEntry struct {
	name, link string
	mode       int64
	uid, gid   int
	data       []byte
}

func testTar(entries []testTarEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: time.Unix(0, 0)}
		switch {
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag = tar.TypeDir
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	err := tw.Close()
	return buf.Bytes(), err
}

// installBusybox installs Debian's busybox-static if /bin/busybox is
// missing, waiting out another installer holding the dpkg lock.
func installBusybox() error {
	var out []byte
	var err error
	for i := 0; i < 60; i++ {
		if _, serr := os.Stat("/bin/busybox"); serr == nil {
			return nil
		}
		out, err = exec.Command("apt-get", "install", "-y", "busybox-static").CombinedOutput()
		if err == nil {
			return nil
		}
		if !strings.Contains(string(out), "lock") {
			break
		}
		time.Sleep(2 * time.Second)
	}
	return fmt.Errorf("install busybox-static for the test image: %v\n%s", err, out)
}

// ensureTestImage imports smolvmfake-test:busybox: busybox with the
// applets the tests use, root and agent (uid 1000, home /home/agent),
// USER agent, PATH=/bin. A label holding a digest of the contents skips
// the import when the image is current.
func ensureTestImage(ctx context.Context, c *client.Client) error {
	if err := installBusybox(); err != nil {
		return err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return err
	}
	entries := []testTarEntry{
		{name: "bin/", mode: 0o755},
		{name: "bin/busybox", mode: 0o755, data: bb},
		{name: "bin/printenv", mode: 0o755, data: []byte(testPrintenv)},
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nagent:x:1000:\n")},
		{name: "home/", mode: 0o755},
		{name: "home/agent/", mode: 0o755, uid: 1000, gid: 1000},
		{name: "root/", mode: 0o700},
		{name: "tmp/", mode: 0o1777},
	}
	for _, a := range []string{"sh", "sleep", "id", "cat", "ls", "mkdir", "rm", "stat", "env", "echo", "printf", "tar", "chmod", "chown", "kill", "pwd"} {
		entries = append(entries, testTarEntry{name: "bin/" + a, link: "busybox"})
	}
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%s %o %s %d:%d %d\n", e.name, e.mode, e.link, e.uid, e.gid, len(e.data))
		h.Write(e.data)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	const label = "smolvmfake.test-fixture"
	if img, err := c.ImageInspect(ctx, testImageTag); err == nil && img.Config != nil && img.Config.Labels[label] == sum {
		return nil
	} else if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	rootfs, err := testTar(entries)
	if err != nil {
		return err
	}
	rc, err := c.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, testImageTag,
		image.ImportOptions{Changes: []string{`ENV PATH=/bin`, `USER agent`, `CMD ["sleep", "infinity"]`, "LABEL " + label + "=" + sum}})
	if err != nil {
		return fmt.Errorf("import %s: %w", testImageTag, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("import %s: %w", testImageTag, err)
		}
		if m.Error != "" {
			return fmt.Errorf("import %s: %s", testImageTag, m.Error)
		}
	}
}

// dockerFake is a docker-mode fake with the test image saved as an
// archive; its containers are removed when the test ends.
func dockerFake(t *testing.T) (*fake, *client.Client, string) {
	t.Helper()
	ctx := context.Background()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker mode needs the local Docker engine: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("docker mode needs the local Docker engine, which is unreachable (DOCKER_HOST=%q): %v", os.Getenv("DOCKER_HOST"), err)
	}
	if err := ensureTestImage(ctx, c); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	rc, err := c.ImageSave(ctx, []string{testImageTag})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(archive, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFake(t)
	f.env[EnvExec] = ExecDocker
	t.Cleanup(func() {
		list, err := c.ContainerList(context.Background(), container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", LabelRoot+"="+absRoot(f.root)))})
		if err != nil {
			t.Errorf("list containers: %v", err)
			return
		}
		for _, ct := range list {
			_ = c.ContainerRemove(context.Background(), ct.ID, container.RemoveOptions{Force: true})
		}
	})
	return f, c, archive
}

func inspectGuest(t *testing.T, c *client.Client, f *fake, machine string) (container.InspectResponse, bool) {
	t.Helper()
	in, err := c.ContainerInspect(context.Background(), ContainerName(f.root, machine))
	if cerrdefs.IsNotFound(err) {
		return in, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return in, true
}

func TestDockerGuest(t *testing.T) {
	f, c, archive := dockerFake(t)
	f.env["HOST_TOKEN"] = "s3cret"
	f.must("machine", "create", "--name", "m", "--image", archive, "-e", "REC=rec", "-e", "OVER=record")
	rec, err := f.store().load("m")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ArchiveImageID(archive)
	if !strings.HasPrefix(want, "sha256:") || rec.Fake.DockerImage != want {
		t.Fatalf("record docker image %q, archive ID %q", rec.Fake.DockerImage, want)
	}
	if _, ok := inspectGuest(t, c, f, "m"); ok {
		t.Fatal("create made a container; it is made at start")
	}
	f.must("machine", "start", "--name", "m")
	in, ok := inspectGuest(t, c, f, "m")
	if !ok || !in.State.Running {
		t.Fatalf("no running container %s after start", ContainerName(f.root, "m"))
	}
	if in.HostConfig.NetworkMode != "none" || in.Config.Hostname != "m" || in.Config.Labels[LabelMachine] != "m" || in.Config.Labels[LabelRoot] != absRoot(f.root) {
		t.Errorf("container: network %q, hostname %q, labels %v", in.HostConfig.NetworkMode, in.Config.Hostname, in.Config.Labels)
	}
	expect(t, f.run("machine", "status", "--name", "m"), 0, "Machine 'm': running", "")

	t.Run("exec", func(t *testing.T) {
		expect(t, f.run("machine", "exec", "--name", "m", "--", "id", "-u"), 0, "1000\n", "")
		r := f.run("machine", "exec", "--name", "m", "-e", "OVER=exec", "-e", "X=1", "--secret-env", "SEC=HOST_TOKEN", "--", "env")
		for _, kv := range []string{"REC=rec", "OVER=exec", "X=1", "SEC=s3cret", defaultPath} {
			if !strings.Contains(r.out, kv+"\n") {
				t.Errorf("env lacks %s:\n%s", kv, r.out)
			}
		}
		expect(t, f.run("machine", "exec", "--name", "m", "-w", "/workspace/sub", "--", "sh", "-c", "pwd; echo err >&2"), 0, "/workspace/sub\n", "err\n")
		expect(t, f.run("machine", "exec", "--name", "m", "--", "sh", "-c", "exit 7"), 7, "", "")
		expect(t, f.run("machine", "exec", "--name", "m", "--", "nosuchtool", "x"), 127, "", "sh: nosuchtool: not found\n")
		expect(t, f.runIn("hello stdin", "machine", "exec", "--name", "m", "-i", "--", "cat"), 0, "hello stdin", "")
		if r := f.runIn("not forwarded", "machine", "exec", "--name", "m", "--", "cat"); r.code != 0 || r.out != "" {
			t.Errorf("stdin without -i: exit %d, stdout %q", r.code, r.out)
		}
		expect(t, f.run("machine", "exec", "--name", "m", "--", "printenv", "REC"), 0, "rec\n", "")
		start := time.Now()
		expect(t, f.run("machine", "exec", "--name", "m", "--timeout", "1s", "--", "sleep", "30"), 124, "", "")
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("--timeout 1s took %s", d)
		}
		top, err := c.ContainerTop(context.Background(), ContainerName(f.root, "m"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range top.Processes {
			if strings.Contains(strings.Join(p, " "), "sleep 30") {
				t.Errorf("the timed-out exec was not killed: %v", p)
			}
		}
		r = f.run("machine", "exec", "--name", "m", "-d", "--", "sleep", "5")
		if pid, err := strconv.Atoi(strings.TrimSpace(r.out)); r.code != 0 || err != nil || pid <= 0 {
			t.Errorf("exec -d: exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
		}
		if err := os.WriteFile(filepath.Join(f.root, "version"), []byte("1.14.0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		expect(t, f.run("machine", "exec", "--name", "m", "--user", "0", "--", "id", "-u"), 0, "0\n", "")
		if err := os.Remove(filepath.Join(f.root, "version")); err != nil {
			t.Fatal(err)
		}
		f.faults(Faults{Responders: []Responder{{ArgvPrefix: []string{"id"}, Stdout: "injected\n", Exit: 3}}})
		expect(t, f.run("machine", "exec", "--name", "m", "--", "id", "-u"), 3, "injected\n", "")
		f.faults(Faults{})
	})

	t.Run("cp", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "in.txt")
		if err := os.WriteFile(src, []byte("payload\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		f.must("machine", "cp", "--mode", "600", "--uid", "1000", "--gid", "1000", src, "m:/home/agent/new/deep/f.txt")
		expect(t, f.run("machine", "exec", "--name", "m", "--", "stat", "-c", "%a %u %g", "/home/agent/new/deep/f.txt"), 0, "600 1000 1000\n", "")
		expect(t, f.run("machine", "exec", "--name", "m", "--", "stat", "-c", "%a %u %g", "/home/agent/new"), 0, "755 0 0\n", "")
		expect(t, f.run("machine", "exec", "--name", "m", "--", "stat", "-c", "%a %u %g", "/home/agent"), 0, "755 1000 1000\n", "")
		expect(t, f.run("machine", "exec", "--name", "m", "--", "cat", "/home/agent/new/deep/f.txt"), 0, "payload\n", "")
		f.must("machine", "cp", src, "m:/workspace/plain")
		expect(t, f.run("machine", "exec", "--name", "m", "--", "stat", "-c", "%a %u %g", "/workspace/plain"), 0, "644 0 0\n", "")
		expect(t, f.run("machine", "cp", src, "m:/workspace"), 1, "", "Error: agent operation failed: upload: /workspace: is a directory")

		f.must("machine", "exec", "--name", "m", "--", "sh", "-c", "printf 'from guest' > /home/agent/out")
		dst := filepath.Join(dir, "out")
		f.must("machine", "cp", "m:/home/agent/out", dst)
		if b, err := os.ReadFile(dst); err != nil || string(b) != "from guest" {
			t.Errorf("download: %q, %v", b, err)
		}
		expect(t, f.run("machine", "cp", "m:/home/agent", dst), 1, "", "download: /home/agent: is a directory")
		expect(t, f.run("machine", "cp", "m:/nope", dst), 1, "", "download: /nope: No such file or directory")
	})

	notRunning := "Error: agent operation failed: connect: machine 'm' is not running."
	f.must("machine", "stop", "--name", "m")
	if in, ok := inspectGuest(t, c, f, "m"); !ok || in.State.Running {
		t.Errorf("container after stop: exists %v, running %v", ok, ok && in.State.Running)
	}
	expect(t, f.run("machine", "exec", "--name", "m", "--", "true"), 1, "", notRunning)
	expect(t, f.run("machine", "status", "--name", "m"), 0, "Machine 'm': stopped", "")

	// Restart keeps the guest's files; an out-of-band stop is a dead PID.
	f.must("machine", "start", "--name", "m")
	expect(t, f.run("machine", "exec", "--name", "m", "--", "cat", "/home/agent/out"), 0, "from guest", "")
	timeout := 1
	if err := c.ContainerStop(context.Background(), ContainerName(f.root, "m"), container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	expect(t, f.run("machine", "status", "--name", "m"), 0, "Machine 'm': stopped", "")
	expect(t, f.run("machine", "ls", "--json"), 0, `"state": "stopped"`, "")
	expect(t, f.run("machine", "exec", "--name", "m", "--", "true"), 1, "", notRunning)

	f.must("machine", "delete", "-f", "--name", "m")
	if _, ok := inspectGuest(t, c, f, "m"); ok {
		t.Error("delete -f left the container")
	}
}

func TestDockerGuestCrashAndBadArchive(t *testing.T) {
	f, c, archive := dockerFake(t)
	f.faults(Faults{Rules: []Rule{{Command: "start", Machine: "c", CrashAfterStart: true, Count: 1}}})
	f.must("machine", "create", "--name", "c", "--image", archive)
	f.must("machine", "start", "--name", "c")
	if in, ok := inspectGuest(t, c, f, "c"); !ok || in.State.Running {
		t.Errorf("crash_after_start left the container running (exists %v)", ok)
	}
	expect(t, f.run("machine", "status", "--name", "c"), 0, "Machine 'c': stopped", "")

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.tar")
	if err := os.WriteFile(bad, []byte("not a tar archive at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.tar")
	b, _ := testTar([]testTarEntry{{name: "x", mode: 0o644, data: []byte("x")}})
	if err := os.WriteFile(empty, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{bad, empty, filepath.Join(dir, "missing.tar.gz")} {
		expect(t, f.run("machine", "create", "--name", "b", "--image", img), 1, "", "Error: config operation failed: create machine: read image archive")
		expect(t, f.run("machine", "status", "--name", "b"), 1, "", "Error: vm not found: b")
	}
}

func (f *fake) store() store { return store{f.root} }
