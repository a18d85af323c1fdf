package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/bottleform/bottleform/resource"
)

// Host is what reading a host credential may use: the host's environment,
// its files and its clock.
type Host struct {
	LookupEnv func(string) (string, bool)
	ReadFile  func(string) ([]byte, error)
	Now       func() time.Time
}

// CodexAuth is what forward_host_credentials takes from the host's codex
// login: the access token (for the gateway) and what the agent's
// placeholder keeps of it.
type CodexAuth struct {
	// Path is the file it was read from.
	Path        string
	AccessToken resource.Secret
	// Expires is the access token's exp.
	Expires time.Time
	// AccountID is the ChatGPT account the token is for.
	AccountID string
}

// codexAccountClaim is the JWT claim under which OpenAI's tokens carry the
// ChatGPT account (chatgpt_account_id).
const codexAccountClaim = "https://api.openai.com/auth"

// CodexAuthPath is where codex keeps its login on the host:
// $CODEX_HOME/auth.json, else ~/.codex/auth.json.
func CodexAuthPath(h Host) (string, error) {
	if d, ok := h.LookupEnv("CODEX_HOME"); ok && d != "" {
		return filepath.Join(d, "auth.json"), nil
	}
	home, ok := h.LookupEnv("HOME")
	if !ok || home == "" {
		return "", errors.New("HOME is not set, so the host's ~/.codex/auth.json cannot be found; set HOME (or CODEX_HOME) and apply again")
	}
	return filepath.Join(home, ".codex", "auth.json"), nil
}

// ReadCodexAuth reads the host's codex login (CodexAuthPath) for
// forward_host_credentials. It must be a ChatGPT sign-in whose access
// token has not expired; there is no refresh. Errors name the file and
// the fix, and never hold token material.
func ReadCodexAuth(h Host) (CodexAuth, error) {
	path, err := CodexAuthPath(h)
	if err != nil {
		return CodexAuth{}, err
	}
	data, err := h.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return CodexAuth{}, fmt.Errorf("%s does not exist: sign in to codex on this machine with `codex login` (ChatGPT), or set forward_host_credentials = false", path)
	}
	if err != nil {
		return CodexAuth{}, fmt.Errorf("read %s: %w", path, err)
	}
	var f struct {
		AuthMode *string `json:"auth_mode"`
		APIKey   *string `json:"OPENAI_API_KEY"`
		Tokens   *struct {
			AccessToken *string `json:"access_token"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return CodexAuth{}, fmt.Errorf("%s is not a codex login (%s): sign in again with `codex login` to rewrite it", path, jsonProblem(err))
	}
	mode := ""
	if f.AuthMode != nil {
		mode = strings.ToLower(*f.AuthMode)
	}
	switch {
	case mode == "apikey":
		return CodexAuth{}, fmt.Errorf("%s is an API-key login (auth_mode is %q), and forward_host_credentials forwards a ChatGPT sign-in only: sign in with `codex login` (ChatGPT), or give the key to the gateway with an egress route's auth block", path, *f.AuthMode)
	case mode != "chatgpt" && f.APIKey != nil && *f.APIKey != "":
		return CodexAuth{}, fmt.Errorf("%s is an API-key login (OPENAI_API_KEY is set in it), and forward_host_credentials forwards a ChatGPT sign-in only: sign in with `codex login` (ChatGPT), or give the key to the gateway with an egress route's auth block", path)
	case f.Tokens == nil || f.Tokens.AccessToken == nil || *f.Tokens.AccessToken == "":
		return CodexAuth{}, fmt.Errorf("%s holds no ChatGPT sign-in (tokens.access_token is missing): sign in with `codex login` (ChatGPT) and apply again", path)
	}
	tok := *f.Tokens.AccessToken
	claims, err := parseCodexJWT(tok)
	if err != nil {
		return CodexAuth{}, fmt.Errorf("the access token in %s %v: sign in again with `codex login` and apply again", path, err)
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	if !claims.exp.After(now()) {
		return CodexAuth{}, fmt.Errorf("the access token in %s expired at %s, and bottleform does not refresh it: run codex on this machine (which refreshes it) or `codex login`, then apply again", path, claims.exp.UTC().Format(time.RFC3339))
	}
	if claims.accountID == "" {
		return CodexAuth{}, fmt.Errorf("the access token in %s names no ChatGPT account (claim %s, chatgpt_account_id): sign in again with `codex login` and apply again", path, codexAccountClaim)
	}
	return CodexAuth{Path: path, AccessToken: resource.NewSecret(tok), Expires: claims.exp, AccountID: claims.accountID}, nil
}

// jsonProblem describes a JSON decoding error by position or field, never
// by the text it failed on (which may be token material).
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("%s is a JSON %s", typ.Field, typ.Value)
	case errors.As(err, &typ):
		return fmt.Sprintf("it is a JSON %s, not an object", typ.Value)
	}
	return "invalid JSON"
}

// codexClaims is what the agent's placeholder keeps of a token.
type codexClaims struct {
	exp       time.Time
	accountID string
}

// parseCodexJWT reads the exp and the ChatGPT account of a JWT without
// checking its signature (the gateway only forwards it). Errors complete
// the phrase "the access token ..." and hold nothing of the token.
func parseCodexJWT(tok string) (codexClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return codexClaims{}, errors.New("is not a JWT (three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return codexClaims{}, errors.New("is not a JWT (its payload is not base64url)")
	}
	var c struct {
		Exp  *json.Number `json:"exp"`
		Auth struct {
			AccountID string `json:"chatgpt_account_id"`
		} `json:"https://api.openai.com/auth"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return codexClaims{}, fmt.Errorf("is not a JWT (its payload: %s)", jsonProblem(err))
	}
	if c.Exp == nil {
		return codexClaims{}, errors.New("has no expiry (exp)")
	}
	f, err := c.Exp.Float64()
	if err != nil || f <= 0 || math.IsInf(f, 0) || f > 1<<40 {
		return codexClaims{}, errors.New("has an expiry (exp) that is not a time")
	}
	return codexClaims{exp: time.Unix(int64(f), 0).UTC(), accountID: c.Auth.AccountID}, nil
}

