package forge_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/bottleform/bottleform/forge"
	"github.com/bottleform/bottleform/forge/giteatest"
	"github.com/bottleform/bottleform/resource"
)

const canary = "tok-CANARY-5f3e9a1d"

func newGitea(url string) *forge.Gitea {
	return &forge.Gitea{BaseURL: url, Token: resource.NewSecret(canary)}
}

func assertNoLeak(t *testing.T, err error, extra ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error() + fmt.Sprintf(" %v %+v %#v", err, err, err)
	for _, s := range append([]string{canary, "PRIVATE KEY"}, extra...) {
		if s != "" && strings.Contains(msg, s) {
			t.Fatalf("error text leaks %q: %s", s, msg)
		}
	}
}

func TestCreateDeployKeyRequest(t *testing.T) {
	srv := giteatest.New(t, canary, "o/r")
	g := newGitea(srv.URL + "/") // trailing slash is tolerated
	for _, ro := range []bool{false, true} {
		title := fmt.Sprintf("bottle-x-%v", ro)
		_, pub, err := forge.GenerateKey(title)
		if err != nil {
			t.Fatal(err)
		}
		id, err := g.CreateDeployKey(context.Background(), "o", "r", title, pub, ro)
		if err != nil {
			t.Fatal(err)
		}
		calls := srv.CallsWith(http.MethodPost)
		c := calls[len(calls)-1]
		if c.Path != "/api/v1/repos/o/r/keys" {
			t.Errorf("path = %q", c.Path)
		}
		if c.Auth != "token "+canary {
			t.Errorf("auth header = %q", c.Auth)
		}
		var body map[string]any
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"title": title, "key": pub, "read_only": ro}
		if len(body) != 3 || body["title"] != want["title"] || body["key"] != want["key"] || body["read_only"] != want["read_only"] {
			t.Errorf("body = %v, want %v", body, want)
		}
		keys := srv.Keys("o/r")
		if got := keys[len(keys)-1]; got.ID != id || got.ReadOnly != ro {
			t.Errorf("id = %d, server key = %+v", id, got)
		}
	}
}

