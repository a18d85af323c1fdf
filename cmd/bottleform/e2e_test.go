package main

// End-to-end tests: a bottleform binary built from this module brings
// examples/quickstart up on the Docker engine of this machine, changes it,
// is killed at every checkpoint, races itself, and keeps a secret where it
// belongs. They need the engine and the image bottleform-agent:test
// (./scripts/agent-image) and fail without them; -short skips them.
//
// Every test works in a copy of examples/quickstart in t.TempDir(); its
// cleanup destroys the bottle and sweeps anything left with the state's
// lineage. No container is given a route off this machine by the tests:
// the quickstart bottle's egress is never exercised.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bottleform/bottleform/state"
)

const (
	agentAddr    = "bottle.quickstart.agent"
	noChanges    = "No changes. Your bottles match the configuration."
	quickPrompt  = "You are working in a bottle. Ask through supervise for anything you lack.\n"
	quickImage   = `image = "bottleform-agent:test"`
	applyCreated = "Apply complete! Objects: 8 added, 0 changed, 0 destroyed."
	destroyedAll = "Destroy complete! Objects: 8 destroyed."
)

// inspect returns docker inspect's rendering of format for the object.
func inspect(t *testing.T, format, name string) string {
	t.Helper()
	return dockerCLI(t, "inspect", "--format", format, name)
}

