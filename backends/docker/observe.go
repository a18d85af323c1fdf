package docker

import (
	"io"

	"context"
	"fmt"
	"github.com/docker/docker/pkg/stdcopy"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// snapshot is one listing of everything bottleform manages on the engine,
// containers and networks by name.
type snapshot struct {
	containers map[string]container.Summary
	networks   map[string]network.Summary
}

// list takes a snapshot: one container list and one network list, both
// filtered on the managed-by label.
func (b *Backend) list(ctx context.Context) (*snapshot, error) {
	f := filters.NewArgs(filters.Arg("label", resource.LabelManagedBy+"="+resource.ManagedBy))
	cs, err := b.c.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	ns, err := b.c.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	s := &snapshot{containers: map[string]container.Summary{}, networks: map[string]network.Summary{}}
	for _, c := range cs {
		for _, n := range c.Names {
			s.containers[strings.TrimPrefix(n, "/")] = c
		}
	}
	for _, n := range ns {
		s.networks[n.Name] = n
	}
	return s, nil
}

// container returns the container called name if it is lineage's.
func (s *snapshot) container(lineage, name string) (container.Summary, bool) {
	c, ok := s.containers[name]
	return c, ok && ours(c.Labels, lineage)
}

// network returns the network called name if it is lineage's.
func (s *snapshot) network(lineage, name string) (network.Summary, bool) {
	n, ok := s.networks[name]
	return n, ok && ours(n.Labels, lineage)
}

// Observe reports, from one container list and one network list, what is
// live of the networks, sidecars and agents of the state's Docker bottles:
// missing, stopped, changed out of band (spec digest, networks), or, for a
// sidecar whose health check fails, degraded. Objects of other lineages
// are not looked at. Objects inside the agent and the sidecar's routes are
// left out.
func (b *Backend) Observe(ctx context.Context, s *state.State) (resource.Observed, error) {
	return b.observe(ctx, s, resource.BackendDocker, false)
}

// ObserveSidecars is Observe for the networks and sidecars of the state's
// bottles on backend, whose sidecars are published (see
// CreatePublishedSidecar): an egress network and a sidecar on it alone.
// Their agents are not containers and are left out.
func (b *Backend) ObserveSidecars(ctx context.Context, s *state.State, backend string) (resource.Observed, error) {
	return b.observe(ctx, s, backend, true)
}

func (b *Backend) observe(ctx context.Context, s *state.State, backend string, published bool) (resource.Observed, error) {
	if s == nil {
		return nil, nil
	}
	snap, err := b.list(ctx)
	if err != nil {
		return nil, err
	}
	obs := resource.Observed{}
	for _, r := range s.Resources() {
		if bt := s.Bottles[r.Addr.Bottle]; bt == nil || bt.Backend != backend {
			continue
		}
		if published && r.Addr.Kind != resource.KindNetwork && r.Addr.Kind != resource.KindSidecar {
			continue
		}
		status, reason, ok := snap.observe(s.Lineage, r, published)
		if ok && status == resource.StatusDegraded && b.sidecarHealthy(ctx, resource.ObjectName(s.Lineage, r.Addr.Bottle, compSidecar)) {
			// Docker's health status lags: it is from the last check,
			// up to a second old, and a sidecar repaired since is fine.
			status, reason = resource.StatusPresent, ""
		}
		if ok {
			obs[r.Addr] = resource.Observation{Addr: r.Addr, Status: status, Reason: reason}
		}
	}
	return obs, nil
}

// networkComps are the networks of a bottle: both, or the egress network
// alone when its sidecar is published.
func networkComps(published bool) []string {
	if published {
		return []string{compEgress}
	}
	return []string{compInternal, compEgress}
}

func (s *snapshot) observe(lineage string, r *state.Resource, published bool) (resource.ObjectStatus, string, bool) {
	name := func(comp string) string { return resource.ObjectName(lineage, r.Addr.Bottle, comp) }
	switch r.Addr.Kind {
	case resource.KindNetwork:
		for _, comp := range networkComps(published) {
			n, ok := s.network(lineage, name(comp))
			if !ok {
				return resource.StatusMissing, "network " + name(comp) + " is gone", true
			}
			if comp == compInternal && !n.Internal {
				return resource.StatusChanged, "network " + n.Name + " is no longer internal", true
			}
		}
		return resource.StatusPresent, "", true
	case resource.KindSidecar, resource.KindAgent:
		comp := compSidecar
		if r.Addr.Kind == resource.KindAgent {
			comp = compAgent
		}
		c, ok := s.container(lineage, name(comp))
		if !ok {
			return resource.StatusMissing, "container " + name(comp) + " is gone", true
		}
		digest := r.Digest
		if r.Addr.Kind == resource.KindSidecar {
			digest = specDigest(r.Addr.Kind, r.Attrs)
		}
		if c.Labels[resource.LabelDigest] != digest {
			return resource.StatusChanged, "container changed out of band: spec digest differs", true
		}
		var attached []string
		if c.NetworkSettings != nil {
			for n := range c.NetworkSettings.Networks {
				attached = append(attached, n)
			}
		}
		sort.Strings(attached)
		var want []string
		switch {
		case comp == compAgent:
			want = []string{name(compInternal)}
		default:
			for _, n := range networkComps(published) {
				want = append(want, name(n))
			}
		}
		for _, n := range attached {
			if !contains(want, n) {
				return resource.StatusChanged, fmt.Sprintf("%s attached to an unexpected network %s", comp, n), true
			}
		}
		for _, n := range want {
			if !contains(attached, n) {
				return resource.StatusChanged, fmt.Sprintf("%s detached from network %s", comp, n), true
			}
		}
		if c.State != container.StateRunning {
			return resource.StatusStopped, "container stopped out of band", true
		}
		if comp == compSidecar && health(c) == string(container.Unhealthy) {
			return resource.StatusDegraded, "sidecar is unhealthy: it lost its configuration or credentials (restarted out of band?), so credentialed routes fail closed", true
		}
		return resource.StatusPresent, "", true
	}
	return 0, "", false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// health is a container's health status as the list shows it ("Up 3
// minutes (healthy)"), or "" without a health check.
func health(c container.Summary) string {
	switch {
	case strings.Contains(c.Status, "(healthy)"):
		return string(container.Healthy)
	case strings.Contains(c.Status, "(unhealthy)"):
		return string(container.Unhealthy)
	case strings.Contains(c.Status, "(health: starting)"):
		return string(container.Starting)
	}
	return ""
}

// ObjectStatus is one Docker object of a state resource, for `bottleform
// status`.
type ObjectStatus struct {
	Addr resource.Address
	// Type is "network" or "container"; Name the object's name.
	Type string
	Name string
	// State is "missing", "present" (a network), or the container's state:
	// created, running, paused, restarting, exited, dead.
	State string
	// Health is healthy, unhealthy or starting; empty without a check.
	Health string
}

// Status lists, for each network, sidecar and agent of the state's Docker
// bottles, its Docker objects and their state, from one snapshot.
func (b *Backend) Status(ctx context.Context, s *state.State) ([]ObjectStatus, error) {
	return b.status(ctx, s, resource.BackendDocker, false)
}

// StatusSidecars is Status for the networks and published sidecars of the
// state's bottles on backend (see ObserveSidecars); their agents are not
// Docker's.
func (b *Backend) StatusSidecars(ctx context.Context, s *state.State, backend string) ([]ObjectStatus, error) {
	return b.status(ctx, s, backend, true)
}

func (b *Backend) status(ctx context.Context, s *state.State, backend string, published bool) ([]ObjectStatus, error) {
	if s == nil {
		return nil, nil
	}
	snap, err := b.list(ctx)
	if err != nil {
		return nil, err
	}
	var out []ObjectStatus
	for _, r := range s.Resources() {
		if bt := s.Bottles[r.Addr.Bottle]; bt == nil || bt.Backend != backend {
			continue
		}
		name := func(comp string) string { return resource.ObjectName(s.Lineage, r.Addr.Bottle, comp) }
		switch r.Addr.Kind {
		case resource.KindNetwork:
			for _, comp := range networkComps(published) {
				st := ObjectStatus{Addr: r.Addr, Type: "network", Name: name(comp), State: "missing"}
				if _, ok := snap.network(s.Lineage, st.Name); ok {
					st.State = "present"
				}
				out = append(out, st)
			}
		case resource.KindSidecar, resource.KindAgent:
			comp := compSidecar
			if r.Addr.Kind == resource.KindAgent {
				if published {
					continue
				}
				comp = compAgent
			}
			st := ObjectStatus{Addr: r.Addr, Type: "container", Name: name(comp), State: "missing"}
			if c, ok := snap.container(s.Lineage, st.Name); ok {
				st.State, st.Health = c.State, health(c)
			}
			out = append(out, st)
		}
	}
	return out, nil
}

// Object is one container or network that carries bottleform's labels.
type Object struct {
	Type      string // "container" or "network"
	ID        string
	Name      string
	Lineage   string
	Bottle    string
	Component string
	Address   string
	// State is the container's state; "present" for a network.
	State string
}

func (o Object) String() string { return o.Type + " " + o.Name }

// Objects lists every container and network with bottleform's labels and
// lineage, or of any lineage when lineage is empty (orphan reports), sorted
// by type and name.
func (b *Backend) Objects(ctx context.Context, lineage string) ([]Object, error) {
	snap, err := b.list(ctx)
	if err != nil {
		return nil, err
	}
	var out []Object
	add := func(typ, id, name, state string, l map[string]string) {
		if lineage != "" && l[resource.LabelLineage] != lineage {
			return
		}
		out = append(out, Object{
			Type: typ, ID: id, Name: name, State: state,
			Lineage: l[resource.LabelLineage], Bottle: l[resource.LabelBottle],
			Component: l[resource.LabelComponent], Address: l[resource.LabelAddress],
		})
	}
	for name, c := range snap.containers {
		add("container", c.ID, name, c.State, c.Labels)
	}
	for name, n := range snap.networks {
		add("network", n.ID, name, "present", n.Labels)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// SidecarLogs streams the sidecar's log (its stderr: one JSON line per
// event, one per egress decision) to w, following it while ctx lasts when
// follow is set.
func (b *Backend) SidecarLogs(ctx context.Context, lineage, bottle string, follow bool, w io.Writer) error {
	name := resource.ObjectName(lineage, bottle, compSidecar)
	rc, err := b.c.ContainerLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow})
	if err != nil {
		return fmt.Errorf("logs of bottle.%s.sidecar (%s): %w", bottle, name, err)
	}
	defer rc.Close()
	_, err = stdcopy.StdCopy(w, w, rc)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// sidecarHealthy runs the sidecar's health check now, rather than reading
// the result of the last one Docker ran.
func (b *Backend) sidecarHealthy(ctx context.Context, name string) bool {
	_, _, code, err := b.exec(ctx, name, []string{"/bottleform", "sidecar", "health"}, "", nil)
	return err == nil && code == 0
}
