package docker

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/bottleform/bottleform/resource"
)

// Every address these tests send to is on this machine: containers and
// networks they create, and a listener of the test process.

// helper starts a container of the test agent image on netName, removed
// at cleanup (before the fixture's destroy, which would refuse to remove a
// network it is attached to), and returns its name and address there.
func helper(t *testing.T, f *fixture, role, netName string, cmd ...string) (string, string) {
	t.Helper()
	ctx := context.Background()
	name := "bf-test-" + role + "-" + randomHex(4)
	resp, err := cli.ContainerCreate(ctx,
		&container.Config{Image: testAgentImage, Cmd: cmd, Labels: map[string]string{resource.LabelLineage: f.lineage, "dev.bottleform.test": role}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netName)}, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true}) })
	if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := cli.ContainerInspect(ctx, resp.ID)
	if err != nil {
		t.Fatal(err)
	}
	return name, c.NetworkSettings.Networks[netName].IPAddress
}

func gateway(t *testing.T, netName string) string {
	t.Helper()
	n, err := cli.NetworkInspect(context.Background(), netName, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.IPAM.Config) == 0 || n.IPAM.Config[0].Gateway == "" {
		t.Fatalf("network %s has no gateway in its IPAM config", netName)
	}
	return n.IPAM.Config[0].Gateway
}

func TestAgentIsolation(t *testing.T) {
	f := newFixture(t, "iso")
	f.up()
	agent := f.name("agent")
	egressNet, internalNet := f.name("egress"), f.name("internal")

	// A web server on the egress network, and a probe beside it standing in
	// for the sidecar (which has no shell to exec): what the sidecar's side
	// of the bottle reaches.
	_, webIP := helper(t, f, "web", egressNet, "sh", "-c", "mkdir -p /tmp/www && echo hello-egress > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www")
	probe, _ := helper(t, f, "probe", egressNet, "sleep", "infinity")
	var out string
	for i := 0; i < 50; i++ {
		// nc, not wget: Debian's static busybox wget crashes on this image.
		out, _, _ = execIn(t, f.b, probe, []string{"nc", "-w", "2", webIP, "8080"}, "GET / HTTP/1.0\r\n\r\n")
		if strings.Contains(out, "hello-egress") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.HasPrefix(out, "HTTP/1.") || !strings.Contains(out, "hello-egress") {
		t.Fatalf("the probe on the egress network cannot reach the web server at %s: %q", webIP, out)
	}
	// The agent cannot: no route to the egress network. (nc, not wget: the
	// agent's proxy variables would send wget to the sidecar.)
	out, errb, code := execIn(t, f.b, agent, []string{"nc", "-w", "3", webIP, "8080"}, "GET / HTTP/1.0\r\n\r\n")
	if code == 0 || strings.Contains(out, "hello-egress") {
		t.Errorf("the agent reached %s on the egress network: exit %d, %q %q", webIP, code, out, errb)
	}

	// A listener of this test on the host, on every address.
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello-host\n"))
			c.Close()
		}
	}()
	port := strings.TrimPrefix(ln.Addr().String(), "0.0.0.0:")
	egressGW, internalGW := gateway(t, egressNet), gateway(t, internalNet)
	out, _, _ = execIn(t, f.b, probe, []string{"nc", "-w", "3", egressGW, port}, "")
	if strings.TrimSpace(out) != "hello-host" {
		t.Fatalf("the probe cannot reach the host's listener at %s:%s (%q): the check below would prove nothing", egressGW, port, out)
	}
	for _, gw := range []string{egressGW, internalGW} {
		out, errb, code = execIn(t, f.b, agent, []string{"nc", "-w", "3", gw, port}, "")
		if code == 0 || strings.Contains(out, "hello-host") {
			t.Errorf("the agent reached the host at %s:%s: exit %d, %q %q", gw, port, code, out, errb)
		}
	}

	// The internal network's gateway address is nobody's on the host (the
	// bridge has no IPv4 address), so nothing the agent sends toward its
	// default route is routed anywhere: not even a DNS query that Docker's
	// resolver forwards from the agent's namespace.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.String() == internalGW {
			t.Fatalf("the host holds the internal network's gateway %s: the agent can reach the host", internalGW)
		}
	}
	out, errb, code = execIn(t, f.b, agent, []string{"nslookup", "egress"}, "")
	if code != 0 {
		t.Errorf("the agent cannot resolve its sidecar: exit %d, %q %q", code, out, errb)
	}
	out, errb, code = execIn(t, f.b, agent, []string{"nslookup", "bottleform-isolation-test.invalid"}, "")
	if code == 0 {
		t.Errorf("an external name resolved in the agent: %q %q", out, errb)
	}

	// What the agent can do is ask the sidecar, which refuses and says why.
	out, _, _ = execIn(t, f.b, agent, []string{"nc", "-w", "3", "egress", "9099"}, "GET http://example.invalid/ HTTP/1.1\r\nHost: example.invalid\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 403 ") || !strings.Contains(out, "example.invalid") || !strings.Contains(out, "not_granted") {
		t.Errorf("the sidecar's answer to a proxy request: %q", out)
	}
}
