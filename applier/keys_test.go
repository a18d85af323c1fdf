package applier_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/forge"
	"github.com/bottleform/bottleform/forge/giteatest"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
)

// keysBottle has two git entries whose deploy keys are minted on the fake
// Gitea at api.
func keysBottle(api string) string {
	entry := func(name string) string {
		return fmt.Sprintf(`
  git %q {
    upstream = "ssh://git@gitea.acme.dev:2222/acme/%s.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "gitea" {
      api_url = %q
      token   = secret.gitea_admin
    }
    push = ["refs/heads/agent/*"]
  }`, name, name, api)
	}
	return secretDecls + `
bottle "rev" {
  image = "agent:1"
  agent "claude" {}` + entry("app") + entry("lib") + `
}
`
}

// realKeys is the real Gitea client, watched: before every call it runs
// check, which may fail the test.
type realKeys struct {
	forge.DeployKeys
	before func(what string, op *applier.Op)
}

func (k *realKeys) Mint(ctx context.Context, op *applier.Op) (map[string]string, resource.Secret, error) {
	k.before("mint", op)
	return k.DeployKeys.Mint(ctx, op)
}

func (k *realKeys) Revoke(ctx context.Context, op *applier.Op) error {
	k.before("revoke", op)
	return k.DeployKeys.Revoke(ctx, op)
}

// applyWith plans src (empty: destroy, planned from the state alone, as
// `bottleform destroy` does), resolves its secrets from a fixed
// environment and applies it with keys.
func (h *harness) applyWith(src string, keys applier.Keys) error {
	h.t.Helper()
	var p *planner.Plan
	if src == "" {
		p = h.plan(nil)
	} else {
		p = h.plan(h.load(src))
	}
	env := map[string]string{"GH_TOKEN": "gh-value", "GITEA_TOKEN": "gitea-value"}
	secrets, err := applier.Resolve(p, applier.Source{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Dir: h.dir})
	if err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	_, err = h.run(context.Background(), p, nil, applier.Options{Secrets: secrets, Keys: keys})
	return err
}

func TestDeployKeysMintedAndRevokedAfterTheContainers(t *testing.T) {
	h := newHarness(t)
	gitea := giteatest.New(t, "gitea-value", "acme/app", "acme/lib")
	var events []string
	keys := &realKeys{before: func(what string, op *applier.Op) {
		events = append(events, what+" "+op.Addr.Key)
		if what != "revoke" {
			return
		}
		// The ordering rule: a key is revoked only once the containers
		// that could use it are gone.
		for _, a := range h.fake.Objects(op.Lineage) {
			if a.Kind == resource.KindSidecar || a.Kind == resource.KindAgent {
				t.Errorf("revoking %s while %s still exists", op.Addr, a)
			}
		}
	}}
	if err := h.applyWith(keysBottle(gitea.URL), keys); err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"acme/app", "acme/lib"} {
		if n := len(gitea.Keys(repo)); n != 1 {
			t.Errorf("%s has %d deploy keys after apply, want 1", repo, n)
		}
	}
	for _, c := range gitea.Calls() {
		if c.Auth != "token gitea-value" {
			t.Errorf("%s %s: Authorization %q, want the resolved token", c.Method, c.Path, c.Auth)
		}
	}
	// The state records the key's id and title, never its private half.
	raw, err := os.ReadFile(h.mgr.Path())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "PRIVATE KEY") {
		t.Error("the state holds a private key")
	}
	key := gitea.Keys("acme/app")[0]
	if !strings.Contains(string(raw), fmt.Sprintf(`"key_id": "%d"`, key.ID)) {
		t.Errorf("the state does not record key_id %d:\n%s", key.ID, raw)
	}
	if !strings.Contains(string(raw), `"source": "GITEA_TOKEN"`) {
		t.Errorf("the state does not record where the token comes from:\n%s", raw)
	}

	// Destroy, planned from the state alone: the keys go last.
	events = nil
	if err := h.applyWith("", keys); err != nil {
		t.Fatal(err)
	}
	if strings.Join(events, ",") != "revoke app,revoke lib" {
		t.Errorf("key calls during destroy: %q", events)
	}
	for _, repo := range []string{"acme/app", "acme/lib"} {
		if n := len(gitea.Keys(repo)); n != 0 {
			t.Errorf("%s has %d deploy keys after destroy, want 0", repo, n)
		}
	}
	if s := h.state(); len(s.Resources()) != 0 {
		t.Errorf("state after destroy: %v", stateAddrs(s, ""))
	}
}

