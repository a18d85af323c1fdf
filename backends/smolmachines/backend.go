package smolmachines

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/bottleform/bottleform/agent"
	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/backends/docker"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

// Images is the part of the Docker client the backend reads agent images
// with: a VM boots from an archive of a local image, so nothing is pulled.
type Images interface {
	ImageInspect(ctx context.Context, ref string, o ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageSave(ctx context.Context, refs []string, o ...client.ImageSaveOption) (io.ReadCloser, error)
}

// Options configure New.
type Options struct {
	// Docker runs the bottles' sidecars (required).
	Docker *docker.Backend
	// Images reads the agent images from the Docker engine (required).
	Images Images
	// CLI runs smolvm. Nil: smolvm on PATH, with bottleform's environment.
	CLI *CLI
	// CacheDir holds the image archives VMs boot from and the loopback
	// allocation lock. Empty: $XDG_CACHE_HOME/bottleform/smolmachines.
	CacheDir string
	// Addresses allocates the sidecars' loopback addresses. Nil:
	// DefaultAllocator.
	Addresses *Allocator
	// ConfigDir is the configuration directory; skill directories are
	// relative to it.
	ConfigDir string
	// StartTimeout bounds `machine start`, which pulls and unpacks the
	// image on a machine's first boot. Zero: 10 minutes.
	StartTimeout time.Duration
	// ReadyTimeout bounds the wait for a started machine to run commands.
	// Zero: 60 seconds.
	ReadyTimeout time.Duration
}

// Backend is the smolmachines backend; it implements applier.Backend. The
// agent is a smolvm micro-VM; the network and the sidecar are Docker's,
// the sidecar's agent-facing ports published on a host loopback address,
// the only address the VM's egress allow-list admits.
type Backend struct {
	d            *docker.Backend
	images       Images
	cli          *CLI
	cache        string
	addrs        *Allocator
	configDir    string
	startTimeout time.Duration
	readyTimeout time.Duration
	// sleep waits between readiness polls; tests count the waits.
	sleep func(ctx context.Context, d time.Duration) error

	checkMu sync.Mutex
	checked bool
	version version
	hasUser bool
}

var _ applier.Backend = (*Backend)(nil)

// New returns a smolmachines backend. It runs nothing until first used.
func New(o Options) (*Backend, error) {
	if o.Docker == nil || o.Images == nil {
		return nil, errors.New("smolmachines: the sidecar's Docker backend and image source are required")
	}
	b := &Backend{
		d: o.Docker, images: o.Images, cli: o.CLI, cache: o.CacheDir, addrs: o.Addresses,
		configDir: o.ConfigDir, startTimeout: o.StartTimeout, readyTimeout: o.ReadyTimeout, sleep: sleepCtx,
	}
	if b.cli == nil {
		b.cli = &CLI{}
	}
	if b.cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("smolmachines: a cache directory for image archives: %w", err)
		}
		b.cache = filepath.Join(dir, "bottleform", "smolmachines")
	}
	if b.addrs == nil {
		b.addrs = DefaultAllocator(b.cache, b.d.PublishedHostIPs)
	}
	if b.configDir == "" {
		b.configDir = "."
	}
	if b.startTimeout == 0 {
		b.startTimeout = 10 * time.Minute
	}
	if b.readyTimeout == 0 {
		b.readyTimeout = time.Minute
	}
	return b, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// preflight checks smolvm's version once per Backend (see CLI.Version).
func (b *Backend) preflight(ctx context.Context) error {
	b.checkMu.Lock()
	defer b.checkMu.Unlock()
	if b.checked {
		return nil
	}
	v, err := b.cli.Version(ctx)
	if err != nil {
		return err
	}
	b.version, b.hasUser, b.checked = v, !v.less(userVersion), true
	return nil
}

// GuestGateway is where a VM reaches the host's loopback: smolvm's
// virtio-net gateway, which relays to 127.0.0.1 (contract §4).
var GuestGateway = netip.AddrFrom4([4]byte{100, 96, 0, 1})

// guestAddr is the address the VM reaches a sidecar published on host at:
// the gateway for 127.0.0.1; an alias (macOS) as itself.
func guestAddr(host netip.Addr) netip.Addr {
	if host == netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
		return GuestGateway
	}
	return host
}

