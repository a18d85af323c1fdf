// Command testgitd is the SSH git server the end-to-end tests run as a
// bottle's upstream: golang.org/x/crypto/ssh serving the real
// git-upload-pack and git-receive-pack on bare repositories under -root,
// to the keys listed in -authorized (an authorized_keys file, read again
// on every login so a test can add a key minted at apply). It logs one
// line per login and per command to stdout.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

func main() {
	listen := flag.String("listen", ":22", "address to listen on")
	root := flag.String("root", "/srv/repos", "directory of the bare repositories")
	hostKey := flag.String("host-key", "/srv/host_key", "the host's private key (PEM)")
	authorized := flag.String("authorized", "/srv/authorized_keys", "authorized_keys file, read on every login")
	flag.Parse()
	log.SetFlags(0)
	log.SetOutput(os.Stdout)

	pem, err := os.ReadFile(*hostKey)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		log.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == "git" && isAuthorized(*authorized, k) {
				log.Printf("login %s key %s", c.User(), ssh.FingerprintSHA256(k))
				return nil, nil
			}
			log.Printf("refused %s key %s", c.User(), ssh.FingerprintSHA256(k))
			return nil, fmt.Errorf("unauthorized")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("testgitd ready on %s", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, cfg, *root)
	}
}

func isAuthorized(file string, k ssh.PublicKey) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for len(data) > 0 {
		pk, _, _, rest, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			return false
		}
		if bytes.Equal(pk.Marshal(), k.Marshal()) {
			return true
		}
		data = rest
	}
	return false
}

func serve(c net.Conn, cfg *ssh.ServerConfig, root string) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
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
		go session(ch, creqs, root)
	}
}

func session(ch ssh.Channel, reqs <-chan *ssh.Request, root string) {
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
			log.Printf("exec %s %s", svc, path)
			go func() {
				cmd := exec.Command("git", strings.TrimPrefix(svc, "git-"), filepath.Join(root, path))
				// The repositories were copied in by a test, under another
				// owner: tell git they are safe.
				cmd.Env = append(os.Environ(), "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*")
				if protocol != "" {
					cmd.Env = append(cmd.Env, "GIT_PROTOCOL="+protocol)
				}
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
			}()
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}
