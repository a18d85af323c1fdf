// Command testupstream is the TLS upstream of the egress end-to-end test
// (cmd/bottleform/e2e_egress_test.go). It is built by that test, copied
// into a container on a bottle's egress network and never used otherwise.
//
// It serves, over TLS with the certificate it is given, on every name that
// certificate carries:
//
//	/echo...   the request as JSON: method, path, query, Host, protocol,
//	           TLS server name and every header; an upgrade request
//	           (websocket) is answered 101 and then a line of text
//	/sse       server-sent events: "first", then, once the file
//	           FLAGS/<id> exists (?id=<id>), "second"
//	/git/...   git smart HTTP (git http-backend) over the bare repository
//	           GIT/repo.git, made at start with one commit, receive-pack
//	           enabled (so a push is refused by the gateway, not here)
//
// Every request, whatever its path, is appended to the log file as one
// JSON line in the /echo form, so the test can see what arrived.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Request is what /echo answers and what the log records.
type Request struct {
	Time       time.Time           `json:"time"`
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Query      string              `json:"query,omitempty"`
	Host       string              `json:"host"`
	Proto      string              `json:"proto"`
	ServerName string              `json:"server_name"`
	Headers    map[string][]string `json:"headers"`
	// HeaderNames are the header names as they arrived (Go canonicalizes
	// valid names in Headers; these are sorted as received).
	HeaderNames []string `json:"header_names"`
}

func describe(r *http.Request) Request {
	q := Request{
		Time: time.Now().UTC(), Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Host: r.Host, Proto: r.Proto, Headers: map[string][]string{},
	}
	if r.TLS != nil {
		q.ServerName = r.TLS.ServerName
	}
	for k, v := range r.Header {
		q.Headers[k] = v
		q.HeaderNames = append(q.HeaderNames, k)
	}
	sort.Strings(q.HeaderNames)
	return q
}

type server struct {
	logMu sync.Mutex
	logF  *os.File
	flags string
}

func (s *server) record(r *http.Request) {
	b, _ := json.Marshal(describe(r))
	s.logMu.Lock()
	defer s.logMu.Unlock()
	_, _ = s.logF.Write(append(b, '\n'))
}

func (s *server) echo(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "cannot upgrade: "+err.Error(), http.StatusInternalServerError)
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nupgraded\n")
		_ = brw.Flush()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(describe(r))
}

var flagID = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

func (s *server) sse(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if !flagID.MatchString(id) {
		http.Error(w, "want ?id=[a-z0-9-]+", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	fmt.Fprint(w, "data: first\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(s.flags, id)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprint(w, "data: timeout\n\n")
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Fprint(w, "data: second\n\n")
	_ = rc.Flush()
}

// makeRepo creates dir/repo.git, a bare repository with one commit whose
// tree holds README.
func makeRepo(dir string) error {
	work, err := os.MkdirTemp("", "work-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("served by testupstream\n"), 0o644); err != nil {
		return err
	}
	git := func(dir string, args ...string) error {
		cmd := exec.Command("git", append([]string{"-c", "user.name=upstream", "-c", "user.email=upstream@example.test", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	bare := filepath.Join(dir, "repo.git")
	for _, step := range [][]string{
		{work, "init", "-q"},
		{work, "add", "README"},
		{work, "commit", "-q", "-m", "initial commit"},
		{dir, "clone", "-q", "--bare", work, bare},
		{bare, "config", "http.receivepack", "true"},
	} {
		if err := git(step[0], step[1:]...); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	addr := flag.String("addr", ":443", "listen address")
	cert := flag.String("cert", "/srv/cert.pem", "certificate chain (PEM)")
	key := flag.String("key", "/srv/key.pem", "private key (PEM)")
	logPath := flag.String("log", "/srv/requests.jsonl", "request log (one JSON line per request)")
	gitRoot := flag.String("git", "/srv/git", "directory for repo.git")
	flags := flag.String("flags", "/srv/flags", "directory of SSE continue flags")
	flag.Parse()

	for _, d := range []string{*gitRoot, *flags} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	if err := makeRepo(*gitRoot); err != nil {
		log.Fatal(err)
	}
	lf, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	s := &server{logF: lf, flags: *flags}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", s.echo)
	mux.HandleFunc("/echo/", s.echo)
	mux.HandleFunc("/sse", s.sse)
	mux.Handle("/git/", &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Root: "/git",
		Env:  []string{"GIT_PROJECT_ROOT=" + *gitRoot, "GIT_HTTP_EXPORT_ALL=1"},
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 30 * time.Second}
	// "ready" is printed once the listener is up, for the test to wait on.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("testupstream ready on", ln.Addr())
	log.Fatal(srv.ServeTLS(ln, *cert, *key))
}
