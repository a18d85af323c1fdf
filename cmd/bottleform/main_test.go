package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/state"
)

func TestMain(m *testing.M) {
	// e2eTestingM removes, after the tests, what the end-to-end tests of
	// e2e_test.go built (see e2e_helpers_test.go).
	testscript.Main(e2eTestingM{m}, map[string]func(){
		"bottleform": func() { os.Exit(Main(os.Args[1:])) },
		"fake-apply": func() { os.Exit(fakeApply(os.Args[1:])) },
	})
}

// TestScripts runs the CLI end-to-end scripts in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "1")
			return nil
		},
	})
}

// fakeApply records a saved plan in the state of the current directory as
// if a backend had carried it out, for scripts that need a live state
// before a backend exists. It is a test harness, not part of bottleform.
func fakeApply(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: fake-apply PLANFILE")
		return 2
	}
	f, err := os.Open(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	p, _, err := planner.ReadFile(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr := state.Open(".")
	s, err := mgr.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if s == nil {
		s = &state.State{}
	}
	for _, c := range p.Changes {
		switch c.Action {
		case planner.Delete:
			s.Remove(c.Addr)
		default:
			backend := "docker"
			if b := p.Bottles[c.Addr.Bottle]; b != nil {
				backend = b.Backend
			}
			s.Set(backend, &state.Resource{Addr: c.Addr, Attrs: c.After, Digest: c.After.Digest(), IDs: map[string]string{"fake_id": c.Addr.Kind.String() + "-1"}})
		}
	}
	if err := mgr.Save(s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
