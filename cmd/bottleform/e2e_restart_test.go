package main

import (
	"strings"
	"testing"
	"time"
)

// TestE2ESidecarRestart: a sidecar that restarts loses its configuration,
// its credentials and its CA (they live only in its memory). It must fail
// closed, show as drift in plan, and be repaired by apply, which delivers
// everything again and installs the new CA in the agent, without
// replacing the agent.
func TestE2ESidecarRestart(t *testing.T) {
	e2eRequire(t)
	dir := quickstart(t)
	bfOK(t, dir, nil, "apply", "--auto-approve")
	lineage := wantBottleUp(t, dir)
	agentID := inspect(t, "{{.Id}}", objName(lineage, "agent"))
	caBefore := bfOK(t, dir, nil, "attach", "quickstart", "--", "cat", "/etc/bottleform/ca.pem")

	dockerCLI(t, "restart", "--time", "1", objName(lineage, "sidecar"))

	// The restarted sidecar grants nothing until apply delivers its
	// configuration: every request is refused as not configured.
	out, _, _ := bf(t, dir, nil, "attach", "quickstart", "--", "sh", "-c",
		`curl -sS -o /dev/null -w '%{http_code} ' -D - -m 5 https://deb.debian.org/ 2>&1 | tr -d '\r' | grep -i -e '^x-bottleform-reason' -e '^HTTP' ; true`)
	if !strings.Contains(out, "not_configured") {
		t.Errorf("a restarted sidecar did not refuse as not configured:\n%s", out)
	}

	// Docker's health check turns the sidecar unhealthy; plan shows it.
	deadline := time.Now().Add(30 * time.Second)
	var plan bfResult
	for {
		plan = bfRun(t, dir, nil, "plan", "--detailed-exitcode")
		if plan.code == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	wantCode(t, "plan after the sidecar restarted", plan, 2)
	wantLines(t, "plan", plan.stdout,
		"  # bottle.quickstart.sidecar will be updated in-place",
		"  # (sidecar is unhealthy: it lost its configuration or credentials (restarted out of band?), so credentialed routes fail closed)",
		"Plan: 0 to add, 1 to change, 0 to destroy.")

	bfOK(t, dir, nil, "apply", "--auto-approve")
	wantCode(t, "plan after apply", bfRun(t, dir, nil, "plan", "--detailed-exitcode"), 0)
	if id := inspect(t, "{{.Id}}", objName(lineage, "agent")); id != agentID {
		t.Errorf("repairing the sidecar replaced the agent: %s -> %s", agentID, id)
	}
	caAfter := bfOK(t, dir, nil, "attach", "quickstart", "--", "cat", "/etc/bottleform/ca.pem")
	if caAfter == caBefore || !strings.Contains(caAfter, "BEGIN CERTIFICATE") {
		t.Errorf("the agent does not hold the restarted sidecar's new CA")
	}
	// The agent trusts the new CA: a refusal comes back over TLS-free
	// CONNECT, so check the bundle instead: it ends with the new CA.
	bundle := bfOK(t, dir, nil, "attach", "quickstart", "--", "sh", "-c", "tail -c 2000 /etc/bottleform/ca-bundle.pem; tail -c 2000 /etc/ssl/certs/ca-certificates.crt")
	if strings.Count(bundle, strings.TrimSpace(caAfter)[len(strings.TrimSpace(caAfter))-100:]) != 2 {
		t.Errorf("the bundle and the system store do not end with the new CA")
	}
}
