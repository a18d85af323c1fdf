package main

// End-to-end test of the smolmachines backend: a bottleform binary brings
// a bottle up with its agent in a smolvm machine. No real smolvm (KVM/HVF)
// runs here, so the stand-in from backends/smolmachines/smolvmfake is put
// first on PATH, in its docker mode: each machine's guest is a container
// with no network on this machine's engine. The sidecar is real, on
// Docker, its agent-facing ports published on 127.0.0.1.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bottleform/bottleform/backends/smolmachines/smolvmfake"
	"github.com/bottleform/bottleform/resource"
)

const smBottle = "smol"

// smMain is the bottle: one route, a secret in the agent's env, supervise
// (whose URL the plan cannot know before the sidecar's port is bound).
const smMain = `secret "api" {
  env = "E2E_SMOL_TOKEN"
}

bottle "smol" {
  backend = "smolmachines"
  image   = "bottleform-agent:test"

  agent "claude" {}

  env = {
    SMOL_API_KEY = secret.api
    SMOL_MODE    = "e2e"
  }

  egress "deb.debian.org" {}

  supervise = true
}
`

// smFixture is the directory, the stand-in's root and what the canary
// check reads.
type smFixture struct {
	dir, root, bin string
	canary         string
	env            []string
	lineage        string
	outputs        map[string]string
}

func (f *smFixture) bf(t *testing.T, args ...string) bfResult {
	t.Helper()
	return bfKeep(t, f.dir, f.env, f.outputs, args...)
}

