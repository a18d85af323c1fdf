package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/sidecar"
)

const (
	// sidecarUser is the sidecar image's "sidecar" user; the control
	// socket's tmpfs belongs to it.
	sidecarUser = "65532:65532"
	// controlDir is the tmpfs the control socket and the upstream keys
	// live in.
	controlDir = "/run/bottleform"
	// gitDir is the tmpfs the git gate's repositories live in.
	gitDir = "/var/lib/bottleform"
	// healthTimeout bounds the wait for a new sidecar to answer.
	healthTimeout = 30 * time.Second
)

// sidecarAliases are the sidecar's names on the internal network.
var sidecarAliases = []string{"egress", "git-gate", "supervise"}

var ctlArgv = []string{"/bottleform", "sidecar", "ctl"}

// createSidecar (re)creates the sidecar container on both networks, waits
// for it to be healthy and delivers the bottle's configuration to it. With
// pub it is on the egress network alone, its agent-facing ports published
// as pub asks (see CreatePublishedSidecar), and the ids record them.
func (b *Backend) createSidecar(ctx context.Context, op *applier.Op, pub *Publish) (map[string]string, error) {
	if err := b.EnsureSidecarImage(ctx); err != nil {
		return nil, err
	}
	name := objectName(op, compSidecar)
	if err := b.clearName(ctx, op.Lineage, name); err != nil {
		return nil, err
	}
	internal, egress := objectName(op, compInternal), objectName(op, compEgress)
	cfg := &container.Config{
		Image: b.image,
		User:  sidecarUser,
		// The image's entrypoint, spelled out: /bottleform sidecar.
		Entrypoint: []string{"/bottleform"},
		Cmd:        []string{"sidecar"},
		// The root is read-only: temporary files (the push hook's log)
		// go to the git tmpfs.
		Env:    []string{"TMPDIR=" + gitDir + "/tmp"},
		Labels: labels(op, compSidecar),
		Healthcheck: &container.HealthConfig{
			Test:     []string{"CMD", "/bottleform", "sidecar", "health"},
			Interval: time.Second,
			Timeout:  3 * time.Second,
			Retries:  3,
		},
	}
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(internal),
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Tmpfs: map[string]string{
			controlDir: "mode=0700,uid=65532,gid=65532",
			// The gate's bare repositories: exec, since their pre-receive
			// hooks run from there.
			gitDir: "exec,mode=0700,uid=65532,gid=65532",
		},
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		internal: {Aliases: sidecarAliases},
	}}
	if pub != nil {
		host.NetworkMode = container.NetworkMode(egress)
		host.PortBindings = pub.bindings()
		cfg.ExposedPorts = nat.PortSet{}
		for p := range host.PortBindings {
			cfg.ExposedPorts[p] = struct{}{}
		}
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{egress: {}}}
	}
	resp, err := b.c.ContainerCreate(ctx, cfg, host, nc, nil, name)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	for _, w := range resp.Warnings {
		warn(op, "docker: %s", w)
	}
	if pub == nil {
		if err := b.c.NetworkConnect(ctx, egress, resp.ID, &network.EndpointSettings{}); err != nil {
			return nil, fmt.Errorf("connect %s to %s: %w", name, egress, err)
		}
	}
	if err := b.c.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		if pub != nil && strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("start %s: a port it publishes on %s is taken (%w): free it, or remove the sidecar's recorded ports by destroying the bottle", name, pub.HostIP, err)
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := b.waitControl(ctx, resp.ID, name); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := b.deliver(ctx, op, false); err != nil {
		return nil, err
	}
	ids := map[string]string{"container": resp.ID}
	if pub != nil {
		// The VM's backend installs the CA in its agent.
		got, err := b.published(ctx, name)
		if err != nil {
			return nil, err
		}
		got.record(ids)
		return ids, nil
	}
	if err := b.installCA(ctx, op); err != nil {
		return nil, err
	}
	return ids, nil
}

// deliver sends the whole configuration of op.Bottle, with the values of
// its slots, to the running sidecar's control socket through `docker exec
// -i ... bottleform sidecar ctl`: the values travel on the exec's stdin
// only. With op.Bottle nil (a destroy) there is nothing to deliver. When
// deleting, a sidecar that is gone or stopped has nothing to forget.
func (b *Backend) deliver(ctx context.Context, op *applier.Op, deleting bool) error {
	if op.Bottle == nil {
		return nil
	}
	d, err := delivery(op)
	if err != nil {
		return err
	}
	body, err := json.Marshal(sidecar.Request{Op: sidecar.OpLoad, Delivery: &d})
	if err != nil {
		return fmt.Errorf("encode the sidecar's configuration: %w", err)
	}
	name := objectName(op, compSidecar)
	stdout, stderr, code, err := b.exec(ctx, name, ctlArgv, "", bytes.NewReader(body))
	clear(body)
	if err != nil {
		if deleting && (cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err)) {
			return nil
		}
		return fmt.Errorf("deliver the configuration to %s: %w", name, err)
	}
	var rep sidecar.Reply
	if jerr := json.Unmarshal(bytes.TrimSpace(stdout), &rep); jerr != nil || !rep.OK || code != 0 {
		reason := rep.Error
		if reason == "" {
			reason = strings.TrimSpace(string(stderr) + " " + string(stdout))
		}
		return fmt.Errorf("%s refused its configuration (exit %d): %s", name, code, reason)
	}
	return nil
}

// delivery builds what the sidecar gets: the configuration of op.Bottle
// and, for each credentialed route, its slot's value from op.Secrets. A
// reference that was not resolved fails the step, naming the reference.
func delivery(op *applier.Op) (sidecar.Delivery, error) {
	d := sidecar.Delivery{Config: sidecar.FromBottle(op.Bottle), Slots: map[string]string{}}
	delivered := map[resource.Ref]bool{}
	for _, r := range op.Bottle.Egress {
		if r.Auth == nil || r.Slot == "" {
			continue
		}
		v, ok := op.Secrets.Value(r.Auth.Token)
		if !ok {
			return d, fmt.Errorf("the value of %s, the credential of egress route %s, was not resolved; nothing was delivered to the sidecar", r.Auth.Token, r.Host)
		}
		if v.Empty() {
			warn(op, "%s is empty: the sidecar will refuse %s until it has a value", r.Auth.Token, r.Host)
		}
		d.Slots[r.Slot] = v.Reveal()
		delivered[r.Auth.Token] = true
	}
	for _, g := range op.Bottle.Git {
		slot := "GIT_KEY_" + g.Name
		switch g.Key.Kind {
		case resource.KeyFile:
			ref := resource.Ref{KeyFile: g.Key.Path}
			v, ok := op.Secrets.Value(ref)
			if !ok {
				return d, fmt.Errorf("the key of git entry %s (%s) was not read; nothing was delivered to the sidecar", g.Name, ref)
			}
			d.Slots[slot] = v.Reveal()
			delivered[ref] = true
		case resource.KeyGitea:
			if v, ok := op.Minted[g.Name]; ok {
				d.Slots[slot] = v.Reveal()
			} else {
				// Minted by an earlier apply: only the sidecar has it.
				d.Keep = append(d.Keep, slot)
			}
		}
	}
	// The bottle's other secrets are canaries for the gate's scan.
	for _, ref := range op.Bottle.Refs() {
		if v, ok := op.Secrets.Value(ref); ok && !delivered[ref] && !v.Empty() {
			if d.Canaries == nil {
				d.Canaries = map[string]string{}
			}
			d.Canaries[ref.String()] = v.Reveal()
		}
	}
	return d, nil
}
