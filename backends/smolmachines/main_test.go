package smolmachines

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/bottleform/bottleform/backends/docker"
	"github.com/bottleform/bottleform/backends/smolmachines/smolvmfake"
	"github.com/bottleform/bottleform/internal/testimage"
)

// These tests run the backend against the stand-in smolvm
// (smolvmfake, built from the project's test code as a binary and run as
// smolvm would be), in its docker mode: each machine's guest is a
// container on this machine's engine, with no network, so provisioning
// really runs a shell, tar and id in it. The sidecar is real: the Docker
// backend's, from a static bottleform binary.

const (
	testImage     = "bottleform-smoltest:busybox"      // USER agent (uid 1000)
	testRootImage = "bottleform-smoltest:busybox-root" // USER root
)

var (
	cli          *client.Client
	smolvmBin    string // the stand-in smolvm
	sidecarBin   string
	sidecarImage string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "backends/smolmachines tests: "+format+"\n", args...)
		return 1
	}
	var err error
	if cli, err = testimage.Engine("the sidecar and the stand-in's guests"); err != nil {
		return fail("%v", err)
	}
	defer cli.Close()
	tmp, err := os.MkdirTemp("", "bf-smol-test")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(tmp)
	smolvmBin = filepath.Join(tmp, "smolvm")
	if err := testimage.Build(smolvmBin, "./backends/smolmachines/smolvmfake/cmd/smolvm"); err != nil {
		return fail("%v", err)
	}
	if sidecarBin, err = testimage.SidecarBinary(tmp); err != nil {
		return fail("%v", err)
	}
	if sidecarImage, err = docker.SidecarTag("dev", sidecarBin); err != nil {
		return fail("%v", err)
	}
	for img, user := range map[string]string{testImage: "agent", testRootImage: "root"} {
		if err := testimage.Busybox(context.Background(), cli, img, user); err != nil {
			return fail("%v", err)
		}
	}
	code := m.Run()
	_, _ = cli.ImageRemove(context.Background(), sidecarImage, image.RemoveOptions{})
	return code
}

// env is one stand-in smolvm: its state root, its cache and the backend
// that drives it.
type env struct {
	t     testing.TB
	root  string
	cache string
	b     *Backend
	d     *docker.Backend
}

// newEnv returns a backend driving a fresh stand-in of version (in docker
// mode) with the real sidecar. Machines and their guest containers left
// at the end fail the test, after being removed.
func newEnv(t testing.TB, version string) *env {
	t.Helper()
	e := &env{t: t, root: t.TempDir(), cache: t.TempDir()}
	if err := os.WriteFile(filepath.Join(e.root, "version"), []byte(version+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := docker.New(docker.Options{Client: cli, SidecarBinary: sidecarBin, SidecarImage: sidecarImage, Log: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	e.b, err = New(Options{
		Docker: d, Images: cli, CLI: &CLI{Path: smolvmBin, Env: e.smolvmEnv()}, CacheDir: e.cache,
		ConfigDir: t.TempDir(), ReadyTimeout: 20 * time.Second, StartTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) smolvmEnv() []string {
	return append(os.Environ(), smolvmfake.EnvRoot+"="+e.root, smolvmfake.EnvExec+"="+smolvmfake.ExecDocker)
}

// smolvm runs the stand-in as a person would, out of band.
func (e *env) smolvm(args ...string) (string, error) {
	e.t.Helper()
	cmd := exec.Command(smolvmBin, args...)
	cmd.Env = e.smolvmEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// faults writes the stand-in's faults.json.
func (e *env) faults(f smolvmfake.Faults) {
	e.t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.root, "faults.json"), b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(e.root, "faults.fired.json"))
}

// invocations are the stand-in's recorded calls so far.
func (e *env) invocations() []smolvmfake.Invocation {
	e.t.Helper()
	inv, err := smolvmfake.ReadInvocations(e.root)
	if err != nil {
		e.t.Fatal(err)
	}
	return inv
}

func (e *env) cleanup() {
	ctx := context.Background()
	ms, err := e.b.cli.list(ctx)
	if err == nil {
		for _, m := range ms {
			_, _ = e.smolvm("machine", "delete", "--name", m.Name, "-f")
		}
	}
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", smolvmfake.LabelRoot+"="+e.root))})
	if err == nil {
		for _, c := range cs {
			_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
	}
}