// wantBottleUp checks that exactly one of each object of the quickstart
// bottle is live, that the state records their ids, and returns the
// lineage.
func wantBottleUp(t *testing.T, dir string) string {
	t.Helper()
	st := showState(t, dir)
	if got, want := lineageObjects(t, st.Lineage), fullBottle(st.Lineage); !slices.Equal(got, want) {
		t.Fatalf("live objects of lineage %s:\n  %s\nwant exactly:\n  %s", st.Lineage, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, c := range []struct{ addr, key, comp string }{
		{"bottle.quickstart.network", "internal_network", "internal"},
		{"bottle.quickstart.network", "egress_network", "egress"},
		{"bottle.quickstart.sidecar", "container", "sidecar"},
		{agentAddr, "container", "agent"},
	} {
		live := inspect(t, "{{.Id}}", objName(st.Lineage, c.comp))
		if got := st.ids(c.addr)[c.key]; got != live {
			t.Errorf("the state records %s %s = %q; the live %s is %s", c.addr, c.key, got, objName(st.Lineage, c.comp), live)
		}
	}
	return st.Lineage
}

// wantNothingLeft checks that nothing of lineage is live and the state has
// no bottles.
func wantNothingLeft(t *testing.T, dir, lineage string) {
	t.Helper()
	if objs := lineageObjects(t, lineage); len(objs) != 0 {
		t.Errorf("objects of lineage %s left after destroy: %v", lineage, objs)
	}
	st := showState(t, dir)
	if st.Lineage != lineage {
		t.Errorf("the state's lineage changed from %s to %s", lineage, st.Lineage)
	}
	if len(st.Bottles) != 0 {
		t.Errorf("the state still has bottles after destroy: %v", st.Bottles)
	}
}

func TestE2ELifecycle(t *testing.T) {
	e2eRequire(t)
	const next = "bottleform-agent:e2e-next"
	dockerCLI(t, "tag", e2eAgentImage, next)
	t.Cleanup(func() { _, _ = dockerRun("rmi", next) }) // runs after the bottle's cleanup
	dir := quickstart(t)

	r := bfRun(t, dir, nil, "apply", "--auto-approve")
	wantCode(t, "apply from empty", r, 0)
	wantLines(t, "apply from empty", r.stdout, applyCreated)
	lineage := wantBottleUp(t, dir)
	agentName := objName(lineage, "agent")
	agentID := inspect(t, "{{.Id}}", agentName)
	wantLines(t, "state show", bfOK(t, dir, nil, "state", "show", agentAddr), "      # container: "+agentID)

	r = bfRun(t, dir, nil, "plan", "--detailed-exitcode")
	wantCode(t, "plan after apply", r, 0)
	wantLines(t, "plan after apply", r.stdout, noChanges)

	// A new prompt is written into the running agent.
	newPrompt := "You are in an end-to-end test. Ask through supervise for anything you lack.\n"
	editFile(t, dir, "main.hcl", "You are working in a bottle.", "You are in an end-to-end test.")
	r = bfRun(t, dir, nil, "plan", "--detailed-exitcode")
	wantCode(t, "plan of a new prompt", r, 2)
	wantLines(t, "plan of a new prompt", r.stdout,
		"  # bottle.quickstart.prompt will be updated in-place",
		"Plan: 0 to add, 1 to change, 0 to destroy.")
	if strings.Contains(r.stdout, agentAddr+" ") {
		t.Errorf("a new prompt must not touch the agent:\n%s", r.stdout)
	}
	r = bfRun(t, dir, nil, "apply", "--auto-approve")
	wantCode(t, "apply of a new prompt", r, 0)
	wantLines(t, "apply of a new prompt", r.stdout, "Apply complete! Objects: 0 added, 1 changed, 0 destroyed.")
	if id := inspect(t, "{{.Id}}", agentName); id != agentID {
		t.Errorf("a new prompt replaced the agent: container %s became %s", agentID, id)
	}
	if id := showState(t, dir).ids(agentAddr)["container"]; id != agentID {
		t.Errorf("the state's agent container changed from %s to %s", agentID, id)
	}
	if out := bfOK(t, dir, nil, "attach", "quickstart", "--", "cat", ".bottleform/prompt.md"); out != newPrompt {
		t.Errorf("the agent's prompt is %q, want %q", out, newPrompt)
	}

	// A new image replaces the agent.
	editFile(t, dir, "main.hcl", quickImage, `image = "`+next+`"`)
	r = bfRun(t, dir, nil, "plan", "--detailed-exitcode")
	wantCode(t, "plan of a new image", r, 2)
	wantLines(t, "plan of a new image", r.stdout,
		"  # bottle.quickstart.agent must be replaced",
		"  # (image changed)",
		`      ~ image = "bottleform-agent:test" -> "bottleform-agent:e2e-next" # forces replacement`,
		"Plan: 1 to add, 3 to change, 1 to destroy.")
	r = bfRun(t, dir, nil, "apply", "--auto-approve")
	wantCode(t, "apply of a new image", r, 0)
	wantLines(t, "apply of a new image", r.stdout, "Apply complete! Objects: 1 added, 3 changed, 1 destroyed.")
	newID := inspect(t, "{{.Id}}", agentName)
	if newID == agentID {
		t.Errorf("a new image did not replace the agent container %s", agentID)
	}
	if img := inspect(t, "{{.Config.Image}}", agentName); img != next {
		t.Errorf("the new agent runs %s, want %s", img, next)
	}
	wantBottleUp(t, dir)
	if out := bfOK(t, dir, nil, "attach", "quickstart", "--", "cat", ".bottleform/prompt.md"); out != newPrompt {
		t.Errorf("the replaced agent's prompt is %q, want %q", out, newPrompt)
	}

	// An agent stopped by hand is drift; apply starts it again.
	dockerCLI(t, "stop", "-t", "5", agentName)
	r = bfRun(t, dir, nil, "plan", "--detailed-exitcode")
	wantCode(t, "plan after docker stop", r, 2)
	wantLines(t, "plan after docker stop", r.stdout,
		"  bottle.quickstart.agent: container stopped out of band",
		"  # bottle.quickstart.agent will be updated in-place",
		"  # (container stopped out of band)",
		"Plan: 0 to add, 1 to change, 0 to destroy.")
	r = bfRun(t, dir, nil, "apply", "--auto-approve")
	wantCode(t, "apply after docker stop", r, 0)
	wantLines(t, "apply after docker stop", r.stdout, "Apply complete! Objects: 0 added, 1 changed, 0 destroyed.")
	if running := inspect(t, "{{.State.Running}} {{.Id}}", agentName); running != "true "+newID {
		t.Errorf("after the repair the agent is %q, want running %s", running, newID)
	}
	r = bfRun(t, dir, nil, "plan", "--detailed-exitcode")
	wantCode(t, "plan after the repair", r, 0)
	wantLines(t, "plan after the repair", r.stdout, noChanges)

	r = bfRun(t, dir, nil, "destroy", "--auto-approve")
	wantCode(t, "destroy", r, 0)
	wantLines(t, "destroy", r.stdout, destroyedAll)
	wantNothingLeft(t, dir, lineage)
}

// checkpoints runs a full apply and a full destroy of a fresh quickstart
// bottle with BOTTLEFORM_TEST_CHECKPOINTS and returns the points each
// passed, and the state's addresses once up.
func checkpoints(t *testing.T) (apply, destroy []string, addrs string) {
	dir := quickstart(t)
	read := func(op string) []string {
		log := filepath.Join(t.TempDir(), op+".log")
		r := bfRun(t, dir, []string{"BOTTLEFORM_TEST_CHECKPOINTS=" + log}, op, "--auto-approve")
		wantCode(t, op+" with BOTTLEFORM_TEST_CHECKPOINTS", r, 0)
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatalf("%s wrote no checkpoints: %v", op, err)
		}
		return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	}
	apply = read("apply")
	lineage := wantBottleUp(t, dir)
	addrs = bfOK(t, dir, nil, "state", "list")
	destroy = read("destroy")
	wantNothingLeft(t, dir, lineage)
	for _, pts := range [][]string{apply, destroy} {
		if len(pts) == 0 || len(pts)%2 != 0 {
			t.Fatalf("checkpoints come in pairs (after, saved); got %q", pts)
		}
	}
	return apply, destroy, addrs
}

// wantKilled fails unless r is a death by SIGKILL.
func wantKilled(t *testing.T, what string, r bfResult) {
	t.Helper()
	if r.signal != syscall.SIGKILL || r.code != -1 {
		t.Fatalf("%s: want death by SIGKILL (exit status -1), got %s", what, r)
	}
}

func TestE2ECrashSafety(t *testing.T) {
	e2eRequire(t)
	start := time.Now()
	applyPts, destroyPts, addrs := checkpoints(t)
	t.Logf("apply passes %d checkpoints, destroy %d", len(applyPts), len(destroyPts))

	covered := 0
	for i, point := range applyPts {
		k := strconv.Itoa(i + 1)
		t.Run(fmt.Sprintf("apply/%02d/%s", i+1, point), func(t *testing.T) {
			began := time.Now()
			dir := quickstart(t)
			wantKilled(t, "apply killed at "+point, bfRun(t, dir, []string{"BOTTLEFORM_TEST_KILL_AT=" + k}, "apply", "--auto-approve"))
			wantCode(t, "apply after the kill", bfRun(t, dir, nil, "apply", "--auto-approve"), 0)
			r := bfRun(t, dir, nil, "plan", "--detailed-exitcode")
			wantCode(t, "plan after the resumed apply", r, 0)
			wantLines(t, "plan after the resumed apply", r.stdout, noChanges)
			lineage := wantBottleUp(t, dir)
			if got := bfOK(t, dir, nil, "state", "list"); got != addrs {
				t.Errorf("state list after the resumed apply:\n%s\nwant:\n%s", got, addrs)
			}
			r = bfRun(t, dir, nil, "destroy", "--auto-approve")
			wantCode(t, "destroy", r, 0)
			wantNothingLeft(t, dir, lineage)
			covered++
			t.Logf("killed at %s: converged in %s", point, time.Since(began).Round(100*time.Millisecond))
		})
	}
	for i, point := range destroyPts {
		k := strconv.Itoa(i + 1)
		t.Run(fmt.Sprintf("destroy/%02d/%s", i+1, point), func(t *testing.T) {
			began := time.Now()
			dir := quickstart(t)
			wantCode(t, "apply", bfRun(t, dir, nil, "apply", "--auto-approve"), 0)
			lineage := wantBottleUp(t, dir)
			wantKilled(t, "destroy killed at "+point, bfRun(t, dir, []string{"BOTTLEFORM_TEST_KILL_AT=" + k}, "destroy", "--auto-approve"))
			r := bfRun(t, dir, nil, "destroy", "--auto-approve")
			wantCode(t, "destroy after the kill", r, 0)
			// The objects whose deletion was not saved are left to destroy.
			want := "No objects to destroy: the state is empty."
			if left := len(destroyPts)/2 - (i+1)/2; left > 0 {
				want = "Destroy complete! Objects: " + strconv.Itoa(left) + " destroyed."
			}
			wantLines(t, "destroy after the kill", r.stdout, want)
			wantNothingLeft(t, dir, lineage)
			covered++
			t.Logf("killed at %s: converged in %s", point, time.Since(began).Round(100*time.Millisecond))
		})
	}
	t.Logf("crash injection points covered: %d of %d (apply %d, destroy %d) in %s",
		covered, len(applyPts)+len(destroyPts), len(applyPts), len(destroyPts), time.Since(start).Round(time.Second))
}

// statePoller runs `bottleform show --json` in dir over and over until
// stopped and checks that every run parses, that the lineage, once set,
// never changes and that the serial never goes down.
type statePoller struct {
	stop    chan struct{}
	done    chan struct{}
	samples int
	serials []uint64
	errs    []string
}

func pollState(t *testing.T, dir string) *statePoller {
	bin := e2eBinary(t)
	p := &statePoller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var lineage string
		var last uint64
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			cmd := exec.Command(bin, "show", "--json")
			cmd.Dir, cmd.Env = dir, e2eEnviron(nil)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				p.errs = append(p.errs, fmt.Sprintf("show --json: %v: %s", err, errb.String()))
				continue
			}
			p.samples++
			s, err := parseState(out.String())
			switch {
			case err != nil:
				p.errs = append(p.errs, err.Error())
			case lineage != "" && s.Lineage != lineage:
				p.errs = append(p.errs, fmt.Sprintf("the lineage changed from %s to %s", lineage, s.Lineage))
			case s.Serial < last:
				p.errs = append(p.errs, fmt.Sprintf("the serial went down from %d to %d", last, s.Serial))
			default:
				if s.Serial != last {
					p.serials = append(p.serials, s.Serial)
				}
				lineage, last = s.Lineage, s.Serial
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return p
}

func (p *statePoller) check(t *testing.T) {
	t.Helper()
	close(p.stop)
	<-p.done
	for _, e := range p.errs {
		t.Error(e)
	}
	if p.samples < 2 {
		t.Errorf("the state was read only %d times during the race", p.samples)
	}
	t.Logf("read the state %d times; serials seen: %v", p.samples, p.serials)
}

func TestE2EConcurrentApply(t *testing.T) {
	e2eRequire(t)

	t.Run("held-by-test", func(t *testing.T) {
		dir := quickstart(t)
		lock, err := state.Open(dir).Lock(context.Background(), state.LockInfo{Operation: "apply"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Unlock()

		r := bfRun(t, dir, nil, "apply", "--auto-approve", "--lock-timeout", "0")
		wantCode(t, "apply with the lock held", r, 1)
		holder := fmt.Sprintf("Error: state is locked by apply (pid %d, ", os.Getpid())
		if !strings.HasPrefix(r.stderr, holder) || !strings.Contains(r.stderr, "lock ID "+lock.Info().ID) {
			t.Errorf("apply with the lock held: want an error naming this process (%q) and its lock ID %s, got:\n%s", holder, lock.Info().ID, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, ".bottleform", "state.json")); !os.IsNotExist(err) {
			t.Errorf("apply refused the lock but wrote a state (stat: %v)", err)
		}

		release := time.AfterFunc(time.Second, func() { lock.Unlock() })
		defer release.Stop()
		began := time.Now()
		r = bfRun(t, dir, nil, "apply", "--auto-approve", "--lock-timeout", "5s")
		waited := time.Since(began)
		wantCode(t, "apply waiting for the lock", r, 0)
		wantLines(t, "apply waiting for the lock", r.stdout, applyCreated)
		if waited < time.Second {
			t.Errorf("apply finished after %s, before the lock was released", waited)
		}
		wantBottleUp(t, dir)
	})

	t.Run("both-wait", func(t *testing.T) {
		dir := quickstart(t)
		poll := pollState(t, dir)
		p1 := bfStart(t, dir, nil, "apply", "--auto-approve", "--lock-timeout", "60s")
		p2 := bfStart(t, dir, nil, "apply", "--auto-approve", "--lock-timeout", "60s")
		r1, r2 := p1.wait(t), p2.wait(t)
		poll.check(t)
		wantCode(t, "first apply", r1, 0)
		wantCode(t, "second apply", r2, 0)
		created, noop := 0, 0
		for _, r := range []bfResult{r1, r2} {
			switch {
			case strings.Contains(r.stdout, applyCreated):
				created++
			case strings.Contains(r.stdout, noChanges):
				noop++
			}
		}
		if created != 1 || noop != 1 {
			t.Errorf("want one apply that creates the bottle and one that finds nothing to do; got:\n%s\n\n%s", r1, r2)
		}
		r := bfRun(t, dir, nil, "plan", "--detailed-exitcode")
		wantCode(t, "plan after both", r, 0)
		wantBottleUp(t, dir)
	})

	t.Run("no-wait", func(t *testing.T) {
		dir := quickstart(t)
		poll := pollState(t, dir)
		p1 := bfStart(t, dir, nil, "apply", "--auto-approve", "--lock-timeout", "0")
		p2 := bfStart(t, dir, nil, "apply", "--auto-approve", "--lock-timeout", "0")
		r1, r2 := p1.wait(t), p2.wait(t)
		poll.check(t)
		won, lost := r1, r2
		if r1.code != 0 {
			won, lost = r2, r1
		}
		wantCode(t, "the apply that got the lock", won, 0)
		wantCode(t, "the apply that did not", lost, 1)
		wantLines(t, "the apply that got the lock", won.stdout, applyCreated)
		holder := fmt.Sprintf("Error: state is locked by apply (pid %d, ", won.pid)
		if !strings.HasPrefix(lost.stderr, holder) {
			t.Errorf("the apply that lost: want an error naming the holder (%q), got:\n%s", holder, lost.stderr)
		}
		r := bfRun(t, dir, nil, "plan", "--detailed-exitcode")
		wantCode(t, "plan after the race", r, 0)
		wantBottleUp(t, dir)
	})
}

// statusRows returns status's table as fields per line, and what follows
// it.
func statusRows(out string) (rows [][]string, rest string) {
	table, rest, _ := strings.Cut(out, "\n\n")
	for _, l := range strings.Split(strings.TrimSuffix(table, "\n"), "\n") {
		rows = append(rows, strings.Fields(l))
	}
	return rows, rest
}

func TestE2EStatus(t *testing.T) {
	e2eRequire(t)
	dir := quickstart(t)
	wantCode(t, "apply", bfRun(t, dir, nil, "apply", "--auto-approve"), 0)
	lineage := wantBottleUp(t, dir)

	// want is the table (fields of each row) with the sidecar's state,
	// health and drift.
	want := func(sidecarState, sidecarHealth, sidecarDrift string) [][]string {
		rows, _ := statusRows(strings.Join([]string{
			"ADDRESS OBJECT STATE HEALTH DRIFT",
			"bottle.quickstart.network network " + objName(lineage, "internal") + " present - -",
			"bottle.quickstart.network network " + objName(lineage, "egress") + " present - -",
			"bottle.quickstart.sidecar container " + objName(lineage, "sidecar") + " " + sidecarState + " " + sidecarHealth + " " + sidecarDrift,
			agentAddr + " container " + objName(lineage, "agent") + " running - -",
		}, "\n"))
		return rows
	}
	// check polls status for a few seconds: Docker runs a new sidecar's
	// first health check a second after it starts, and status shows
	// "starting" until then.
	check := func(what string, wantRows [][]string, wantRest string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := bfRun(t, dir, nil, "status")
			wantCode(t, what, r, 0)
			rows, rest := statusRows(r.stdout)
			if slices.EqualFunc(rows, wantRows, slices.Equal[[]string]) && rest == wantRest {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: got\n%s\nwant the rows %q followed by %q", what, r.stdout, wantRows, wantRest)
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	check("status after apply", want("running", "healthy", "-"), "")

	dockerCLI(t, "stop", "-t", "5", objName(lineage, "sidecar"))
	check("status after docker stop of the sidecar", want("exited", "-", "container stopped out of band"),
		"1 object(s) drifted; `bottleform plan` shows the repair and `bottleform apply` makes it.\n")
	r := bfRun(t, dir, nil, "plan", "--detailed-exitcode")
	wantCode(t, "plan after docker stop of the sidecar", r, 2)
	wantLines(t, "plan after docker stop of the sidecar", r.stdout, "  bottle.quickstart.sidecar: container stopped out of band")

	wantCode(t, "apply repairing the sidecar", bfRun(t, dir, nil, "apply", "--auto-approve"), 0)
	check("status after the repair", want("running", "healthy", "-"), "")
}
