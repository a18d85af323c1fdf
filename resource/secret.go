package resource

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// SecretKind says where a declared secret's value comes from at apply time.
type SecretKind int

const (
	SecretEnv    SecretKind = 1 // a host environment variable
	SecretFile   SecretKind = 2 // a file on the host
	SecretPrompt SecretKind = 3 // asked on the terminal
)

func (k SecretKind) String() string {
	switch k {
	case SecretEnv:
		return "env"
	case SecretFile:
		return "file"
	case SecretPrompt:
		return "prompt"
	}
	return "SecretKind(" + strconv.Itoa(int(k)) + ")"
}

// SecretSource is a `secret "NAME" { ... }` declaration: where the value is
// found, never the value. Source is the env var name, the file path or the
// prompt text, according to Kind.
type SecretSource struct {
	Name   string     `json:"name"`
	Kind   SecretKind `json:"kind"`
	Source string     `json:"source"`
}

// Ref is a reference to a sensitive value: either a declared secret
// (secret.NAME) or a host environment variable (host_env("NAME")). The
// zero Ref refers to nothing.
type Ref struct {
	Secret  string `json:"secret,omitempty"`
	HostEnv string `json:"host_env,omitempty"`
	// HostCredential names a provider whose credential on the host is read
	// at apply (codex: ~/.codex/auth.json).
	HostCredential string `json:"host_credential,omitempty"`
	// KeyFile is the path of a private key file on the host (a git entry's
	// key "file"), read at apply and sent to the sidecar only.
	KeyFile string `json:"key_file,omitempty"`
}

// IsZero reports whether r refers to nothing.
func (r Ref) IsZero() bool { return r == Ref{} }

// String renders r as the HCL expression that made it.
func (r Ref) String() string {
	switch {
	case r.Secret != "":
		return "secret." + r.Secret
	case r.HostEnv != "":
		return "host_env(" + strconv.Quote(r.HostEnv) + ")"
	case r.HostCredential != "":
		return "host_credentials(" + strconv.Quote(r.HostCredential) + ")"
	case r.KeyFile != "":
		return "file(" + strconv.Quote(r.KeyFile) + ")"
	}
	return ""
}

// ParseRef parses what Ref.String renders: secret.NAME, host_env("NAME"),
// host_credentials("PROVIDER") or file("PATH").
func ParseRef(s string) (Ref, error) {
	if name, ok := strings.CutPrefix(s, "secret."); ok && name != "" {
		return Ref{Secret: name}, nil
	}
	for _, f := range []struct {
		fn  string
		set func(*Ref, string)
	}{
		{"host_env", func(r *Ref, v string) { r.HostEnv = v }},
		{"host_credentials", func(r *Ref, v string) { r.HostCredential = v }},
		{"file", func(r *Ref, v string) { r.KeyFile = v }},
	} {
		arg, ok := strings.CutPrefix(s, f.fn+"(")
		if !ok || !strings.HasSuffix(arg, ")") {
			continue
		}
		v, err := strconv.Unquote(strings.TrimSuffix(arg, ")"))
		if err != nil || v == "" {
			break
		}
		var r Ref
		f.set(&r, v)
		return r, nil
	}
	return Ref{}, fmt.Errorf("%q is not a reference (want secret.NAME, host_env(\"NAME\"), host_credentials(\"PROVIDER\") or file(\"PATH\"))", s)
}

// ErrSensitive is returned by every attempt to marshal a Secret.
var ErrSensitive = errors.New("refusing to serialise a secret value")

// Secret holds one resolved secret value in memory. It prints as
// "(sensitive)" in every format and refuses to be marshalled, so a Secret
// that strays into a plan, the state or a log line fails loudly instead of
// leaking. Call Reveal only where the value leaves for its one destination.
type Secret struct {
	v string
}

// NewSecret wraps a value.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the value. Callers must send it only to its destination
// (the sidecar's control socket, the agent's granted env).
func (s Secret) Reveal() string { return s.v }

// Empty reports whether the value is empty.
func (s Secret) Empty() bool { return s.v == "" }

const redacted = "(sensitive)"

func (Secret) String() string                 { return redacted }
func (Secret) GoString() string               { return redacted }
func (Secret) Format(f fmt.State, _ rune)     { _, _ = f.Write([]byte(redacted)) }
func (Secret) LogValue() slog.Value           { return slog.StringValue(redacted) }
func (Secret) MarshalJSON() ([]byte, error)   { return nil, ErrSensitive }
func (Secret) MarshalText() ([]byte, error)   { return nil, ErrSensitive }
func (*Secret) UnmarshalJSON([]byte) error    { return ErrSensitive }
func (*Secret) UnmarshalText([]byte) error    { return ErrSensitive }
func (Secret) MarshalBinary() ([]byte, error) { return nil, ErrSensitive }
func (*Secret) UnmarshalBinary([]byte) error  { return ErrSensitive }
