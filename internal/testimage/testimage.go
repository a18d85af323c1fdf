// Package testimage builds the small agent images tests run, from the
// host's busybox, with no registry: Docker's image import of a rootfs
// tar.
package testimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/bottleform/bottleform/internal/rootfs"
)

// printenv stands in for coreutils' printenv, which Debian's busybox
// lacks.
const printenv = `#!/bin/sh
[ $# -eq 0 ] && exec env
rc=0
for n in "$@"; do
  if eval "[ -n \"\${$n+x}\" ]"; then eval "printf '%s\n' \"\$$n\""; else rc=1; fi
done
exit $rc
`

// Applets are the busybox applets the image links in /bin.
var Applets = []string{
	"sh", "sleep", "id", "cat", "ls", "wget", "nc", "mkdir", "rm", "stat", "httpd", "nslookup",
	"env", "echo", "printf", "timeout", "ip", "tar", "chmod", "chown", "kill", "pwd", "grep", "true", "false",
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

// Busybox makes tag a busybox image, unless it is one already with the
// same contents: the Applets, a printenv script, users root and agent
// (uid 1000, home /home/agent), ENV PATH=/bin, USER user (agent or root),
// CMD sleep infinity.
func Busybox(ctx context.Context, c *client.Client, tag, user string) error {
	if err := installBusybox(); err != nil {
		return err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return err
	}
	entries := []rootfs.Entry{
		{Name: "bin/", Mode: 0o755},
		{Name: "bin/busybox", Mode: 0o755, Data: bb},
		{Name: "bin/printenv", Mode: 0o755, Data: []byte(printenv)},
		{Name: "etc/", Mode: 0o755},
		{Name: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\n")},
		{Name: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nagent:x:1000:\n")},
		{Name: "home/", Mode: 0o755},
		{Name: "home/agent/", Mode: 0o755, UID: 1000, GID: 1000},
		{Name: "root/", Mode: 0o700},
		{Name: "tmp/", Mode: 0o1777},
	}
	for _, a := range Applets {
		entries = append(entries, rootfs.Entry{Name: "bin/" + a, Link: "busybox"})
	}
	h := sha256.New()
	fmt.Fprintf(h, "USER %s\n", user)
	for _, e := range entries {
		fmt.Fprintf(h, "%s %o %s %d:%d %d\n", e.Name, e.Mode, e.Link, e.UID, e.GID, len(e.Data))
		h.Write(e.Data)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	const label = "dev.bottleform.testimage"
	if img, err := c.ImageInspect(ctx, tag); err == nil && img.Config != nil && img.Config.Labels[label] == sum {
		return nil
	} else if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	tree, err := rootfs.Tar(entries)
	if err != nil {
		return err
	}
	return rootfs.Import(ctx, c, tree, tag, []string{`ENV PATH=/bin`, "USER " + user, `CMD ["sleep", "infinity"]`, "LABEL " + label + "=" + sum})
}

// Build builds the package pkg of this module (a path like
// ./cmd/bottleform) as a static binary at dst.
func Build(dst, pkg string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	cmd := exec.Command("go", "build", "-o", dst, pkg)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// SidecarBinary is a static bottleform for the sidecar image: the one
// BOTTLEFORM_SIDECAR_BINARY names, as for the CLI, or one built into dir.
func SidecarBinary(dir string) (string, error) {
	if bin := os.Getenv("BOTTLEFORM_SIDECAR_BINARY"); bin != "" {
		return bin, nil
	}
	bin := filepath.Join(dir, "bottleform")
	return bin, Build(bin, "./cmd/bottleform")
}

// Engine connects to the Docker engine (DOCKER_HOST, ...) and checks that
// it answers; the error says what the tests need it for.
func Engine(need string) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("the Docker engine is unreachable, and these tests need it (%s): %w", need, err)
	}
	return c, nil
}
