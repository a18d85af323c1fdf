package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/bottleform/bottleform/sidecar/supervise"
)

// DefaultControlSocket is where the sidecar listens for its control
// protocol. /run/bottleform is a tmpfs the backend mounts with mode 0700,
// so the socket, and what crosses it, never touches a disk.
const DefaultControlSocket = "/run/bottleform/control.sock"

// Operations of the control protocol.
const (
	OpPing   = "ping"   // is the sidecar up, and is it configured?
	OpLoad   = "load"   // take a Delivery: validate it, then swap it in whole
	OpStatus = "status" // counts and the names of slots without a value
	// OpProposals lists the supervise proposals the sidecar holds.
	OpProposals = "proposals"
	// OpDecide records a person's decision on one proposal: ID, Status
	// (approved, rejected or applied) and an optional Reason the agent
	// reads.
	OpDecide = "decide"
)

// maxLine bounds one request line on the control socket.
const maxLine = 8 << 20

// Request is one line of the control protocol: a JSON object followed by a
// newline. Delivery is set for OpLoad only; ID, Status and Reason for
// OpDecide only.
type Request struct {
	Op       string    `json:"op"`
	Delivery *Delivery `json:"delivery,omitempty"`
	ID       string    `json:"id,omitempty"`
	Status   string    `json:"status,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// Reply answers one Request, on one line. OK is false when the request was
// refused, and Error then says why in words that name hosts, repos and
// slots but never a slot's value. Configured and ConfigDigest describe the
// configuration in force after the request; Status is set for OpStatus,
// Proposals for OpProposals (absent: there are none), Proposal for
// OpDecide (the proposal as decided).
type Reply struct {
	OK           bool   `json:"ok"`
	Error        string `json:"error,omitempty"`
	Configured   bool   `json:"configured"`
	ConfigDigest string `json:"config_digest,omitempty"`
	// CACert is the gateway's CA certificate (PEM): public, for the agent's
	// trust store. The CA's key never leaves the sidecar.
	CACert    string               `json:"ca_cert,omitempty"`
	Proposals []supervise.Proposal `json:"proposals,omitempty"`
	Proposal  *supervise.Proposal  `json:"proposal,omitempty"`
	*Status
}

// Status is what OpStatus reports of the configuration in force.
type Status struct {
	Bottle string `json:"bottle"`
	Routes int    `json:"routes"`
	Repos  int    `json:"repos"`
	// SlotsComplete reports whether every credentialed route's token slot
	// and every repo's key slot has a value; MissingSlots names those that
	// do not (names only).
	SlotsComplete bool     `json:"slots_complete"`
	MissingSlots  []string `json:"missing_slots"`
}

// ErrRefused is returned by Ctl when the sidecar answered with ok false.
var ErrRefused = errors.New("the sidecar refused the request")

// Call sends one request to the control socket at path and returns the
// reply. The request is sent as one line; it must not contain a newline
// (json.Marshal never produces one).
func Call(ctx context.Context, path string, req []byte) (*Reply, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if _, err := conn.Write(append(bytes.TrimSpace(req), '\n')); err != nil {
		return nil, fmt.Errorf("control socket %s: send: %w", path, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("control socket %s: read reply: %w", path, err)
	}
	var rep Reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return nil, fmt.Errorf("control socket %s: malformed reply: %w", path, err)
	}
	return &rep, nil
}

// Ctl is `bottleform sidecar ctl`: it reads one request (any JSON layout)
// from in, sends it to the control socket at path, and writes the reply as
// one line to out. It returns ErrRefused (wrapped with the sidecar's
// reason) when the reply is not ok. This is how the host delivers the
// configuration and its secrets: `docker exec -i` with the request on
// stdin, so nothing appears in argv, the environment or on disk.
func Ctl(ctx context.Context, path string, in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(io.LimitReader(in, maxLine+1))
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if len(raw) > maxLine {
		return fmt.Errorf("read request: longer than %d bytes", maxLine)
	}
	var req bytes.Buffer
	if err := json.Compact(&req, raw); err != nil {
		// The message of a syntax error can quote the input; say where only.
		return errors.New("read request: stdin is not one JSON object")
	}
	rep, err := Call(ctx, path, req.Bytes())
	if err != nil {
		return err
	}
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "%s\n", line); err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("%w: %s", ErrRefused, rep.Error)
	}
	return nil
}

// Health is `bottleform sidecar health`, the container's HEALTHCHECK: nil
// when the control socket answers, a configuration is loaded and every
// credentialed route has its credential. A sidecar that restarted without
// its configuration fails closed and turns unhealthy, which is how Observe
// sees it and plan shows the drift.
func Health(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rep, err := Call(ctx, path, []byte(`{"op":"ping"}`))
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("ping: %s", rep.Error)
	}
	if !rep.Configured {
		return errors.New("not configured: the sidecar has no configuration (it restarted, or bottleform apply has not delivered it yet); run bottleform apply")
	}
	st, err := Call(ctx, path, []byte(`{"op":"status"}`))
	if err != nil {
		return err
	}
	if st.Status != nil && len(st.MissingSlots) > 0 {
		return fmt.Errorf("credentials missing for slots %v: their routes and repos fail closed; run bottleform apply (a deploy key lost in a restart is minted again)", st.MissingSlots)
	}
	return nil
}
