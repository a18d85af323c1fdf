package docker

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/bottleform/bottleform/internal/rootfs"
	"github.com/bottleform/bottleform/resource"
)

// LabelBinarySHA256 is the sidecar image's label holding the sha256 of the
// bottleform binary inside it.
const LabelBinarySHA256 = "dev.bottleform.binary-sha256"

var badTagChar = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// SidecarTag is the sidecar image's tag for a bottleform version:
// "bottleform-sidecar:VERSION", and for "dev" builds
// "bottleform-sidecar:dev-" plus the first 12 hex digits of the binary's
// sha256, so a rebuilt binary gets a new image. Characters a tag cannot
// hold ("+" in a module version) become "-".
func SidecarTag(version, binaryPath string) (string, error) {
	tag := badTagChar.ReplaceAllString(version, "-")
	if version == "dev" {
		sum, err := fileSHA256(binaryPath)
		if err != nil {
			return "", err
		}
		tag += "-" + sum[:12]
	}
	if len(tag) > 128 {
		tag = tag[:128]
	}
	return "bottleform-sidecar:" + tag, nil
}

// EnsureSidecarImage makes sure the sidecar image exists: if the tag
// exists and holds this binary, there is nothing to do; otherwise it
// imports an image built in memory (no base image, no registry) from the
// binary, which must be statically linked, the host's root certificates,
// and the host's git with its shell and shared libraries (see
// collectGitFiles). Labels record digests of all three, so a change to any
// builds the image again.
func (b *Backend) EnsureSidecarImage(ctx context.Context) error {
	b.imageMu.Lock()
	defer b.imageMu.Unlock()
	if b.imageReady {
		return nil
	}
	if err := b.ensureSidecarImage(ctx); err != nil {
		return err
	}
	b.imageReady = true
	return nil
}

func (b *Backend) ensureSidecarImage(ctx context.Context) error {
	sum, err := fileSHA256(b.binary)
	if err != nil {
		return err
	}
	roots, rootsSum := systemRoots()
	git, gitErr := collectGitFiles()
	gitSum := "none"
	if gitErr == nil {
		gitSum = git.Digest
	}
	img, err := b.c.ImageInspect(ctx, b.image)
	switch {
	case err == nil && img.Config != nil && img.Config.Labels[LabelBinarySHA256] == sum && img.Config.Labels[labelRootsSHA256] == rootsSum &&
		img.Config.Labels[labelGitSHA256] == gitSum:
		return nil
	case err != nil && !cerrdefs.IsNotFound(err):
		return fmt.Errorf("sidecar image %s: %w", b.image, err)
	}
	if err := checkStatic(b.binary); err != nil {
		return err
	}
	bin, err := os.ReadFile(b.binary)
	if err != nil {
		return fmt.Errorf("sidecar image: %w", err)
	}
	b.log(fmt.Sprintf("building the sidecar image %s from %s", b.image, b.binary))
	entries := []tarEntry{
		{Name: "bottleform", Mode: 0o755, Data: bin},
		{Name: "etc/", Mode: 0o755},
		{Name: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/:/sbin/nologin\nsidecar:x:65532:65532:sidecar:/:/sbin/nologin\n")},
		{Name: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nsidecar:x:65532:\n")},
		{Name: "tmp/", Mode: 0o1777},
		{Name: "run/", Mode: 0o755},
	}
	if roots != nil {
		// The gateway verifies upstreams against the system roots (and the
		// bottle's upstream_ca); Go reads them from this path.
		entries = append(entries,
			tarEntry{Name: "etc/ssl/", Mode: 0o755}, tarEntry{Name: "etc/ssl/certs/", Mode: 0o755},
			tarEntry{Name: "etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Data: roots})
	} else {
		b.log("no system root certificates on this host: the gateway will trust only each bottle's upstream_ca")
	}
	// The git gate runs the host's git (git http-backend, and git over SSH
	// to upstreams), with its shell and shared libraries, at the host's
	// paths; without it, bottles that have no git entries still work.
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	var env []string
	switch {
	case errors.Is(gitErr, errNoGit):
		b.log("no git on this host: the sidecar image is built without git, and the git gate will be unavailable")
	case gitErr != nil:
		b.log(fmt.Sprintf("cannot copy this host's git into the sidecar image (%v): the image is built without git, and the git gate will be unavailable", gitErr))
	default:
		have := map[string]bool{}
		for _, e := range entries {
			have[e.Name] = true
		}
		for _, e := range git.Entries {
			if !have[e.Name] {
				entries = append(entries, e)
			}
		}
		if d := filepath.Dir(git.Git); !slices.Contains(filepath.SplitList(path), d) {
			path = d + ":" + path
		}
		if len(git.LibPath) > 0 {
			env = append(env, "ENV LD_LIBRARY_PATH="+strings.Join(git.LibPath, ":"))
		}
	}
	rootfs, err := tarOf(entries)
	if err != nil {
		return fmt.Errorf("sidecar image: %w", err)
	}
	return importImage(ctx, b.c, rootfs, b.image, append([]string{
		`ENTRYPOINT ["/bottleform"]`,
		`CMD ["sidecar"]`,
		`USER sidecar`,
		"ENV PATH=" + path,
		"LABEL " + resource.LabelManagedBy + "=" + resource.ManagedBy,
		"LABEL " + LabelBinarySHA256 + "=" + sum,
		"LABEL " + labelRootsSHA256 + "=" + rootsSum,
		"LABEL " + labelGitSHA256 + "=" + gitSum,
	}, env...))
}

// labelRootsSHA256 records the digest of the root certificates in the
// sidecar image, so new roots on the host build a new image.
const labelRootsSHA256 = "dev.bottleform.roots-sha256"

// systemRoots reads the host's bundle of root certificates for the sidecar
// image, and its digest ("none" when the host has none).
func systemRoots() ([]byte, string) {
	for _, p := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"} {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			sum := sha256.Sum256(b)
			return b, hex.EncodeToString(sum[:])
		}
	}
	return nil, "none"
}

// importImage imports a root filesystem tar as the image tag; see
// rootfs.Import.
func importImage(ctx context.Context, c Client, tree []byte, tag string, changes []string) error {
	return rootfs.Import(ctx, c, tree, tag, changes)
}

// checkStatic refuses a binary that is not a statically linked ELF
// executable: the sidecar image has no libc and no dynamic loader.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("sidecar binary %s is not an ELF executable (%v): the sidecar image is built from a static Linux build of bottleform", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("sidecar binary %s is dynamically linked, but the sidecar image has no libc: build bottleform with CGO_ENABLED=0 (CGO_ENABLED=0 go build ./cmd/bottleform)", path)
		}
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("sidecar binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("sidecar binary: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// tarEntry is one entry of an in-memory tar (rootfs.Entry).
type tarEntry = rootfs.Entry

// tarOf builds a tar from entries, in order.
func tarOf(entries []tarEntry) ([]byte, error) { return rootfs.Tar(entries) }
