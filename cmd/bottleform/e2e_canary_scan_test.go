package main

// TestE2ECanaryScan is the reliability suite's canary scan: two secret
// canaries, one granted to the agent as an environment variable and one
// injected by the egress gateway, are looked for in every artifact of a
// plan, an apply, a run and a destroy:
//
//   - the saved plan file and its show --json; the state and its backup
//     (after apply and after destroy) and show --json of the state;
//   - the stdout and stderr of every bottleform run (plan, apply, status,
//     logs, show, destroy);
//   - /proc/*/cmdline of every process on the machine, and
//     /proc/*/environ of every process except bottleform's own (its
//     environment legitimately holds the secrets it reads) and the agent's
//     (its environment legitimately holds the granted one), sampled every
//     few milliseconds from before plan to after destroy;
//   - docker inspect (labels, env, everything) of every container and
//     network of the lineage, less the agent's one granted variable;
//   - docker logs of the sidecar and the agent, and bottleform logs (text
//     and --json).
//
// Each canary is first shown where it must be: the granted one in the
// agent's environment and docker inspect, the injected one in the request
// the upstream received; and each scan is shown able to see what it scans
// (a control process's argv and environ; bottleform's own environ; the
// agent's processes' environ).

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottleform/bottleform/resource"
)

const canaryScanMain = `secret "api" {
  env = "E2E_SCAN_API"
}

secret "granted" {
  env = "E2E_SCAN_GRANTED"
}

bottle "gw" {
  image       = "bottleform-agent:test"
  upstream_ca = file("upstream-ca.pem")

  env = {
    GRANTED = secret.granted
  }

  egress "api.example.test" {
    auth {
      scheme = "Bearer"
      token  = secret.api
    }
    allow_private_ip = true
    paths            = ["/echo"]
  }
}
`

// procHit is one process found holding a needle.
type procHit struct {
	pid    int
	file   string // cmdline or environ
	exe    string
	cgroup string
	argv   string
}

// procSampler reads /proc/*/cmdline of every process and /proc/*/environ
// of every process every few milliseconds until stopped, recording the
// processes that hold a needle.
type procSampler struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	passes  int
	environ int // environ files read
	hits    map[string][]procHit
}

func sampleProcs(needles ...string) *procSampler {
	s := &procSampler{stop: make(chan struct{}), done: make(chan struct{}), hits: map[string][]procHit{}}
	seen := map[string]bool{} // pid/file/needle already recorded
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				pid, err := strconv.Atoi(e.Name())
				if err != nil || pid == os.Getpid() {
					continue
				}
				dir := filepath.Join("/proc", e.Name())
				// Who it is comes first: a process whose executable or
				// cgroup cannot be read is exiting (or a kernel thread),
				// and what it holds could not be attributed; one that
				// lives on is read again on the next pass.
				exe, err := os.Readlink(filepath.Join(dir, "exe"))
				if err != nil {
					continue
				}
				cg, err := os.ReadFile(filepath.Join(dir, "cgroup"))
				if err != nil || len(cg) == 0 {
					continue
				}
				for _, file := range []string{"cmdline", "environ"} {
					data, err := os.ReadFile(filepath.Join(dir, file))
					if err != nil {
						continue
					}
					if file == "environ" {
						s.mu.Lock()
						s.environ++
						s.mu.Unlock()
					}
					for _, n := range needles {
						key := e.Name() + "/" + file + "/" + n
						if seen[key] || !bytes.Contains(data, []byte(n)) {
							continue
						}
						seen[key] = true
						h := procHit{pid: pid, file: file, exe: exe, cgroup: string(cg)}
						argv, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
						h.argv = string(bytes.ReplaceAll(argv, []byte{0}, []byte{' '}))
						s.mu.Lock()
						s.hits[n] = append(s.hits[n], h)
						s.mu.Unlock()
					}
				}
			}
			s.mu.Lock()
			s.passes++
			s.mu.Unlock()
			time.Sleep(3 * time.Millisecond)
		}
	}()
	return s
}

func (s *procSampler) finish() {
	close(s.stop)
	<-s.done
}