// allowCIDR is the VM's egress allow-list entry: the one address its
// sidecar is reachable at.
func allowCIDR(ep docker.Endpoints) string {
	u, _ := url.Parse(ep.Proxy)
	return u.Hostname() + "/32"
}

// Endpoints are the sidecar's services as the VM reaches them through its
// published ports.
func Endpoints(p docker.Publish) docker.Endpoints {
	g := guestAddr(p.HostIP).String()
	at := func(port int) string { return "http://" + g + ":" + strconv.Itoa(p.Ports[port]) }
	return docker.Endpoints{
		Proxy:     at(docker.PortEgress),
		NoProxy:   g + ",localhost,127.0.0.1",
		Gate:      at(docker.PortGate),
		Supervise: at(docker.PortSupervise) + "/mcp",
	}
}

func warn(op *applier.Op, format string, args ...any) {
	if op.Warn != nil {
		op.Warn(fmt.Sprintf(format, args...))
	}
}

func machineName(op *applier.Op) string {
	return resource.ObjectName(op.Lineage, op.Addr.Bottle, "agent")
}

// Create makes the object of op and returns its ids.
func (b *Backend) Create(ctx context.Context, op *applier.Op) (map[string]string, error) {
	return b.make(ctx, op, true)
}

// Update changes the object in place: a stopped sidecar or VM is started
// (a missing one created), a VM's env and resources are changed with
// smolvm's `machine update` (stop, update, start), and the rest is
// written again.
func (b *Backend) Update(ctx context.Context, op *applier.Op) (map[string]string, error) {
	return b.make(ctx, op, false)
}

func (b *Backend) make(ctx context.Context, op *applier.Op, create bool) (map[string]string, error) {
	if op.Bottle == nil {
		return nil, errors.New("no desired bottle (applier bug)")
	}
	switch op.Addr.Kind {
	case resource.KindNetwork:
		return b.d.CreateEgressNetwork(ctx, op)
	case resource.KindSidecar:
		ids, _, err := b.sidecar(ctx, op, create)
		return ids, err
	case resource.KindAgent:
		if create {
			return b.createVM(ctx, op)
		}
		return b.updateVM(ctx, op)
	}
	return b.inPlace(ctx, op)
}

// inPlace delivers routes and git entries to the sidecar and writes what
// lives in the agent. The supervise registration's ids record the URL the
// VM reaches it at, which the plan could only call "known after apply".
func (b *Backend) inPlace(ctx context.Context, op *applier.Op) (map[string]string, error) {
	switch op.Addr.Kind {
	case resource.KindEgress, resource.KindGit:
		return nil, b.d.Deliver(ctx, op, false)
	case resource.KindDeployKey:
		return nil, errors.New("deploy keys are minted by the applier's Keys, not by a backend (applier bug)")
	case resource.KindAuth, resource.KindPrompt, resource.KindSkill, resource.KindMCP:
		a, ep, err := b.agent(ctx, op)
		if err != nil {
			return nil, err
		}
		if op.Addr.Kind == resource.KindAuth {
			// As on Docker: a new agent gets its auth when it is made.
			if up, err := (vm{b, machineName(op)}).Running(ctx); err != nil || !up {
				return nil, err
			}
		}
		if err := a.Provision(ctx, op, b.configDir); err != nil {
			return nil, err
		}
		if op.Addr.Kind == resource.KindMCP && op.Addr.Key == "supervise" {
			return map[string]string{"url": ep.Supervise}, nil
		}
		return nil, nil
	}
	return nil, fmt.Errorf("unknown kind %s", op.Addr.Kind)
}

// Delete removes the object; one already gone is not an error.
func (b *Backend) Delete(ctx context.Context, op *applier.Op) error {
	switch op.Addr.Kind {
	case resource.KindNetwork:
		return b.d.DeleteNetworks(ctx, op)
	case resource.KindSidecar:
		return b.d.RemoveSidecar(ctx, op)
	case resource.KindEgress, resource.KindGit:
		return b.d.Deliver(ctx, op, true)
	case resource.KindDeployKey:
		return errors.New("deploy keys are revoked by the applier's Keys, not by a backend (applier bug)")
	case resource.KindAgent:
		return b.deleteVM(ctx, op.Lineage, machineName(op))
	case resource.KindAuth, resource.KindPrompt, resource.KindSkill, resource.KindMCP:
		if err := b.preflight(ctx); err != nil {
			return err
		}
		// Unprovisioning reaches no sidecar service.
		return docker.NewAgent(machineName(op), vm{b, machineName(op)}, docker.Endpoints{}).Unprovision(ctx, op)
	}
	return fmt.Errorf("unknown kind %s", op.Addr.Kind)
}

