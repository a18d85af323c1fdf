package docker

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/google/uuid"

	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

func TestObserve(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "obs")
	// Every credential delivered, so the sidecar's health check passes.
	f.secrets[resource.Ref{Secret: "github"}] = resource.NewSecret("canary-github-" + randomHex(8))
	f.canaries = append(f.canaries, f.secrets[resource.Ref{Secret: "github"}].Reveal())
	f.up()
	agent := f.addr(resource.KindAgent, "")
	sidecarAddr := f.addr(resource.KindSidecar, "")
	netAddr := f.addr(resource.KindNetwork, "")

	observe := func() resource.Observed {
		t.Helper()
		obs, err := f.b.Observe(ctx, f.st)
		if err != nil {
			t.Fatal(err)
		}
		return obs
	}
	want := func(obs resource.Observed, addr resource.Address, status resource.ObjectStatus, reason string) {
		t.Helper()
		o, ok := obs[addr]
		if !ok || o.Status != status || o.Reason != reason || o.Addr != addr {
			t.Errorf("%s: %+v (reported %v), want %v %q", addr, o, ok, status, reason)
		}
	}

	obs := observe()
	for _, a := range []resource.Address{netAddr, sidecarAddr, agent} {
		want(obs, a, resource.StatusPresent, "")
	}
	if len(obs) != 3 {
		t.Errorf("observed %d objects, want the 3 containers and networks: %v", len(obs), obs)
	}

	// Stopped by hand.
	stopContainer(t, f.name("agent"))
	want(observe(), agent, resource.StatusStopped, "container stopped out of band")
	if _, err := f.b.Update(ctx, f.op(agent)); err != nil {
		t.Fatal(err)
	}
	want(observe(), agent, resource.StatusPresent, "")

	// The state remembers another spec than the one the container was made
	// from.
	r := f.st.Lookup(agent)
	saved := r.Digest
	r.Digest = resource.Attrs{"image": resource.String("something else")}.Digest()
	want(observe(), agent, resource.StatusChanged, "container changed out of band: spec digest differs")
	r.Digest = saved

	// Connected by hand to the egress network.
	if err := cli.NetworkConnect(ctx, f.name("egress"), f.name("agent"), &network.EndpointSettings{}); err != nil {
		t.Fatal(err)
	}
	want(observe(), agent, resource.StatusChanged, "agent attached to an unexpected network "+f.name("egress"))
	if err := cli.NetworkDisconnect(ctx, f.name("egress"), f.name("agent"), true); err != nil {
		t.Fatal(err)
	}

	// Status shows each object's state, once Docker has run the sidecar's
	// first health check.
	if h := waitHealth(t, f.name("sidecar"), string(container.Healthy)); h != string(container.Healthy) {
		t.Fatalf("the sidecar is %s, want healthy", h)
	}
	sts, err := f.b.Status(ctx, f.st)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ObjectStatus{}
	for _, s := range sts {
		got[s.Name] = s
	}
	if len(sts) != 4 || got[f.name("sidecar")].State != "running" || got[f.name("sidecar")].Health != "healthy" ||
		got[f.name("agent")].State != "running" || got[f.name("internal")].State != "present" || got[f.name("egress")].Addr != netAddr {
		t.Errorf("status = %+v", sts)
	}

	// A state of another lineage naming the same addresses sees nothing.
	other := &state.State{Lineage: uuid.NewString(), Bottles: map[string]*state.Bottle{}}
	for _, r := range f.st.Resources() {
		cp := *r
		other.Set(resource.BackendDocker, &cp)
	}
	obsOther, err := f.b.Observe(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []resource.Address{netAddr, sidecarAddr, agent} {
		if obsOther[a].Status != resource.StatusMissing {
			t.Errorf("another lineage sees %s as %v, want missing", a, obsOther[a].Status)
		}
	}

	// Created again (an interrupted run): exactly one agent.
	f.create(agent)
	if n := countContainers(t, f.name("agent")); n != 1 {
		t.Errorf("%d agents after a second create", n)
	}

	// Removed by hand: missing; and deleting what is missing is fine.
	if err := cli.ContainerRemove(ctx, f.name("agent"), container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	want(observe(), agent, resource.StatusMissing, "container "+f.name("agent")+" is gone")
	if err := f.b.Delete(ctx, f.op(agent)); err != nil {
		t.Errorf("delete a missing agent: %v", err)
	}
	// A network removed by hand (the sidecar goes first: it is attached).
	if err := cli.ContainerRemove(ctx, f.name("sidecar"), container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := cli.NetworkRemove(ctx, f.name("egress")); err != nil {
		t.Fatal(err)
	}
	obs = observe()
	want(obs, sidecarAddr, resource.StatusMissing, "container "+f.name("sidecar")+" is gone")
	want(obs, netAddr, resource.StatusMissing, "network "+f.name("egress")+" is gone")
}

func TestDestroyLeavesNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "gone")
	f.up()
	for _, a := range []resource.Address{f.addr(resource.KindPrompt, ""), f.addr(resource.KindAuth, ""), f.addr(resource.KindSkill, "code-review")} {
		f.create(a)
	}
	// Destroy in the applier's order: what lives in the agent, the agent,
	// the sidecar, the network; then all of it again, as a destroy killed
	// before its state save would.
	order := []resource.Address{
		f.addr(resource.KindSkill, "code-review"), f.addr(resource.KindPrompt, ""), f.addr(resource.KindAgent, ""),
		f.addr(resource.KindAuth, ""), f.addr(resource.KindSidecar, ""), f.addr(resource.KindNetwork, ""),
	}
	for round := 1; round <= 2; round++ {
		for _, a := range order {
			op := f.op(a)
			op.Bottle, op.Attrs = nil, nil
			if err := f.b.Delete(ctx, op); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		objs, err := f.b.Objects(ctx, f.lineage)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != 0 {
			t.Fatalf("round %d: destroy left %v", round, objs)
		}
	}
}
