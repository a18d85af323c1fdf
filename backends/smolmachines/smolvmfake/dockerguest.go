package smolvmfake

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// Docker mode (SMOLVM_FAKE_EXEC=docker): each machine's guest is a real
// container on the local Docker engine, so exec and cp act on a real
// filesystem with real tools. The fake still runs no VM and the container
// has no network (NetworkMode none).
const (
	// ExecDocker is the SMOLVM_FAKE_EXEC value that selects docker mode.
	ExecDocker = "docker"
	// EnvDockerImage names the docker image for machines created without
	// --image in docker mode (bare machines). Unset, their start fails.
	EnvDockerImage = "SMOLVM_FAKE_DOCKER_IMAGE"

	// LabelRoot and LabelMachine label every guest container with the
	// fake's state root and the machine name.
	LabelRoot    = "smolvmfake.root"
	LabelMachine = "smolvmfake.machine"
)

func (s *session) dockerMode() bool { return s.env(EnvExec) == ExecDocker }

// docker returns the session's client, made on first use.
func (s *session) docker() (*client.Client, error) {
	if s.dc != nil {
		return s.dc, nil
	}
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	s.dc = c
	return c, nil
}

func (s *session) closeDocker() {
	if s.dc != nil {
		_ = s.dc.Close()
		s.dc = nil
	}
}

// absRoot is the state root as an absolute path.
func absRoot(root string) string {
	if abs, err := filepath.Abs(root); err == nil {
		return abs
	}
	return root
}

// ContainerName is the guest container of machine under the state root:
// smolvmfake-<first 8 hex of sha256(abs root)>-<machine>.
func ContainerName(root, machine string) string {
	h := sha256.Sum256([]byte(absRoot(root)))
	return "smolvmfake-" + hex.EncodeToString(h[:])[:8] + "-" + machine
}

func (s *session) containerName(machine string) string { return ContainerName(s.root, machine) }

func isArchive(img string) bool {
	return strings.HasSuffix(img, ".tar") || strings.HasSuffix(img, ".tar.gz") || strings.HasSuffix(img, ".tgz")
}

// ArchiveImageID reads a `docker save` archive's manifest.json and returns
// its first image as "sha256:<hex>", the ID the engine knows it by.
func ArchiveImageID(archive string) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(archive, ".gz") || strings.HasSuffix(archive, ".tgz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return "", err
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("no manifest.json (not a docker save archive)")
		}
		if err != nil {
			return "", err
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) != "manifest.json" {
			continue
		}
		var m []struct {
			Config string `json:"Config"`
		}
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			return "", fmt.Errorf("manifest.json: %w", err)
		}
		if len(m) == 0 {
			return "", fmt.Errorf("manifest.json lists no image")
		}
		id := strings.TrimSuffix(path.Base(m[0].Config), ".json")
		if _, err := hex.DecodeString(id); err != nil || len(id) != 64 {
			return "", fmt.Errorf("manifest.json: unexpected Config %q", m[0].Config)
		}
		return "sha256:" + id, nil
	}
}

// dockerResolveImage records, at create/run, the docker image the guest
// runs: the ID inside a local archive, else the reference as given.
func (s *session) dockerResolveImage(r *Record, img string, cfg func(string, ...any) error) error {
	switch {
	case img == "":
		return nil // bare machine: SMOLVM_FAKE_DOCKER_IMAGE at start
	case isArchive(img):
		id, err := ArchiveImageID(img)
		if err != nil {
			return cfg("read image archive %s: %v", img, err)
		}
		r.Fake.DockerImage = id
		r.Fake.DockerArchive = absRoot(img)
	case isLocalImage(img):
		return cfg("fake smolvm (docker mode): image '%s' is neither an image archive (.tar, .tar.gz, .tgz) nor a docker reference", img)
	default:
		r.Fake.DockerImage = img
	}
	return nil
}

