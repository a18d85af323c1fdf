package smolvmfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Status is the §2.3 status/ls object. Fields are declared in
// alphabetical key order so encoding/json emits them sorted, as serde_json
// does without preserve_order.
type Status struct {
	Cmd                    []string          `json:"cmd"`
	Cpus                   int               `json:"cpus"`
	CreatedAt              int64             `json:"created_at"`
	Cuda                   bool              `json:"cuda"`
	CudaForkPoolSize       *int              `json:"cuda_fork_pool_size"`
	CudaVramLimitMib       *int              `json:"cuda_vram_limit_mib"`
	Entrypoint             []string          `json:"entrypoint"`
	Ephemeral              bool              `json:"ephemeral"`
	Forkable               bool              `json:"forkable"`
	ForkpointHeld          bool              `json:"forkpoint_held"`
	Gpu                    bool              `json:"gpu"`
	GpuVramMib             *int              `json:"gpu_vram_mib"`
	HealthCmd              *string           `json:"health_cmd"`
	HealthIntervalSecs     *int              `json:"health_interval_secs"`
	HealthRetries          *int              `json:"health_retries"`
	HealthStartupGraceSecs *int              `json:"health_startup_grace_secs"`
	HealthTimeoutSecs      *int              `json:"health_timeout_secs"`
	Image                  *string           `json:"image"`
	Labels                 map[string]string `json:"labels"`
	MemoryMib              int               `json:"memory_mib"`
	Mounts                 int               `json:"mounts"`
	Name                   string            `json:"name"`
	Network                bool              `json:"network"`
	OverlayGb              *int              `json:"overlay_gb"`
	Pid                    *int              `json:"pid"`
	Ports                  int               `json:"ports"`
	RestartCount           int               `json:"restart_count"`
	RestartMaxRetries      int               `json:"restart_max_retries"`
	RestartPolicy          string            `json:"restart_policy"`
	State                  string            `json:"state"`
	StorageGb              *int              `json:"storage_gb"`
}

// Volume is one `-v HOST:GUEST[:ro]` mount.
type Volume struct {
	Host     string `json:"host"`
	Guest    string `json:"guest"`
	ReadOnly bool   `json:"read_only"`
}

// Spec is the private `_fake` section of a record: the full create spec
// (§8.1).
type Spec struct {
	Volumes       []Volume `json:"volumes"`
	Ports         [][2]int `json:"ports"`
	Env           []string `json:"env"`
	Workdir       string   `json:"workdir"`
	AllowCIDRs    []string `json:"allow_cidrs"`
	AllowHosts    []string `json:"allow_hosts"`
	Init          []string `json:"init"`
	SecretEnv     []string `json:"secret_env"`
	SecretFile    []string `json:"secret_file"`
	InitCompleted bool     `json:"init_completed"`
	// Crashed is set by the crash_after_start fault: the next observation
	// reports the machine stopped.
	Crashed bool     `json:"crashed,omitempty"`
	Argv    []string `json:"argv"`
	// DockerImage is the guest container's image in docker mode (an
	// archive's "sha256:<id>" or the registry reference), DockerArchive
	// the archive it came from, loaded if the engine lacks the image.
	DockerImage   string `json:"docker_image,omitempty"`
	DockerArchive string `json:"docker_archive,omitempty"`
}

// Record is machines/<name>/record.json.
type Record struct {
	Status
	Fake Spec `json:"_fake"`
}

type store struct{ root string }

func (s store) dir(name string) string    { return filepath.Join(s.root, "machines", name) }
func (s store) rootfs(name string) string { return filepath.Join(s.dir(name), "rootfs") }

// ErrNoMachine is returned by load for a machine without a record.
var errNoMachine = errors.New("no such machine")

func (s store) load(name string) (*Record, error) {
	b, err := os.ReadFile(filepath.Join(s.dir(name), "record.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoMachine
	}
	if err != nil {
		return nil, fmt.Errorf("load machine %s: %w", name, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("load machine %s: %w", name, err)
	}
	return &r, nil
}

func (s store) save(r *Record) error {
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	if r.Cmd == nil {
		r.Cmd = []string{}
	}
	if r.Entrypoint == nil {
		r.Entrypoint = []string{}
	}
	if err := os.MkdirAll(filepath.Join(s.rootfs(r.Name), "workspace"), 0o755); err != nil {
		return fmt.Errorf("save machine %s: %w", r.Name, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("save machine %s: %w", r.Name, err)
	}
	p := filepath.Join(s.dir(r.Name), "record.json")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save machine %s: %w", r.Name, err)
	}
	return os.Rename(tmp, p)
}

func (s store) remove(name string) error { return os.RemoveAll(s.dir(name)) }

// list returns every record, sorted by name.
func (s store) list() ([]*Record, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "machines"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []*Record
	for _, n := range names {
		r, err := s.load(n)
		if errors.Is(err, errNoMachine) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// nextPID hands out fake PIDs 40000+n, persisted in next_pid.
func (s store) nextPID() int {
	p := filepath.Join(s.root, "next_pid")
	n := 0
	if b, err := os.ReadFile(p); err == nil {
		fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &n)
	}
	n++
	_ = os.WriteFile(p, []byte(fmt.Sprintf("%d\n", n)), 0o644)
	return 40000 + n
}

// version is the emulated smolvm version: the `version` file, default 1.9.2.
func readVersion(root string) string {
	if root == "" {
		return defaultVersion
	}
	b, err := os.ReadFile(filepath.Join(root, "version"))
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return defaultVersion
	}
	return strings.TrimSpace(string(b))
}

const defaultVersion = "1.9.2"
