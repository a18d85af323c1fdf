package hostenv

import (
	"slices"
	"testing"
)

func TestEnv(t *testing.T) {
	t.Setenv("PATH", "/bin")
	t.Setenv("SMOLVM_DATA_DIR", "/d")
	t.Setenv("GIT_EXEC_PATH", "/g")
	t.Setenv("MY_TOKEN", "s3cret")
	env := Env([]string{"GIT_EXEC_PATH"}, "SMOLVM_")
	for _, want := range []string{"PATH=/bin", "SMOLVM_DATA_DIR=/d", "GIT_EXEC_PATH=/g"} {
		if !slices.Contains(env, want) {
			t.Errorf("%s was dropped: %v", want, env)
		}
	}
	for _, kv := range env {
		if kv == "MY_TOKEN=s3cret" {
			t.Errorf("a variable neither named nor prefixed was kept: %v", env)
		}
	}
}
