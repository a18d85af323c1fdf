package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/bottleform/bottleform/agent"
	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
)

// ProxyURL is the egress gateway as the agent reaches it.
const ProxyURL = "http://egress:9099"

// NoProxy are the hosts the agent reaches directly on the internal network.
const NoProxy = "git-gate,supervise,localhost,127.0.0.1"

// ProxyEnv is the env every agent gets to reach the egress gateway at ep;
// it wins over a bottle's env of the same names.
func ProxyEnv(ep Endpoints) []string {
	return []string{
		"HTTP_PROXY=" + ep.Proxy, "HTTPS_PROXY=" + ep.Proxy,
		"http_proxy=" + ep.Proxy, "https_proxy=" + ep.Proxy,
		"NO_PROXY=" + ep.NoProxy, "no_proxy=" + ep.NoProxy,
		"NODE_USE_ENV_PROXY=1",
	}
}

// agentCommand is the agent container's main process. The image's
// ENTRYPOINT and CMD are not run: an agent container must keep running so
// that attach and provisioning can exec into it, and an image's own
// command (an interactive CLI, a shell) exits at once without a terminal.
// Docker's init is PID 1, so `sleep` gets SIGTERM and the container stops
// at once. The image needs `sleep` on its PATH (coreutils or busybox).
var agentCommand = []string{"sleep", "infinity"}

// createAgent (re)creates the agent container from the bottle's image, on
// the internal network only, starts it, and writes its auth settings (see
// WriteAuth). Nothing is pulled.
func (b *Backend) createAgent(ctx context.Context, op *applier.Op) (map[string]string, error) {
	bt := op.Bottle
	img, err := b.c.ImageInspect(ctx, bt.Image)
	if cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("image %s is not present on this machine and bottleform pulls nothing: build or load it first (docker load / docker import)", bt.Image)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", bt.Image, err)
	}
	env, err := agentEnv(op)
	if err != nil {
		return nil, err
	}
	user := "0"
	if img.Config != nil && !isRoot(img.Config.User) {
		user = img.Config.User
	}
	name := objectName(op, compAgent)
	if err := b.clearName(ctx, op.Lineage, name); err != nil {
		return nil, err
	}
	internal := objectName(op, compInternal)
	cfg := &container.Config{
		Image:      bt.Image,
		User:       user,
		Hostname:   bt.Name,
		Env:        env,
		Entrypoint: slices.Clone(agentCommand[:1]),
		Cmd:        slices.Clone(agentCommand[1:]),
		Labels:     labels(op, compAgent),
	}
	init := true
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(internal),
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		Init:        &init,
		Resources: container.Resources{
			NanoCPUs: int64(bt.Resources.CPUs * 1e9),
			Memory:   bt.Resources.Memory,
		},
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{internal: {}}}
	resp, err := b.c.ContainerCreate(ctx, cfg, host, nc, nil, name)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	for _, w := range resp.Warnings {
		warn(op, "docker: %s", w)
	}
	if err := b.c.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		if strings.Contains(err.Error(), "executable file not found") {
			return nil, fmt.Errorf("start %s: image %s has no `sleep` on its PATH; the agent container runs `sleep infinity` to stay up for attach and provisioning: add coreutils or busybox to the image", name, bt.Image)
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := b.installCA(ctx, op); err != nil {
		return nil, err
	}
	// Auth is made before the agent in an apply, so a new agent gets its
	// provider settings here.
	if err := b.AgentHandle(op.Lineage, bt.Name).WriteAuth(ctx, op); err != nil {
		return nil, fmt.Errorf("provision %s's auth: %w", name, err)
	}
	return map[string]string{"container": resp.ID}, nil
}

// AgentEnv is the agent's environment: the bottle's literal env, the proxy
// variables for ep and the CA variables (the provider's among them), as
// K=V; and, apart, the values of the references the bottle grants to the
// agent's env, which must never reach argv, a label or a log.
func AgentEnv(op *applier.Op, ep Endpoints) (plain []string, secret map[string]resource.Secret, err error) {
	ca := slices.Clone(caEnv)
	if p, err := agent.Lookup(op.Bottle.Agent.Provider); err == nil {
		for _, name := range p.CACertEnv {
			ca = append(ca, name+"="+caFile)
		}
	}
	proxy := ProxyEnv(ep)
	ours := map[string]bool{}
	for _, kv := range append(slices.Clone(proxy), ca...) {
		ours[kv[:strings.IndexByte(kv, '=')]] = true
	}
	for _, e := range op.Bottle.Env {
		if ours[e.Name] {
			warn(op, "env %s is set by bottleform to route the agent through its egress gateway; the bottle's value is ignored", e.Name)
			continue
		}
		if e.Ref.IsZero() {
			plain = append(plain, e.Name+"="+e.Literal)
			continue
		}
		v, ok := op.Secrets.Value(e.Ref)
		if !ok {
			return nil, nil, fmt.Errorf("env %s: the value of %s was not resolved", e.Name, e.Ref)
		}
		if secret == nil {
			secret = map[string]resource.Secret{}
		}
		secret[e.Name] = v
	}
	plain = append(plain, proxy...)
	return append(plain, ca...), secret, nil
}

