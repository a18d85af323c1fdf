package supervise

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bottleform/bottleform/resource"
)

// Kind is what a proposal asks for. Kind and Status are strings, not typed
// ints: they are the wire form on the control socket and in the tools'
// JSON schemas, which the SDK infers from the Go types.
type Kind string

const (
	KindEgress Kind = "egress" // a new egress host
	KindPush   Kind = "push"   // a new push ref pattern on a git entry
)

// Status is where a proposal stands.
type Status string

const (
	// StatusPending: recorded, no person has decided yet.
	StatusPending Status = "pending"
	// StatusApproved: a person approved it and edited it into the
	// bottle's definition; it is not live until that is applied.
	StatusApproved Status = "approved"
	// StatusRejected: a person refused it (Reason says why, if they did).
	StatusRejected Status = "rejected"
	// StatusApplied: the configuration in force grants it.
	StatusApplied Status = "applied"
)

// open reports whether a proposal still waits to take effect.
func (s Status) open() bool { return s == StatusPending || s == StatusApproved }

// Proposal is one request of the agent's for a new grant. The fields of
// the other kind are empty.
type Proposal struct {
	ID   string `json:"id" jsonschema:"the proposal's id"`
	Kind Kind   `json:"kind" jsonschema:"egress or push"`
	// Host, TLS and Paths are set for KindEgress.
	Host  string   `json:"host,omitempty" jsonschema:"the egress host asked for"`
	TLS   string   `json:"tls,omitempty" jsonschema:"intercept or passthrough"`
	Paths []string `json:"paths,omitempty" jsonschema:"the path prefixes asked for (none: the whole host)"`
	// Repo and Ref are set for KindPush.
	Repo          string `json:"repo,omitempty" jsonschema:"the git entry"`
	Ref           string `json:"ref,omitempty" jsonschema:"the push ref pattern asked for"`
	Justification string `json:"justification" jsonschema:"why the agent asked"`
	Status        Status `json:"status" jsonschema:"pending, approved (in the definition, not live yet), rejected or applied (live)"`
	// Reason is the person's note with their decision.
	Reason  string    `json:"reason,omitempty" jsonschema:"the reviewer's note"`
	Created time.Time `json:"created"`
	Decided time.Time `json:"decided,omitzero"`
	// AppliedConfig is the digest of the configuration that made the
	// proposal live, when Server.Load marked it applied.
	AppliedConfig string `json:"applied_config,omitempty"`
}

// Limits. They bound what an agent can make the sidecar hold: at most
// MaxOpen open proposals and MaxKept in all, each a few KiB at most.
const (
	MaxJustification = 2000 // characters
	MaxReason        = 2000 // characters
	MaxOpen          = 100  // pending or approved proposals
	MaxKept          = 500  // proposals remembered; the oldest decided ones go first
	MaxPaths         = 32
	MaxPathLen       = 256
	maxHostLen       = 253
	maxRefLen        = 256
)

// MinSecretLen is the shortest secret value a proposal is checked for, as
// the git gate's scan: a shorter one would match ordinary text.
const MinSecretLen = 8

// checkText validates free text a person will read: required, at most max
// characters, and no control characters but newline and tab, nor the
// Unicode controls that reorder text on a terminal (bidi overrides and
// isolates). The error never quotes the text.
func checkText(field, s string, max int, required bool) error {
	if strings.TrimSpace(s) == "" {
		if required {
			return fmt.Errorf("%s is required: say in a sentence or two why the task needs this; a person reads it", field)
		}
		return nil
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("%s is %d characters long; the limit is %d", field, n, max)
	}
	for _, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError ||
			r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return fmt.Errorf("%s holds a control character (U+%04X); write plain text", field, r)
		}
	}
	return nil
}

