package planner

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

const base = `
secret "gh" {
  env = "GH_TOKEN"
}
bottle "rev" {
  image = "agent:1"
  agent "claude" {}
  env = {
    TZ = "UTC"
  }
  egress "api.github.com" {
    auth {
      scheme = "Bearer"
      token  = secret.gh
    }
    paths = ["/repos/acme/app/"]
  }
  git "app" {
    upstream = "ssh://git@gitea.acme.dev:2222/acme/app.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "file" {
      path = "id_app"
    }
    push = ["refs/heads/agent/*"]
  }
  prompt = "line one\nline two\n"
}
`

// load writes src as main.hcl in a temp dir (with the key file it names)
// and loads it.
func load(t *testing.T, src string) *config.File {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "id_app"), []byte("not a real key"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GH_TOKEN": "x", "GITEA_TOKEN": "y", "HOME": dir}
	cfg, _, diags := config.Load(dir, config.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if diags.HasErrors() {
		t.Fatalf("load: %s", diags.Error())
	}
	return cfg
}

// applied returns the state an apply of p would leave.
func applied(p *Plan, prior *state.State) *state.State {
	s := &state.State{Lineage: "test-lineage", Serial: 1}
	if prior != nil {
		s.Serial = prior.Serial + 1
		for _, r := range prior.Resources() {
			s.Set(prior.Bottles[r.Addr.Bottle].Backend, r)
		}
	}
	for _, c := range p.Changes {
		switch c.Action {
		case Delete:
			s.Remove(c.Addr)
		case Create, Update, Replace, NoOp:
			s.Set("docker", &state.Resource{Addr: c.Addr, Attrs: c.After, Digest: c.After.Digest()})
		}
	}
	return s
}

func mustAddr(t *testing.T, s string) resource.Address {
	t.Helper()
	a, err := resource.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDiff(t *testing.T) {
	initial := load(t, base)
	p0, err := Diff(initial, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	live := applied(p0, nil)

	tests := []struct {
		name     string
		src      string // "" keeps base
		observed resource.Observed
		opts     Options
		want     string // Plan.String()
	}{
		{
			name: "create from empty",
			want: "", // checked separately below
		},
		{
			name: "no-op",
			src:  base,
			want: "",
		},
		{
			name: "egress route added in place",
			src:  strings.Replace(base, `prompt =`, "egress \"pypi.org\" {}\n  prompt =", 1),
			want: "create bottle.rev.egress[\"pypi.org\"]\n",
		},
		{
			name: "egress path added is an update",
			src:  strings.Replace(base, `["/repos/acme/app/"]`, `["/repos/acme/app/", "/user"]`, 1),
			want: "update bottle.rev.egress[\"api.github.com\"] (paths changed)\n",
		},
		{
			name: "image changed replaces the agent and provisions again",
			src:  strings.Replace(base, `"agent:1"`, `"agent:2"`, 1),
			want: "update bottle.rev.auth (provisioned again into the new agent)\n" +
				"replace bottle.rev.agent (image changed)\n" +
				"update bottle.rev.prompt (provisioned again into the new agent)\n",
		},
		{
			name: "env changed replaces the agent",
			src:  strings.Replace(base, `TZ = "UTC"`, `TZ = "CET"`, 1),
			want: "update bottle.rev.auth (provisioned again into the new agent)\n" +
				"replace bottle.rev.agent (env changed)\n" +
				"update bottle.rev.prompt (provisioned again into the new agent)\n",
		},
		{
			name: "prompt changed is in place",
			src:  strings.Replace(base, `line two`, `line 2`, 1),
			want: "update bottle.rev.prompt (content changed)\n",
		},
		{
			name: "push pattern added is in place",
			src:  strings.Replace(base, `["refs/heads/agent/*"]`, `["refs/heads/agent/*", "refs/tags/v*"]`, 1),
			want: "update bottle.rev.git[\"app\"] (push changed)\n",
		},
		{
			name: "backend changed replaces network, sidecar and agent",
			src:  strings.Replace(base, `image = "agent:1"`, "image = \"agent:1\"\n  backend = \"smolmachines\"", 1),
			want: "replace bottle.rev.network (backend changed)\n" +
				"replace bottle.rev.sidecar (backend changed)\n" +
				"update bottle.rev.egress[\"api.anthropic.com\"] (delivered again to the new sidecar)\n" +
				"update bottle.rev.egress[\"api.github.com\"] (delivered again to the new sidecar)\n" +
				"update bottle.rev.git[\"app\"] (delivered again to the new sidecar)\n" +
				"update bottle.rev.auth (provisioned again into the new agent)\n" +
				"replace bottle.rev.agent (backend changed)\n" +
				"update bottle.rev.prompt (provisioned again into the new agent)\n",
		},
		{
			name:     "stopped agent is drift, updated in place",
			src:      base,
			observed: resource.Observed{mustAddr(t, "bottle.rev.agent"): {Status: resource.StatusStopped, Reason: "container stopped out of band"}},
			want:     "update bottle.rev.agent (container stopped out of band)\n",
		},
		{
			name:     "missing agent is created again",
			src:      base,
			observed: resource.Observed{mustAddr(t, "bottle.rev.agent"): {Status: resource.StatusMissing, Reason: "container deleted out of band"}},
			want: "update bottle.rev.auth (provisioned again into the new agent)\n" +
				"create bottle.rev.agent (container deleted out of band)\n" +
				"update bottle.rev.prompt (provisioned again into the new agent)\n",
		},
		{
			name:     "sidecar that lost its secrets is degraded",
			src:      base,
			observed: resource.Observed{mustAddr(t, "bottle.rev.sidecar"): {Status: resource.StatusDegraded, Reason: "sidecar restarted without its secrets"}},
			want:     "update bottle.rev.sidecar (sidecar restarted without its secrets)\n",
		},
		{
			name: "replace requested",
			src:  base,
			opts: Options{Replace: []resource.Address{mustAddr(t, "bottle.rev.sidecar")}},
			want: "replace bottle.rev.sidecar (replacement requested with --replace)\n" +
				"update bottle.rev.egress[\"api.anthropic.com\"] (delivered again to the new sidecar)\n" +
				"update bottle.rev.egress[\"api.github.com\"] (delivered again to the new sidecar)\n" +
				"update bottle.rev.git[\"app\"] (delivered again to the new sidecar)\n",
		},
		{
			name: "target keeps only the target",
			src:  strings.Replace(strings.Replace(base, `"agent:1"`, `"agent:2"`, 1), `prompt =`, "egress \"pypi.org\" {}\n  prompt =", 1),
			opts: Options{Targets: []resource.Address{mustAddr(t, `bottle.rev.egress["pypi.org"]`)}},
			want: "create bottle.rev.egress[\"pypi.org\"]\n",
		},
		{
			name: "bottle removed",
			src:  "bottle \"other\" {\n  image = \"x\"\n}\n",
			want: "", // checked below: every rev object deleted
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.src == "" {
				return
			}
			p, err := Diff(load(t, tt.src), live, tt.observed, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "bottle removed" {
				for _, c := range p.Changes {
					if c.Addr.Bottle == "rev" && (c.Action != Delete || c.Reasons[0] != "bottle rev is no longer in the configuration") {
						t.Errorf("%s: %s %v, want delete", c.Addr, c.Action, c.Reasons)
					}
				}
				return
			}
			if got := p.String(); got != tt.want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}

	t.Run("create from empty", func(t *testing.T) {
		want := []string{
			"bottle.rev.network", "bottle.rev.sidecar", `bottle.rev.egress["api.anthropic.com"]`,
			`bottle.rev.egress["api.github.com"]`, `bottle.rev.git["app"]`, "bottle.rev.auth",
			"bottle.rev.agent", "bottle.rev.prompt",
		}
		var got []string
		for _, c := range p0.Changes {
			if c.Action != Create {
				t.Errorf("%s: %s, want create", c.Addr, c.Action)
			}
			got = append(got, c.Addr.String())
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("addresses:\n%v\nwant\n%v", got, want)
		}
	})
	t.Run("destroy", func(t *testing.T) {
		p, err := Diff(nil, live, nil, Options{Mode: ModeDestroy})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Changes) != len(p0.Changes) {
			t.Fatalf("destroy has %d changes, want %d", len(p.Changes), len(p0.Changes))
		}
		for _, c := range p.Changes {
			if c.Action != Delete {
				t.Errorf("%s: %s, want delete", c.Addr, c.Action)
			}
		}
		if _, _, d := p.Count(); d != len(p0.Changes) {
			t.Errorf("count destroy = %d", d)
		}
	})
	t.Run("target destroy takes dependents", func(t *testing.T) {
		p, err := Diff(nil, live, nil, Options{Mode: ModeDestroy, Targets: []resource.Address{mustAddr(t, "bottle.rev.agent")}})
		if err != nil {
			t.Fatal(err)
		}
		want := "delete bottle.rev.auth (destroy requested)\ndelete bottle.rev.agent (destroy requested)\ndelete bottle.rev.prompt (destroy requested)\n"
		if got := p.String(); got != want {
			t.Errorf("plan:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("unknown target is an error", func(t *testing.T) {
		_, err := Diff(initial, live, nil, Options{Targets: []resource.Address{mustAddr(t, "bottle.nope")}})
		if err == nil || !strings.Contains(err.Error(), "bottle.nope matches no object") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("serial and lineage recorded", func(t *testing.T) {
		p, _ := Diff(initial, live, nil, Options{})
		if p.Lineage != "test-lineage" || p.Serial != live.Serial || p.ConfigDigest != initial.Digest {
			t.Errorf("plan binds %q %d %q", p.Lineage, p.Serial, p.ConfigDigest)
		}
	})
}

func TestDiffIsDeterministic(t *testing.T) {
	cfg := load(t, base)
	a, _ := Diff(cfg, nil, nil, Options{})
	for i := 0; i < 20; i++ {
		b, _ := Diff(cfg, nil, nil, Options{})
		if !reflect.DeepEqual(a, b) {
			t.Fatal("two plans of the same inputs differ")
		}
	}
}

func TestProviderRouteWinsWithWarning(t *testing.T) {
	src := strings.Replace(base, `prompt =`, "egress \"api.anthropic.com\" {}\n  prompt =", 1)
	p, err := Diff(load(t, src), nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].Summary, "api.anthropic.com is replaced by the claude provider's route") {
		t.Fatalf("warnings = %+v", p.Warnings)
	}
	for _, c := range p.Changes {
		if c.Addr.Key == "api.anthropic.com" && c.After["owner"].Str != "claude" {
			t.Errorf("api.anthropic.com route owner = %q, want claude", c.After["owner"].Str)
		}
	}
}

func TestSecuritySummary(t *testing.T) {
	live := applied(mustDiff(t, load(t, base), nil), nil)
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"route added", strings.Replace(base, `prompt =`, "egress \"pypi.org\" {\n tls = \"passthrough\"\n}\n  prompt =", 1),
			[]string{"bottle rev gains egress to pypi.org (TLS passthrough: not inspected)"}},
		{"paths removed widens", strings.Replace(base, `paths = ["/repos/acme/app/"]`, ``, 1),
			[]string{"bottle rev's egress to api.github.com is no longer limited to paths (was /repos/acme/app/): every path is allowed"}},
		{"credential removed", strings.Replace(base, "auth {\n      scheme = \"Bearer\"\n      token  = secret.gh\n    }", "", 1),
			[]string{"bottle rev's egress to api.github.com no longer has a credential injected (was secret.gh injected as Bearer)"}},
		{"push added", strings.Replace(base, `["refs/heads/agent/*"]`, `["+refs/heads/agent/*"]`, 1),
			[]string{"bottle rev may now push refs/heads/agent/* (force-push allowed) to gitea.acme.dev:2222/acme/app",
				"bottle rev may no longer push refs/heads/agent/* to gitea.acme.dev:2222/acme/app"}},
		{"secret into agent env", strings.Replace(base, `TZ = "UTC"`, "TZ = \"UTC\"\n    GH = secret.gh", 1),
			[]string{"bottle rev's agent receives secret.gh in its environment as GH"}},
		{"bottle removed", `bottle "other" {
  image = "x"
}`, []string{
			"bottle other gains egress to api.anthropic.com (owned by the claude provider; TLS passthrough: not inspected)",
			"bottle rev loses egress to api.anthropic.com",
			"bottle rev loses egress to api.github.com",
			"bottle rev loses git access to gitea.acme.dev:2222/acme/app",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustDiff(t, load(t, tt.src), live)
			if !reflect.DeepEqual(p.Security, tt.want) {
				t.Errorf("security:\n%q\nwant\n%q", p.Security, tt.want)
			}
		})
	}
}

// TestSecurityForge: a route to a git upstream's host (a forge host) is
// read-only unless it lists write methods, and the summary says so, and
// says when that changes because the git entry came or went.
func TestSecurityForge(t *testing.T) {
	forgeRoute := func(body string) string {
		return strings.Replace(base, `prompt =`, "egress \"gitea.acme.dev\" {\n"+body+"\n}\n  prompt =", 1)
	}
	noGit := func(src string) string {
		end := "push = [\"refs/heads/agent/*\"]\n  }\n"
		i, j := strings.Index(src, "  git \"app\" {"), strings.Index(src, end)+len(end)
		return src[:i] + src[j:]
	}
	live := applied(mustDiff(t, load(t, base), nil), nil)
	liveForge := applied(mustDiff(t, load(t, forgeRoute("")), nil), nil)
	liveWrite := applied(mustDiff(t, load(t, forgeRoute(`methods = ["GET", "POST"]`)), nil), nil)
	liveNoGit := applied(mustDiff(t, load(t, noGit(forgeRoute(""))), nil), nil)
	tests := []struct {
		name  string
		prior *state.State
		src   string
		want  []string
	}{
		{"forge route is read-only by default", live, forgeRoute(""), []string{
			"bottle rev gains egress to gitea.acme.dev",
			"bottle rev's egress to the forge gitea.acme.dev is read-only (GET, HEAD, OPTIONS): it is a git upstream of the bottle, so writes go through the git gate",
		}},
		{"forge route granting writes", live, forgeRoute(`methods = ["PUT", "GET", "POST"]`), []string{
			"bottle rev gains egress to gitea.acme.dev, limited to methods GET, POST, PUT",
			"bottle rev can write to the forge gitea.acme.dev through its HTTP API (POST, PUT), bypassing the git gate's push policy and secret scan",
		}},
		{"writes added to a read-only forge route", liveForge, forgeRoute(`methods = ["GET", "POST"]`), []string{
			"bottle rev can write to the forge gitea.acme.dev through its HTTP API (POST), bypassing the git gate's push policy and secret scan",
		}},
		{"writes removed", liveWrite, forgeRoute(""), []string{
			"bottle rev can no longer write to the forge gitea.acme.dev through its HTTP API",
			"bottle rev's egress to the forge gitea.acme.dev is read-only (GET, HEAD, OPTIONS): it is a git upstream of the bottle, so writes go through the git gate",
		}},
		{"unchanged forge route says nothing", liveWrite, forgeRoute(`methods = ["GET", "POST"]`), nil},
		{"git entry added makes a route read-only", liveNoGit, forgeRoute(""), []string{
			"bottle rev's egress to the forge gitea.acme.dev is read-only (GET, HEAD, OPTIONS): it is a git upstream of the bottle, so writes go through the git gate",
			"bottle rev may clone and fetch gitea.acme.dev:2222/acme/app through the git gate, and push refs/heads/agent/*",
		}},
		{"git entry removed widens the route", liveForge, noGit(forgeRoute("")), []string{
			"bottle rev's egress to gitea.acme.dev now allows every method: it is no longer a git upstream of the bottle",
			"bottle rev loses git access to gitea.acme.dev:2222/acme/app",
		}},
		{"methods on another host", live, strings.Replace(base, `prompt =`, "egress \"pypi.org\" {\n methods = [\"GET\"]\n}\n  prompt =", 1), []string{
			"bottle rev gains egress to pypi.org, limited to methods GET",
		}},
		{"methods removed from another host", applied(mustDiff(t, load(t, strings.Replace(base, `paths = ["/repos/acme/app/"]`, `paths = ["/repos/acme/app/"]
    methods = ["GET"]`, 1)), nil), nil), base, []string{
			"bottle rev's egress to api.github.com is no longer limited to methods (was GET): every method is allowed",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustDiff(t, load(t, tt.src), tt.prior)
			if !reflect.DeepEqual(p.Security, tt.want) {
				t.Errorf("security:\n%q\nwant\n%q", p.Security, tt.want)
			}
		})
	}
}

func mustDiff(t *testing.T, cfg *config.File, prior *state.State) *Plan {
	t.Helper()
	p, err := Diff(cfg, prior, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanFileRoundTrip(t *testing.T) {
	cfg := load(t, base)
	live := applied(mustDiff(t, cfg, nil), nil)
	p := mustDiff(t, load(t, strings.Replace(base, `"agent:1"`, `"agent:2"`, 1)), live)
	var buf strings.Builder
	if err := WriteFile(&buf, p, "v9"); err != nil {
		t.Fatal(err)
	}
	got, version, err := ReadFile(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	if version != "v9" {
		t.Errorf("version = %q", version)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("round trip changed the plan:\n%#v\n%#v", got, p)
	}
	var again strings.Builder
	_ = WriteFile(&again, got, "v9")
	if again.String() != buf.String() {
		t.Error("a plan written twice gives different bytes")
	}
}

func TestStale(t *testing.T) {
	p := &Plan{Lineage: "L", Serial: 3, ConfigDigest: "D"}
	if why := Stale(p, "L", 3, "D"); why != "" {
		t.Errorf("fresh plan is stale: %s", why)
	}
	for _, tt := range []struct {
		lineage string
		serial  uint64
		digest  string
		want    string
	}{
		{"M", 3, "D", `lineage is "M"`},
		{"L", 4, "D", "from serial 3 to 4"},
		{"L", 3, "E", "configuration changed"},
	} {
		if why := Stale(p, tt.lineage, tt.serial, tt.digest); !strings.Contains(why, tt.want) {
			t.Errorf("Stale(%s,%d,%s) = %q, want %q", tt.lineage, tt.serial, tt.digest, why, tt.want)
		}
	}
	if _, _, err := ReadFile(strings.NewReader(`{"format_version":"2.0","mode":"normal","changes":[]}`)); err == nil || !strings.Contains(err.Error(), "make the plan again") {
		t.Errorf("future format accepted: %v", err)
	}
}

// giteaSrc is base with app's key minted on Gitea.
var giteaSrc = "secret \"gitea\" {\n  env = \"GITEA_TOKEN\"\n}\n" + strings.Replace(base,
	"key \"file\" {\n      path = \"id_app\"\n    }",
	"key \"gitea\" {\n      api_url = \"https://gitea.acme.dev\"\n      token   = secret.gitea\n    }", 1)

func TestDeployKeyLivesAndDiesWithItsSidecar(t *testing.T) {
	cfg := load(t, giteaSrc)
	p0, err := Diff(cfg, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	live := applied(p0, nil)
	key := live.Lookup(mustAddr(t, `bottle.rev.git["app"].deploy_key`))
	if key == nil {
		t.Fatal("no deploy key planned")
	}
	if src := key.Attrs["token_source"].Map; src["kind"].Str != "env" || src["source"].Str != "GITEA_TOKEN" {
		t.Errorf("token_source = %+v, want env GITEA_TOKEN", src)
	}
	for _, tc := range []struct {
		name     string
		observed resource.Observed
		opts     Options
		want     string
	}{
		{
			name:     "a restarted sidecar lost the key: a new one is minted",
			observed: resource.Observed{mustAddr(t, "bottle.rev.sidecar"): {Status: resource.StatusDegraded, Reason: "sidecar restarted"}},
			want: "update bottle.rev.sidecar (sidecar restarted)\n" +
				"update bottle.rev.git[\"app\"] (delivered again with its new deploy key)\n" +
				"replace bottle.rev.git[\"app\"].deploy_key (its private key lived only in the sidecar, which is started again)\n",
		},
		{
			name: "a new sidecar needs a new key",
			opts: Options{Replace: []resource.Address{mustAddr(t, "bottle.rev.sidecar")}},
			want: "replace bottle.rev.sidecar (replacement requested with --replace)\n" +
				"update bottle.rev.egress[\"api.anthropic.com\"] (delivered again to the new sidecar)\n" +
				"update bottle.rev.egress[\"api.github.com\"] (delivered again to the new sidecar)\n" +
				"update bottle.rev.git[\"app\"] (delivered again to the new sidecar)\n" +
				"replace bottle.rev.git[\"app\"].deploy_key (its private key lived only in the sidecar, which is started again)\n",
		},
		{
			name:     "a stopped agent leaves the key alone",
			observed: resource.Observed{mustAddr(t, "bottle.rev.agent"): {Status: resource.StatusStopped, Reason: "stopped"}},
			want:     "update bottle.rev.agent (stopped)\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Diff(cfg, live, tc.observed, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tc.want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}

	// Destroy, from the state alone: the token's declaration comes from it.
	p, err := Diff(nil, live, nil, Options{Mode: ModeDestroy})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Secrets["gitea"]; d.Kind != resource.SecretEnv || d.Source != "GITEA_TOKEN" {
		t.Errorf("destroy plan's secret gitea = %+v, want env GITEA_TOKEN from the state", d)
	}
}

// TestSmolmachinesUpdatesInPlace: smolvm's `machine update` changes a
// stopped VM's env and resources, so on smolmachines those update the
// agent (saying how), while the image still replaces it.
func TestSmolmachinesUpdatesInPlace(t *testing.T) {
	smol := strings.Replace(base, `image = "agent:1"`, "image = \"agent:1\"\n  backend = \"smolmachines\"", 1)
	p0 := mustDiff(t, load(t, smol), nil)
	live := applied(p0, nil)
	for _, tc := range []struct {
		name, src string
		opts      Options
		want      string
	}{
		{
			name: "env changed",
			src:  strings.Replace(smol, `TZ = "UTC"`, `TZ = "CET"`, 1),
			want: "update bottle.rev.agent (env changed (smolvm: stop, update, start))\n",
		},
		{
			name: "resources changed",
			src:  strings.Replace(smol, `prompt =`, "resources {\n    cpus = 2\n    memory = \"2GiB\"\n  }\n  prompt =", 1),
			want: "update bottle.rev.agent (cpus changed (smolvm: stop, update, start); memory changed (smolvm: stop, update, start))\n",
		},
		{
			name: "image changed",
			src:  strings.Replace(smol, `"agent:1"`, `"agent:2"`, 1),
			want: "update bottle.rev.auth (provisioned again into the new agent)\n" +
				"replace bottle.rev.agent (image changed)\n" +
				"update bottle.rev.prompt (provisioned again into the new agent)\n",
		},
		{
			name: "sidecar replaced",
			src:  smol,
			opts: Options{Replace: []resource.Address{mustAddr(t, "bottle.rev.sidecar")}},
			want: "replace bottle.rev.sidecar (replacement requested with --replace)\n" +
				"update bottle.rev.egress[\"api.anthropic.com\"] (delivered again to the new sidecar)\n" +
				"update bottle.rev.egress[\"api.github.com\"] (delivered again to the new sidecar)\n" +
				"update bottle.rev.git[\"app\"] (delivered again to the new sidecar)\n" +
				"update bottle.rev.agent (its sidecar is started again: the VM gets its new CA, and its new ports if they changed (smolvm: stop, update, start))\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Diff(load(t, tc.src), live, nil, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tc.want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	// On Docker the same env change replaces the container.
	dlive := applied(mustDiff(t, load(t, base), nil), nil)
	p, err := Diff(load(t, strings.Replace(base, `TZ = "UTC"`, `TZ = "CET"`, 1)), dlive, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.String(), "replace bottle.rev.agent (env changed)") {
		t.Errorf("docker env change:\n%s", p)
	}
}
