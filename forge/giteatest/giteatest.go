// Package giteatest is an in-memory fake of the two Gitea deploy-key
// endpoints bottleform uses, served by httptest on loopback:
//
//	POST   /api/v1/repos/{owner}/{repo}/keys       201 DeployKey | 401 | 404 | 422
//	DELETE /api/v1/repos/{owner}/{repo}/keys/{id}  204 | 401 | 404
//
// It records every call and can inject failures. Everything else is 404.
package giteatest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// DeployKey is Gitea's DeployKey object (the fields the fake fills).
type DeployKey struct {
	ID          int64     `json:"id"`
	KeyID       int64     `json:"key_id"`
	Key         string    `json:"key"`
	URL         string    `json:"url"`
	Title       string    `json:"title"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
	ReadOnly    bool      `json:"read_only"`
}

// Call is one recorded request.
type Call struct {
	Method string
	Path   string // escaped request path
	// Auth is the raw Authorization header (test tokens only).
	Auth string
	Body []byte
	// Status is what the fake answered.
	Status int
}

// Server is the fake. Create it with New.
type Server struct {
	*httptest.Server
	token string

	mu         sync.Mutex
	repos      map[string][]DeployKey // "owner/repo" -> keys
	nextID     int64
	calls      []Call
	posts      int
	failPost   map[int]int // 1-based POST number -> status
	failDelete int         // status for every DELETE, 0 = none
}

// New starts a fake on loopback that accepts "Authorization: token <token>"
// (and "Bearer <token>") and knows the repositories given as "owner/repo".
// It is closed when the test ends.
func New(tb testing.TB, token string, repos ...string) *Server {
	tb.Helper()
	s := &Server{token: token, repos: map[string][]DeployKey{}, failPost: map[int]int{}}
	for _, r := range repos {
		s.repos[r] = nil
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// AddRepo makes owner/repo known.
func (s *Server) AddRepo(fullName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.repos[fullName]; !ok {
		s.repos[fullName] = nil
	}
}

// FailPost makes the nth POST (1-based, counting every POST) answer status.
func (s *Server) FailPost(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPost[n] = status
}

// FailDelete makes every DELETE answer status (0 restores normal behaviour).
func (s *Server) FailDelete(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failDelete = status
}

// Calls returns a copy of the recorded calls, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsWith returns the recorded calls with the given method.
func (s *Server) CallsWith(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Keys returns the deploy keys currently on owner/repo.
func (s *Server) Keys(fullName string) []DeployKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DeployKey(nil), s.repos[fullName]...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Call{Method: r.Method, Path: r.URL.EscapedPath(), Auth: r.Header.Get("Authorization"), Body: body}
	c.Status = s.handle(w, r, body)
	s.calls = append(s.calls, c)
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) int {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
	return status
}

// apiError is Gitea's error body.
type apiError struct {
	Message string   `json:"message"`
	URL     string   `json:"url"`
	Errors  []string `json:"errors,omitempty"`
}

func (s *Server) fail(w http.ResponseWriter, status int, msg string) int {
	return s.writeJSON(w, status, apiError{Message: msg, URL: s.URL + "/api/swagger"})
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, body []byte) int {
	// Split the escaped path so an escaped "/" inside a segment stays put.
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if len(segs) < 6 || segs[0] != "api" || segs[1] != "v1" || segs[2] != "repos" || segs[5] != "keys" || len(segs) > 7 {
		return s.fail(w, http.StatusNotFound, "not found")
	}
	owner, err1 := url.PathUnescape(segs[3])
	repo, err2 := url.PathUnescape(segs[4])
	if err1 != nil || err2 != nil {
		return s.fail(w, http.StatusNotFound, "not found")
	}
	if !s.authorized(r.Header.Get("Authorization")) {
		return s.fail(w, http.StatusUnauthorized, "token is required")
	}
	full := owner + "/" + repo
	switch {
	case len(segs) == 6 && r.Method == http.MethodPost:
		s.posts++
		if st := s.failPost[s.posts]; st != 0 {
			return s.fail(w, st, "injected failure")
		}
		return s.create(w, full, body)
	case len(segs) == 6 && r.Method == http.MethodGet:
		return s.list(w, r, full)
	case len(segs) == 7 && r.Method == http.MethodDelete:
		if s.failDelete != 0 {
			return s.fail(w, s.failDelete, "injected failure")
		}
		return s.delete(w, full, segs[6])
	case len(segs) == 6 || len(segs) == 7:
		return s.fail(w, http.StatusMethodNotAllowed, "method not allowed")
	}
	return s.fail(w, http.StatusNotFound, "not found")
}

// list answers GET /repos/{owner}/{repo}/keys with Gitea's paging:
// page (1-based, default 1) and limit (default and maximum 50).
func (s *Server) list(w http.ResponseWriter, r *http.Request, full string) int {
	keys, ok := s.repos[full]
	if !ok {
		return s.fail(w, http.StatusNotFound, "The target couldn't be found.")
	}
	page, limit := 1, 50
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && v > 0 && v < limit {
		limit = v
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(keys)))
	from := min((page-1)*limit, len(keys))
	to := min(from+limit, len(keys))
	return s.writeJSON(w, http.StatusOK, append([]DeployKey{}, keys[from:to]...))
}

func (s *Server) authorized(h string) bool {
	if s.token == "" {
		return false
	}
	return h == "token "+s.token || h == "Bearer "+s.token
}

func (s *Server) create(w http.ResponseWriter, full string, body []byte) int {
	keys, ok := s.repos[full]
	if !ok {
		return s.fail(w, http.StatusNotFound, "The target couldn't be found.")
	}
	var opt struct {
		Title    *string `json:"title"`
		Key      *string `json:"key"`
		ReadOnly bool    `json:"read_only"`
	}
	if err := json.Unmarshal(body, &opt); err != nil {
		return s.fail(w, http.StatusUnprocessableEntity, "invalid JSON: "+err.Error())
	}
	var missing []string
	if opt.Title == nil || *opt.Title == "" {
		missing = append(missing, "[Title]: Required")
	}
	if opt.Key == nil || *opt.Key == "" {
		missing = append(missing, "[Key]: Required")
	}
	if len(missing) > 0 {
		return s.writeJSON(w, http.StatusUnprocessableEntity, apiError{Message: strings.Join(missing, ", "), URL: s.URL + "/api/swagger", Errors: missing})
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*opt.Key))
	if err != nil {
		return s.fail(w, http.StatusUnprocessableEntity, "Invalid key content: "+err.Error())
	}
	material := string(ssh.MarshalAuthorizedKey(pub))
	for _, rs := range s.repos {
		for _, k := range rs {
			if k.Key == strings.TrimSpace(material) {
				return s.fail(w, http.StatusUnprocessableEntity, "Key content has been used as non-deploy key")
			}
		}
	}
	for _, k := range keys {
		if k.Title == *opt.Title {
			return s.fail(w, http.StatusUnprocessableEntity, "A key with the same name already exists")
		}
	}
	s.nextID++
	k := DeployKey{
		ID:          s.nextID,
		KeyID:       s.nextID,
		Key:         strings.TrimSpace(material),
		URL:         fmt.Sprintf("%s/api/v1/repos/%s/keys/%d", s.URL, full, s.nextID),
		Title:       *opt.Title,
		Fingerprint: ssh.FingerprintSHA256(pub),
		CreatedAt:   time.Now().UTC().Truncate(time.Second),
		ReadOnly:    opt.ReadOnly,
	}
	s.repos[full] = append(keys, k)
	return s.writeJSON(w, http.StatusCreated, k)
}

func (s *Server) delete(w http.ResponseWriter, full, idSeg string) int {
	keys, ok := s.repos[full]
	if !ok {
		return s.fail(w, http.StatusNotFound, "The target couldn't be found.")
	}
	id, err := strconv.ParseInt(idSeg, 10, 64)
	if err != nil {
		return s.fail(w, http.StatusNotFound, "not found")
	}
	for i, k := range keys {
		if k.ID == id {
			s.repos[full] = append(keys[:i:i], keys[i+1:]...)
			w.WriteHeader(http.StatusNoContent)
			return http.StatusNoContent
		}
	}
	return s.fail(w, http.StatusNotFound, "The target couldn't be found.")
}
