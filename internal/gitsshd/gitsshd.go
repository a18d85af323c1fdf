// Package gitsshd is the SSH git server bottleform's tests run as an
// upstream: golang.org/x/crypto/ssh serving the real git-upload-pack and
// git-receive-pack on the bare repositories under Root, for "exec"
// requests of the form `git-upload-pack '/path'`, with GIT_PROTOCOL passed
// through from an "env" request as the real sshd does for git.
package gitsshd

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
)

// Server serves git over SSH. Set the fields, then call Serve.
type Server struct {
	// Root holds the bare repositories; a request's path is taken under it
	// and may not contain "..".
	Root string
	// Config authenticates clients and holds the host key.
	Config *ssh.ServerConfig
	// Env is git's environment (nil: this process's).
	Env []string
	// Log, if set, gets one line per command served.
	Log func(line string)

	conns atomic.Int32
	mu    sync.Mutex
	execs []string
}

// KeyIs authorizes the user "git" with the one key k.
func KeyIs(k ssh.PublicKey) func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
	return func(c ssh.ConnMetadata, got ssh.PublicKey) (*ssh.Permissions, error) {
		if c.User() == "git" && bytes.Equal(got.Marshal(), k.Marshal()) {
			return nil, nil
		}
		return nil, errUnauthorized
	}
}

type unauthorized struct{}

func (unauthorized) Error() string { return "unauthorized key" }

var errUnauthorized error = unauthorized{}

// Serve accepts connections on ln until it is closed.
func (s *Server) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		s.conns.Add(1)
		go s.serveConn(c)
	}
}

// Conns is how many TCP connections were accepted.
func (s *Server) Conns() int32 { return s.conns.Load() }

// Execs lists the commands served, as "<service> <path> GIT_PROTOCOL=<v>".
func (s *Server) Execs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.execs...)
}

func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, s.Config)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go s.session(ch, creqs)
	}
}

func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	var protocol string
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			ok := ssh.Unmarshal(req.Payload, &kv) == nil && kv.Name == "GIT_PROTOCOL"
			if ok {
				protocol = kv.Value
			}
			req.Reply(ok, nil)
		case "exec":
			var ex struct{ Command string }
			_ = ssh.Unmarshal(req.Payload, &ex)
			svc, arg, _ := strings.Cut(ex.Command, " ")
			path := strings.Trim(arg, "'")
			if (svc != "git-upload-pack" && svc != "git-receive-pack") || strings.Contains(path, "..") {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			line := svc + " " + path + " GIT_PROTOCOL=" + protocol
			s.mu.Lock()
			s.execs = append(s.execs, line)
			s.mu.Unlock()
			if s.Log != nil {
				s.Log("exec " + line)
			}
			go s.run(ch, svc, path, protocol)
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

func (s *Server) run(ch ssh.Channel, svc, path, protocol string) {
	env := s.Env
	if env == nil {
		env = os.Environ()
	}
	env = append([]string(nil), env...)
	if protocol != "" {
		env = append(env, "GIT_PROTOCOL="+protocol)
	}
	cmd := exec.Command("git", strings.TrimPrefix(svc, "git-"), filepath.Join(s.Root, path))
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
	stdin, _ := cmd.StdinPipe()
	go func() { io.Copy(stdin, ch); stdin.Close() }()
	code := 0
	if err := cmd.Run(); err != nil {
		code = 1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
	ch.Close()
}
