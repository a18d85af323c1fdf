package forge_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/forge"
	"github.com/bottleform/bottleform/forge/giteatest"
	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/state"
)

func keyOp(api, bottle, entry, lineage string) *applier.Op {
	ref := resource.Ref{Secret: "gitea"}
	return &applier.Op{
		Addr:    resource.Address{Bottle: bottle, Kind: resource.KindDeployKey, Key: entry},
		Lineage: lineage,
		Attrs: resource.Attrs{
			"api_url":    resource.String(api),
			"repository": resource.String("acme/app"),
			"token":      resource.RefValue(ref),
		},
		Secrets: applier.Secrets{ref: resource.NewSecret("tok")},
	}
}

func TestDeployKeysMintRevoke(t *testing.T) {
	srv := giteatest.New(t, "tok", "acme/app")
	k := &forge.DeployKeys{Now: func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }}
	op := keyOp(srv.URL, "rev", "app", "0123456789abcdef")
	ids, priv, err := k.Mint(context.Background(), op)
	if err != nil {
		t.Fatal(err)
	}
	keys := srv.Keys("acme/app")
	if len(keys) != 1 || fmt.Sprint(keys[0].ID) != ids["key_id"] || keys[0].ReadOnly {
		t.Fatalf("keys = %+v, ids = %v; want one read-write key with the recorded id", keys, ids)
	}
	if keys[0].Title != "bottleform rev/app 01234567 2026-11-27T12:00:00.000Z" || ids["title"] != keys[0].Title {
		t.Errorf("title = %q (ids %q)", keys[0].Title, ids["title"])
	}
	if !strings.HasPrefix(ids["fingerprint"], "SHA256:") || !strings.Contains(priv.Reveal(), "OPENSSH PRIVATE KEY") {
		t.Errorf("fingerprint %q; private key is PEM: %v", ids["fingerprint"], strings.Contains(priv.Reveal(), "OPENSSH PRIVATE KEY"))
	}
	for k, v := range ids {
		if strings.Contains(v, "PRIVATE") {
			t.Errorf("ids[%s] holds the private key", k)
		}
	}
	del := &applier.Op{Addr: op.Addr, Lineage: op.Lineage, Secrets: op.Secrets,
		Prior: &state.Resource{Addr: op.Addr, Attrs: op.Attrs, IDs: ids}}
	if err := k.Revoke(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Keys("acme/app")); n != 0 {
		t.Errorf("%d keys after revoke", n)
	}
	// Gone already: still a success.
	if err := k.Revoke(context.Background(), del); err != nil {
		t.Errorf("revoking a key Gitea no longer has: %v", err)
	}
	// Unresolved token: an error naming it, no call made.
	calls := len(srv.Calls())
	bad := keyOp(srv.URL, "rev", "app", "0123456789abcdef")
	bad.Secrets = nil
	if _, _, err := k.Mint(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "secret.gitea") {
		t.Errorf("mint without the token: %v", err)
	}
	if len(srv.Calls()) != calls {
		t.Error("a call was made without a token")
	}
}

// A key an interrupted apply minted but never recorded is revoked by the
// next mint for the same entry; keys of other entries, bottles and
// lineages are left alone.
func TestDeployKeysMintRevokesUnrecordedKeys(t *testing.T) {
	srv := giteatest.New(t, "tok", "acme/app")
	k := &forge.DeployKeys{}
	ctx := context.Background()
	mint := func(bottle, entry, lineage string) {
		t.Helper()
		if _, _, err := k.Mint(ctx, keyOp(srv.URL, bottle, entry, lineage)); err != nil {
			t.Fatal(err)
		}
	}
	mint("rev", "app", "aaaaaaaa-1")   // the crashed apply's key
	mint("rev", "lib", "aaaaaaaa-1")   // another entry
	mint("other", "app", "aaaaaaaa-1") // another bottle
	mint("rev", "app", "bbbbbbbb-2")   // another lineage
	mint("rev", "app", "aaaaaaaa-1")   // the resumed apply
	var titles []string
	for _, key := range srv.Keys("acme/app") {
		titles = append(titles, strings.Join(strings.Fields(key.Title)[:3], " "))
	}
	want := "bottleform rev/lib aaaaaaaa,bottleform other/app aaaaaaaa,bottleform rev/app bbbbbbbb,bottleform rev/app aaaaaaaa"
	if strings.Join(titles, ",") != want {
		t.Errorf("keys left: %q\nwant:       %q", titles, want)
	}
	if n := len(srv.CallsWith(http.MethodDelete)); n != 1 {
		t.Errorf("%d DELETEs, want 1", n)
	}
}

func TestListDeployKeysPages(t *testing.T) {
	srv := giteatest.New(t, "tok", "acme/app")
	g := &forge.Gitea{BaseURL: srv.URL, Token: resource.NewSecret("tok")}
	for i := range 120 {
		_, pub, err := forge.GenerateKey("")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.CreateDeployKey(context.Background(), "acme", "app", fmt.Sprintf("k%d", i), pub, true); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := g.ListDeployKeys(context.Background(), "acme", "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 120 || keys[0].Title != "k0" || keys[119].Title != "k119" {
		t.Errorf("listed %d keys (first %+v)", len(keys), keys[0])
	}
	if n := len(srv.CallsWith(http.MethodGet)); n != 3 {
		t.Errorf("%d GETs for 120 keys, want 3 pages of 50", n)
	}
	if _, err := g.ListDeployKeys(context.Background(), "acme", "nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown repo: %v", err)
	}
}