func TestE2ECanaryScan(t *testing.T) {
	bin := e2eRequire(t)
	began := time.Now()
	dir := t.TempDir()
	t.Cleanup(func() { cleanupDir(t, dir) })
	apiCanary := "canary-api-" + randomHex(12)
	grantedCanary := "canary-granted-" + randomHex(12)
	env := []string{"E2E_SCAN_API=" + apiCanary, "E2E_SCAN_GRANTED=" + grantedCanary}
	canaries := []string{apiCanary, grantedCanary}

	pki := newEgPKI(t)
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(canaryScanMain), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "upstream-ca.pem"), pki.caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	upstreamBin := buildTestUpstream(t, t.TempDir())

	// Where no canary may be, with what was found there.
	places := map[string]string{}
	look := func(where, text string) { places[where] = text }
	run := func(what string, code int, env []string, args ...string) bfResult {
		t.Helper()
		r := bfRun(t, dir, env, args...)
		wantCode(t, what, r, code)
		look("stdout of bottleform "+strings.Join(args, " "), r.stdout)
		look("stderr of bottleform "+strings.Join(args, " "), r.stderr)
		return r
	}
	readFile := func(where, path string) {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		look(where, string(data))
	}

	// The controls prove the sampler sees a short-lived process's argv and
	// environ.
	argvControl, envControl := "control-argv-"+randomHex(8), "control-env-"+randomHex(8)
	procs := sampleProcs(append([]string{argvControl, envControl}, canaries...)...)
	sampling := true
	defer func() {
		if sampling {
			procs.finish()
		}
	}()
	ctl := exec.Command("sh", "-c", "sleep 0.3", argvControl)
	ctl.Env = append(os.Environ(), "E2E_SCAN_CONTROL="+envControl)
	if out, err := ctl.CombinedOutput(); err != nil {
		t.Fatalf("sh -c 'sleep 0.3' %s: %v: %s", argvControl, err, out)
	}

	planFile := filepath.Join(t.TempDir(), "scan.tfplan")
	run("plan --out", 0, env, "plan", "--out", planFile)
	readFile("the saved plan file", planFile)
	look("show --json of the saved plan", bfOK(t, dir, nil, "show", "--json", planFile))
	run("plan --json", 0, env, "plan", "--json")

	r := run("apply of the saved plan", 0, env, "apply", planFile)
	wantLines(t, "apply", r.stdout, "Apply complete! Objects: 6 added, 0 changed, 0 destroyed.")
	// 6: network, sidecar, two routes (the claude agent brings its own to its API), auth, agent.
	lineage := lineageOf(dir)
	if lineage == "" {
		t.Fatal("apply saved no state")
	}
	name := func(component string) string { return resource.ObjectName(lineage, "gw", component) }
	up := startUpstream(t, name("egress"), upstreamBin, pki)
	agentID := inspect(t, "{{.Id}}", name("agent"))
	readFile("state.json after apply", filepath.Join(dir, ".bottleform", "state.json"))
	readFile("state.json.backup after apply", filepath.Join(dir, ".bottleform", "state.json.backup"))
	look("show --json of the state", bfOK(t, dir, nil, "show", "--json"))
	look("show of the state", bfOK(t, dir, nil, "show"))
	run("plan after apply", 0, env, "plan", "--detailed-exitcode")
	run("status", 0, nil, "status")

	// Where each canary must be. The injected one: in the request the
	// upstream received.
	r = bfRun(t, dir, nil, "attach", "gw", "--", "curl", "-sS", "--max-time", "20", "https://api.example.test/echo")
	wantCode(t, "curl /echo in the agent", r, 0)
	injected := 0
	for _, q := range up.requests(t) {
		if slices.Contains(q.header("Authorization"), "Bearer "+apiCanary) {
			injected++
		}
	}
	if injected == 0 {
		t.Errorf("the upstream never received the api canary as Bearer: the scan for it would prove nothing")
	}
	// The granted one: in the agent's environment and its docker inspect.
	r = bfRun(t, dir, nil, "attach", "gw", "--", "printenv", "GRANTED")
	wantCode(t, "attach printenv GRANTED", r, 0)
	if r.stdout != grantedCanary+"\n" {
		t.Errorf("printenv GRANTED in the agent printed %q, want the granted canary", r.stdout)
	}
	r = bfRun(t, dir, nil, "attach", "gw", "--", "env")
	wantCode(t, "attach env", r, 0)
	look("the agent's environment less GRANTED (attach -- env)", strings.ReplaceAll(r.stdout, "GRANTED="+grantedCanary, ""))

	// docker inspect of every container and network of the lineage, whole.
	grantedEntry := `"GRANTED=` + grantedCanary + `"`
	objs := lineageObjects(t, lineage)
	if len(objs) != 4 {
		t.Errorf("lineage %s has %d objects, want 4 (agent, sidecar, two networks): %v", lineage, len(objs), objs)
	}
	for _, obj := range objs {
		f := strings.Fields(obj)
		kind, obj := f[0], f[1]
		var out string
		if kind == "network" {
			out = dockerCLI(t, "network", "inspect", obj)
		} else {
			out = dockerCLI(t, "inspect", obj)
		}
		if obj == name("agent") {
			if !strings.Contains(out, grantedEntry) {
				t.Errorf("docker inspect %s lacks %s: the scan of the inspect would prove nothing", obj, "GRANTED=<granted canary>")
			}
			out = strings.ReplaceAll(out, grantedEntry, `"GRANTED=(granted)"`)
		}
		look("docker inspect "+kind+" "+obj, out)
	}
	for _, c := range []string{"sidecar", "agent"} {
		out, err := exec.Command("docker", "logs", name(c)).CombinedOutput()
		if err != nil {
			t.Fatalf("docker logs %s: %v: %s", name(c), err, out)
		}
		look("docker logs "+name(c), string(out))
	}
	logs := run("logs", 0, nil, "logs", "gw")
	if !strings.Contains(logs.stdout, "api.example.test") {
		t.Errorf("bottleform logs gw does not show the request to api.example.test:\n%s", logs.stdout)
	}
	run("logs --json", 0, nil, "logs", "gw", "--json")
	run("logs --denied", 0, nil, "logs", "gw", "--denied")

	// The upstream holds the bottle's egress network: it goes first.
	dockerCLI(t, "rm", "-f", up.name)
	run("destroy", 0, env, "destroy", "--auto-approve")
	procs.finish()
	sampling = false
	readFile("state.json after destroy", filepath.Join(dir, ".bottleform", "state.json"))
	readFile("state.json.backup after destroy", filepath.Join(dir, ".bottleform", "state.json.backup"))
	if left := lineageObjects(t, lineage); len(left) != 0 {
		t.Errorf("destroy left %v", left)
	}

	// What the sampler found. A process is bottleform's own when its
	// executable is the binary under test; the agent's when its cgroup is
	// the agent container's (its id is in /proc/PID/cgroup).
	st := procs
	own := func(h procHit) bool { return strings.TrimSuffix(h.exe, " (deleted)") == bin }
	inAgent := func(h procHit) bool { return agentID != "" && strings.Contains(h.cgroup, agentID) }
	if len(st.hits[argvControl]) == 0 {
		t.Errorf("the sampler never saw the control process's argv (sh -c 'sleep 0.3' %s)", argvControl)
	}
	if !slices.ContainsFunc(st.hits[envControl], func(h procHit) bool { return h.file == "environ" }) {
		t.Errorf("the sampler never saw the control process's environ (E2E_SCAN_CONTROL=%s)", envControl)
	}
	ownEnv, agentEnv := map[string]int{}, 0
	for _, c := range canaries {
		for _, h := range st.hits[c] {
			switch {
			case h.file == "cmdline":
				t.Errorf("a canary is in the argv of pid %d (%s): %s", h.pid, h.exe, h.argv)
			case own(h):
				ownEnv[c]++
			case c == grantedCanary && inAgent(h):
				agentEnv++
			default:
				t.Errorf("a canary is in the environ of pid %d (%s, cgroup %q): %s", h.pid, h.exe, firstLine(h.cgroup), h.argv)
			}
		}
	}
	for _, c := range canaries {
		if ownEnv[c] == 0 {
			t.Errorf("the sampler never saw a canary in bottleform's own environ: the environ scan would prove nothing")
		}
	}
	if agentEnv == 0 {
		t.Errorf("the sampler never saw the granted canary in the environ of an agent process: it cannot see the agent's processes")
	}
	if st.passes < 50 {
		t.Errorf("/proc was sampled only %d times", st.passes)
	}

	for where, text := range places {
		for _, c := range canaries {
			if strings.Contains(text, c) {
				which := "api (injected)"
				if c == grantedCanary {
					which = "granted"
				}
				t.Errorf("the %s canary is in %s", which, where)
			}
		}
	}
	t.Logf("canary scan: %d places scanned, none holds a canary; /proc sampled %d times (%d environ reads): "+
		"canaries in bottleform's own environ %d/%d times, the granted one in %d agent processes, in no other process; "+
		"upstream received the injected canary on %d requests; %s",
		len(places), st.passes, st.environ, ownEnv[apiCanary], ownEnv[grantedCanary], agentEnv, injected, time.Since(began).Round(100*time.Millisecond))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
