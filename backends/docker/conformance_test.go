package docker

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/google/uuid"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/backends/backendtest"
	"github.com/bottleform/bottleform/resource"
)

// harness runs the conformance suite against the Docker engine; out-of-band
// actions are what a person would do with the docker CLI.
type harness struct{ b *Backend }

func (h harness) Backend() applier.Backend { return h.b }
func (h harness) NewLineage() string       { return uuid.NewString() }

func (h harness) container(lineage string, addr resource.Address) string {
	comp := compAgent
	if addr.Kind == resource.KindSidecar {
		comp = compSidecar
	}
	return resource.ObjectName(lineage, addr.Bottle, comp)
}

func (h harness) Stop(t testing.TB, lineage string, addr resource.Address) {
	t.Helper()
	timeout := 5
	if err := cli.ContainerStop(context.Background(), h.container(lineage, addr), container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
}

func (h harness) Remove(t testing.TB, lineage string, addr resource.Address) {
	t.Helper()
	if err := cli.ContainerRemove(context.Background(), h.container(lineage, addr), container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
}

func (h harness) Objects(t testing.TB, lineage string) []string {
	t.Helper()
	objs, err := h.b.Objects(context.Background(), lineage)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.String())
	}
	return out
}

func (h harness) Bottle(name string) *resource.Bottle {
	return backendtest.MinimalBottle(name, resource.BackendDocker, testAgentImage)
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, harness{b: newBackend(t, t.TempDir())})
}