// agent is a provisioning handle on op's VM, with the sidecar's published
// endpoints.
func (b *Backend) agent(ctx context.Context, op *applier.Op) (*docker.Agent, docker.Endpoints, error) {
	if err := b.preflight(ctx); err != nil {
		return nil, docker.Endpoints{}, err
	}
	ep, err := b.endpoints(ctx, op)
	if err != nil {
		return nil, ep, err
	}
	name := machineName(op)
	return docker.NewAgent(name, vm{b, name}, ep), ep, nil
}

// endpoints are the sidecar's services as op's VM reaches them, from the
// ports Docker published.
func (b *Backend) endpoints(ctx context.Context, op *applier.Op) (docker.Endpoints, error) {
	pub, err := b.d.SidecarPublished(ctx, op.Lineage, op.Addr.Bottle)
	if err != nil {
		return docker.Endpoints{}, fmt.Errorf("find the sidecar's published ports: %w", err)
	}
	return Endpoints(pub), nil
}

// vmEnv is the VM's env for op: the endpoints, the plain env for the
// machine record and the secret env for the guest's file.
func (b *Backend) vmEnv(ctx context.Context, op *applier.Op) (docker.Endpoints, []string, map[string]resource.Secret, error) {
	ep, err := b.endpoints(ctx, op)
	if err != nil {
		return ep, nil, nil, err
	}
	plain, secret, err := docker.AgentEnv(op, ep)
	return ep, plain, secret, err
}

// sidecar creates (create) or starts and if need be recreates the
// published sidecar. A sidecar created again asks for the address and
// ports its predecessor had, so the VM's URLs stay right; Docker picks
// them the first time.
func (b *Backend) sidecar(ctx context.Context, op *applier.Op, create bool) (ids map[string]string, created bool, err error) {
	want := docker.Publish{Ports: map[int]int{}}
	if op.Prior != nil {
		if p, ok := docker.PublishFromIDs(op.Prior.IDs); ok {
			want = p
		}
	}
	err = b.addrs.Allocate(ctx, want.HostIP, func(ip netip.Addr) error {
		p := docker.Publish{HostIP: ip, Ports: map[int]int{}}
		if ip == want.HostIP {
			p.Ports = want.Ports
		}
		var err error
		if create {
			created = true
			ids, err = b.d.CreatePublishedSidecar(ctx, op, p)
		} else {
			ids, created, err = b.d.EnsurePublishedSidecar(ctx, op, p)
		}
		if err == nil || len(p.Ports) == 0 || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		// Someone took the old ports meanwhile: new ones, which the
		// agent's update (the plan has one) gives the VM.
		warn(op, "the sidecar's ports on %s were taken; it publishes on new ones", ip)
		if err := b.d.RemoveSidecar(ctx, op); err != nil {
			return err
		}
		p.Ports = map[int]int{}
		ids, err = b.d.CreatePublishedSidecar(ctx, op, p)
		created = true
		return err
	})
	return ids, created, err
}

// vmLabels are the VM's labels: those of a Docker object, the digest of
// the attributes that replace a VM (the others change in place, and
// smolvm cannot change labels).
func vmLabels(op *applier.Op) map[string]string {
	return map[string]string{
		resource.LabelManagedBy: resource.ManagedBy,
		resource.LabelLineage:   op.Lineage,
		resource.LabelBottle:    op.Addr.Bottle,
		resource.LabelComponent: "agent",
		resource.LabelAddress:   op.Addr.String(),
		resource.LabelDigest:    vmDigest(op.Attrs),
	}
}

// vmSpec are the agent attributes a VM is made from: a change of any
// other (env, cpus, memory) is a `machine update`.
var vmSpec = []string{"backend", "image", "provider"}

func vmDigest(attrs resource.Attrs) string {
	sub := resource.Attrs{}
	for _, n := range vmSpec {
		if v, ok := attrs[n]; ok {
			sub[n] = v
		}
	}
	return sub.Digest()
}

