// Package rootfs builds in-memory tar archives of small file trees and
// imports them into Docker as images, with no base image and no registry:
// the sidecar image, and the agent images tests run.
package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types/image"
)

// Entry is one file, directory (Name ends in "/"), symlink (Link set) or
// hardlink (Hardlink set: the Name of an earlier file) of an archive.
type Entry struct {
	Name     string
	Mode     int64
	Data     []byte
	Link     string
	Hardlink string
	UID, GID int
}

// Tar builds a tar from entries, in order.
func Tar(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: e.Mode, Uid: e.UID, Gid: e.GID, ModTime: now, Format: tar.FormatPAX}
		switch {
		case e.Link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Link
		case e.Hardlink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, e.Hardlink
		case len(e.Name) > 0 && e.Name[len(e.Name)-1] == '/':
			h.Typeflag = tar.TypeDir
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Importer is the Engine API call Import makes; the Docker client has it.
type Importer interface {
	ImageImport(ctx context.Context, source image.ImportSource, ref string, options image.ImportOptions) (io.ReadCloser, error)
}

// Import imports a root filesystem tar as the image tag, with
// Dockerfile-style changes (ENTRYPOINT, CMD, USER, ENV, LABEL).
func Import(ctx context.Context, c Importer, rootfs []byte, tag string, changes []string) error {
	rc, err := c.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, tag, image.ImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("import image %s: %w", tag, err)
	}
	defer rc.Close()
	// The engine answers with a stream of JSON messages; a failure is one
	// with an error field.
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("import image %s: %w", tag, err)
		}
		if m.Error != "" {
			return fmt.Errorf("import image %s: %s", tag, m.Error)
		}
	}
}
