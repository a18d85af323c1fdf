package agent

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bottleform/bottleform/resource"
)

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// fakeJWT is a token shaped like OpenAI's: an RS256 header, the claims
// given plus a random jti, and a random "signature".
func fakeJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": randHex(4)})
	c := map[string]any{"jti": randHex(8), "email": "someone@example.com"}
	for k, v := range claims {
		c[k] = v
	}
	p, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	_, _ = rand.Read(sig)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "." + enc.EncodeToString(sig)
}

func accountClaims(exp time.Time, account string) map[string]any {
	return map[string]any{
		"exp":             exp.Unix(),
		codexAccountClaim: map[string]any{"chatgpt_account_id": account, "chatgpt_plan_type": "pro"},
	}
}

// authJSON is a host auth.json of a ChatGPT sign-in.
func authJSON(t *testing.T, access, refresh, id, account string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{
		"OPENAI_API_KEY": nil,
		"tokens":         map[string]any{"access_token": access, "refresh_token": refresh, "id_token": id, "account_id": account},
		"last_refresh":   "2026-11-20T10:00:00Z",
	})
	return string(b)
}

// host is a Host with one file at path, or none when content is empty.
func host(env map[string]string, path, content string) Host {
	return Host{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		ReadFile: func(p string) ([]byte, error) {
			if p == path && content != "" {
				return []byte(content), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		},
		Now: func() time.Time { return testNow },
	}
}

func TestReadCodexAuth(t *testing.T) {
	home := "/home/alice"
	file := filepath.Join(home, ".codex", "auth.json")
	env := map[string]string{"HOME": home}
	future := testNow.Add(72 * time.Hour)
	access := fakeJWT(t, accountClaims(future, "acct-1234"))
	refresh := "rt_" + randHex(16)
	id := fakeJWT(t, accountClaims(testNow.Add(-time.Hour), "acct-1234"))
	good := authJSON(t, access, refresh, id, "acct-1234")
	secrets := []string{access, refresh, id, strings.Split(access, ".")[2], strings.Split(access, ".")[1]}

	tests := []struct {
		name    string
		env     map[string]string
		path    string
		content string
		// wantErr are substrings of the error; nil for success.
		wantErr []string
	}{
		{name: "a ChatGPT sign-in", content: good},
		{name: "auth_mode chatgpt with a stored key", content: `{"auth_mode":"chatgpt","OPENAI_API_KEY":"sk-x","tokens":{"access_token":"` + access + `"}}`},
		{name: "CODEX_HOME", env: map[string]string{"HOME": home, "CODEX_HOME": "/srv/codex"}, path: "/srv/codex/auth.json", content: good},
		{name: "missing", wantErr: []string{file + " does not exist", "codex login", "forward_host_credentials = false"}},
		{name: "missing under CODEX_HOME", env: map[string]string{"HOME": home, "CODEX_HOME": "/srv/codex"}, wantErr: []string{"/srv/codex/auth.json does not exist"}},
		{name: "no HOME", env: map[string]string{}, wantErr: []string{"HOME is not set"}},
		{name: "malformed JSON", content: `{"tokens": {"access_token": "` + access[:20], wantErr: []string{file + " is not a codex login", "invalid JSON", "codex login"}},
		{name: "not an object", content: `["` + access + `"]`, wantErr: []string{file + " is not a codex login", "array"}},
		{name: "a field of the wrong type", content: `{"tokens": {"access_token": 12}}`, wantErr: []string{file, "tokens.access_token is a JSON number"}},
		{name: "API-key mode by OPENAI_API_KEY", content: `{"OPENAI_API_KEY": "sk-proj-` + randHex(8) + `"}`, wantErr: []string{file + " is an API-key login (OPENAI_API_KEY is set in it)", "ChatGPT sign-in only"}},
		{name: "API-key mode by auth_mode", content: `{"auth_mode": "apikey", "tokens": {"access_token": "` + access + `"}}`, wantErr: []string{file + ` is an API-key login (auth_mode is "apikey")`}},
		{name: "no tokens", content: `{"OPENAI_API_KEY": null}`, wantErr: []string{file + " holds no ChatGPT sign-in (tokens.access_token is missing)"}},
		{name: "empty access token", content: `{"tokens": {"access_token": ""}}`, wantErr: []string{"tokens.access_token is missing"}},
		{name: "not a JWT", content: authJSON(t, "opaque-"+randHex(8), refresh, id, "a"), wantErr: []string{"the access token in " + file + " is not a JWT"}},
		{name: "payload not base64", content: authJSON(t, "a.!!!.c", refresh, id, "a"), wantErr: []string{"is not a JWT (its payload is not base64url)"}},
		{name: "no exp", content: authJSON(t, fakeJWT(t, map[string]any{codexAccountClaim: map[string]any{"chatgpt_account_id": "a"}}), refresh, id, "a"), wantErr: []string{"has no expiry (exp)"}},
		{name: "exp not a number", content: authJSON(t, fakeJWT(t, map[string]any{"exp": "soon"}), refresh, id, "a"), wantErr: []string{file, "is not a JWT"}},
		{name: "expired", content: authJSON(t, fakeJWT(t, accountClaims(testNow.Add(-time.Minute), "a")), refresh, id, "a"), wantErr: []string{"the access token in " + file + " expired at 2026-11-27T11:59:00Z", "does not refresh it", "apply again"}},
		{name: "expiring now", content: authJSON(t, fakeJWT(t, accountClaims(testNow, "a")), refresh, id, "a"), wantErr: []string{"expired at 2026-11-27T12:00:00Z"}},
		{name: "no account", content: authJSON(t, fakeJWT(t, map[string]any{"exp": future.Unix()}), refresh, id, ""), wantErr: []string{"names no ChatGPT account"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, path := tt.env, tt.path
			if e == nil {
				e = env
			}
			if path == "" {
				path = file
			}
			got, err := ReadCodexAuth(host(e, path, tt.content))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got.Path != path || !got.Expires.Equal(future.Truncate(time.Second)) || got.AccountID != "acct-1234" || got.AccessToken.Reveal() != access {
					t.Errorf("got path %s, expires %s, account %q, token equal %v", got.Path, got.Expires, got.AccountID, got.AccessToken.Reveal() == access)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one with %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds token material", err)
				}
			}
		})
	}

	// A read error other than a missing file is passed on with the path.
	h := host(env, file, "")
	h.ReadFile = func(string) ([]byte, error) { return nil, fs.ErrPermission }
	if _, err := ReadCodexAuth(h); err == nil || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), file) {
		t.Errorf("unreadable file: %v", err)
	}

	// Through the provider table: codex reads its access token, claude
	// forwards nothing.
	v, err := ReadHostCredential("codex", host(env, file, good))
	if err != nil || v.Reveal() != access {
		t.Errorf("ReadHostCredential(codex) = %v (equal %v)", err, v.Reveal() == access)
	}
	if _, err := ReadHostCredential("claude", host(env, file, good)); err == nil || !strings.Contains(err.Error(), "forwards no host credentials") {
		t.Errorf("ReadHostCredential(claude) = %v", err)
	}
}

