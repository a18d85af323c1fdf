package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
)

// inhibitIPv4 keeps Docker from giving the internal network's bridge an
// address on the host. Internal only stops forwarding: without this
// option a container on an internal network reaches every host service
// listening on 0.0.0.0 through its gateway address (seen on Docker 20.10).
const inhibitIPv4 = "com.docker.network.bridge.inhibit_ipv4"

// createNetworks makes the bottle's internal and egress networks, adopting
// either if it exists with this lineage's labels.
func (b *Backend) createNetworks(ctx context.Context, op *applier.Op) (map[string]string, error) {
	in, err := b.ensureNetwork(ctx, op, compInternal)
	if err != nil {
		return nil, err
	}
	eg, err := b.ensureNetwork(ctx, op, compEgress)
	if err != nil {
		return nil, err
	}
	return map[string]string{"internal_network": in, "egress_network": eg}, nil
}

func (b *Backend) ensureNetwork(ctx context.Context, op *applier.Op, comp string) (string, error) {
	name := objectName(op, comp)
	internal := comp == compInternal
	n, found, err := b.inspectNetwork(ctx, name)
	if err != nil {
		return "", err
	}
	if found {
		if !ours(n.Labels, op.Lineage) {
			return "", foreign("network", name, n.Labels)
		}
		if n.Internal != internal || (internal && n.Options[inhibitIPv4] != "true") {
			return "", fmt.Errorf("network %s exists but is not configured as bottleform makes it (changed out of band?): remove it with `docker network rm %s` and apply again", name, name)
		}
		return n.ID, nil
	}
	o := network.CreateOptions{Driver: "bridge", Internal: internal, Labels: labels(op, comp)}
	if internal {
		o.Options = map[string]string{inhibitIPv4: "true"}
	}
	resp, err := b.c.NetworkCreate(ctx, name, o)
	if err != nil {
		return "", fmt.Errorf("network %s: %w", name, err)
	}
	return resp.ID, nil
}

// inspectNetwork finds the network called exactly name.
func (b *Backend) inspectNetwork(ctx context.Context, name string) (network.Inspect, bool, error) {
	n, err := b.c.NetworkInspect(ctx, name, network.InspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return n, false, nil
	case err != nil:
		return n, false, fmt.Errorf("network %s: %w", name, err)
	}
	// Inspect also matches an id prefix; only the name counts here.
	return n, n.Name == name, nil
}

// deleteNetworks removes both networks. Containers still attached are
// removed with them if they are this lineage's; any other container is
// left alone and the delete fails, naming it.
func (b *Backend) deleteNetworks(ctx context.Context, op *applier.Op) error {
	for _, comp := range []string{compInternal, compEgress} {
		name := objectName(op, comp)
		n, found, err := b.inspectNetwork(ctx, name)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		if !ours(n.Labels, op.Lineage) {
			return foreign("network", name, n.Labels)
		}
		for id, ep := range n.Containers {
			c, err := b.c.ContainerInspect(ctx, id)
			if cerrdefs.IsNotFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("network %s: container %s: %w", name, ep.Name, err)
			}
			if !ours(labelsOf(c), op.Lineage) {
				return fmt.Errorf("network %s still has container %s attached, which bottleform did not create: disconnect it with `docker network disconnect %s %s` and try again", name, ep.Name, name, ep.Name)
			}
			if err := b.c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return fmt.Errorf("network %s: remove attached container %s: %w", name, ep.Name, err)
			}
		}
		if err := b.c.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("network %s: %w", name, err)
		}
	}
	return nil
}

// foreign is the error for an object that has one of our names but not
// this lineage's labels.
func foreign(kind, name string, l map[string]string) error {
	owner := "not bottleform's"
	if l[resource.LabelManagedBy] == resource.ManagedBy {
		owner = "of the state with lineage " + l[resource.LabelLineage]
	}
	return fmt.Errorf("a %s named %s exists and is %s, not this state's: remove it (docker %s rm %s) or use the state it belongs to", kind, name, owner, kind, name)
}