// smolvm runs the stand-in with the environment bottleform has.
func (f *smFixture) smolvm(args ...string) (string, error) {
	cmd := exec.Command(f.bin, args...)
	cmd.Env = e2eEnviron(f.env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type smMachine struct {
	Name   string            `json:"name"`
	State  string            `json:"state"`
	Labels map[string]string `json:"labels"`
}

// machines is `smolvm machine ls --json`.
func (f *smFixture) machines(t *testing.T) []smMachine {
	t.Helper()
	out, err := f.smolvm("machine", "ls", "--json")
	if err != nil {
		t.Fatalf("smolvm machine ls --json: %v\n%s", err, out)
	}
	var ms []smMachine
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("smolvm machine ls --json: %v\n%s", err, out)
	}
	return ms
}

// guests lists the stand-in's guest containers.
func (f *smFixture) guests() string {
	out, _ := dockerRun("ps", "-aq", "--filter", "label="+smolvmfake.LabelRoot+"="+f.root)
	return out
}

// wantMachine checks that the stand-in has exactly the bottle's agent
// machine, this lineage's, in state.
func (f *smFixture) wantMachine(t *testing.T, state string) {
	t.Helper()
	ms := f.machines(t)
	name := resource.ObjectName(f.lineage, smBottle, "agent")
	if len(ms) != 1 {
		t.Fatalf("smolvm machine ls: want exactly machine %s, got %+v", name, ms)
	}
	m := ms[0]
	want := map[string]string{
		resource.LabelManagedBy: resource.ManagedBy,
		resource.LabelLineage:   f.lineage,
		resource.LabelBottle:    smBottle,
		resource.LabelComponent: "agent",
		resource.LabelAddress:   "bottle." + smBottle + ".agent",
	}
	for k, v := range want {
		if m.Labels[k] != v {
			t.Errorf("machine %s: label %s = %q, want %q", m.Name, k, m.Labels[k], v)
		}
	}
	if m.Name != name || m.State != state {
		t.Errorf("machine %s is %s; want %s %s", m.Name, m.State, name, state)
	}
}

func TestE2ESmolmachines(t *testing.T) {
	e2eRequire(t)
	began := time.Now()
	tmp := t.TempDir()
	f := &smFixture{
		dir: t.TempDir(), root: filepath.Join(tmp, "smolvm-root"), bin: filepath.Join(tmp, "bin", "smolvm"),
		canary: "canary-" + randomHex(16), outputs: map[string]string{},
	}
	build := exec.Command("go", "build", "-o", f.bin, "./backends/smolmachines/smolvmfake/cmd/smolvm")
	build.Dir, build.Env = filepath.Join("..", ".."), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build the stand-in smolvm: %v\n%s", err, out)
	}
	if err := os.MkdirAll(f.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "version"), []byte("1.14.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.env = []string{
		"PATH=" + filepath.Dir(f.bin) + string(os.PathListSeparator) + os.Getenv("PATH"),
		smolvmfake.EnvRoot + "=" + f.root,
		smolvmfake.EnvExec + "=" + smolvmfake.ExecDocker,
		"XDG_CACHE_HOME=" + filepath.Join(tmp, "cache"),
		"E2E_SMOL_TOKEN=" + f.canary,
	}
	if err := os.WriteFile(filepath.Join(f.dir, "main.hcl"), []byte(smMain), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if lineage := lineageOf(f.dir); lineage != "" {
			if r := bfRun(t, f.dir, f.env, "destroy", "--auto-approve", "--lock-timeout", "60s"); r.code != 0 {
				t.Errorf("cleanup: bottleform destroy: %s", r)
			}
			if left := sweep(lineage); len(left) > 0 {
				t.Errorf("cleanup: destroy left %v (removed them)", left)
			}
		}
		var ms []smMachine
		if out, err := f.smolvm("machine", "ls", "--json"); err == nil && json.Unmarshal([]byte(out), &ms) == nil {
			for _, m := range ms {
				t.Errorf("cleanup: machine %s left (removed it)", m.Name)
				_, _ = f.smolvm("machine", "delete", "--name", m.Name, "-f")
			}
		}
		if ids := f.guests(); ids != "" {
			t.Errorf("cleanup: guest containers left: %s (removed them)", strings.Join(strings.Fields(ids), " "))
			_, _ = dockerRun(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
	})
	agentAddr := "bottle." + smBottle + ".agent"

	r := f.bf(t, "plan")
	wantCode(t, "plan from empty", r, 0)
	wantLines(t, "plan from empty", r.stdout,
		"  # "+agentAddr+" will be created",
		`  # bottle.smol.mcp["supervise"] will be created`,
		`      + url = "(known after apply)"`)

	r = f.bf(t, "apply", "--auto-approve")
	wantCode(t, "apply", r, 0)
	f.lineage = lineageOf(f.dir)
	if f.lineage == "" {
		t.Fatal("apply saved no state")
	}
	t.Logf("lineage %s; up in %s", f.lineage, time.Since(began).Round(100*time.Millisecond))
	f.wantMachine(t, "running")
	machine := resource.ObjectName(f.lineage, smBottle, "agent")
	sidecar := resource.ObjectName(f.lineage, smBottle, "sidecar")
	if ids := strings.Fields(f.guests()); len(ids) != 1 {
		t.Errorf("the stand-in's guest containers: %q; want the machine's one", ids)
	}
	if objs := lineageObjects(t, f.lineage); !slices.Equal(objs, []string{
		"container " + sidecar + " sidecar",
		"network " + resource.ObjectName(f.lineage, smBottle, "egress") + " network-egress",
	}) {
		t.Errorf("Docker objects of the lineage: %v; want the sidecar and the egress network alone", objs)
	}

	// The sidecar's health, as for Docker bottles: "starting" until
	// Docker's first check, a second after it starts.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		r = f.bf(t, "status")
		wantCode(t, "status", r, 0)
		if strings.Contains(r.stdout, "healthy") || time.Now().After(deadline) {
			break
		}
	}
	wantFields(t, "status", r.stdout,
		[]string{agentAddr, "machine", machine, "running", "-", "-"},
		[]string{"bottle.smol.sidecar", "container", sidecar, "running", "healthy", "-"})

	// The secret reaches the agent; the proxy is the sidecar's published
	// port, through smolvm's gateway.
	r = bfRun(t, f.dir, f.env, "attach", smBottle, "--", "printenv", "SMOL_API_KEY")
	wantCode(t, "attach -- printenv SMOL_API_KEY", r, 0)
	if got := strings.TrimSpace(r.stdout); got != f.canary {
		t.Errorf("the agent's SMOL_API_KEY is %q, want the secret's value", got)
	}
	r = f.bf(t, "attach", smBottle, "--", "printenv", "SMOL_MODE")
	wantCode(t, "attach -- printenv SMOL_MODE", r, 0)
	if got := strings.TrimSpace(r.stdout); got != "e2e" {
		t.Errorf("the agent's SMOL_MODE is %q, want e2e", got)
	}
	published := dockerCLI(t, "port", sidecar, "9099/tcp")
	port, ok := strings.CutPrefix(strings.Split(published, "\n")[0], "127.0.0.1:")
	if !ok {
		t.Fatalf("docker port %s 9099/tcp = %q, want 127.0.0.1:PORT", sidecar, published)
	}
	r = f.bf(t, "attach", smBottle, "--", "printenv", "HTTPS_PROXY")
	wantCode(t, "attach -- printenv HTTPS_PROXY", r, 0)
	if got, want := strings.TrimSpace(r.stdout), "http://100.96.0.1:"+port; got != want {
		t.Errorf("the agent's HTTPS_PROXY is %q, want %q", got, want)
	}
	r = f.bf(t, "attach", smBottle, "--", "sh", "-c", "exit 7")
	wantCode(t, "attach -- sh -c 'exit 7'", r, 7)

	r = f.bf(t, "plan", "--detailed-exitcode")
	wantCode(t, "plan after apply", r, 0)
	wantLines(t, "plan after apply", r.stdout, noChanges)

	// A machine stopped out of band is drift; apply starts it again.
	if out, err := f.smolvm("machine", "stop", "--name", machine); err != nil {
		t.Fatalf("smolvm machine stop: %v\n%s", err, out)
	}
	r = f.bf(t, "status")
	wantCode(t, "status after stop", r, 0)
	wantFields(t, "status after stop", r.stdout, []string{agentAddr, "machine", machine, "stopped", "-", "machine", "is", "stopped"})
	r = f.bf(t, "plan", "--detailed-exitcode")
	wantCode(t, "plan after stop", r, 2)
	wantLines(t, "plan after stop", r.stdout,
		"  "+agentAddr+": machine is stopped",
		"  # "+agentAddr+" will be updated in-place",
		"Plan: 0 to add, 1 to change, 0 to destroy.")
	r = f.bf(t, "apply", "--auto-approve")
	wantCode(t, "apply after stop", r, 0)
	wantLines(t, "apply after stop", r.stdout, "Apply complete! Objects: 0 added, 1 changed, 0 destroyed.")
	f.wantMachine(t, "running")
	r = bfRun(t, f.dir, f.env, "attach", smBottle, "--", "printenv", "SMOL_API_KEY")
	wantCode(t, "attach after the repair", r, 0)
	if got := strings.TrimSpace(r.stdout); got != f.canary {
		t.Errorf("after the repair the agent's SMOL_API_KEY is %q, want the secret's value", got)
	}
	r = f.bf(t, "plan", "--detailed-exitcode")
	wantCode(t, "plan after the repair", r, 0)
	wantLines(t, "plan after the repair", r.stdout, noChanges)

	smCanary(t, f)

	r = f.bf(t, "destroy", "--auto-approve")
	wantCode(t, "destroy", r, 0)
	if ms := f.machines(t); len(ms) != 0 {
		t.Errorf("machines left after destroy: %+v", ms)
	}
	if objs := lineageObjects(t, f.lineage); len(objs) != 0 {
		t.Errorf("Docker objects of lineage %s left after destroy: %v", f.lineage, objs)
	}
	if ids := f.guests(); ids != "" {
		t.Errorf("guest containers left after destroy: %s", ids)
	}
	t.Logf("total %s", time.Since(began).Round(100*time.Millisecond))
}

