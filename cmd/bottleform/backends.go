package main

import (
	"context"
	"fmt"
	"os"
	"sort"

	dockerclient "github.com/docker/docker/client"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/backends/docker"
	"github.com/bottleform/bottleform/backends/smolmachines"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// backendSet opens backends on first use, so that commands that need none
// (a plan from an empty state) never touch a runtime.
type backendSet struct {
	g      *globals
	docker *docker.Backend
	smol   *smolmachines.Backend
	client *dockerclient.Client
}

func newBackendSet(g *globals) *backendSet { return &backendSet{g: g} }

func (s *backendSet) Close() {
	if s.client != nil {
		s.client.Close()
	}
}

func (s *backendSet) get(name string) (applier.Backend, error) {
	switch name {
	case resource.BackendDocker:
		return s.dockerBackend()
	case resource.BackendSmolmachines:
		return s.smolBackend()
	}
	return nil, fmt.Errorf("the %s backend is not available in this build of bottleform", name)
}

func (s *backendSet) dockerBackend() (*docker.Backend, error) {
	if s.docker != nil {
		return s.docker, nil
	}
	c, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	bin := os.Getenv("BOTTLEFORM_SIDECAR_BINARY")
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("docker: find bottleform's own binary for the sidecar image: %w", err)
		}
	}
	b, err := docker.New(docker.Options{
		Client:        c,
		SidecarBinary: bin,
		SidecarImage:  planner.SidecarImage,
		ConfigDir:     s.g.dir(),
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	s.client, s.docker = c, b
	return b, nil
}

// smolBackend is the smolmachines backend: its agents are smolvm VMs
// (smolvm on PATH, with the part of bottleform's environment it reads), its
// sidecars the Docker backend's, its images read from the same engine.
func (s *backendSet) smolBackend() (*smolmachines.Backend, error) {
	if s.smol != nil {
		return s.smol, nil
	}
	d, err := s.dockerBackend()
	if err != nil {
		return nil, err
	}
	b, err := smolmachines.New(smolmachines.Options{Docker: d, Images: s.client, ConfigDir: s.g.dir()})
	if err != nil {
		return nil, err
	}
	s.smol = b
	return b, nil
}

// usedBackends returns the backends the state's bottles use, sorted.
func usedBackends(p *planner.Plan, st *state.State) []string {
	seen := map[string]bool{}
	if st != nil {
		for _, b := range st.Bottles {
			seen[b.Backend] = true
		}
	}
	if p != nil {
		for _, b := range p.Bottles {
			seen[b.Backend] = true
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Observe asks every backend the state uses what is live.
func (s *backendSet) Observe(ctx context.Context, st *state.State) (resource.Observed, error) {
	names := usedBackends(nil, st)
	if len(names) == 0 {
		return nil, nil
	}
	out := resource.Observed{}
	for _, n := range names {
		b, err := s.get(n)
		if err != nil {
			return nil, err
		}
		obs, err := b.Observe(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("observe %s: %w", n, err)
		}
		for k, v := range obs {
			out[k] = v
		}
	}
	return out, nil
}

// For returns the backends a plan needs.
func (s *backendSet) For(_ context.Context, p *planner.Plan, st *state.State) (map[string]applier.Backend, error) {
	out := map[string]applier.Backend{}
	for _, n := range usedBackends(p, st) {
		b, err := s.get(n)
		if err != nil {
			return nil, err
		}
		out[n] = b
	}
	return out, nil
}
