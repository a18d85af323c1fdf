package docker

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestSidecarTag(t *testing.T) {
	dev, err := SidecarTag("dev", sidecarBin)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := fileSHA256(sidecarBin)
	if dev != "bottleform-sidecar:dev-"+sum[:12] || !regexp.MustCompile(`^bottleform-sidecar:dev-[0-9a-f]{12}$`).MatchString(dev) {
		t.Errorf("SidecarTag(dev) = %q", dev)
	}
	tests := []struct{ version, want string }{
		{"v1.2.3", "bottleform-sidecar:v1.2.3"},
		{"v0.0.0-20260101-abcdef", "bottleform-sidecar:v0.0.0-20260101-abcdef"},
		{"v1.2.3+dirty", "bottleform-sidecar:v1.2.3-dirty"},
	}
	for _, tt := range tests {
		// A released version does not read the binary.
		if got, err := SidecarTag(tt.version, "/nonexistent"); err != nil || got != tt.want {
			t.Errorf("SidecarTag(%q) = %q, %v; want %q", tt.version, got, err, tt.want)
		}
	}
	if _, err := SidecarTag("dev", "/nonexistent"); err == nil {
		t.Error("SidecarTag(dev) of a missing binary: nil error")
	}
}

func TestCheckStatic(t *testing.T) {
	if err := checkStatic(sidecarBin); err != nil {
		t.Errorf("the CGO_ENABLED=0 build: %v", err)
	}
	if err := checkStatic("/bin/ls"); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("/bin/ls (dynamically linked): %v, want advice to build with CGO_ENABLED=0", err)
	}
	text := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkStatic(text); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("a script: %v", err)
	}
}

func TestEnsureSidecarImage(t *testing.T) {
	ctx := context.Background()
	tag, img, b := buildSidecarImage(t, "test-", nil)
	sum, _ := fileSHA256(sidecarBin)
	cfg := img.Config
	if cfg.Labels[LabelBinarySHA256] != sum || !slices.Equal(cfg.Entrypoint, []string{"/bottleform"}) || !slices.Equal(cfg.Cmd, []string{"sidecar"}) || cfg.User != "sidecar" {
		t.Errorf("image config: labels %v, entrypoint %q, cmd %q, user %q", cfg.Labels, cfg.Entrypoint, cfg.Cmd, cfg.User)
	}
	if len(img.RootFS.Layers) != 1 {
		t.Errorf("layers = %v, want one: no base image", img.RootFS.Layers)
	}
	// Present: nothing is imported again.
	if err := b.EnsureSidecarImage(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := cli.ImageInspect(ctx, tag)
	if err != nil || again.ID != img.ID {
		t.Errorf("second ensure: id %s, %v; want %s unchanged", again.ID, err, img.ID)
	}

	// A dynamically linked binary is refused before anything is imported.
	dyn, err := New(Options{Client: cli, SidecarBinary: "/bin/ls", SidecarImage: "bottleform-sidecar:test-dyn-" + randomHex(6)})
	if err != nil {
		t.Fatal(err)
	}
	if err := dyn.EnsureSidecarImage(ctx); err == nil || !strings.Contains(err.Error(), "build bottleform with CGO_ENABLED=0") {
		t.Errorf("ensure from /bin/ls: %v", err)
	}
}
