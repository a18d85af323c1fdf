package smolvmfake

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/bottleform/bottleform/internal/testimage"
)

const testImageTag = "smolvmfake-test:busybox"

func ensureTestImage(ctx context.Context, c *client.Client) error {
	return testimage.Busybox(ctx, c, testImageTag, "agent")
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
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: "x", Mode: 0o644, Size: 1}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	if err := os.WriteFile(empty, tb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{bad, empty, filepath.Join(dir, "missing.tar.gz")} {
		expect(t, f.run("machine", "create", "--name", "b", "--image", img), 1, "", "Error: config operation failed: create machine: read image archive")
		expect(t, f.run("machine", "status", "--name", "b"), 1, "", "Error: vm not found: b")
	}
}

func (f *fake) store() store { return store{f.root} }