// ours finds the machine called name: nil when there is none, an error
// when it is not lineage's.
func (b *Backend) ours(ctx context.Context, lineage, name string) (*Machine, error) {
	m, err := b.cli.status(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if m.Labels[resource.LabelManagedBy] != resource.ManagedBy || m.Labels[resource.LabelLineage] != lineage {
		owner := "not bottleform's"
		if m.Labels[resource.LabelManagedBy] == resource.ManagedBy {
			owner = "of the state with lineage " + m.Labels[resource.LabelLineage]
		}
		return nil, fmt.Errorf("a smolvm machine named %s exists and is %s, not this state's: remove it (smolvm machine delete --name %s -f) or use the state it belongs to", name, owner, name)
	}
	return m, nil
}

// deleteVM deletes the machine, always with -f: without it smolvm asks,
// and at EOF cancels and exits 0 with the machine kept.
func (b *Backend) deleteVM(ctx context.Context, lineage, name string) error {
	if err := b.preflight(ctx); err != nil {
		return err
	}
	m, err := b.ours(ctx, lineage, name)
	if m == nil || err != nil {
		return err
	}
	if _, err := b.cli.run(ctx, []string{"machine", "delete", "--name", name, "-f"}, nil, false); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// resources are the --cpus and --mem values of a bottle: whole CPUs
// (rounded up), MiB; zero for smolvm's defaults.
func resources(bt *resource.Bottle) (cpus, mib int) {
	if bt.Resources.CPUs > 0 {
		cpus = int(math.Ceil(bt.Resources.CPUs))
	}
	if bt.Resources.Memory > 0 {
		mib = int(max(64, bt.Resources.Memory>>20))
	}
	return cpus, mib
}

// createVM (re)creates the agent VM from an archive of the bottle's
// image: its egress allow-list admits the sidecar's address alone, its
// env is the Docker agent's with the proxy at the published ports (the
// secret part is written into the guest, never on argv), its workload
// `sleep infinity`. It starts it, waits until it runs commands, installs
// the gateway's CA and writes the provider's auth.
func (b *Backend) createVM(ctx context.Context, op *applier.Op) (map[string]string, error) {
	if err := b.preflight(ctx); err != nil {
		return nil, err
	}
	bt, name := op.Bottle, machineName(op)
	archive, err := b.archive(ctx, bt.Image)
	if err != nil {
		return nil, err
	}
	ep, plain, secret, err := b.vmEnv(ctx, op)
	if err != nil {
		return nil, err
	}
	if m, err := b.ours(ctx, op.Lineage, name); err != nil {
		return nil, err
	} else if m != nil {
		// Left by an interrupted run: made again, not adopted.
		if err := b.deleteVM(ctx, op.Lineage, name); err != nil {
			return nil, err
		}
	}
	args := []string{"machine", "create", "--name", name, "--image", archive}
	labels := vmLabels(op)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		args = append(args, "--label", k+"="+labels[k])
	}
	args = append(args, "--allow-cidr", allowCIDR(ep))
	cpus, mib := resources(bt)
	if cpus > 0 {
		args = append(args, "--cpus", strconv.Itoa(cpus))
	}
	if mib > 0 {
		args = append(args, "--mem", strconv.Itoa(mib))
	}
	for _, kv := range plain {
		args = append(args, "-e", kv)
	}
	args = append(args, "--", "sleep", "infinity")
	if _, err := b.cli.run(ctx, args, nil, false); err != nil {
		return nil, err
	}
	g := vm{b, name}
	if err := b.start(ctx, g); err != nil {
		// Nothing half-made: the next apply creates it from scratch.
		if derr := b.deleteVM(context.WithoutCancel(ctx), op.Lineage, name); derr != nil {
			err = errors.Join(err, fmt.Errorf("and removing the machine failed: %w", derr))
		}
		return nil, err
	}
	a := docker.NewAgent(name, g, ep)
	if err := b.settle(ctx, op, a, g, secret); err != nil {
		return nil, err
	}
	if err := a.WriteAuth(ctx, op); err != nil {
		return nil, fmt.Errorf("provision %s's auth: %w", name, err)
	}
	return map[string]string{"machine": name}, nil
}

// start starts the machine (idempotent; it also recovers an unreachable
// one) within startTimeout, then waits until it runs commands.
func (b *Backend) start(ctx context.Context, g vm) error {
	sctx, cancel := context.WithTimeout(ctx, b.startTimeout)
	defer cancel()
	if _, err := b.cli.run(sctx, []string{"machine", "start", "--name", g.name}, nil, false); err != nil {
		if sctx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("smolvm machine start --name %s did not finish within %s: see `smolvm machine status --name %s`", g.name, b.startTimeout, g.name)
		}
		return err
	}
	return g.waitReady(ctx)
}

