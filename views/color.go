package views

import (
	"os"

	"golang.org/x/term"
)

// Options control human rendering.
type Options struct {
	// Color adds ANSI colour and bold. When false the output contains no
	// escape byte at all.
	Color bool
}

// ColorEnabled reports whether output to f should be coloured: f is a
// terminal, NO_COLOR is unset or empty, and TERM is not "dumb".
func ColorEnabled(f *os.File) bool {
	if f == nil || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// ANSI SGR sequences.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
)

// paint wraps s in the SGR code when color is on; it returns s unchanged
// otherwise, and for an empty s.
func paint(color bool, code, s string) string {
	if !color || s == "" {
		return s
	}
	return code + s + ansiReset
}
