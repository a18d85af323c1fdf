package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/sidecar"
)

const verifyHCL = `secret "tok" {
  env = "VERIFY_TOKEN"
}
secret "granted" {
  env = "VERIFY_GRANTED"
}
bottle "v" {
  image = "bottleform-agent:test"
  agent "claude" {}
  env = {
    GRANTED = secret.granted
  }
  egress "deb.debian.org" {}
  egress "api.github.com" {
    auth {
      scheme = "Bearer"
      token  = secret.tok
    }
  }
  prompt    = "You are verified.\n"
  supervise = true
}
`

type verifyJSON struct {
	OK      bool `json:"ok"`
	Bottles []struct {
		Checks []struct {
			ID, Status, Evidence string
		} `json:"checks"`
		Error string `json:"error"`
	} `json:"bottles"`
}

// verifyRun runs `bottleform verify --json` and returns the status of each
// check by id; the output must never hold a secret value.
func verifyRun(t *testing.T, dir string, env []string, secrets ...string) (int, map[string]string, map[string]string) {
	t.Helper()
	r := bfRun(t, dir, env, "verify", "--json")
	for _, s := range secrets {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("verify printed a secret value:\n%s", r)
		}
	}
	var v verifyJSON
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, r)
	}
	status, evidence := map[string]string{}, map[string]string{}
	for _, b := range v.Bottles {
		if b.Error != "" {
			t.Fatalf("verify could not check the bottle: %s", b.Error)
		}
		for _, c := range b.Checks {
			status[c.ID], evidence[c.ID] = c.Status, c.Evidence
		}
	}
	if v.OK != (r.code == 0) {
		t.Errorf("verify says ok=%v but exits %d", v.OK, r.code)
	}
	return r.code, status, evidence
}

// TestE2EVerify: verify passes on a healthy bottle, and catches each fault
// a test brings in on purpose: the agent attached to the egress network, a
// route missing from the gateway, a secret copied into the agent, a proxy
// variable removed.
func TestE2EVerify(t *testing.T) {
	e2eRequire(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(verifyHCL), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupDir(t, dir) })
	token, granted := "verify-token-"+randomHex(12), "verify-granted-"+randomHex(12)
	env := []string{"VERIFY_TOKEN=" + token, "VERIFY_GRANTED=" + granted}

	r := bfRun(t, dir, env, "apply", "--auto-approve", "--verify")
	wantCode(t, "apply --verify", r, 0)
	wantLines(t, "apply --verify", r.stdout, "Verify passed: 9 check(s) in 1 bottle(s).")
	lineage := lineageOf(dir)
	agent, sidecarName := resource.ObjectName(lineage, "v", "agent"), resource.ObjectName(lineage, "v", "sidecar")
	egressNet := resource.ObjectName(lineage, "v", "egress")

	code, st, ev := verifyRun(t, dir, env, token, granted)
	for _, id := range []string{"proxy_env", "no_direct_egress", "no_external_dns", "ungranted_denied", "route:deb.debian.org", "route:api.github.com", "route:api.anthropic.com", "supervise", "no_secrets_in_agent"} {
		if st[id] != "pass" {
			t.Errorf("healthy bottle: %s is %q (%s)", id, st[id], ev[id])
		}
	}
	if code != 0 {
		t.Fatalf("verify of a healthy bottle exited %d", code)
	}
	if !strings.Contains(ev["no_secrets_in_agent"], "none of 1 secret value(s)") {
		t.Errorf("the secret check did not look for the route's token: %s", ev["no_secrets_in_agent"])
	}

	t.Run("AgentOnEgressNetwork", func(t *testing.T) {
		dockerCLI(t, "network", "connect", egressNet, agent)
		defer dockerCLI(t, "network", "disconnect", egressNet, agent)
		code, st, ev := verifyRun(t, dir, env, token, granted)
		if code != 1 || st["no_direct_egress"] != "fail" {
			t.Fatalf("verify with the agent on the egress network: exit %d, no_direct_egress %s (%s)", code, st["no_direct_egress"], ev["no_direct_egress"])
		}
		t.Logf("caught: %s", ev["no_direct_egress"])
	})

	t.Run("SecretCopiedIntoAgent", func(t *testing.T) {
		cmd := exec.Command("docker", "exec", "-i", agent, "sh", "-c", `cat > "$HOME/notes.txt"`)
		cmd.Stdin = strings.NewReader("remember: " + token + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		defer dockerCLI(t, "exec", agent, "sh", "-c", `rm -f "$HOME/notes.txt"`)
		code, st, ev := verifyRun(t, dir, env, token, granted)
		if code != 1 || st["no_secrets_in_agent"] != "fail" || !strings.Contains(ev["no_secrets_in_agent"], "secret.tok's value is in /") || !strings.Contains(ev["no_secrets_in_agent"], "notes.txt") {
			t.Fatalf("verify with a secret copied into the agent: exit %d, %s (%s)", code, st["no_secrets_in_agent"], ev["no_secrets_in_agent"])
		}
		t.Logf("caught: %s", ev["no_secrets_in_agent"])
	})

	t.Run("RouteMissingFromGateway", func(t *testing.T) {
		deliverWithout(t, dir, env, sidecarName, "deb.debian.org", token)
		code, st, ev := verifyRun(t, dir, env, token, granted)
		if code != 1 || st["route:deb.debian.org"] != "fail" || !strings.Contains(ev["route:deb.debian.org"], "not_granted") {
			t.Fatalf("verify with a route missing from the gateway: exit %d, %s (%s)", code, st["route:deb.debian.org"], ev["route:deb.debian.org"])
		}
		t.Logf("caught: %s", ev["route:deb.debian.org"])
		if st["route:api.github.com"] != "pass" {
			t.Errorf("the other route: %s (%s)", st["route:api.github.com"], ev["route:api.github.com"])
		}
		// A replaced route is delivered again.
		r := bfRun(t, dir, env, "apply", "--auto-approve", "--replace", `bottle.v.egress["deb.debian.org"]`)
		wantCode(t, "apply --replace the route", r, 0)
		if code, st, _ := verifyRun(t, dir, env, token, granted); code != 0 {
			t.Fatalf("after delivering the route again verify exits %d: %v", code, st)
		}
	})

	t.Run("ProxyVariableRemoved", func(t *testing.T) {
		recreateWithout(t, agent, "HTTPS_PROXY")
		code, st, ev := verifyRun(t, dir, env, token, granted)
		if code != 1 || st["proxy_env"] != "fail" || !strings.Contains(ev["proxy_env"], "HTTPS_PROXY is not set") {
			t.Fatalf("verify with HTTPS_PROXY removed: exit %d, %s (%s)", code, st["proxy_env"], ev["proxy_env"])
		}
		t.Logf("caught: %s", ev["proxy_env"])
	})
}