func TestCreateDeployKeyEscapesPath(t *testing.T) {
	srv := giteatest.New(t, canary, "my org/re?po")
	g := newGitea(srv.URL)
	_, pub, _ := forge.GenerateKey("t")
	if _, err := g.CreateDeployKey(context.Background(), "my org", "re?po", "t", pub, false); err != nil {
		t.Fatal(err)
	}
	if p := srv.Calls()[0].Path; p != "/api/v1/repos/my%20org/re%3Fpo/keys" {
		t.Errorf("path = %q", p)
	}
	for _, bad := range [][2]string{{"", "r"}, {"o", ""}, {"..", "r"}, {"o", "."}} {
		if _, err := g.CreateDeployKey(context.Background(), bad[0], bad[1], "t", pub, false); err == nil {
			t.Errorf("CreateDeployKey(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

func TestCreateDeployKeyErrors(t *testing.T) {
	srv := giteatest.New(t, canary, "o/r")
	_, pub, _ := forge.GenerateKey("dup")
	if _, err := newGitea(srv.URL).CreateDeployKey(context.Background(), "o", "r", "dup", pub, false); err != nil {
		t.Fatal(err)
	}
	_, other, _ := forge.GenerateKey("other")

	tests := []struct {
		name      string
		token     string
		repo      string
		title     string
		key       string
		collision bool
		status    string
	}{
		{name: "duplicate title", token: canary, repo: "r", title: "dup", key: other, collision: true},
		{name: "duplicate key", token: canary, repo: "r", title: "fresh", key: pub, collision: true},
		{name: "wrong token", token: "nope", repo: "r", title: "x", key: other, status: "401"},
		{name: "unknown repo", token: canary, repo: "missing", title: "x", key: other, status: "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &forge.Gitea{BaseURL: srv.URL, Token: resource.NewSecret(tt.token)}
			_, err := g.CreateDeployKey(context.Background(), "o", tt.repo, tt.title, tt.key, false)
			if err == nil {
				t.Fatal("no error")
			}
			assertNoLeak(t, err)
			var ce *forge.CollisionError
			if got := errors.As(err, &ce); got != tt.collision {
				t.Fatalf("errors.As CollisionError = %v: %v", got, err)
			}
			if tt.collision {
				if ce.Repo != "o/r" || ce.Title != tt.title {
					t.Errorf("collision = %+v", ce)
				}
				return
			}
			for _, want := range []string{"create deploy key", "o/" + tt.repo, tt.status} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestErrorBodyRedactedAndTruncated(t *testing.T) {
	// The fake echoes the Authorization header ("token " + canary) after
	// pad bytes: pad 180 puts the whole token inside the quoted 200 bytes,
	// pad 190 makes it straddle the cut ("tok-" would survive a
	// truncate-then-redact).
	for _, pad := range []int{180, 190} {
		for _, status := range []int{http.StatusForbidden, http.StatusInternalServerError} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				fmt.Fprintf(w, "%s%s%s", strings.Repeat("a", pad), r.Header.Get("Authorization"), strings.Repeat("b", 500))
			}))
			g := newGitea(srv.URL)
			_, pub, _ := forge.GenerateKey("t")
			_, err := g.CreateDeployKey(context.Background(), "o", "r", "t", pub, false)
			assertNoLeak(t, err, canary[:4], strings.Repeat("b", 30))
			var ae *forge.APIError
			if !errors.As(err, &ae) || ae.Status != status || len(ae.Body) > 200 || !strings.Contains(ae.Body, "(sen") {
				t.Errorf("pad %d status %d: err = %v", pad, status, err)
			}
			err = g.DeleteDeployKey(context.Background(), "o", "r", 7)
			assertNoLeak(t, err, canary[:4])
			if err == nil || !strings.Contains(err.Error(), "delete deploy key 7") || !strings.Contains(err.Error(), "o/r") {
				t.Errorf("delete: %v", err)
			}
			srv.Close()
		}
	}
}

func TestDeleteDeployKey(t *testing.T) {
	tests := []struct {
		name    string
		status  int // injected; 0 = real behaviour
		id      int64
		token   string
		wantErr bool
	}{
		{name: "204", id: 1, token: canary},
		{name: "404 already gone", id: 99, token: canary},
		{name: "500", status: 500, id: 1, token: canary, wantErr: true},
		{name: "403", status: 403, id: 1, token: canary, wantErr: true},
		{name: "401 bad token", id: 1, token: "wrong", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := giteatest.New(t, canary, "o/r")
			_, pub, _ := forge.GenerateKey("k")
			if _, err := newGitea(srv.URL).CreateDeployKey(context.Background(), "o", "r", "k", pub, false); err != nil {
				t.Fatal(err)
			}
			srv.FailDelete(tt.status)
			g := &forge.Gitea{BaseURL: srv.URL, Token: resource.NewSecret(tt.token)}
			err := g.DeleteDeployKey(context.Background(), "o", "r", tt.id)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			assertNoLeak(t, err, "wrong")
			dels := srv.CallsWith(http.MethodDelete)
			if len(dels) != 1 || dels[0].Path != fmt.Sprintf("/api/v1/repos/o/r/keys/%d", tt.id) {
				t.Errorf("DELETE calls = %+v", dels)
			}
			if tt.name == "204" && (dels[0].Status != 204 || len(srv.Keys("o/r")) != 0) {
				t.Errorf("key not deleted: %+v", srv.Keys("o/r"))
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	priv, line, err := forge.GenerateKey("bottle-demo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "ssh-ed25519 AAAA") || !strings.HasSuffix(line, " bottle-demo") || strings.Contains(line, "\n") {
		t.Errorf("authorized key line = %q", line)
	}
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || comment != "bottle-demo" || len(rest) != 0 {
		t.Fatalf("ParseAuthorizedKey: %v comment=%q rest=%q", err, comment, rest)
	}
	raw, err := ssh.ParseRawPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := raw.(*ed25519.PrivateKey)
	if !ok {
		t.Fatalf("private key type %T", raw)
	}
	signer, err := ssh.NewSignerFromKey(*k)
	if err != nil {
		t.Fatal(err)
	}
	if string(signer.PublicKey().Marshal()) != string(pub.Marshal()) {
		t.Error("private and public halves do not match")
	}
	priv2, line2, _ := forge.GenerateKey("bottle-demo")
	if string(priv2) == string(priv) || line2 == line {
		t.Error("GenerateKey is not fresh")
	}
	if _, _, err := forge.GenerateKey("a\nb"); err == nil {
		t.Error("multi-line comment accepted")
	}
}

func TestSplitRepo(t *testing.T) {
	tests := []struct {
		in, owner, repo string
		ok              bool
	}{
		{"/o/r.git", "o", "r", true},
		{"/o/r", "o", "r", true},
		{"o/r.git", "o", "r", true},
		{"/r.git", "", "", false},
		{"/a/b/c.git", "", "", false},
		{"", "", "", false},
		{"/", "", "", false},
		{"//r.git", "", "", false},
		{"/o/.git", "", "", false},
		{"/../r", "", "", false},
	}
	for _, tt := range tests {
		o, r, err := forge.SplitRepo(tt.in)
		if (err == nil) != tt.ok || o != tt.owner || r != tt.repo {
			t.Errorf("SplitRepo(%q) = %q, %q, %v", tt.in, o, r, err)
		}
	}
}
