package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/sidecar"
)

// Where the agent finds the bottle's CA: the CA alone, and a bundle of the
// image's system roots plus the CA.
const (
	caDir    = "/etc/bottleform"
	caFile   = caDir + "/ca.pem"
	caBundle = caDir + "/ca-bundle.pem"
)

// caEnv points every tool's CA variable at the bottle's CA: the variables
// that replace the system roots get the bundle, the additive ones the CA
// alone (reference: agents-egress-git.md 6.3). A provider's own CA
// variables (agent.Provider.CACertEnv, codex's CODEX_CA_CERTIFICATE) get
// the CA alone too; agentEnv adds them.
var caEnv = []string{
	"SSL_CERT_FILE=" + caBundle, "REQUESTS_CA_BUNDLE=" + caBundle, "CURL_CA_BUNDLE=" + caBundle,
	"GIT_SSL_CAINFO=" + caBundle, "AWS_CA_BUNDLE=" + caBundle, "PIP_CERT=" + caBundle,
	"CARGO_HTTP_CAINFO=" + caBundle, "NIX_SSL_CERT_FILE=" + caBundle,
	"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=" + caBundle,
	"NODE_EXTRA_CA_CERTS=" + caFile, "DENO_CERT=" + caFile,
	"NODE_USE_SYSTEM_CA=1",
}

// installCAScript runs as root in the agent with the CA on stdin. It keeps
// a copy of the image's system roots the first time, then writes the bundle
// (roots + CA) and puts the same bundle in place of the system store's
// file, so tools that read the system store trust the gateway too; the CA
// also goes to /usr/local/share/ca-certificates so a later
// update-ca-certificates keeps it. It is idempotent, and a new CA replaces
// the old one. It needs a POSIX shell; it does not run
// update-ca-certificates, which takes seconds.
const installCAScript = `set -e
umask 022
mkdir -p ` + caDir + `
cat > ` + caFile + `.new && mv ` + caFile + `.new ` + caFile + `
sys=
for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
  if [ -f "$f" ]; then sys=$f; break; fi
done
if [ -n "$sys" ]; then
  [ -f ` + caDir + `/system-roots.pem ] || cp "$sys" ` + caDir + `/system-roots.pem
  cat ` + caDir + `/system-roots.pem ` + caFile + ` > ` + caBundle + `.new
  mv ` + caBundle + `.new ` + caBundle + `
  cp ` + caBundle + ` "$sys.bottleform" && mv "$sys.bottleform" "$sys"
else
  cp ` + caFile + ` ` + caBundle + `
fi
if [ -d /usr/local/share/ca-certificates ]; then cp ` + caFile + ` /usr/local/share/ca-certificates/bottleform.crt; fi
`

// sidecarPing asks the sidecar's control socket for a ping reply.
func (b *Backend) sidecarPing(ctx context.Context, name string) (*sidecar.Reply, error) {
	stdout, stderr, code, err := b.exec(ctx, name, ctlArgv, "", strings.NewReader(`{"op":"ping"}`))
	if err != nil {
		return nil, err
	}
	var rep sidecar.Reply
	if jerr := json.Unmarshal(bytes.TrimSpace(stdout), &rep); jerr != nil || code != 0 {
		return nil, fmt.Errorf("ping %s (exit %d): %s", name, code, strings.TrimSpace(string(stderr)+" "+string(stdout)))
	}
	return &rep, nil
}

// waitControl waits until the sidecar's control socket answers, at most
// healthTimeout, failing early if the container exits. Docker's own health
// check is not waited for: it runs a second after start at the earliest,
// and it passes only once the configuration is delivered.
func (b *Backend) waitControl(ctx context.Context, id, name string) error {
	deadline := time.Now().Add(healthTimeout)
	for {
		_, err := b.sidecarPing(ctx, name)
		if err == nil {
			return nil
		}
		c, ierr := b.c.ContainerInspect(ctx, id)
		if ierr != nil {
			return ierr
		}
		if !c.State.Running {
			return fmt.Errorf("the sidecar exited (status %d) before its control socket answered; its last log lines:\n%s", c.State.ExitCode, b.logTail(ctx, id, 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the sidecar's control socket did not answer within %s (%v); its last log lines:\n%s", healthTimeout, err, b.logTail(ctx, id, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// installCA puts the sidecar's current CA into the agent, if both run: a
// new agent gets it, and so does an agent whose sidecar was created again
// (a new sidecar mints a new CA). Tools started before the change keep the
// old one until restarted.
func (b *Backend) installCA(ctx context.Context, op *applier.Op) error {
	a := b.AgentHandle(op.Lineage, op.Addr.Bottle)
	if up, err := a.running(ctx); err != nil || !up {
		return nil // no agent yet: it gets the CA when it is created
	}
	rep, err := b.sidecarPing(ctx, objectName(op, compSidecar))
	if err != nil {
		return fmt.Errorf("read the gateway's CA: %w", err)
	}
	return a.InstallCA(ctx, op, rep.CACert)
}

// InstallCA installs cert, the gateway's CA certificate, in the agent as
// root (see installCAScript).
func (a *Agent) InstallCA(ctx context.Context, op *applier.Op, cert string) error {
	if cert == "" {
		return errors.New("the sidecar did not report its CA certificate")
	}
	_, stderr, code, err := a.Exec(ctx, []string{"/bin/sh", "-c", installCAScript}, "0", strings.NewReader(cert))
	if err != nil {
		return fmt.Errorf("install the gateway's CA in the agent: %w", err)
	}
	if code == 127 {
		warn(op, "the agent's image has no /bin/sh: the gateway's CA was not installed; intercepted HTTPS will fail certificate checks")
		return nil
	}
	if code != 0 {
		return fmt.Errorf("install the gateway's CA in the agent (exit %d): %s", code, tailText(stderr))
	}
	return nil
}
