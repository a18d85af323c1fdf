package forge

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bottleform/bottleform/resource"
)

// Gitea is a client for Gitea's deploy-key API.
type Gitea struct {
	// BaseURL is the server root, e.g. "https://git.example.com"; the
	// "/api/v1" prefix is added here.
	BaseURL string
	// Token is a Gitea API token with write access to the repositories.
	Token resource.Secret
	// Client is the HTTP client; nil means a client with a 30s timeout
	// that does not follow redirects.
	Client *http.Client
}

// maxBodyQuote is how many bytes of a response body an error quotes.
const maxBodyQuote = 200

// maxBodyRead bounds how much of a response body is read at all.
const maxBodyRead = 1 << 20

var defaultClient = &http.Client{
	Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// CollisionError is returned by CreateDeployKey when Gitea answers 422:
// a key with that title or that key material already exists on the
// repository (or Gitea rejected the key; Message says which).
type CollisionError struct {
	Repo    string // "owner/repo"
	Title   string
	Message string // Gitea's message, token-redacted; may be empty
}

func (e *CollisionError) Error() string {
	s := fmt.Sprintf("gitea: create deploy key %q on %s: rejected with 422 (title or key already in use)", e.Title, e.Repo)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// APIError is an unexpected HTTP status from Gitea.
type APIError struct {
	Op     string // "create deploy key", "delete deploy key"
	Repo   string // "owner/repo"
	Status int
	Body   string // first 200 bytes of the body, token redacted
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("gitea: %s on %s: HTTP %d %s", e.Op, e.Repo, e.Status, http.StatusText(e.Status))
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		s += " (check the token and its write access to the repository)"
	case http.StatusNotFound:
		s += " (repository not found or not visible to the token)"
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

type createKeyOption struct {
	Title    string `json:"title"`
	Key      string `json:"key"`
	ReadOnly bool   `json:"read_only"`
}

type deployKey struct {
	ID int64 `json:"id"`
}

type apiMessage struct {
	Message string `json:"message"`
}

// CreateDeployKey registers publicKey (an authorized_keys line) as a deploy
// key titled title on owner/repo and returns Gitea's key id.
func (g *Gitea) CreateDeployKey(ctx context.Context, owner, repo, title string, publicKey string, readOnly bool) (int64, error) {
	const op = "create deploy key"
	rp, err := g.repoPath(op, owner, repo)
	if err != nil {
		return 0, err
	}
	if title == "" || strings.TrimSpace(publicKey) == "" {
		return 0, fmt.Errorf("gitea: %s on %s/%s: title and key are required", op, owner, repo)
	}
	body, err := json.Marshal(createKeyOption{Title: title, Key: strings.TrimSpace(publicKey), ReadOnly: readOnly})
	if err != nil {
		return 0, fmt.Errorf("gitea: %s on %s/%s: %w", op, owner, repo, err)
	}
	status, respBody, err := g.do(ctx, http.MethodPost, rp+"/keys", body)
	if err != nil {
		return 0, fmt.Errorf("gitea: %s on %s/%s: %w", op, owner, repo, err)
	}
	switch {
	case status == http.StatusCreated:
		var k deployKey
		if err := json.Unmarshal(respBody, &k); err != nil {
			return 0, fmt.Errorf("gitea: %s on %s/%s: decoding 201 response: %w", op, owner, repo, err)
		}
		if k.ID <= 0 {
			return 0, fmt.Errorf("gitea: %s on %s/%s: 201 response has no key id", op, owner, repo)
		}
		return k.ID, nil
	case status == http.StatusUnprocessableEntity:
		var m apiMessage
		_ = json.Unmarshal(respBody, &m)
		return 0, &CollisionError{Repo: owner + "/" + repo, Title: title, Message: g.quote([]byte(m.Message))}
	default:
		return 0, &APIError{Op: op, Repo: owner + "/" + repo, Status: status, Body: g.quote(respBody)}
	}
}

// listPageSize is the page size ListDeployKeys asks for (Gitea's default
// maximum is 50).
const listPageSize = 50

// DeployKey is a deploy key as Gitea lists it (the fields bottleform uses).
type DeployKey struct {
	ID    int64  `json:"id"`
	Title string `json:"title"`
	Key   string `json:"key"`
}

// ListDeployKeys returns every deploy key of owner/repo, page by page.
func (g *Gitea) ListDeployKeys(ctx context.Context, owner, repo string) ([]DeployKey, error) {
	const op = "list deploy keys"
	rp, err := g.repoPath(op, owner, repo)
	if err != nil {
		return nil, err
	}
	var out []DeployKey
	for page := 1; page <= 1000; page++ {
		path := fmt.Sprintf("%s/keys?page=%d&limit=%d", rp, page, listPageSize)
		status, body, err := g.do(ctx, http.MethodGet, path, nil)
		if err != nil {
			return nil, fmt.Errorf("gitea: %s on %s/%s: %w", op, owner, repo, err)
		}
		if status != http.StatusOK {
			return nil, &APIError{Op: op, Repo: owner + "/" + repo, Status: status, Body: g.quote(body)}
		}
		var keys []DeployKey
		if err := json.Unmarshal(body, &keys); err != nil {
			return nil, fmt.Errorf("gitea: %s on %s/%s: decoding the response: %w", op, owner, repo, err)
		}
		out = append(out, keys...)
		if len(keys) < listPageSize {
			return out, nil
		}
	}
	return nil, fmt.Errorf("gitea: %s on %s/%s: more than 1000 pages", op, owner, repo)
}

// DeleteDeployKey revokes deploy key id on owner/repo. A key that is
// already gone (404) counts as deleted.
func (g *Gitea) DeleteDeployKey(ctx context.Context, owner, repo string, id int64) error {
	const op = "delete deploy key"
	rp, err := g.repoPath(op, owner, repo)
	if err != nil {
		return err
	}
	if id <= 0 {
		return fmt.Errorf("gitea: %s on %s/%s: invalid key id %d", op, owner, repo, id)
	}
	status, respBody, err := g.do(ctx, http.MethodDelete, rp+"/keys/"+strconv.FormatInt(id, 10), nil)
	if err != nil {
		return fmt.Errorf("gitea: %s %d on %s/%s: %w", op, id, owner, repo, err)
	}
	if status >= 200 && status < 300 || status == http.StatusNotFound {
		return nil
	}
	return &APIError{Op: op + " " + strconv.FormatInt(id, 10), Repo: owner + "/" + repo, Status: status, Body: g.quote(respBody)}
}

// repoPath validates owner and repo and returns the escaped API path of
// the repository, without the base URL.
func (g *Gitea) repoPath(op, owner, repo string) (string, error) {
	for _, s := range []string{owner, repo} {
		if s == "" || s == "." || s == ".." {
			return "", fmt.Errorf("gitea: %s: invalid repository %q/%q", op, owner, repo)
		}
	}
	if g.Token.Empty() {
		return "", fmt.Errorf("gitea: %s on %s/%s: no API token", op, owner, repo)
	}
	if g.BaseURL == "" {
		return "", fmt.Errorf("gitea: %s on %s/%s: no API base URL", op, owner, repo)
	}
	return "/api/v1/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(repo), nil
}

// do sends one request and returns the status and up to maxBodyRead bytes
// of the body. Transport errors never carry the token: it is only in a
// header, which net/http does not quote in errors.
func (g *Gitea) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	base, err := url.Parse(strings.TrimRight(g.BaseURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return 0, nil, errors.New("invalid API base URL")
	}
	if base.User != nil {
		return 0, nil, errors.New("API base URL must not carry credentials")
	}
	u := base.String() + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "token "+g.Token.Reveal())
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := g.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, g.scrub(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyRead))
	if err != nil {
		return 0, nil, g.scrub(err)
	}
	return resp.StatusCode, b, nil
}

// scrub makes sure an error's text cannot carry the token.
func (g *Gitea) scrub(err error) error {
	if t := g.Token.Reveal(); t != "" && strings.Contains(err.Error(), t) {
		return errors.New(strings.ReplaceAll(err.Error(), t, "(sensitive)"))
	}
	return err
}

// quote returns the first maxBodyQuote bytes of b, redacted of the token
// (redaction first, so a token straddling the cut cannot survive).
func (g *Gitea) quote(b []byte) string {
	s := string(b)
	if t := g.Token.Reveal(); t != "" {
		s = strings.ReplaceAll(s, t, "(sensitive)")
	}
	if len(s) > maxBodyQuote {
		s = s[:maxBodyQuote]
	}
	return strings.TrimSpace(strings.ToValidUTF8(s, ""))
}

// GenerateKey makes a fresh ed25519 key pair. privatePEM is the private key
// in OpenSSH PEM format ("-----BEGIN OPENSSH PRIVATE KEY-----");
// authorizedKey is the public half as one authorized_keys line
// "ssh-ed25519 AAAA... comment" without a trailing newline.
func GenerateKey(comment string) (privatePEM []byte, authorizedKey string, err error) {
	if strings.ContainsAny(comment, "\r\n") {
		return nil, "", errors.New("forge: key comment must be one line")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("forge: generating ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, "", fmt.Errorf("forge: encoding private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, "", fmt.Errorf("forge: encoding public key: %w", err)
	}
	line := strings.TrimRight(string(ssh.MarshalAuthorizedKey(sshPub)), "\n")
	if comment != "" {
		line += " " + comment
	}
	return pem.EncodeToMemory(block), line, nil
}

// SplitRepo splits an upstream URL path "/owner/repo.git" or "/owner/repo"
// into owner and repo. Any other number of segments is an error.
func SplitRepo(path string) (owner, repo string, err error) {
	p := strings.TrimPrefix(path, "/")
	p = strings.TrimSuffix(p, ".git")
	parts := strings.Split(p, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" ||
		parts[0] == "." || parts[0] == ".." || parts[1] == "." || parts[1] == ".." {
		return "", "", fmt.Errorf("forge: upstream path %q is not /owner/repo[.git]", path)
	}
	return parts[0], parts[1], nil
}
