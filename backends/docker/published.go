package docker

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
)

// The sidecar's agent-facing ports in its container.
const (
	PortEgress    = 9099
	PortGate      = 80
	PortSupervise = 9100
)

// agentPorts are the ports a published sidecar publishes, with the ids
// that record their host ports.
var agentPorts = []struct {
	port int
	id   string
}{{PortEgress, "egress_port"}, {PortGate, "gate_port"}, {PortSupervise, "supervise_port"}}

// Publish is how a sidecar's agent-facing ports are published on the host,
// for an agent that is not a container on the bottle's internal network
// (the smolmachines backend's VM): on HostIP (a loopback address), each
// port on the host port Ports names, or on a port Docker picks when it
// names none.
type Publish struct {
	HostIP netip.Addr
	// Ports maps PortEgress, PortGate and PortSupervise to host ports.
	Ports map[int]int
}

func (p *Publish) bindings() nat.PortMap {
	m := nat.PortMap{}
	for _, ap := range agentPorts {
		host := ""
		if hp := p.Ports[ap.port]; hp > 0 {
			host = strconv.Itoa(hp)
		}
		m[nat.Port(strconv.Itoa(ap.port)+"/tcp")] = []nat.PortBinding{{HostIP: p.HostIP.String(), HostPort: host}}
	}
	return m
}

// record adds the host address and ports to a sidecar's ids.
func (p *Publish) record(ids map[string]string) {
	ids["host_ip"] = p.HostIP.String()
	for _, ap := range agentPorts {
		ids[ap.id] = strconv.Itoa(p.Ports[ap.port])
	}
}

// PublishFromIDs reads what record wrote; ok is false when ids hold no
// published ports.
func PublishFromIDs(ids map[string]string) (Publish, bool) {
	ip, err := netip.ParseAddr(ids["host_ip"])
	if err != nil {
		return Publish{}, false
	}
	p := Publish{HostIP: ip, Ports: map[int]int{}}
	for _, ap := range agentPorts {
		n, err := strconv.Atoi(ids[ap.id])
		if err != nil || n <= 0 || n > 65535 {
			return Publish{}, false
		}
		p.Ports[ap.port] = n
	}
	return p, true
}

// published reads the host address and ports of the sidecar called name
// from Docker, which picked them.
func (b *Backend) published(ctx context.Context, name string) (Publish, error) {
	c, err := b.c.ContainerInspect(ctx, name)
	if err != nil {
		return Publish{}, fmt.Errorf("container %s: %w", name, err)
	}
	p := Publish{Ports: map[int]int{}}
	for _, ap := range agentPorts {
		var bs []nat.PortBinding
		if c.NetworkSettings != nil {
			bs = c.NetworkSettings.Ports[nat.Port(strconv.Itoa(ap.port)+"/tcp")]
		}
		if len(bs) == 0 {
			return Publish{}, fmt.Errorf("container %s does not publish port %d", name, ap.port)
		}
		ip, err := netip.ParseAddr(bs[0].HostIP)
		if err != nil {
			return Publish{}, fmt.Errorf("container %s publishes port %d on %q, not an address", name, ap.port, bs[0].HostIP)
		}
		n, err := strconv.Atoi(bs[0].HostPort)
		if err != nil {
			return Publish{}, fmt.Errorf("container %s publishes port %d on host port %q", name, ap.port, bs[0].HostPort)
		}
		p.HostIP, p.Ports[ap.port] = ip, n
	}
	return p, nil
}

// CreateEgressNetwork makes the bottle's egress network, the one network
// of a published sidecar, adopting it if it exists with this lineage's
// labels.
func (b *Backend) CreateEgressNetwork(ctx context.Context, op *applier.Op) (map[string]string, error) {
	id, err := b.ensureNetwork(ctx, op, compEgress)
	if err != nil {
		return nil, err
	}
	return map[string]string{"egress_network": id}, nil
}

// DeleteNetworks removes the bottle's networks; see Delete.
func (b *Backend) DeleteNetworks(ctx context.Context, op *applier.Op) error {
	return b.deleteNetworks(ctx, op)
}

// CreatePublishedSidecar (re)creates the sidecar of op on the bottle's
// egress network alone, with its agent-facing ports published as pub
// asks, waits for its control socket and delivers the configuration. The
// ids record the host address and ports Docker bound (see
// PublishFromIDs). Its CA is the caller's to install (SidecarCA).
func (b *Backend) CreatePublishedSidecar(ctx context.Context, op *applier.Op, pub Publish) (map[string]string, error) {
	return b.createSidecar(ctx, op, &pub)
}