// normalizeHost lower-cases ASCII letters and drops one trailing dot.
func normalizeHost(h string) string {
	h = strings.TrimSuffix(strings.TrimSpace(h), ".")
	b := []byte(h)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// checkHost validates a normalized host: a DNS name of at least two
// labels, each 1-63 letters, digits or '-' not at either end; no IP
// literal in any spelling, no port, no scheme, no path, no wildcard.
func checkHost(h string) error {
	switch {
	case h == "":
		return errors.New("host is empty: give a host name such as api.example.com")
	case len(h) > maxHostLen:
		return fmt.Errorf("host is %d bytes long; a DNS name is at most %d", len(h), maxHostLen)
	case strings.Contains(h, "://") || strings.Contains(h, "/"):
		return fmt.Errorf("host %s is not a host name: give the host alone (no scheme or path) and path prefixes in paths", quote(h))
	case strings.Contains(h, "*"):
		return fmt.Errorf("host %s has a wildcard: ask for each host by name", quote(h))
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return fmt.Errorf("host %s is an IP address: ask for a DNS name", quote(h))
	}
	if strings.Contains(h, ":") {
		return fmt.Errorf("host %s has a port: give the host alone (egress is to ports 443 and 80)", quote(h))
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return fmt.Errorf("host %s is not a fully qualified name: give a name such as api.example.com", quote(h))
	}
	numeric := true
	for _, l := range labels {
		if !validLabel(l) {
			return fmt.Errorf("host %s is not a DNS name: each dot-separated part must be 1-63 letters, digits or '-', not starting or ending with '-'", quote(h))
		}
		if !numericLabel(l) {
			numeric = false
		}
	}
	// 127.1, 0x7f.0.0.1 and 1.2.3.04 are addresses to inet_aton; no
	// top-level domain is all digits.
	if numeric || isDigits(labels[len(labels)-1]) {
		return fmt.Errorf("host %s is an IP address: ask for a DNS name", quote(h))
	}
	return nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// numericLabel reports whether l is a number to inet_aton: decimal,
// octal, or hexadecimal with 0x.
func numericLabel(l string) bool {
	if isDigits(l) {
		return true
	}
	if h, ok := strings.CutPrefix(l, "0x"); ok {
		for i := 0; i < len(h); i++ {
			if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	return false
}

// checkPaths validates path prefixes as the definition takes them: each
// starts with '/', holds printable ASCII and no space, '?' or '#'.
func checkPaths(paths []string, tls string) error {
	if len(paths) == 0 {
		return nil
	}
	if len(paths) > MaxPaths {
		return fmt.Errorf("%d paths; the limit is %d (ask for the host without paths, or for fewer, broader prefixes)", len(paths), MaxPaths)
	}
	if tls == resource.TLSPassthrough {
		return errors.New("paths need tls intercept: the gateway checks paths on decrypted requests, so a passthrough route cannot limit them")
	}
	for i, p := range paths {
		switch {
		case len(p) > MaxPathLen:
			return fmt.Errorf("paths[%d] is %d bytes long; the limit is %d", i, len(p), MaxPathLen)
		case !strings.HasPrefix(p, "/"):
			return fmt.Errorf("paths[%d] %s does not start with '/': give path prefixes such as /v1/", i, quote(p))
		}
		for j := 0; j < len(p); j++ {
			if c := p[j]; c <= ' ' || c >= 0x7f || c == '?' || c == '#' {
				return fmt.Errorf("paths[%d] %s holds a space, '?', '#' or a character outside printable ASCII: give the path prefix alone, percent-encoded", i, quote(p))
			}
		}
	}
	return nil
}

// checkRef validates a push ref pattern as the git gate takes it: an
// optional leading '+' (force pushes), then refs/ and a ref name in which
// '*' is the only wildcard, at most once.
func checkRef(p string) error {
	q := strings.TrimPrefix(p, "+")
	switch {
	case len(p) > maxRefLen:
		return fmt.Errorf("ref is %d bytes long; the limit is %d", len(p), maxRefLen)
	case !strings.HasPrefix(q, "refs/") || len(q) == len("refs/"):
		return fmt.Errorf("ref %s must be a full ref pattern starting with refs/, such as refs/heads/agent/* (a leading + allows force pushes)", quote(p))
	case strings.Count(q, "*") > 1:
		return fmt.Errorf("ref %s has more than one '*'; use at most one", quote(p))
	case strings.Contains(q, "..") || strings.Contains(q, "//") || strings.Contains(q, "@{") || strings.Contains(q, "/."):
		return fmt.Errorf("ref %s is not a valid ref pattern: it holds \"..\", \"//\", \"/.\" or \"@{\"", quote(p))
	case strings.HasSuffix(q, "/") || strings.HasSuffix(q, ".lock") || strings.HasSuffix(q, "."):
		return fmt.Errorf("ref %s is not a valid ref pattern: it cannot end in '/', '.' or .lock", quote(p))
	}
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("~^:?[]\\'\"", c) >= 0 {
			return fmt.Errorf("ref %s holds a character a ref pattern cannot: only '*' is a wildcard, and no space, quote or any of ~^:?[]\\", quote(p))
		}
	}
	return nil
}

// quote quotes agent-supplied text for an error the agent reads, cut to a
// readable length.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