func TestDeployKeyRevokeFailureKeepsItForARetry(t *testing.T) {
	h := newHarness(t)
	gitea := giteatest.New(t, "gitea-value", "acme/app", "acme/lib")
	keys := &realKeys{before: func(string, *applier.Op) {}}
	if err := h.applyWith(keysBottle(gitea.URL), keys); err != nil {
		t.Fatal(err)
	}
	gitea.FailDelete(http.StatusInternalServerError)
	err := h.applyWith("", keys)
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("destroy with Gitea failing: %v, want an error naming the 500", err)
	}
	// The bottle stops at its failed step: the containers are gone, the
	// keys and the network (deleted after them) are not.
	got := stateAddrs(h.state(), "")
	want := []string{"bottle.rev.network", `bottle.rev.git["app"].deploy_key`, `bottle.rev.git["lib"].deploy_key`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("state after the failed destroy = %v, want %v", got, want)
	}
	if n := len(gitea.Keys("acme/app")); n != 1 {
		t.Errorf("acme/app has %d keys, want the one that could not be revoked", n)
	}
	gitea.FailDelete(0)
	if err := h.applyWith("", keys); err != nil {
		t.Fatalf("retried destroy: %v", err)
	}
	if n := len(gitea.Keys("acme/app")) + len(gitea.Keys("acme/lib")); n != 0 {
		t.Errorf("%d keys left after the retry", n)
	}
	if s := h.state(); len(s.Resources()) != 0 {
		t.Errorf("state after the retry: %v", stateAddrs(s, ""))
	}
}

func TestDeployKeyMintFailureRevokesTheFirst(t *testing.T) {
	h := newHarness(t)
	gitea := giteatest.New(t, "gitea-value", "acme/app", "acme/lib")
	gitea.FailPost(2, http.StatusInternalServerError)
	keys := &realKeys{before: func(string, *applier.Op) {}}
	err := h.applyWith(keysBottle(gitea.URL), keys)
	if err == nil {
		t.Fatal("apply succeeded with the second mint failing")
	}
	if n := len(gitea.CallsWith(http.MethodPost)); n != 2 {
		t.Errorf("%d POSTs, want 2", n)
	}
	if n := len(gitea.Keys("acme/app")) + len(gitea.Keys("acme/lib")); n != 0 {
		t.Errorf("%d deploy keys left on Gitea after the failed apply, want 0 (the first is revoked)", n)
	}
	if n := len(gitea.CallsWith(http.MethodDelete)); n != 1 {
		t.Errorf("%d DELETEs, want 1 (the rollback of the first key)", n)
	}
	for _, a := range stateAddrs(h.state(), "") {
		if strings.HasSuffix(a, ".deploy_key") {
			t.Errorf("the state still records %s", a)
		}
	}
	// Nothing after the failed step ran: no repo was delivered.
	for _, a := range stateAddrs(h.state(), "") {
		if strings.Contains(a, "git[") {
			t.Errorf("the state records %s after the failed mint", a)
		}
	}
	// A second apply mints both.
	if err := h.applyWith(keysBottle(gitea.URL), keys); err != nil {
		t.Fatal(err)
	}
	if n := len(gitea.Keys("acme/app")) + len(gitea.Keys("acme/lib")); n != 2 {
		t.Errorf("%d keys after the second apply, want 2", n)
	}
}