// decodeJWT splits a JWT and decodes its header and payload.
func decodeJWT(t *testing.T, tok string) (header, payload map[string]any, sig string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not three parts", tok)
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("part %d of %q: %v", i, tok, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("part %d of %q: %v", i, tok, err)
		}
	}
	return header, payload, parts[2]
}

func TestCodexPlaceholderJWT(t *testing.T) {
	exp := time.Unix(1_900_000_000, 0)
	tok := CodexPlaceholderJWT(exp, "acct-42")
	header, payload, sig := decodeJWT(t, tok)
	if header["alg"] != "none" || header["typ"] != "JWT" || len(header) != 2 {
		t.Errorf("header = %v, want alg none, typ JWT", header)
	}
	want := map[string]any{"exp": float64(1_900_000_000), codexAccountClaim: map[string]any{"chatgpt_account_id": "acct-42"}}
	if b, w := mustJSON(payload), mustJSON(want); b != w {
		t.Errorf("payload = %s, want exactly %s", b, w)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(sig)
	if string(raw) != "bottleform placeholder, not signed" {
		t.Errorf("signature decodes to %q", raw)
	}
	// What bottleform's own reader makes of it: the same exp and account.
	c, err := parseCodexJWT(tok)
	if err != nil || !c.exp.Equal(exp) || c.accountID != "acct-42" {
		t.Errorf("parseCodexJWT = %+v, %v", c, err)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestCodexAgentAuth(t *testing.T) {
	exp := testNow.Add(48 * time.Hour).Truncate(time.Second)
	access := fakeJWT(t, accountClaims(exp, "acct-9"))
	out, err := CodexAgentAuth(resource.NewSecret(access), testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range append(strings.Split(access, "."), access) {
		if strings.Contains(string(out), part) {
			t.Errorf("the agent's auth.json holds part of the real token (%.12s...):\n%s", part, out)
		}
	}
	var f struct {
		APIKey *string `json:"OPENAI_API_KEY"`
		Tokens struct {
			IDToken      string `json:"id_token"`
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
			AccountID    string `json:"account_id"`
		} `json:"tokens"`
		LastRefresh string `json:"last_refresh"`
	}
	if err := json.Unmarshal(out, &f); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if f.APIKey != nil || f.Tokens.RefreshToken != Placeholder || f.Tokens.AccountID != "acct-9" || f.LastRefresh != "2026-11-27T12:00:00Z" {
		t.Errorf("auth.json = %s", out)
	}
	for _, tok := range []string{f.Tokens.IDToken, f.Tokens.AccessToken} {
		_, payload, _ := decodeJWT(t, tok)
		if payload["exp"] != float64(exp.Unix()) {
			t.Errorf("placeholder exp = %v, want the real token's %d", payload["exp"], exp.Unix())
		}
		if a, _ := payload[codexAccountClaim].(map[string]any); a["chatgpt_account_id"] != "acct-9" || len(a) != 1 {
			t.Errorf("placeholder account claim = %v, want only the account id", payload[codexAccountClaim])
		}
		if len(payload) != 2 {
			t.Errorf("placeholder payload = %v, want exp and the account only", payload)
		}
	}
	// Not a JWT: an error that names no part of the value.
	if _, err := CodexAgentAuth(resource.NewSecret("opaque-secret-value"), testNow); err == nil || strings.Contains(err.Error(), "opaque") {
		t.Errorf("CodexAgentAuth(opaque) = %v", err)
	}
}

func TestCodexAuthFile(t *testing.T) {
	exp := testNow.Add(time.Hour)
	access := resource.NewSecret(fakeJWT(t, accountClaims(exp, "acct-1")))
	forwarding := resource.AgentSpec{Provider: "codex", ForwardHostCredentials: true}
	ours, err := CodexAgentAuth(access, testNow)
	if err != nil {
		t.Fatal(err)
	}
	theirs := []byte(`{"tokens":{"access_token":"made-inside","refresh_token":"rt_inside"}}`)
	tests := []struct {
		name    string
		current []byte
		in      FileInput
		want    []byte
	}{
		{"forwarding writes the placeholder", nil, FileInput{Spec: forwarding, Token: access, Now: testNow}, ours},
		{"forwarding replaces a sign-in made inside", theirs, FileInput{Spec: forwarding, Token: access, Now: testNow}, ours},
		{"not forwarding removes the placeholder", ours, FileInput{Spec: resource.AgentSpec{Provider: "codex"}}, nil},
		{"not forwarding keeps a sign-in made inside", theirs, FileInput{Spec: resource.AgentSpec{Provider: "codex"}}, theirs},
		{"not forwarding and no file", nil, FileInput{Spec: resource.AgentSpec{Provider: "codex"}}, nil},
		{"removing the auth removes the placeholder", ours, FileInput{Spec: forwarding, Remove: true}, nil},
		{"removing the auth keeps a sign-in made inside", theirs, FileInput{Spec: forwarding, Remove: true}, theirs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codexAgentAuth(tt.current, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