// placeholderSignature is the third part of a placeholder JWT: plainly not
// a signature ("bottleform placeholder, not signed").
var placeholderSignature = base64.RawURLEncoding.EncodeToString([]byte("bottleform placeholder, not signed"))

// CodexPlaceholderJWT is an unsigned JWT that holds only exp and the
// ChatGPT account: enough for codex to see a sign-in that has not expired
// and for which account, nothing the gateway or OpenAI would accept.
func CodexPlaceholderJWT(exp time.Time, accountID string) string {
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	payload, _ := json.Marshal(map[string]any{
		"exp":             exp.Unix(),
		codexAccountClaim: map[string]string{"chatgpt_account_id": accountID},
	})
	enc := base64.RawURLEncoding
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + placeholderSignature
}

// codexAuthFile is codex's auth.json as the agent gets it.
type codexAuthFile struct {
	APIKey *string `json:"OPENAI_API_KEY"`
	Tokens struct {
		IDToken      string `json:"id_token"`
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		AccountID    string `json:"account_id"`
	} `json:"tokens"`
	LastRefresh string `json:"last_refresh"`
}

// CodexAgentAuth is the agent's ~/.codex/auth.json for the host's access
// token: a ChatGPT sign-in whose id and access tokens are placeholder JWTs
// with the real token's exp and account, the refresh token is Placeholder,
// and last_refresh is now (so codex does not try a refresh, which could
// only fail). It holds nothing of the real token.
func CodexAgentAuth(access resource.Secret, now time.Time) ([]byte, error) {
	c, err := parseCodexJWT(access.Reveal())
	if err != nil {
		return nil, fmt.Errorf("the host's codex access token %v", err)
	}
	var f codexAuthFile
	jwt := CodexPlaceholderJWT(c.exp, c.accountID)
	f.Tokens.IDToken, f.Tokens.AccessToken = jwt, jwt
	f.Tokens.RefreshToken = Placeholder
	f.Tokens.AccountID = c.accountID
	f.LastRefresh = now.UTC().Format(time.RFC3339)
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// codexAgentAuth is the codex File: the placeholder sign-in when the
// bottle forwards the host's; otherwise no file of bottleform's (a sign-in
// the agent made itself, with `codex login` inside, is left alone).
func codexAgentAuth(current []byte, in FileInput) ([]byte, error) {
	if !in.Remove && !Token(in.Spec).IsZero() {
		return CodexAgentAuth(in.Token, in.Now)
	}
	var f codexAuthFile
	if current != nil && json.Unmarshal(current, &f) == nil && f.Tokens.RefreshToken == Placeholder {
		return nil, nil
	}
	return current, nil
}