// bg is a context for engine calls that must not inherit an exec timeout.
func bg() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// dockerState reports whether the machine's container exists and runs.
func (s *session) dockerState(machine string) (exists, running bool, err error) {
	c, err := s.docker()
	if err != nil {
		return false, false, err
	}
	ctx, cancel := bg()
	defer cancel()
	insp, err := c.ContainerInspect(ctx, s.containerName(machine))
	if cerrdefs.IsNotFound(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, insp.State != nil && insp.State.Running, nil
}

// dockerUp makes sure the machine's container exists and is running:
// created from the machine's image on first need, then started.
func (s *session) dockerUp(r *Record) error {
	c, err := s.docker()
	if err != nil {
		return err
	}
	ctx, cancel := bg()
	defer cancel()
	name := s.containerName(r.Name)
	insp, err := c.ContainerInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		if err := s.dockerCreate(ctx, c, r); err != nil {
			return err
		}
		insp, err = c.ContainerInspect(ctx, name)
	}
	if err != nil {
		return err
	}
	if insp.State == nil || !insp.State.Running {
		if err := c.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
			return err
		}
	}
	// /workspace always exists in a smolvm guest (§5).
	if _, err := c.ContainerStatPath(ctx, name, "/workspace"); cerrdefs.IsNotFound(err) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "workspace/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Now()})
		_ = tw.Close()
		if err := c.CopyToContainer(ctx, name, "/", &buf, container.CopyToContainerOptions{}); err != nil {
			return fmt.Errorf("create /workspace: %w", err)
		}
	}
	return nil
}