// settle installs the sidecar's CA in the VM and writes its secret env.
func (b *Backend) settle(ctx context.Context, op *applier.Op, a *docker.Agent, g vm, secret map[string]resource.Secret) error {
	ca, err := b.d.SidecarCA(ctx, op.Lineage, op.Addr.Bottle)
	if err != nil {
		return err
	}
	if err := a.InstallCA(ctx, op, ca); err != nil {
		return err
	}
	var lines []byte
	for _, k := range slices.Sorted(maps.Keys(secret)) {
		lines = append(lines, "export "+k+"="+agent.ShellQuote(secret[k].Reveal())+"\n"...)
	}
	return g.writeSecretEnv(ctx, lines)
}

// updateVM brings an existing VM to op: started if it is not running, its
// env (the bottle's literals, the proxy at the sidecar's current ports)
// and resources changed with `machine update` if they differ, which smolvm
// allows only on a stopped machine (stop, update, start); then the CA and
// the secret env again. A missing VM is created.
func (b *Backend) updateVM(ctx context.Context, op *applier.Op) (map[string]string, error) {
	if err := b.preflight(ctx); err != nil {
		return nil, err
	}
	name := machineName(op)
	m, err := b.ours(ctx, op.Lineage, name)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return b.createVM(ctx, op)
	}
	if m.Labels[resource.LabelDigest] != vmDigest(op.Attrs) {
		// The planner replaces on these; a VM made from other ones is
		// made again.
		return b.createVM(ctx, op)
	}
	g := vm{b, name}
	if m.State != StateRunning {
		if err := b.start(ctx, g); err != nil {
			return nil, err
		}
	}
	ep, plain, secret, err := b.vmEnv(ctx, op)
	if err != nil {
		return nil, err
	}
	edits, err := b.vmEdits(ctx, g, m, op, plain)
	if err != nil {
		return nil, err
	}
	if len(edits) > 0 {
		if _, err := b.cli.run(ctx, []string{"machine", "stop", "--name", name}, nil, false); err != nil {
			return nil, err
		}
		if _, err := b.cli.run(ctx, append([]string{"machine", "update", "--name", name}, edits...), nil, false); err != nil {
			return nil, err
		}
		if err := b.start(ctx, g); err != nil {
			return nil, err
		}
	}
	if err := b.settle(ctx, op, docker.NewAgent(name, g, ep), g, secret); err != nil {
		return nil, err
	}
	return map[string]string{"machine": name}, nil
}

// vmEdits are the `machine update` flags that bring the running VM's env
// and resources to op: -e for each variable whose value differs (read
// with `env` in the VM), --remove-env for a literal the prior apply set
// that is gone (or is now a secret), --cpus and --mem.
func (b *Backend) vmEdits(ctx context.Context, g vm, m *Machine, op *applier.Op, plain []string) ([]string, error) {
	out, stderr, code, err := g.Exec(ctx, []string{"env"}, "", nil)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, fmt.Errorf("`env` exited %d in %s: %s", code, g.name, strings.TrimSpace(string(stderr)))
	}
	current := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			current[k] = v
		}
	}
	var edits []string
	want := map[string]bool{}
	for _, kv := range plain {
		k, v, _ := strings.Cut(kv, "=")
		want[k] = true
		if cur, ok := current[k]; !ok || cur != v {
			edits = append(edits, "-e", kv)
		}
	}
	if op.Prior != nil {
		if env, ok := op.Prior.Attrs["env"]; ok {
			for _, k := range slices.Sorted(maps.Keys(env.Map)) {
				if env.Map[k].Kind == resource.ValueString && !want[k] {
					edits = append(edits, "--remove-env", k)
				}
			}
		}
	}
	cpus, mib := resources(op.Bottle)
	if cpus > 0 && cpus != m.CPUs {
		edits = append(edits, "--cpus", strconv.Itoa(cpus))
	}
	if mib > 0 && mib != m.MemoryMiB {
		edits = append(edits, "--mem", strconv.Itoa(mib))
	}
	return edits, nil
}

