// Command benchdocker is the floor of bench/run: it brings up the topology
// of one bottle (the quickstart) with the fewest Docker Engine API calls,
// and nothing else. No state, no plan, no health wait, no provisioning.
//
//	benchdocker -name P -sidecar-image IMG [-agent-image IMG] up|noop|down
//
// up creates the internal and egress networks, creates the sidecar on the
// internal network (aliases egress, git-gate, supervise), connects it to
// the egress network, starts it, then creates and starts the agent on the
// internal network only: the same settings bottleform's Docker backend
// uses (backends/docker). noop lists the containers and networks labelled
// with P and checks that all four are present (and the containers
// running). down stops and removes the containers, then removes the
// networks, all found by that label; with nothing to remove it does
// nothing, so it doubles as cleanup.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// benchLabel marks every object benchdocker makes; its value is -name.
const benchLabel = "dev.bottleform.bench"

var proxyEnv = []string{
	"HTTP_PROXY=http://egress:9099", "HTTPS_PROXY=http://egress:9099",
	"http_proxy=http://egress:9099", "https_proxy=http://egress:9099",
	"NO_PROXY=git-gate,supervise,localhost,127.0.0.1", "no_proxy=git-gate,supervise,localhost,127.0.0.1",
	"NODE_USE_ENV_PROXY=1",
}

func main() {
	name := flag.String("name", "", "prefix of the object names, and the value of the label "+benchLabel)
	sidecarImage := flag.String("sidecar-image", "", "the sidecar image (bottleform-sidecar:...)")
	agentImage := flag.String("agent-image", "bottleform-agent:test", "the agent image")
	flag.Parse()
	if *name == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: benchdocker -name P -sidecar-image IMG [-agent-image IMG] up|noop|down")
		os.Exit(2)
	}
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fail(err)
	}
	defer c.Close()
	ctx := context.Background()
	switch flag.Arg(0) {
	case "up":
		if *sidecarImage == "" {
			fail(errors.New("up needs -sidecar-image"))
		}
		err = up(ctx, c, *name, *sidecarImage, *agentImage)
	case "noop":
		err = noop(ctx, c, *name)
	case "down":
		err = down(ctx, c, *name)
	default:
		err = fmt.Errorf("unknown command %q: want up, noop or down", flag.Arg(0))
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchdocker:", err)
	os.Exit(1)
}

func labels(name, comp string) map[string]string {
	return map[string]string{benchLabel: name, benchLabel + ".component": comp}
}

func up(ctx context.Context, c *client.Client, name, sidecarImage, agentImage string) error {
	internal, egress := name+"-internal", name+"-egress"
	if _, err := c.NetworkCreate(ctx, internal, network.CreateOptions{
		Driver: "bridge", Internal: true, Labels: labels(name, "network-internal"),
		Options: map[string]string{"com.docker.network.bridge.inhibit_ipv4": "true"},
	}); err != nil {
		return err
	}
	if _, err := c.NetworkCreate(ctx, egress, network.CreateOptions{
		Driver: "bridge", Labels: labels(name, "network-egress"),
	}); err != nil {
		return err
	}

	sc, err := c.ContainerCreate(ctx,
		&container.Config{
			Image:      sidecarImage,
			User:       "65532:65532",
			Entrypoint: []string{"/bottleform"},
			Cmd:        []string{"sidecar"},
			Env:        []string{"TMPDIR=/var/lib/bottleform/tmp"},
			Labels:     labels(name, "sidecar"),
			Healthcheck: &container.HealthConfig{
				Test:     []string{"CMD", "/bottleform", "sidecar", "health"},
				Interval: time.Second, Timeout: 3 * time.Second, Retries: 3,
			},
		},
		&container.HostConfig{
			NetworkMode:    container.NetworkMode(internal),
			ReadonlyRootfs: true,
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges"},
			Tmpfs: map[string]string{
				"/run/bottleform": "mode=0700,uid=65532,gid=65532",
				// The git gate's bare repositories, as backends/docker has them.
				"/var/lib/bottleform": "exec,mode=0700,uid=65532,gid=65532",
			},
		},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			internal: {Aliases: []string{"egress", "git-gate", "supervise"}},
		}},
		nil, name+"-sidecar")
	if err != nil {
		return err
	}
	if err := c.NetworkConnect(ctx, egress, sc.ID, &network.EndpointSettings{}); err != nil {
		return err
	}
	if err := c.ContainerStart(ctx, sc.ID, container.StartOptions{}); err != nil {
		return err
	}

	init := true
	ag, err := c.ContainerCreate(ctx,
		&container.Config{
			Image:      agentImage,
			Hostname:   "quickstart",
			Env:        proxyEnv,
			Entrypoint: []string{"sleep"},
			Cmd:        []string{"infinity"},
			Labels:     labels(name, "agent"),
		},
		&container.HostConfig{
			NetworkMode: container.NetworkMode(internal),
			CapDrop:     []string{"ALL"},
			SecurityOpt: []string{"no-new-privileges"},
			Init:        &init,
		},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{internal: {}}},
		nil, name+"-agent")
	if err != nil {
		return err
	}
	return c.ContainerStart(ctx, ag.ID, container.StartOptions{})
}

func byLabel(name string) filters.Args {
	return filters.NewArgs(filters.Arg("label", benchLabel+"="+name))
}

func noop(ctx context.Context, c *client.Client, name string) error {
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: byLabel(name)})
	if err != nil {
		return err
	}
	ns, err := c.NetworkList(ctx, network.ListOptions{Filters: byLabel(name)})
	if err != nil {
		return err
	}
	running := 0
	for _, ct := range cs {
		if ct.State == "running" {
			running++
		}
	}
	if running != 2 || len(cs) != 2 || len(ns) != 2 {
		return fmt.Errorf("%s: want 2 running containers and 2 networks, found %d containers (%d running) and %d networks", name, len(cs), running, len(ns))
	}
	return nil
}

func down(ctx context.Context, c *client.Client, name string) error {
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: byLabel(name)})
	if err != nil {
		return err
	}
	timeout := 5 // bottleform's stopTimeout
	for _, ct := range cs {
		if err := c.ContainerStop(ctx, ct.ID, container.StopOptions{Timeout: &timeout}); err != nil {
			return err
		}
		if err := c.ContainerRemove(ctx, ct.ID, container.RemoveOptions{}); err != nil {
			return err
		}
	}
	ns, err := c.NetworkList(ctx, network.ListOptions{Filters: byLabel(name)})
	if err != nil {
		return err
	}
	for _, n := range ns {
		if err := c.NetworkRemove(ctx, n.ID); err != nil {
			return err
		}
	}
	return nil
}
