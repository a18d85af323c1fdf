package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
)

func labelsOf(c container.InspectResponse) map[string]string {
	if c.Config == nil {
		return nil
	}
	return c.Config.Labels
}

// stopTimeout is how long a container gets to exit after SIGTERM.
const stopTimeout = 5

// ourContainer inspects the container called name: nil when there is
// none, an error when it is not this lineage's.
func (b *Backend) ourContainer(ctx context.Context, lineage, name string) (*container.InspectResponse, error) {
	c, err := b.c.ContainerInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	if !ours(labelsOf(c), lineage) {
		return nil, foreign("container", name, labelsOf(c))
	}
	return &c, nil
}

// clearName makes way for a container called name: one of this lineage
// (left by an interrupted run) is removed, so that it is recreated rather
// than duplicated; anyone else's is an error.
func (b *Backend) clearName(ctx context.Context, lineage, name string) error {
	c, err := b.ourContainer(ctx, lineage, name)
	if c == nil || err != nil {
		return err
	}
	if err := b.c.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s left by an earlier run: %w", name, err)
	}
	return nil
}

// removeContainer stops (SIGTERM, then SIGKILL after stopTimeout seconds)
// and removes the container called name; one already gone is fine.
func (b *Backend) removeContainer(ctx context.Context, lineage, name string) error {
	c, err := b.ourContainer(ctx, lineage, name)
	if c == nil || err != nil {
		return err
	}
	if c.State != nil && c.State.Running {
		t := stopTimeout
		if err := b.c.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &t}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("stop container %s: %w", name, err)
		}
	}
	if err := b.c.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	return nil
}

// existing is a container of this lineage found by name.
type existing struct {
	id string
	// digest is the spec digest it was labelled with at creation.
	digest string
	// started is set when startExisting had to start it.
	started bool
}

// startExisting starts the component's container if it is stopped. It
// returns nil when there is no such container.
func (b *Backend) startExisting(ctx context.Context, op *applier.Op, comp string) (*existing, error) {
	name := objectName(op, comp)
	c, err := b.c.ContainerInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	if !ours(labelsOf(c), op.Lineage) {
		return nil, foreign("container", name, labelsOf(c))
	}
	e := &existing{id: c.ID, digest: labelsOf(c)[resource.LabelDigest]}
	if c.State != nil && c.State.Running {
		return e, nil
	}
	if err := b.c.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return nil, fmt.Errorf("start container %s: %w", name, err)
	}
	e.started = true
	return e, nil
}

// exec runs argv in a running container as user ("" for the container's
// user), with stdin if it is not nil, and returns what it wrote and its
// exit code. err is for failures to run it at all; a command that fails
// (or is not found: exit 126 or 127) is a non-zero exit.
func (b *Backend) exec(ctx context.Context, ctr string, argv []string, user string, stdin io.Reader) (stdout, stderr []byte, exit int, err error) {
	cr, err := b.c.ContainerExecCreate(ctx, ctr, container.ExecOptions{
		User: user, Cmd: argv,
		AttachStdin: stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return nil, nil, -1, fmt.Errorf("exec %s in %s: %w", argv[0], ctr, err)
	}
	hj, err := b.c.ContainerExecAttach(ctx, cr.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, nil, -1, fmt.Errorf("exec %s in %s: %w", argv[0], ctr, err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if stdin != nil {
			_, _ = io.Copy(hj.Conn, stdin)
			_ = hj.CloseWrite()
		}
	}()
	var out, errb bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &errb, hj.Reader)
	// Closing the connection ends a copy of stdin the command never read,
	// so that stdin is not used once exec returns.
	hj.Close()
	<-copied
	if err != nil {
		return nil, nil, -1, fmt.Errorf("exec %s in %s: read output: %w", argv[0], ctr, err)
	}
	code, err := b.execExit(ctx, cr.ID)
	if err != nil {
		return nil, nil, -1, fmt.Errorf("exec %s in %s: %w", argv[0], ctr, err)
	}
	return out.Bytes(), errb.Bytes(), code, nil
}

// execExit waits for an exec whose output has ended to be reported done.
func (b *Backend) execExit(ctx context.Context, id string) (int, error) {
	for {
		ins, err := b.c.ContainerExecInspect(ctx, id)
		if err != nil {
			return -1, err
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logTail returns the last lines a container wrote, indented, for error
// messages. Only the sidecar's logs are shown: it never logs a secret.
func (b *Backend) logTail(ctx context.Context, id string, lines int) string {
	rc, err := b.c.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(lines)})
	if err != nil {
		return "  (no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, io.LimitReader(rc, 64<<10))
	s := strings.TrimSpace(buf.String())
	if s == "" {
		return "  (no logs)"
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