func (s *session) dockerCreate(ctx context.Context, c *client.Client, r *Record) error {
	img := r.Fake.DockerImage
	if img == "" {
		img = s.env(EnvDockerImage)
	}
	if img == "" {
		return fmt.Errorf("fake smolvm (docker mode): machine '%s' has no --image and %s is not set", r.Name, EnvDockerImage)
	}
	// An archive's image is loaded if the engine lacks it (no network).
	if r.Fake.DockerArchive != "" {
		if _, err := c.ImageInspect(ctx, img); cerrdefs.IsNotFound(err) {
			f, err := os.Open(r.Fake.DockerArchive)
			if err != nil {
				return fmt.Errorf("load image archive: %w", err)
			}
			resp, err := c.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
			f.Close()
			if err != nil {
				return fmt.Errorf("load image archive %s: %w", r.Fake.DockerArchive, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	host := r.Name
	if len(host) > 63 {
		host = host[:63]
	}
	var binds []string
	for _, v := range r.Fake.Volumes {
		b := v.Host + ":" + v.Guest
		if v.ReadOnly {
			b += ":ro"
		}
		binds = append(binds, b)
	}
	init := true
	_, err := c.ContainerCreate(ctx,
		&container.Config{
			Image: img, Hostname: host,
			Entrypoint: []string{"sleep"}, Cmd: []string{"infinity"},
			Labels: map[string]string{LabelRoot: absRoot(s.root), LabelMachine: r.Name},
		},
		&container.HostConfig{
			NetworkMode: "none", Init: &init, Binds: binds,
			// emptied by a restart, as in the guest (§5)
			Tmpfs: map[string]string{"/tmp": "rw,exec,mode=1777", "/run": "rw,exec,mode=755"},
		},
		nil, nil, s.containerName(r.Name))
	return err
}

// dockerStop stops the machine's container (1s grace); a missing one is
// already stopped.
func (s *session) dockerStop(machine string) error {
	c, err := s.docker()
	if err != nil {
		return err
	}
	ctx, cancel := bg()
	defer cancel()
	timeout := 1
	err = c.ContainerStop(ctx, s.containerName(machine), container.StopOptions{Timeout: &timeout})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// dockerRemove force-removes the machine's container, if any.
func (s *session) dockerRemove(machine string) error {
	c, err := s.docker()
	if err != nil {
		return err
	}
	ctx, cancel := bg()
	defer cancel()
	err = c.ContainerRemove(ctx, s.containerName(machine), container.RemoveOptions{Force: true})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// rootExec runs argv as root in the container and returns its combined
// output and exit code.
func (s *session) rootExec(ctx context.Context, c *client.Client, cname string, argv ...string) (string, int, error) {
	ex, err := c.ContainerExecCreate(ctx, cname, container.ExecOptions{User: "0:0", Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", 0, err
	}
	hj, err := c.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", 0, err
	}
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, hj.Reader)
	hj.Close()
	if err != nil {
		return out.String(), 0, err
	}
	code, _, err := execExit(ctx, c, ex.ID)
	return out.String(), code, err
}

// execExit waits briefly for an exec to be reported finished and returns
// its exit code and pid.
func execExit(ctx context.Context, c *client.Client, id string) (int, int, error) {
	for i := 0; ; i++ {
		in, err := c.ContainerExecInspect(ctx, id)
		if err != nil {
			return 0, 0, err
		}
		if !in.Running || i >= 200 {
			return in.ExitCode, in.Pid, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isNotRunning reports an engine error for exec on a stopped container.
func isNotRunning(err error) bool {
	return err != nil && (cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "is not running") || strings.Contains(err.Error(), "is paused"))
}

// dockerExec is the docker-mode exec engine: responders first, then a
// docker exec in the machine's container.
func (s *session) dockerExec(ctx context.Context, r *Record, req execReq, env []string, workdir string) (execResult, error) {
	if !req.detach {
		if res, ok := s.responder(ctx, r, req.argv, env, workdir); ok {
			fmt.Fprint(s.stdout, res.stdout)
			fmt.Fprint(s.stderr, res.stderr)
			return res, nil
		}
	}
	c, err := s.docker()
	if err != nil {
		return execResult{}, errorf("agent operation failed: exec: %v", err)
	}
	cname := s.containerName(r.Name)
	notRunning := errorf("agent operation failed: connect: machine '%s' is not running. Use 'smolvm machine start --name %s' first.", r.Name, r.Name)
	bctx, cancel := bg()
	defer cancel()
	// A missing workdir is created, as host passthrough does.
	if workdir != "/" {
		if _, err := c.ContainerStatPath(bctx, cname, workdir); cerrdefs.IsNotFound(err) {
			if out, code, err := s.rootExec(bctx, c, cname, "mkdir", "-p", workdir); isNotRunning(err) {
				return execResult{}, notRunning
			} else if err != nil || code != 0 {
				return execResult{}, errorf("agent operation failed: exec: create workdir %s: %v%s", workdir, err, strings.TrimSpace(out))
			}
		}
	}
	opts := container.ExecOptions{User: req.user, Cmd: req.argv, Env: env, WorkingDir: workdir}
	if req.detach {
		opts.Detach = true
	} else {
		opts.AttachStdout, opts.AttachStderr, opts.AttachStdin = true, true, req.interactive
	}
	ex, err := c.ContainerExecCreate(bctx, cname, opts)
	if isNotRunning(err) {
		return execResult{}, notRunning
	}
	if err != nil {
		return execResult{}, errorf("agent operation failed: exec: %v", err)
	}
	if req.detach {
		if err := c.ContainerExecStart(bctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
			return execResult{}, errorf("agent operation failed: exec: %v", err)
		}
		pid := 0
		for i := 0; i < 100 && pid == 0; i++ {
			in, err := c.ContainerExecInspect(bctx, ex.ID)
			if err != nil {
				return execResult{}, errorf("agent operation failed: exec: %v", err)
			}
			if pid = in.Pid; pid == 0 && !in.Running && in.ExitCode != 0 {
				break
			}
			if pid == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		fmt.Fprintf(s.stdout, "%d\n", pid)
		return execResult{}, nil
	}
	hj, err := c.ContainerExecAttach(bctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return execResult{}, errorf("agent operation failed: exec: %v", err)
	}
	defer hj.Close()
	if req.interactive {
		go func() {
			_, _ = io.Copy(hj.Conn, s.stdin)
			_ = hj.CloseWrite()
		}()
	}
	var outBuf, errBuf bytes.Buffer
	var ow, ew io.Writer = &outBuf, &errBuf
	if req.stream {
		ow, ew = io.MultiWriter(s.stdout, &outBuf), io.MultiWriter(s.stderr, &errBuf)
	}
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(ow, ew, hj.Reader)
		done <- err
	}()
	var res execResult
	select {
	case err = <-done:
		code, _, ierr := execExit(bctx, c, ex.ID)
		if ierr != nil {
			return execResult{}, errorf("agent operation failed: exec: %v", ierr)
		}
		res = execResult{stdout: outBuf.String(), stderr: errBuf.String(), exit: code}
		if err != nil && code == 0 {
			return res, errorf("agent operation failed: exec: %v", err)
		}
	case <-ctx.Done():
		s.killExec(bctx, c, cname, ex.ID)
		hj.Close()
		<-done
		res = execResult{stdout: outBuf.String(), stderr: errBuf.String(), exit: 124}
	}
	// The runtime's own failure to find the program is the guest shell's
	// "not found", exit 127.
	if (res.exit == 126 || res.exit == 127) && strings.Contains(res.stdout+res.stderr, "OCI runtime exec failed") &&
		(strings.Contains(res.stdout+res.stderr, "executable file not found") || strings.Contains(res.stdout+res.stderr, "no such file or directory")) {
		res = execResult{stderr: fmt.Sprintf("sh: %s: not found\n", req.argv[0]), exit: 127}
		if req.stream {
			fmt.Fprint(s.stderr, res.stderr)
			return res, nil
		}
	}
	if !req.stream {
		fmt.Fprint(s.stdout, res.stdout)
		fmt.Fprint(s.stderr, res.stderr)
	}
	return res, nil
}

// killExec kills a timed-out exec's process (SIGKILL from the host, after
// checking the pid belongs to the container). Its children may survive;
// the engine must be local for the kill to happen at all.
func (s *session) killExec(ctx context.Context, c *client.Client, cname, id string) {
	in, err := c.ContainerExecInspect(ctx, id)
	if err != nil || !in.Running || in.Pid <= 0 {
		return
	}
	insp, err := c.ContainerInspect(ctx, cname)
	if err != nil {
		return
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", in.Pid))
	if err != nil || !strings.Contains(string(cg), insp.ID) {
		return
	}
	_ = syscall.Kill(in.Pid, syscall.SIGKILL)
}

// dockerCp is cp against the machine's container: an upload is extracted
// from a one-entry tar carrying --mode/--uid/--gid, a download read from
// the engine's archive of the path.
func (s *session) dockerCp(machine, guest, local string, upload bool, mode os.FileMode, uid, gid int) error {
	c, err := s.docker()
	if err != nil {
		return errorf("agent operation failed: cp: %v", err)
	}
	ctx, cancel := bg()
	defer cancel()
	cname := s.containerName(machine)
	notRunning := errorf("agent operation failed: connect: machine '%s' is not running. Use 'smolvm machine start --name %s' first.", machine, machine)
	gp := filepath.Clean("/" + guest)
	if upload {
		b, err := readUpload(local)
		if err != nil {
			return err
		}
		st, err := c.ContainerStatPath(ctx, cname, gp)
		if err == nil && st.Mode.IsDir() {
			return errorf("agent operation failed: upload: %s: is a directory", guest)
		}
		dir := path.Dir(gp)
		if _, err := c.ContainerStatPath(ctx, cname, dir); cerrdefs.IsNotFound(err) {
			out, code, err := s.rootExec(ctx, c, cname, "mkdir", "-p", dir)
			if isNotRunning(err) {
				return notRunning
			}
			if err != nil || code != 0 {
				return errorf("agent operation failed: upload: create %s: %v%s", dir, err, strings.TrimSpace(out))
			}
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: path.Base(gp), Typeflag: tar.TypeReg, Mode: int64(mode.Perm() | mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)), Size: int64(len(b)),
			Uid: uid, Gid: gid, ModTime: time.Now()}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		err = c.CopyToContainer(ctx, cname, dir, &buf, container.CopyToContainerOptions{AllowOverwriteDirWithFile: false})
		if isNotRunning(err) && !cerrdefs.IsNotFound(err) {
			return notRunning
		}
		if err != nil {
			return errorf("agent operation failed: upload: %s: %v", guest, err)
		}
		fmt.Fprintf(s.stderr, "Uploading %s -> %s: %d B / %d B (100.0%%)\n", local, guest, len(b), len(b))
		return nil
	}
	for hops := 0; ; hops++ {
		rc, st, err := c.CopyFromContainer(ctx, cname, gp)
		if cerrdefs.IsNotFound(err) {
			return errorf("agent operation failed: download: %s: No such file or directory", guest)
		}
		if err != nil {
			return errorf("agent operation failed: download: %s: %v", guest, err)
		}
		if st.Mode.IsDir() {
			rc.Close()
			return errorf("agent operation failed: download: %s: is a directory (cp copies single files only)", guest)
		}
		if st.Mode&os.ModeSymlink != 0 && st.LinkTarget != "" && hops < 16 {
			rc.Close()
			tgt := st.LinkTarget
			if !path.IsAbs(tgt) {
				tgt = path.Join(path.Dir(gp), tgt)
			}
			gp = tgt
			continue
		}
		tr := tar.NewReader(rc)
		h, err := tr.Next()
		if err != nil || h.Typeflag != tar.TypeReg {
			rc.Close()
			return errorf("agent operation failed: download: %s: not a regular file", guest)
		}
		b, err := io.ReadAll(tr)
		rc.Close()
		if err != nil {
			return errorf("agent operation failed: download: %s: %v", guest, err)
		}
		if err := os.WriteFile(local, b, 0o644); err != nil {
			return errorf("io operation failed: write local file: %s: %v", local, errors.Unwrap(err))
		}
		fmt.Fprintf(s.stderr, "Downloading %s -> %s: %d B\n", guest, local, len(b))
		return nil
	}
}

// parseID parses a --uid/--gid value (validated u32 at parse time); empty
// is root.
func parseID(v string) int {
	n, _ := strconv.ParseUint(v, 10, 32)
	return int(n)
}
