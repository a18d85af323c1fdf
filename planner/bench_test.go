package planner_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/config"
	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/views"
)

const benchBase = `secret "claude" {
  env = "CLAUDE_CODE_OAUTH_TOKEN"
}

secret "github" {
  env = "GITHUB_TOKEN"
}

secret "db" {
  env = "DB_PASSWORD"
}

bottle "base" {
  abstract = true
  image    = "ghcr.io/acme/claude-agent:2.1"

  agent "claude" {
    auth_token = secret.claude
  }

  egress "registry.npmjs.org" {}

  resources {
    cpus   = 1
    memory = "2GiB"
  }
}
`

const benchBottle = `
bottle "b%[1]d" {
  extends = "base"

  env = {
    TZ          = "UTC"
    DB_PASSWORD = secret.db
  }

  egress "api.github.com" {
    auth {
      scheme = "Bearer"
      token  = secret.github
    }
    paths = ["/repos/acme/app%[1]d/"]
  }
  egress "pypi.org" {}
  egress "files.pythonhosted.org" {
    tls = "passthrough"
  }

  git "app" {
    upstream = "ssh://git@gitea.acme.dev:2222/acme/app%[1]d.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "file" {
      path = "id_app"
    }
    push = ["refs/heads/agent/*"]
  }

  prompt = "You work on acme/app%[1]d.\nRun the tests before you push.\n"
}
`

// benchDir writes a configuration of n bottles, each extending one abstract
// base, and returns its directory and the env it needs.
func benchDir(b *testing.B, n int) (string, config.Options) {
	b.Helper()
	dir := b.TempDir()
	var src strings.Builder
	src.WriteString(benchBase)
	for i := range n {
		fmt.Fprintf(&src, benchBottle, i)
	}
	files := map[string]string{"main.hcl": src.String(), "id_app": "not a real key"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	env := func(name string) (string, bool) {
		if name == "HOME" {
			return dir, true
		}
		return "not-a-secret", true
	}
	opts := config.Options{LookupEnv: env}
	// Fail here, outside the timer, rather than in the loop.
	cfg, _, diags := config.Load(dir, opts)
	if diags.HasErrors() {
		b.Fatalf("generated configuration does not load: %s", diags.Error())
	}
	if len(cfg.Bottles) != n {
		b.Fatalf("generated configuration has %d bottles, want %d", len(cfg.Bottles), n)
	}
	return dir, opts
}

func BenchmarkParseAndPlan(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("bottles=%d", n), func(b *testing.B) {
			dir, opts := benchDir(b, n)
			b.ReportAllocs()
			for b.Loop() {
				cfg, _, diags := config.Load(dir, opts)
				if diags.HasErrors() {
					b.Fatal(diags.Error())
				}
				if _, err := planner.Diff(cfg, nil, nil, planner.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRenderPlan(b *testing.B) {
	dir, opts := benchDir(b, 100)
	cfg, _, diags := config.Load(dir, opts)
	if diags.HasErrors() {
		b.Fatal(diags.Error())
	}
	p, err := planner.Diff(cfg, nil, nil, planner.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := views.Plan(io.Discard, p, views.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
