package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bottleform/bottleform/resource"
	"github.com/bottleform/bottleform/sidecar"
)

// SidecarCall sends one control request to a bottle's running sidecar
// through `docker exec -i … bottleform sidecar ctl` and returns its reply;
// a refusal is an error with the sidecar's reason. It is how the host
// reads and decides the sidecar's supervise proposals: no volume is shared.
func (b *Backend) SidecarCall(ctx context.Context, lineage, bottle string, req sidecar.Request) (*sidecar.Reply, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	name := resource.ObjectName(lineage, bottle, compSidecar)
	stdout, stderr, code, err := b.exec(ctx, name, ctlArgv, "", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("the sidecar of bottle %s (%s): %w", bottle, name, err)
	}
	var rep sidecar.Reply
	if jerr := json.Unmarshal(bytes.TrimSpace(stdout), &rep); jerr != nil || !rep.OK || code != 0 {
		reason := rep.Error
		if reason == "" {
			reason = strings.TrimSpace(string(stderr) + " " + string(stdout))
		}
		return nil, fmt.Errorf("the sidecar of bottle %s refused %s (exit %d): %s", bottle, req.Op, code, reason)
	}
	return &rep, nil
}
