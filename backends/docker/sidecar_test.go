package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/sidecar"
	"github.com/bottleform/bottleform/state"
)

// ctl sends one request to the sidecar's control socket, as the backend
// does, and returns the reply.
func ctl(t *testing.T, f *fixture, req string) sidecar.Reply {
	t.Helper()
	out, errb, code := execIn(t, f.b, f.name("sidecar"), ctlArgv, req)
	var rep sidecar.Reply
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("ctl %s: exit %d, %q %q: %v", req, code, out, errb, err)
	}
	return rep
}

func TestSidecar(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "side")
	f.create(f.addr(resource.KindNetwork, ""))
	addr := f.addr(resource.KindSidecar, "")
	ids := f.create(addr)

	// Delivered: configured, with the digest of the bottle's configuration,
	// and the route whose secret is empty reported missing by slot name.
	want := sidecar.FromBottle(f.spec)
	rep := ctl(t, f, `{"op":"ping"}`)
	if !rep.OK || !rep.Configured || rep.ConfigDigest != want.Digest() {
		t.Errorf("ping = %+v, want configured with %s", rep, want.Digest())
	}
	rep = ctl(t, f, `{"op":"status"}`)
	if rep.Status == nil || rep.Bottle != "side" || rep.Routes != len(want.Routes) || rep.SlotsComplete {
		t.Fatalf("status = %+v", rep)
	}
	var githubSlot string
	for _, r := range f.spec.Egress {
		if r.Host == "api.github.com" {
			githubSlot = r.Slot
		}
	}
	if githubSlot == "" || !slices.Equal(rep.MissingSlots, []string{githubSlot}) {
		t.Errorf("missing_slots = %q, want [%s] (api.github.com's secret is empty)", rep.MissingSlots, githubSlot)
	}
	if !f.warned("secret.github is empty") {
		t.Errorf("no warning about the empty secret: %q", f.warnings)
	}

	// The container is locked down as the design says.
	c, raw, err := cli.ContainerInspectWithRaw(ctx, f.name("sidecar"), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != ids["container"] || !c.State.Running {
		t.Errorf("sidecar %s: running %v; ids %v", c.ID, c.State.Running, ids)
	}
	// A credential is missing (the empty secret): the sidecar fails closed
	// and its health check says so, which Observe reports as degraded.
	if h := waitHealth(t, f.name("sidecar"), string(container.Unhealthy)); h != string(container.Unhealthy) {
		t.Errorf("a sidecar missing a credential is %s, want unhealthy", h)
	}
	if obs, err := f.b.Observe(ctx, f.st); err == nil {
		if o := obs[f.addr(resource.KindSidecar, "")]; o.Status != resource.StatusDegraded {
			t.Errorf("Observe of a sidecar missing a credential: %v (%s), want degraded", o.Status, o.Reason)
		}
	}
	hc := c.HostConfig
	if !hc.ReadonlyRootfs || !slices.Equal(hc.CapDrop, []string{"ALL"}) || !slices.Contains(hc.SecurityOpt, "no-new-privileges") {
		t.Errorf("host config: readonly %v, cap drop %v, security %v", hc.ReadonlyRootfs, hc.CapDrop, hc.SecurityOpt)
	}
	if hc.Tmpfs[controlDir] == "" || !strings.Contains(hc.Tmpfs[controlDir], "mode=0700") {
		t.Errorf("tmpfs = %v", hc.Tmpfs)
	}
	if c.Config.User != sidecarUser || c.Path+" "+strings.Join(c.Args, " ") != "/bottleform sidecar" {
		t.Errorf("user %q, command %s %q", c.Config.User, c.Path, c.Args)
	}
	if c.Config.Healthcheck == nil || !slices.Equal(c.Config.Healthcheck.Test, []string{"CMD", "/bottleform", "sidecar", "health"}) || c.Config.Healthcheck.Interval != time.Second {
		t.Errorf("healthcheck = %+v", c.Config.Healthcheck)
	}
	nets := c.NetworkSettings.Networks
	if len(nets) != 2 || nets[f.name("internal")] == nil || nets[f.name("egress")] == nil {
		t.Fatalf("sidecar networks = %v", keys(nets))
	}
	for _, alias := range sidecarAliases {
		if !slices.Contains(nets[f.name("internal")].Aliases, alias) {
			t.Errorf("alias %s missing on the internal network: %v", alias, nets[f.name("internal")].Aliases)
		}
	}
	// No secret in docker inspect, the labels or the logs.
	logs := containerLogs(t, f.name("sidecar"))
	for _, v := range f.canaries {
		if bytes.Contains(raw, []byte(v)) {
			t.Errorf("docker inspect of the sidecar shows a secret value")
		}
		if strings.Contains(logs, v) {
			t.Errorf("the sidecar's logs show a secret value:\n%s", logs)
		}
	}
	if !strings.Contains(logs, `"msg":"configuration loaded"`) {
		t.Errorf("sidecar logs lack the load:\n%s", logs)
	}

	// Created again (an interrupted run): still exactly one sidecar,
	// configured.
	again := f.create(addr)
	if again["container"] == ids["container"] {
		t.Errorf("second create kept container %s; want it recreated", ids["container"])
	}
	if n := countContainers(t, f.name("sidecar")); n != 1 {
		t.Errorf("%d containers named %s after two creates, want 1", n, f.name("sidecar"))
	}
	if rep := ctl(t, f, `{"op":"ping"}`); !rep.Configured {
		t.Errorf("recreated sidecar not configured: %+v", rep)
	}

	// Stopped out of band, it loses its configuration; Update starts it and
	// delivers it again.
	stopContainer(t, f.name("sidecar"))
	if _, err := f.b.Update(ctx, f.op(addr)); err != nil {
		t.Fatal(err)
	}
	if rep := ctl(t, f, `{"op":"status"}`); !rep.Configured || rep.Bottle != "side" {
		t.Errorf("after update: %+v", rep)
	}

	// An attribute of the sidecar changed in place (supervise): the
	// container is kept (its label covers only its container spec), the
	// configuration is delivered again, and Observe sees it as applied.
	f.spec.Supervise = false
	for _, o := range planner.Objects(f.spec) {
		f.attrs[o.Addr] = o.Attrs
	}
	before, err := cli.ContainerInspect(ctx, f.name("sidecar"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err = f.b.Update(ctx, f.op(addr))
	if err != nil {
		t.Fatal(err)
	}
	f.st.Set(resource.BackendDocker, &state.Resource{Addr: addr, Attrs: f.attrs[addr], Digest: f.attrs[addr].Digest(), IDs: ids})
	if ids["container"] != before.ID {
		t.Error("an in-place change of the sidecar's attributes recreated its container")
	}
	obs, err := f.b.Observe(ctx, f.st)
	if err != nil {
		t.Fatal(err)
	}
	if o := obs[addr]; o.Status != resource.StatusPresent {
		t.Errorf("after the update, Observe says %v (%s)", o.Status, o.Reason)
	}
	if rep := ctl(t, f, `{"op":"ping"}`); rep.ConfigDigest != sidecar.FromBottle(f.spec).Digest() {
		t.Errorf("after the update the sidecar holds %s, want %s", rep.ConfigDigest, sidecar.FromBottle(f.spec).Digest())
	}
	want = sidecar.FromBottle(f.spec)

	// A grant change is delivered whole: a new route shows in the count.
	f.spec.Egress = append(f.spec.Egress, resource.Route{Host: "files.example.dev", TLS: resource.TLSPassthrough})
	if _, err := f.b.Create(ctx, f.op(f.addr(resource.KindEgress, "files.example.dev"))); err != nil {
		t.Fatal(err)
	}
	if rep := ctl(t, f, `{"op":"status"}`); rep.Routes != len(want.Routes)+1 {
		t.Errorf("after a new route: routes %d, want %d", rep.Routes, len(want.Routes)+1)
	}
	f.spec.Egress = f.spec.Egress[:len(f.spec.Egress)-1]
	if err := f.b.Delete(ctx, f.op(f.addr(resource.KindEgress, "files.example.dev"))); err != nil {
		t.Fatal(err)
	}
	if rep := ctl(t, f, `{"op":"status"}`); rep.Routes != len(want.Routes) {
		t.Errorf("after deleting the route: routes %d, want %d", rep.Routes, len(want.Routes))
	}

	// A reference without a value fails the step, naming the reference and
	// no value.
	op := f.op(addr)
	op.Secrets = applier.Secrets{{Secret: "claude"}: f.secrets[resource.Ref{Secret: "claude"}]}
	_, err = f.b.Update(ctx, op)
	if err == nil || !strings.Contains(err.Error(), "the value of secret.github") {
		t.Errorf("update with an unresolved secret: %v", err)
	}
	for _, v := range f.canaries {
		if err != nil && strings.Contains(err.Error(), v) {
			t.Errorf("the error shows a secret value: %v", err)
		}
	}

	// Deleted twice: gone, and the second time is fine.
	del := f.op(addr)
	del.Bottle, del.Attrs = nil, nil
	for i := 0; i < 2; i++ {
		if err := f.b.Delete(ctx, del); err != nil {
			t.Fatalf("delete #%d: %v", i+1, err)
		}
	}
	if n := countContainers(t, f.name("sidecar")); n != 0 {
		t.Errorf("%d sidecars after delete", n)
	}
	// Deleting a route of a bottle whose sidecar is gone does nothing.
	if err := f.b.Delete(ctx, f.op(f.addr(resource.KindEgress, "api.github.com"))); err != nil {
		t.Errorf("delete a route without a sidecar: %v", err)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func countContainers(t *testing.T, name string) int {
	t.Helper()
	cs, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", "^/"+name+"$"))})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

func stopContainer(t *testing.T, name string) {
	t.Helper()
	timeout := 5
	if err := cli.ContainerStop(context.Background(), name, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
}

func containerLogs(t *testing.T, name string) string {
	t.Helper()
	rc, err := cli.ContainerLogs(context.Background(), name, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, io.LimitReader(rc, 1<<20))
	return buf.String()
}