// deliverWithout loads the bottle's configuration into its sidecar with the
// route to host left out, as a sidecar that lost it would have.
func deliverWithout(t *testing.T, dir string, env []string, sidecarName, host, token string) {
	t.Helper()
	lookup := func(k string) (string, bool) {
		for _, kv := range env {
			if n, v, ok := strings.Cut(kv, "="); ok && n == k {
				return v, true
			}
		}
		return os.LookupEnv(k)
	}
	cfg, _, diags := config.Load(dir, config.Options{LookupEnv: lookup})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	b, _ := planner.Effective(cfg.Bottles["v"])
	var kept []resource.Route
	for _, r := range b.Egress {
		if r.Host != host {
			kept = append(kept, r)
		}
	}
	b.Egress = kept
	d := sidecar.Delivery{Config: sidecar.FromBottle(b), Slots: map[string]string{}}
	for _, r := range b.Egress {
		if r.Slot != "" {
			d.Slots[r.Slot] = token
		}
	}
	body, err := json.Marshal(sidecar.Request{Op: sidecar.OpLoad, Delivery: &d})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker", "exec", "-i", sidecarName, "/bottleform", "sidecar", "ctl")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"ok":true`) {
		t.Fatalf("load a configuration without %s: %v: %s", host, err, out)
	}
}

// recreateWithout makes the agent container again, as someone with the
// docker CLI could, with its configuration but without env variable name.
func recreateWithout(t *testing.T, name, variable string) {
	t.Helper()
	var c struct {
		Config struct {
			Image, User, Hostname string
			Env, Entrypoint, Cmd  []string
			Labels                map[string]string
		}
		HostConfig struct{ NetworkMode string }
	}
	if err := json.Unmarshal([]byte(dockerCLI(t, "inspect", "--format", "{{json .}}", name)), &c); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "-d", "--name", name, "--network", c.HostConfig.NetworkMode, "--user", c.Config.User, "--hostname", c.Config.Hostname, "--init", "--entrypoint", c.Config.Entrypoint[0]}
	for k, v := range c.Config.Labels {
		args = append(args, "--label", k+"="+v)
	}
	for _, kv := range c.Config.Env {
		if !strings.HasPrefix(kv, variable+"=") {
			args = append(args, "--env", kv)
		}
	}
	args = append(append(args, c.Config.Image), c.Config.Cmd...)
	dockerCLI(t, "rm", "-f", name)
	dockerCLI(t, args...)
}