// agentEnv is the agent container's environment: AgentEnv with the
// secret values in place, sorted by name after the bottle's literals.
func agentEnv(op *applier.Op) ([]string, error) {
	plain, secret, err := AgentEnv(op, DockerEndpoints)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(secret))
	for k := range secret {
		names = append(names, k)
	}
	sort.Strings(names)
	env := make([]string, 0, len(plain)+len(names))
	for _, k := range names {
		env = append(env, k+"="+secret[k].Reveal())
	}
	return append(env, plain...), nil
}

// isRoot reports whether an image's USER is root (or unset, which is root).
func isRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	return u == "" || u == "root" || u == "0"
}

// Guest is where an agent runs, as provisioning sees it: a container on
// this backend, a micro-VM on smolmachines. Provisioning (auth, prompt,
// skills, MCP, the CA) makes no other call on it.
type Guest interface {
	// Exec runs argv as user ("" is the agent user, "0" root), with stdin
	// if it is not nil. A command that fails or is not found (exit 126 or
	// 127) is a non-zero exit, not an error; err is for failures to run it
	// at all (no such guest, guest stopped).
	Exec(ctx context.Context, argv []string, user string, stdin io.Reader) (stdout, stderr []byte, exit int, err error)
	// CopyIn extracts a tar archive into dir, which must exist. Files get
	// the uid, gid and mode their tar headers carry.
	CopyIn(ctx context.Context, dir string, archive io.Reader) error
	// Running reports whether the guest exists and runs.
	Running(ctx context.Context) (bool, error)
	// Workdir is where commands in the guest start (attach, run-agent):
	// the image's working directory, / when it sets none.
	Workdir(ctx context.Context) (string, error)
}

// Endpoints are the sidecar's services as the agent reaches them.
type Endpoints struct {
	// Proxy is the egress gateway's URL (HTTP_PROXY and friends).
	Proxy string
	// NoProxy lists what the agent reaches directly.
	NoProxy string
	// Gate is the git gate's base URL, without a trailing slash.
	Gate string
	// Supervise is the supervise MCP server's URL; empty uses the URL the
	// MCP object's attributes carry.
	Supervise string
}

// DockerEndpoints are the sidecar's aliases on a bottle's internal network.
var DockerEndpoints = Endpoints{Proxy: ProxyURL, NoProxy: NoProxy, Gate: agent.DockerGate}

// Agent is a handle on one bottle's agent: commands run in it and files
// copied into it, through its Guest. It does not check that the guest
// exists; its methods fail if it does not.
type Agent struct {
	g    Guest
	name string
	ep   Endpoints
	id   *identity
}

// identity is the agent user as the guest sees it.
type identity struct {
	uid, gid int
	home     string
	// workdir is where commands in the agent start (attach, run-agent):
	// the image's working directory, / when it sets none.
	workdir string
}

// NewAgent returns a handle on the agent called name (for messages) that
// runs in g and reaches the sidecar at ep.
func NewAgent(name string, g Guest, ep Endpoints) *Agent {
	return &Agent{g: g, name: name, ep: ep}
}

// AgentHandle returns a handle on the agent container of bottle in the
// state with lineage.
func (b *Backend) AgentHandle(lineage, bottle string) *Agent {
	name := resource.ObjectName(lineage, bottle, compAgent)
	return NewAgent(name, containerGuest{b: b, name: name}, DockerEndpoints)
}

// Name is the agent's name: its container's, or its VM's.
func (a *Agent) Name() string { return a.name }

// Exec runs argv in the agent as user ("" is the agent user), with stdin if
// it is not nil; see Guest.
func (a *Agent) Exec(ctx context.Context, argv []string, user string, stdin io.Reader) (stdout, stderr []byte, exit int, err error) {
	return a.g.Exec(ctx, argv, user, stdin)
}

// CopyIn extracts a tar archive into dir, which must exist, in the agent.
func (a *Agent) CopyIn(ctx context.Context, dir string, archive io.Reader) error {
	return a.g.CopyIn(ctx, dir, archive)
}

// running reports whether the agent exists and runs.
func (a *Agent) running(ctx context.Context) (bool, error) { return a.g.Running(ctx) }

// containerGuest is an agent container.
type containerGuest struct {
	b    *Backend
	name string
}

