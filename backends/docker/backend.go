package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
)

// Client is the part of the Docker Engine API client the backend calls.
// *client.Client satisfies it; a fake can stand in. Errors for objects
// that do not exist must satisfy errdefs.IsNotFound, as the real client's
// do.
type Client interface {
	ContainerCreate(ctx context.Context, config *container.Config, host *container.HostConfig, net *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, o container.StartOptions) error
	ContainerStop(ctx context.Context, id string, o container.StopOptions) error
	ContainerRemove(ctx context.Context, id string, o container.RemoveOptions) error
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerList(ctx context.Context, o container.ListOptions) ([]container.Summary, error)
	ContainerLogs(ctx context.Context, id string, o container.LogsOptions) (io.ReadCloser, error)
	ContainerExecCreate(ctx context.Context, id string, o container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, o container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
	CopyToContainer(ctx context.Context, id, dst string, content io.Reader, o container.CopyToContainerOptions) error
	ImageInspect(ctx context.Context, ref string, o ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageImport(ctx context.Context, source image.ImportSource, ref string, o image.ImportOptions) (io.ReadCloser, error)
	NetworkCreate(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error)
	NetworkInspect(ctx context.Context, id string, o network.InspectOptions) (network.Inspect, error)
	NetworkList(ctx context.Context, o network.ListOptions) ([]network.Summary, error)
	NetworkConnect(ctx context.Context, networkID, containerID string, cfg *network.EndpointSettings) error
	NetworkRemove(ctx context.Context, id string) error
}

// Options configure New.
type Options struct {
	// Client reaches the Docker engine. Nil: a client from the environment
	// (DOCKER_HOST, ...) that negotiates the API version.
	Client Client
	// SidecarBinary is the static bottleform binary the sidecar image is
	// built from. Empty: this process's own executable.
	SidecarBinary string
	// SidecarImage is the sidecar image's tag (see SidecarTag). Empty:
	// SidecarTag("dev", SidecarBinary).
	SidecarImage string
	// ConfigDir is the configuration directory; skill directories are
	// relative to it.
	ConfigDir string
	// Log receives progress lines that are worth a user's attention
	// (building the sidecar image). Nil: discarded.
	Log func(string)
}

// Backend is the Docker backend; it implements applier.Backend.
type Backend struct {
	c         Client
	binary    string
	image     string
	configDir string
	log       func(string)

	// imageMu serialises EnsureSidecarImage; imageReady is set once it
	// succeeded, for the life of the Backend.
	imageMu    sync.Mutex
	imageReady bool
}

var _ applier.Backend = (*Backend)(nil)

// New returns a Docker backend. It does not contact the engine.
func New(o Options) (*Backend, error) {
	b := &Backend{c: o.Client, binary: o.SidecarBinary, image: o.SidecarImage, configDir: o.ConfigDir, log: o.Log}
	if b.c == nil {
		c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("docker client: %w", err)
		}
		b.c = c
	}
	if b.binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find bottleform's own binary for the sidecar image: %w", err)
		}
		b.binary = exe
	}
	if b.image == "" {
		tag, err := SidecarTag("dev", b.binary)
		if err != nil {
			return nil, err
		}
		b.image = tag
	}
	if b.configDir == "" {
		b.configDir = "."
	}
	if b.log == nil {
		b.log = func(string) {}
	}
	return b, nil
}

// Components of a bottle, as the last part of their object names.
const (
	compInternal = "internal"
	compEgress   = "egress"
	compSidecar  = "sidecar"
	compAgent    = "agent"
)

// componentLabel is the value of resource.LabelComponent for a component:
// network-internal, network-egress, sidecar, agent.
func componentLabel(component string) string {
	if component == compInternal || component == compEgress {
		return "network-" + component
	}
	return component
}

// errDeployKey is returned for deploy key objects: the applier mints and
// revokes them through its Keys, never through a backend.
var errDeployKey = errors.New("deploy keys are minted by the applier's Keys, not by a backend (applier bug)")

// Create makes the object of op and returns its ids. An object left by an
// interrupted run is adopted (networks) or recreated (containers); files in
// the agent are overwritten.
func (b *Backend) Create(ctx context.Context, op *applier.Op) (map[string]string, error) {
	return b.create(ctx, op) // the applier names the step in errors
}