// smCanary checks that the secret is in no output of bottleform (but the
// attach that printed it), not in the state, and never on smolvm's argv;
// and that smolvm was never asked `exec -n` nor a delete without -f.
func smCanary(t *testing.T, f *smFixture) {
	t.Helper()
	places := map[string]string{}
	for where, text := range f.outputs {
		places[where] = text
	}
	for _, name := range []string{"state.json", "state.json.backup"} {
		data, err := os.ReadFile(filepath.Join(f.dir, ".bottleform", name))
		if err != nil {
			t.Fatal(err)
		}
		places[name] = string(data)
	}
	inv, err := smolvmfake.ReadInvocations(f.root)
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range inv {
		argv := strings.Join(in.Argv, "\x00")
		places["argv of smolvm invocation "+strings.Join(in.Argv[:min(3, len(in.Argv))], " ")+" #"+strconv.Itoa(i)] = argv
		env, _ := json.Marshal(in.Env)
		places["env of smolvm invocation #"+strconv.Itoa(i)] = string(env)
		if len(in.Argv) < 3 || in.Argv[1] != "machine" {
			continue
		}
		opts := in.Argv[3:]
		if i := slices.Index(opts, "--"); i >= 0 {
			opts = opts[:i]
		}
		switch in.Argv[2] {
		case "exec":
			if slices.Contains(opts, "-n") {
				t.Errorf("smolvm was run with exec -n: %q", in.Argv)
			}
		case "delete", "rm":
			if !slices.Contains(opts, "-f") && !slices.Contains(opts, "--force") {
				t.Errorf("smolvm was run with a delete without -f: %q", in.Argv)
			}
		}
	}
	// The stand-in's machine records (what smolvm keeps of -e).
	_ = filepath.WalkDir(filepath.Join(f.root, "machines"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "record.json" {
			if data, err := os.ReadFile(p); err == nil {
				places["the stand-in's "+p] = string(data)
			}
		}
		return nil
	})
	var found []string
	for where, text := range places {
		if strings.Contains(text, f.canary) {
			found = append(found, where)
		}
	}
	slices.Sort(found)
	for _, s := range found {
		t.Errorf("the secret is in %s", s)
	}
	t.Logf("the secret is in none of %d places (%d smolvm invocations)", len(places), len(inv))
}

// wantFields fails unless, for each want, some line of out has exactly
// those whitespace-separated fields.
func wantFields(t *testing.T, what, out string, want ...[]string) {
	t.Helper()
	for _, w := range want {
		ok := false
		for _, l := range strings.Split(out, "\n") {
			if slices.Equal(strings.Fields(l), w) {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("%s: no line with fields %q in:\n%s", what, w, out)
		}
	}
}
