package smolmachines

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]version{
		"smolvm 1.9.2\n":        {1, 9, 2},
		"smolvm 1.14.0-rc.1":    {1, 14, 0},
		"smolvm v1.10.3+abcdef": {1, 10, 3},
	} {
		got, err := parseVersion(in)
		if err != nil || got != want {
			t.Errorf("parseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "smolvm", "smolvm 1.9", "other 1.9.2", "smolvm 1.x.2"} {
		if _, err := parseVersion(in); err == nil {
			t.Errorf("parseVersion(%q) accepted it", in)
		}
	}
}

// TestErrorsAreTyped runs the stand-in: smolvm's own failures are *Error
// values that tell "not found" and "not running" apart; a guest's exit,
// even 1 with a line that looks like smolvm's, is an exit code.
func TestErrorsAreTyped(t *testing.T) {
	e := newEnv(t, "1.14.0")
	ctx := context.Background()
	_, err := e.b.cli.status(ctx, "absent")
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotRunning) {
		t.Errorf("status of a missing machine: %v, want ErrNotFound", err)
	}
	if err := e.b.preflight(ctx); err != nil {
		t.Fatal(err)
	}
	g := vm{e.b, "absent"}
	_, _, _, err = g.Exec(ctx, []string{"true"}, "", nil)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("exec in a missing machine: %v, want ErrNotFound", err)
	}
	var se *Error
	if !errors.As(err, &se) || se.Exit != 1 || !strings.Contains(se.Msg, "vm not found: absent") {
		t.Errorf("exec in a missing machine: %#v", err)
	}
	// -n is not exec's: smolvm refuses it as a usage error.
	_, err = e.b.cli.run(ctx, []string{"machine", "exec", "-n", "absent", "--", "true"}, nil, true)
	if !errors.Is(err, ErrUsage) {
		t.Errorf("exec -n: %v, want ErrUsage", err)
	}
	for _, tc := range []struct {
		stderr string
		own    bool
	}{
		{"Error: vm not found: x\n", true},
		{"Error: agent operation failed: connect: machine 'x' is not running. Use 'smolvm machine start --name x' first.\n", true},
		{"Error: cannot open config.yaml\n", false}, // a guest's line
		{"some output\nError: io operation failed: disk full\n", true},
		{"no error line\n", false},
	} {
		if _, own := smolvmMessage([]byte(tc.stderr)); own != tc.own {
			t.Errorf("smolvmMessage(%q) own = %v, want %v", tc.stderr, own, tc.own)
		}
	}
}