// EnsurePublishedSidecar starts the published sidecar of op if it is
// stopped, or creates it as CreatePublishedSidecar does if it is missing
// or its spec changed, and delivers the configuration. created reports a
// new sidecar; either way the ids record its ports.
func (b *Backend) EnsurePublishedSidecar(ctx context.Context, op *applier.Op, pub Publish) (ids map[string]string, created bool, err error) {
	return b.ensureSidecar(ctx, op, &pub)
}

// ensureSidecar starts the sidecar of op if it is stopped and delivers its
// configuration, or creates it (created) if it is missing or its spec
// changed.
func (b *Backend) ensureSidecar(ctx context.Context, op *applier.Op, pub *Publish) (ids map[string]string, created bool, err error) {
	e, err := b.startExisting(ctx, op, compSidecar)
	switch {
	case err != nil:
		return nil, false, err
	case e == nil || e.digest != specDigest(op.Addr.Kind, op.Attrs):
		ids, err := b.createSidecar(ctx, op, pub)
		return ids, true, err
	case e.started:
		if err := b.waitControl(ctx, e.id, objectName(op, compSidecar)); err != nil {
			return nil, false, err
		}
	}
	if err := b.deliver(ctx, op, false); err != nil {
		return nil, false, err
	}
	ids = map[string]string{"container": e.id}
	if pub != nil {
		got, err := b.published(ctx, objectName(op, compSidecar))
		if err != nil {
			return nil, false, err
		}
		got.record(ids)
	}
	return ids, false, nil
}

// RemoveSidecar stops and removes the sidecar of op; one already gone is
// fine.
func (b *Backend) RemoveSidecar(ctx context.Context, op *applier.Op) error {
	return b.removeContainer(ctx, op.Lineage, objectName(op, compSidecar))
}

// Deliver sends the bottle's configuration to its running sidecar; see
// Delete for deleting.
func (b *Backend) Deliver(ctx context.Context, op *applier.Op, deleting bool) error {
	return b.deliver(ctx, op, deleting)
}

// SidecarCA returns the PEM of the CA the running sidecar of bottle
// intercepts TLS with.
func (b *Backend) SidecarCA(ctx context.Context, lineage, bottle string) (string, error) {
	rep, err := b.sidecarPing(ctx, resource.ObjectName(lineage, bottle, compSidecar))
	if err != nil {
		return "", fmt.Errorf("read the gateway's CA: %w", err)
	}
	return rep.CACert, nil
}

// PublishedHostIPs returns the host addresses that running sidecars of any
// lineage publish ports on, for allocating a loopback address to a new one.
func (b *Backend) PublishedHostIPs(ctx context.Context) (map[netip.Addr]bool, error) {
	snap, err := b.list(ctx)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]bool{}
	for _, c := range snap.containers {
		if c.Labels[resource.LabelComponent] != compSidecar || c.State != container.StateRunning {
			continue
		}
		for _, p := range c.Ports {
			if ip, err := netip.ParseAddr(p.IP); err == nil && p.PublicPort != 0 {
				out[ip] = true
			}
		}
	}
	return out, nil
}

// SidecarPublished reads, from Docker, the host address and ports the
// published sidecar of bottle is reachable on.
func (b *Backend) SidecarPublished(ctx context.Context, lineage, bottle string) (Publish, error) {
	return b.published(ctx, resource.ObjectName(lineage, bottle, compSidecar))
}

// Outside are addresses an agent of bottle must not reach directly, each
// with what it is: the sidecar's own address on the egress network (it
// listens there, so any path answers) and that network's gateway, the
// host. Both are this machine's: probing them sends nothing out.
func (b *Backend) Outside(ctx context.Context, lineage, bottle string) ([][2]string, error) {
	name := resource.ObjectName(lineage, bottle, compEgress)
	n, found, err := b.inspectNetwork(ctx, name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("bottle.%s has no egress network (%s): run `bottleform apply`", bottle, name)
	}
	var out [][2]string
	sidecar := resource.ObjectName(lineage, bottle, compSidecar)
	for _, ep := range n.Containers {
		if ep.Name != sidecar {
			continue
		}
		if p, err := netip.ParsePrefix(ep.IPv4Address); err == nil {
			out = append(out, [2]string{netip.AddrPortFrom(p.Addr(), PortEgress).String(), "the sidecar on the egress network"})
		}
	}
	for _, c := range n.IPAM.Config {
		if ip, err := netip.ParseAddr(c.Gateway); err == nil && ip.Is4() {
			out = append(out, [2]string{netip.AddrPortFrom(ip, 1).String(), "the egress network's gateway, the host"})
		}
	}
	return out, nil
}
