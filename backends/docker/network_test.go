package docker

import (
	"context"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
	"github.com/google/uuid"

	"github.com/bottleform/bottleform/resource"
)

func TestNetworks(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "net")
	addr := f.addr(resource.KindNetwork, "")
	ids := f.create(addr)
	if ids["internal_network"] == "" || ids["egress_network"] == "" {
		t.Fatalf("ids = %v", ids)
	}

	in, err := cli.NetworkInspect(ctx, f.name("internal"), network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eg, err := cli.NetworkInspect(ctx, f.name("egress"), network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !in.Internal || in.Options[inhibitIPv4] != "true" || in.ID != ids["internal_network"] {
		t.Errorf("internal network: internal %v, options %v, id %s", in.Internal, in.Options, in.ID)
	}
	if eg.Internal || eg.Driver != "bridge" || eg.ID != ids["egress_network"] {
		t.Errorf("egress network: internal %v, driver %s, id %s", eg.Internal, eg.Driver, eg.ID)
	}
	for _, n := range []network.Inspect{in, eg} {
		want := map[string]string{
			resource.LabelManagedBy: resource.ManagedBy,
			resource.LabelLineage:   f.lineage,
			resource.LabelBottle:    "net",
			resource.LabelAddress:   "bottle.net.network",
			resource.LabelDigest:    f.attrs[addr].Digest(),
		}
		for k, v := range want {
			if n.Labels[k] != v {
				t.Errorf("network %s: label %s = %q, want %q", n.Name, k, n.Labels[k], v)
			}
		}
	}
	if in.Labels[resource.LabelComponent] != "network-internal" || eg.Labels[resource.LabelComponent] != "network-egress" {
		t.Errorf("component labels: %q, %q", in.Labels[resource.LabelComponent], eg.Labels[resource.LabelComponent])
	}

	// Created again (an interrupted run): the same networks are adopted.
	again := f.create(addr)
	if again["internal_network"] != ids["internal_network"] || again["egress_network"] != ids["egress_network"] {
		t.Errorf("second create gave %v, want %v", again, ids)
	}
	if objs, _ := f.b.Objects(ctx, f.lineage); len(objs) != 2 {
		t.Errorf("after two creates: %v, want two networks", objs)
	}

	del := f.op(addr)
	del.Bottle, del.Attrs = nil, nil
	for i := 0; i < 2; i++ {
		if err := f.b.Delete(ctx, del); err != nil {
			t.Fatalf("delete #%d: %v", i+1, err)
		}
	}
	if objs, _ := f.b.Objects(ctx, f.lineage); len(objs) != 0 {
		t.Errorf("after delete: %v", objs)
	}
}

func TestNetworkNameTakenByAnother(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "taken")
	// A network with the bottle's name that bottleform did not make.
	resp, err := cli.NetworkCreate(ctx, f.name("internal"), network.CreateOptions{Internal: true, Labels: map[string]string{"test": "foreign"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.NetworkRemove(context.Background(), resp.ID) })
	_, err = f.b.Create(ctx, f.op(f.addr(resource.KindNetwork, "")))
	if err == nil || !strings.Contains(err.Error(), "a network named "+f.name("internal")+" exists and is not bottleform's") {
		t.Errorf("create over a foreign network: %v", err)
	}
	// Another lineage's network of the same name is refused the same way.
	other := uuid.NewString()
	_ = cli.NetworkRemove(ctx, resp.ID)
	resp, err = cli.NetworkCreate(ctx, f.name("internal"), network.CreateOptions{Internal: true, Labels: map[string]string{
		resource.LabelManagedBy: resource.ManagedBy, resource.LabelLineage: other,
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.b.Create(ctx, f.op(f.addr(resource.KindNetwork, "")))
	if err == nil || !strings.Contains(err.Error(), "of the state with lineage "+other) {
		t.Errorf("create over another lineage's network: %v", err)
	}
	del := f.op(f.addr(resource.KindNetwork, ""))
	if err := f.b.Delete(ctx, del); err == nil {
		t.Error("delete removed (or ignored) another lineage's network of the same name")
	}
	_ = cli.NetworkRemove(ctx, resp.ID)
}
