package gitgate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// The environment variables through which the gate hands the SSH transport
// (SSHMain) what it needs. They hold the pinned host key (public) and the
// path of the private key, never the private key itself.
const (
	// HostKeyEnv holds the upstream's pinned host key in authorized_keys
	// form ("TYPE BASE64 [comment]"). Empty or unset: SSHMain refuses.
	HostKeyEnv = "BOTTLEFORM_GATE_HOST_KEY"
	// KeyFileEnv holds the path of the private key SSHMain authenticates
	// with (unencrypted, OpenSSH or PEM form).
	KeyFileEnv = "BOTTLEFORM_GATE_KEY_FILE"
	// UpstreamEnv holds, in the pre-receive hook's environment, the
	// ssh:// URL accepted refs are pushed to. Unset: no push-through.
	UpstreamEnv = "BOTTLEFORM_GATE_UPSTREAM"
)

// SSHTimeout bounds SSHMain's TCP connect and SSH handshake.
const SSHTimeout = 30 * time.Second

// sshArgs is what git passed to its ssh program.
type sshArgs struct {
	user, host, port, network, command string
}

// parseSSHArgs parses the OpenSSH-style command line git runs its ssh
// program with when GIT_SSH_VARIANT=ssh:
//
//	[-o SendEnv=GIT_PROTOCOL] [-p PORT] [-4|-6] [--] [user@]host COMMAND...
//
// The command words are joined with spaces, as OpenSSH does.
func parseSSHArgs(args []string) (sshArgs, error) {
	a := sshArgs{port: "22", network: "tcp"}
	i := 0
	for ; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			i++
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			break
		}
		opt, val := arg[:2], arg[2:]
		switch opt {
		case "-p", "-o", "-l":
			if val == "" {
				if i+1 >= len(args) {
					return a, fmt.Errorf("option %s needs a value", opt)
				}
				i++
				val = args[i]
			}
			switch opt {
			case "-p":
				n, err := strconv.Atoi(val)
				if err != nil || n < 1 || n > 65535 {
					return a, fmt.Errorf("bad port %q", val)
				}
				a.port = strconv.Itoa(n)
			case "-l":
				a.user = val
			}
			// -o: git passes only SendEnv=GIT_PROTOCOL, which SSHMain
			// honours anyway; other options are ignored.
		case "-4":
			a.network = "tcp4"
		case "-6":
			a.network = "tcp6"
		default:
			return a, fmt.Errorf("unsupported option %q", arg)
		}
	}
	if i >= len(args) {
		return a, errors.New("no destination host")
	}
	dest := args[i]
	if u, h, ok := strings.Cut(dest, "@"); ok {
		a.user, dest = u, h
	}
	a.host = strings.TrimSuffix(strings.TrimPrefix(dest, "["), "]")
	if a.host == "" || strings.HasPrefix(a.host, "-") {
		return a, fmt.Errorf("bad destination host %q", args[i])
	}
	if a.user == "" {
		return a, fmt.Errorf("no user in destination %q (want user@host)", args[i])
	}
	a.command = strings.Join(args[i+1:], " ")
	svc, _, _ := strings.Cut(a.command, " ")
	if svc != "git-upload-pack" && svc != "git-receive-pack" {
		return a, fmt.Errorf("refusing to run %q upstream: only git-upload-pack and git-receive-pack", svc)
	}
	return a, nil
}

// hostKeyAlgorithms are the host key algorithms to ask the server for, so
// that a server with several host keys presents the pinned one.
func hostKeyAlgorithms(k ssh.PublicKey) []string {
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{k.Type()}
}

// SSHMain is the SSH transport git uses to reach a repository's upstream:
// the gate runs git with GIT_SSH_COMMAND set to Server.SSHCommand (the
// hidden `bottleform sidecar git-ssh`) and GIT_SSH_VARIANT=ssh, so git
// invokes it as
//
//	PROGRAM [-o SendEnv=GIT_PROTOCOL] [-p PORT] user@host 'git-upload-pack '\''/path'\'''
//
// It dials host:port with golang.org/x/crypto/ssh, accepts only the host key
// pinned in HostKeyEnv (no trust on first use: without one it refuses),
// authenticates with the private key in the file named by KeyFileEnv,
// forwards GIT_PROTOCOL, runs the command, pipes stdin, stdout and stderr,
// and returns the remote's exit status (255 if SSHMain itself failed, like
// ssh). Its errors go to stderr, which git relays; they name the host and
// key fingerprints, never the private key.
func SSHMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(format string, v ...any) int {
		fmt.Fprintf(stderr, "bottleform git-ssh: "+format+"\n", v...)
		return 255
	}
	a, err := parseSSHArgs(args)
	if err != nil {
		return fail("%v", err)
	}
	addr := net.JoinHostPort(a.host, a.port)
	pinnedLine := strings.TrimSpace(os.Getenv(HostKeyEnv))
	if pinnedLine == "" {
		return fail("no host key is pinned for %s (%s is empty); refusing to connect (no trust on first use)", addr, HostKeyEnv)
	}
	pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pinnedLine))
	if err != nil {
		return fail("the pinned host key for %s does not parse: %v", addr, err)
	}
	keyFile := os.Getenv(KeyFileEnv)
	if keyFile == "" {
		return fail("no key file for %s (%s is empty)", addr, KeyFileEnv)
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return fail("reading the key file: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	clear(pem)
	if err != nil {
		var ppe *ssh.PassphraseMissingError
		if errors.As(err, &ppe) {
			return fail("the key file %s is passphrase-protected; the gate needs an unencrypted key", keyFile)
		}
		return fail("the key file %s does not hold a usable private key: %v", keyFile, err)
	}
	fixed := ssh.FixedHostKey(pinned)
	cfg := &ssh.ClientConfig{
		User: a.user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			if fixed(hostname, remote, key) == nil && bytes.Equal(key.Marshal(), pinned.Marshal()) {
				return nil
			}
			return fmt.Errorf("host key mismatch for %s: the server presented %s %s, but the pinned host key is %s %s; refusing to connect",
				addr, key.Type(), ssh.FingerprintSHA256(key), pinned.Type(), ssh.FingerprintSHA256(pinned))
		},
		HostKeyAlgorithms: hostKeyAlgorithms(pinned),
		Timeout:           SSHTimeout,
	}
	client, err := ssh.Dial(a.network, addr, cfg)
	if err != nil {
		return fail("connecting to %s as %s: %v", addr, a.user, err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return fail("opening a session on %s: %v", addr, err)
	}
	defer sess.Close()
	if gp := os.Getenv("GIT_PROTOCOL"); gp != "" {
		_ = sess.Setenv("GIT_PROTOCOL", gp) // a refusal just means protocol v0
	}
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	err = sess.Run(a.command)
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.ExitStatus() == 0 {
			return fail("%s: %v", addr, err) // killed by a signal
		}
		return ee.ExitStatus()
	default:
		return fail("%s: %v", addr, err)
	}
}