func (b *Backend) create(ctx context.Context, op *applier.Op) (map[string]string, error) {
	if op.Bottle == nil {
		return nil, errors.New("no desired bottle (applier bug)")
	}
	switch op.Addr.Kind {
	case resource.KindNetwork:
		return b.createNetworks(ctx, op)
	case resource.KindSidecar:
		return b.createSidecar(ctx, op, nil)
	case resource.KindEgress, resource.KindGit:
		return nil, b.deliver(ctx, op, false)
	case resource.KindDeployKey:
		return nil, errDeployKey
	case resource.KindAgent:
		return b.createAgent(ctx, op)
	case resource.KindAuth, resource.KindPrompt, resource.KindSkill, resource.KindMCP:
		return nil, b.provision(ctx, op)
	}
	return nil, fmt.Errorf("unknown kind %s", op.Addr.Kind)
}

// Update changes the object in place: it starts a stopped container (and
// creates a missing one), delivers the sidecar's configuration again, and
// rewrites what lives in the agent. A container's labels cannot change, so
// a sidecar whose attributes changed (supervise) is recreated, and its
// digest label matches the state again.
func (b *Backend) Update(ctx context.Context, op *applier.Op) (map[string]string, error) {
	return b.update(ctx, op)
}

func (b *Backend) update(ctx context.Context, op *applier.Op) (map[string]string, error) {
	if op.Bottle == nil {
		return nil, errors.New("no desired bottle (applier bug)")
	}
	switch op.Addr.Kind {
	case resource.KindSidecar:
		ids, created, err := b.ensureSidecar(ctx, op, nil)
		if err != nil || created {
			return ids, err
		}
		// A sidecar that restarted minted a new CA.
		return ids, b.installCA(ctx, op)
	case resource.KindAgent:
		// Every change of an agent's attributes replaces it (the planner's
		// rule), so an update only starts it, or creates it if it is gone.
		e, err := b.startExisting(ctx, op, compAgent)
		switch {
		case err != nil:
			return nil, err
		case e == nil:
			return b.createAgent(ctx, op)
		}
		return map[string]string{"container": e.id}, nil
	}
	return b.create(ctx, op)
}

// Delete removes the object; one already gone is not an error. Deleting a
// route or a repo delivers the bottle's remaining configuration; deleting
// a file from an agent that is gone does nothing.
func (b *Backend) Delete(ctx context.Context, op *applier.Op) error {
	return b.delete(ctx, op)
}

func (b *Backend) delete(ctx context.Context, op *applier.Op) error {
	switch op.Addr.Kind {
	case resource.KindNetwork:
		return b.deleteNetworks(ctx, op)
	case resource.KindSidecar:
		return b.removeContainer(ctx, op.Lineage, objectName(op, compSidecar))
	case resource.KindAgent:
		return b.removeContainer(ctx, op.Lineage, objectName(op, compAgent))
	case resource.KindEgress, resource.KindGit:
		return b.deliver(ctx, op, true)
	case resource.KindDeployKey:
		return errDeployKey
	case resource.KindAuth, resource.KindPrompt, resource.KindSkill, resource.KindMCP:
		return b.unprovision(ctx, op)
	}
	return fmt.Errorf("unknown kind %s", op.Addr.Kind)
}

func objectName(op *applier.Op, component string) string {
	return resource.ObjectName(op.Lineage, op.Addr.Bottle, component)
}

// labels are the labels of the object of op: never anything secret.
func labels(op *applier.Op, component string) map[string]string {
	l := map[string]string{
		resource.LabelManagedBy: resource.ManagedBy,
		resource.LabelLineage:   op.Lineage,
		resource.LabelBottle:    op.Addr.Bottle,
		resource.LabelComponent: componentLabel(component),
		resource.LabelAddress:   op.Addr.String(),
	}
	if op.Attrs != nil {
		l[resource.LabelDigest] = specDigest(op.Addr.Kind, op.Attrs)
	}
	return l
}

// sidecarSpec are the sidecar attributes its container is made from; the
// others (supervise, upstream CAs) are delivered to the running sidecar
// and change in place, so they are left out of its label.
var sidecarSpec = []string{"backend", "image"}

// specDigest is the digest a container is labelled with: of every attribute
// for the agent, of the container's own spec for the sidecar. A container
// whose label differs from what the state expects was changed out of band.
func specDigest(k resource.Kind, attrs resource.Attrs) string {
	if k != resource.KindSidecar {
		return attrs.Digest()
	}
	sub := resource.Attrs{}
	for _, n := range sidecarSpec {
		if v, ok := attrs[n]; ok {
			sub[n] = v
		}
	}
	return sub.Digest()
}

// warn reports something the user should know through op.Warn.
func warn(op *applier.Op, format string, args ...any) {
	if op.Warn != nil {
		op.Warn(fmt.Sprintf(format, args...))
	}
}

// ours reports whether labels mark an object of lineage.
func ours(labels map[string]string, lineage string) bool {
	return labels[resource.LabelManagedBy] == resource.ManagedBy && labels[resource.LabelLineage] == lineage
}
