package smolmachines

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/google/uuid"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/backends/backendtest"
	"github.com/bottleform/bottleform/resource"
)

// harness runs the conformance suite against the stand-in smolvm with the
// sidecar in Docker; out-of-band actions are what a person would do with
// the smolvm and docker CLIs.
type harness struct{ e *env }

func (h harness) Backend() applier.Backend { return h.e.b }
func (h harness) NewLineage() string       { return uuid.NewString() }

func (h harness) Stop(t testing.TB, lineage string, addr resource.Address) {
	t.Helper()
	if addr.Kind == resource.KindAgent {
		if out, err := h.e.smolvm("machine", "stop", "--name", resource.ObjectName(lineage, addr.Bottle, "agent")); err != nil {
			t.Fatalf("smolvm machine stop: %v\n%s", err, out)
		}
		return
	}
	timeout := 5
	if err := cli.ContainerStop(context.Background(), resource.ObjectName(lineage, addr.Bottle, "sidecar"), container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
}

func (h harness) Remove(t testing.TB, lineage string, addr resource.Address) {
	t.Helper()
	if addr.Kind == resource.KindAgent {
		if out, err := h.e.smolvm("machine", "delete", "--name", resource.ObjectName(lineage, addr.Bottle, "agent"), "-f"); err != nil {
			t.Fatalf("smolvm machine delete: %v\n%s", err, out)
		}
		return
	}
	if err := cli.ContainerRemove(context.Background(), resource.ObjectName(lineage, addr.Bottle, "sidecar"), container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
}

func (h harness) Objects(t testing.TB, lineage string) []string {
	t.Helper()
	objs, err := h.e.d.Objects(context.Background(), lineage)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.String())
	}
	vms, err := h.e.b.Objects(context.Background(), lineage)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, vms...)
}

func (h harness) Bottle(name string) *resource.Bottle {
	return backendtest.MinimalBottle(name, resource.BackendSmolmachines, testImage)
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, harness{e: newEnv(t, "1.14.0")})
}