// archive returns the path of a docker-save archive of ref, made once per
// image id in the cache: smolvm boots it as a local image, with no
// network and no registry.
func (b *Backend) archive(ctx context.Context, ref string) (string, error) {
	img, err := b.images.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("image %s is not present on this machine and bottleform pulls nothing: build or load it first (docker load / docker import)", ref)
	}
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	id := strings.TrimPrefix(img.ID, "sha256:")
	dir := filepath.Join(b.cache, "images")
	path := filepath.Join(dir, id+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	rc, err := b.images.ImageSave(ctx, []string{ref})
	if err != nil {
		return "", fmt.Errorf("save image %s for smolvm: %w", ref, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(dir, id+".*.tmp")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("save image %s for smolvm: %w", ref, err)
	}
	return path, nil
}

// Observe reports the networks and sidecars (from Docker) and the agent
// VMs (from one `machine ls --json`) of the state's smolmachines bottles.
// A VM that is stopped, created or failed is stopped; unreachable or
// frozen, degraded (a start recovers it); labelled with another spec
// digest, changed. What lives in a VM is left out.
func (b *Backend) Observe(ctx context.Context, s *state.State) (resource.Observed, error) {
	if s == nil {
		return nil, nil
	}
	obs, err := b.d.ObserveSidecars(ctx, s, resource.BackendSmolmachines)
	if err != nil {
		return nil, err
	}
	var agents []*state.Resource
	for _, r := range s.Resources() {
		if bt := s.Bottles[r.Addr.Bottle]; bt != nil && bt.Backend == resource.BackendSmolmachines && r.Addr.Kind == resource.KindAgent {
			agents = append(agents, r)
		}
	}
	if len(agents) == 0 {
		return obs, nil
	}
	if err := b.preflight(ctx); err != nil {
		return nil, err
	}
	ms, err := b.cli.list(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]Machine{}
	for _, m := range ms {
		if !m.Ephemeral {
			byName[m.Name] = m
		}
	}
	for _, r := range agents {
		name := resource.ObjectName(s.Lineage, r.Addr.Bottle, "agent")
		o := resource.Observation{Addr: r.Addr, Status: resource.StatusPresent}
		m, ok := byName[name]
		switch {
		case !ok || m.Labels[resource.LabelManagedBy] != resource.ManagedBy || m.Labels[resource.LabelLineage] != s.Lineage:
			o.Status, o.Reason = resource.StatusMissing, "machine "+name+" is gone"
		case m.Labels[resource.LabelDigest] != vmDigest(r.Attrs):
			o.Status, o.Reason = resource.StatusChanged, "machine changed out of band: spec digest differs"
		case m.State == StateRunning:
		case m.State == StateUnreachable || m.State == StateFrozen:
			o.Status, o.Reason = resource.StatusDegraded, "machine is "+m.State+": smolvm's agent in it does not answer"
		default:
			o.Status, o.Reason = resource.StatusStopped, "machine is "+m.State
		}
		obs[r.Addr] = o
	}
	return obs, nil
}

// Objects lists the VMs of lineage (or of every lineage when it is empty)
// as "machine NAME", sorted.
func (b *Backend) Objects(ctx context.Context, lineage string) ([]string, error) {
	if err := b.preflight(ctx); err != nil {
		return nil, err
	}
	ms, err := b.cli.list(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.Labels[resource.LabelManagedBy] == resource.ManagedBy && (lineage == "" || m.Labels[resource.LabelLineage] == lineage) {
			out = append(out, "machine "+m.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// AgentFor is a handle on the agent VM of bottle, with the sidecar's
// endpoints as the VM reaches them (for `bottleform verify`).
func (b *Backend) AgentFor(ctx context.Context, lineage, bottle string) (*docker.Agent, docker.Endpoints, error) {
	return b.agent(ctx, &applier.Op{Lineage: lineage, Addr: resource.Address{Bottle: bottle, Kind: resource.KindAgent}})
}