func (g containerGuest) Exec(ctx context.Context, argv []string, user string, stdin io.Reader) ([]byte, []byte, int, error) {
	return g.b.exec(ctx, g.name, argv, user, stdin)
}

func (g containerGuest) CopyIn(ctx context.Context, dir string, archive io.Reader) error {
	if err := g.b.c.CopyToContainer(ctx, g.name, dir, archive, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copy into %s:%s: %w", g.name, dir, err)
	}
	return nil
}

func (g containerGuest) Running(ctx context.Context) (bool, error) {
	c, err := g.b.c.ContainerInspect(ctx, g.name)
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("container %s: %w", g.name, err)
	}
	return c.State != nil && c.State.Running, nil
}

func (g containerGuest) Workdir(ctx context.Context) (string, error) {
	c, err := g.b.c.ContainerInspect(ctx, g.name)
	if err != nil {
		return "", fmt.Errorf("container %s: %w", g.name, err)
	}
	if c.Config != nil && c.Config.WorkingDir != "" {
		return c.Config.WorkingDir, nil
	}
	return "/", nil
}

// identity finds the agent user's uid, gid and home by asking the guest
// (id -u, id -g, printenv HOME), and its working directory, once per
// handle.
func (a *Agent) identity(ctx context.Context) (identity, error) {
	if a.id != nil {
		return *a.id, nil
	}
	ask := func(argv ...string) (string, error) {
		out, errb, code, err := a.Exec(ctx, argv, "", nil)
		if err != nil {
			return "", err
		}
		if code != 0 {
			return "", fmt.Errorf("`%s` exited %d in %s: %s", strings.Join(argv, " "), code, a.name, strings.TrimSpace(string(errb)+string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	}
	var id identity
	var err error
	var s string
	if s, err = ask("id", "-u"); err == nil {
		id.uid, err = strconv.Atoi(s)
	}
	if err == nil {
		if s, err = ask("id", "-g"); err == nil {
			id.gid, err = strconv.Atoi(s)
		}
	}
	if err == nil {
		id.home, err = ask("printenv", "HOME")
	}
	if err != nil {
		return identity{}, fmt.Errorf("find the agent user: %w", err)
	}
	if !strings.HasPrefix(id.home, "/") {
		return identity{}, fmt.Errorf("find the agent user: HOME is %q in %s, not an absolute path", id.home, a.name)
	}
	if id.workdir, err = a.g.Workdir(ctx); err != nil {
		return identity{}, fmt.Errorf("find the agent's working directory: %w", err)
	}
	a.id = &id
	return id, nil
}

// Attach runs argv in the agent of bottle as the agent user, wired to in,
// out and errw (with tty, one stream to out: the caller puts its terminal
// in raw mode), and returns its exit code. This is `bottleform attach`.
func (b *Backend) Attach(ctx context.Context, lineage, bottle string, argv []string, tty bool, in io.Reader, out, errw io.Writer) (int, error) {
	name := resource.ObjectName(lineage, bottle, compAgent)
	cr, err := b.c.ContainerExecCreate(ctx, name, container.ExecOptions{
		Cmd: argv, Tty: tty, AttachStdin: in != nil, AttachStdout: true, AttachStderr: true,
	})
	switch {
	case cerrdefs.IsNotFound(err):
		return -1, fmt.Errorf("attach bottle.%s: it has no agent container (%s): run `bottleform apply`", bottle, name)
	case cerrdefs.IsConflict(err):
		return -1, fmt.Errorf("attach bottle.%s: its agent container %s is not running: run `bottleform apply` to start it", bottle, name)
	case err != nil:
		return -1, fmt.Errorf("attach bottle.%s: %w", bottle, err)
	}
	hj, err := b.c.ContainerExecAttach(ctx, cr.ID, container.ExecAttachOptions{Tty: tty})
	if err != nil {
		return -1, fmt.Errorf("attach bottle.%s: %w", bottle, err)
	}
	defer hj.Close()
	if in != nil {
		go func() {
			_, _ = io.Copy(hj.Conn, in)
			_ = hj.CloseWrite()
		}()
	}
	if tty {
		_, err = io.Copy(out, hj.Reader)
	} else {
		_, err = stdcopy.StdCopy(out, errw, hj.Reader)
	}
	if err != nil {
		return -1, fmt.Errorf("attach bottle.%s: %w", bottle, err)
	}
	code, err := b.execExit(ctx, cr.ID)
	if err != nil {
		return -1, fmt.Errorf("attach bottle.%s: %w", bottle, err)
	}
	return code, nil
}

// tailText returns the last part of command output for a message.
func tailText(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 400 {
		b = append([]byte("..."), b[len(b)-400:]...)
	}
	return string(b)
}
