// Command testgitd is the SSH git server the end-to-end tests run as a
// bottle's upstream (internal/gitsshd in a container): the real
// git-upload-pack and git-receive-pack on bare repositories under -root,
// to the keys listed in -authorized (an authorized_keys file, read again
// on every login so a test can add a key minted at apply). It logs one
// line per login and per command to stdout.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"os"

	"golang.org/x/crypto/ssh"

	"github.com/bottleform/bottleform/internal/gitsshd"
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
	srv := &gitsshd.Server{
		Root:   *root,
		Config: cfg,
		// The repositories were copied in by a test, under another owner:
		// tell git they are safe.
		Env: append(os.Environ(), "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*"),
		Log: func(line string) { log.Print(line) },
	}
	log.Printf("testgitd ready on %s", ln.Addr())
	log.Fatal(srv.Serve(ln))
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
