package views_test

import (
	"maps"
	"slices"
	"strings"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
)

var (
	str  = resource.String
	expr = resource.Expr
	strs = func(ss ...string) resource.Value { return resource.Strings(ss) }
)

func addr(kind resource.Kind, key string) resource.Address {
	return resource.Address{Bottle: "reviewer", Kind: kind, Key: key}
}

const promptText = `You are a careful code reviewer for acme/app.

Review the open pull request on the current branch.
Read every changed file before you comment.
Point out bugs, missing tests and unclear names.
Do not rewrite code that works.
Keep each comment short and concrete.
Quote the line you are talking about.
Suggest a fix when you can.
Push your notes to refs/heads/agent/review.
Never push to main.
Stop when the review is done.
`

// reviewer is the desired state of one bottle, an object per address, in
// the planner's order.
func reviewer() []resource.Object {
	objs := map[resource.Address]resource.Attrs{
		addr(resource.KindNetwork, ""): {
			"internal": str("bf-3f2a9c-reviewer-internal"),
			"egress":   str("bf-3f2a9c-reviewer-egress"),
		},
		addr(resource.KindSidecar, ""): {
			"image":    str("bottleform-sidecar:0.1.0"),
			"aliases":  strs("egress", "git-gate", "supervise"),
			"networks": strs("internal", "egress"),
		},
		addr(resource.KindEgress, "api.github.com"): {
			"tls":   str("intercept"),
			"auth":  resource.MapOf(map[string]resource.Value{"scheme": str("Bearer"), "token": expr("secret.github")}),
			"paths": strs("/repos/acme/app/"),
			"slot":  str("EGRESS_TOKEN_1"),
		},
		addr(resource.KindEgress, "registry.npmjs.org"): {
			"tls": str("intercept"),
		},
		addr(resource.KindGit, "app"): {
			"upstream": str("ssh://git@gitea.acme.dev:2222/acme/app.git"),
			"host_key": str("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"),
			"push":     strs("refs/heads/agent/*"),
		},
		addr(resource.KindDeployKey, "app"): {
			"kind":    str("gitea"),
			"api_url": str("https://gitea.acme.dev"),
			"repo":    str("acme/app"),
			"token":   expr("secret.gitea_admin"),
		},
		addr(resource.KindAuth, ""): {
			"provider":    str("claude"),
			"token":       expr("secret.claude"),
			"placeholder": str("CLAUDE_CODE_OAUTH_TOKEN"),
			"routes":      strs("api.anthropic.com", "console.anthropic.com", "statsig.anthropic.com", "sentry.io"),
		},
		addr(resource.KindAgent, ""): {
			"backend": str("docker"),
			"image":   str("ghcr.io/acme/claude-agent:2.1"),
			"cpus":    resource.Int(2),
			"memory":  str("4GiB"),
			"env": resource.MapOf(map[string]resource.Value{
				"TZ":          str("UTC"),
				"HOST_USER":   expr(`host_env("USER")`),
				"DB_PASSWORD": expr("secret.db"),
			}),
			"supervise": resource.Bool(true),
		},
		addr(resource.KindPrompt, ""): {
			"file":    str("prompts/reviewer.md"),
			"content": str(promptText),
		},
		addr(resource.KindSkill, "code-review"): {
			"dir":    str("skills/code-review"),
			"digest": str("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
		},
		addr(resource.KindMCP, "docs"): {
			"url": str("https://mcp.acme.dev/mcp"),
		},
	}
	var out []resource.Object
	for _, a := range slices.SortedFunc(maps.Keys(objs), func(x, y resource.Address) int {
		switch {
		case x.Less(y):
			return -1
		case y.Less(x):
			return 1
		}
		return 0
	}) {
		out = append(out, resource.Object{Addr: a, Attrs: objs[a]})
	}
	return out
}

// prior returns a plan in normal mode made from a state with lineage and
// serial set, every object of reviewer a no-op; edit changes it in place.
func prior(edit func(addr resource.Address, c *planner.Change)) *planner.Plan {
	p := &planner.Plan{
		Lineage:      "5f0c2a1e-7b43-4c1e-9d1a-3f2a9c6b8e10",
		Serial:       7,
		ConfigDigest: "sha256:4f1c0e6c1b2a3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccd",
	}
	for _, o := range reviewer() {
		c := planner.Change{Addr: o.Addr, Action: planner.NoOp, Before: o.Attrs, After: o.Attrs}
		if edit != nil {
			edit(o.Addr, &c)
		}
		p.Changes = append(p.Changes, c)
	}
	return p
}

func clone(a resource.Attrs) resource.Attrs { return maps.Clone(a) }

func createPlan() *planner.Plan {
	p := &planner.Plan{ConfigDigest: "sha256:4f1c0e6c1b2a3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccd"}
	for _, o := range reviewer() {
		p.Changes = append(p.Changes, planner.Change{Addr: o.Addr, Action: planner.Create, After: o.Attrs})
	}
	p.Security = []string{
		"bottle reviewer gains egress to api.github.com (paths /repos/acme/app/), with secret.github injected as Bearer",
		"bottle reviewer gains egress to registry.npmjs.org",
		"bottle reviewer may push refs/heads/agent/* to ssh://git@gitea.acme.dev:2222/acme/app.git through a deploy key minted with secret.gitea_admin",
		"the agent of bottle reviewer is given secret.db as env DB_PASSWORD and host_env(\"USER\") as env HOST_USER",
		"bottle reviewer registers MCP server docs at https://mcp.acme.dev/mcp",
		"the agent of bottle reviewer may propose new grants (supervise = true)",
	}
	p.Warnings = []planner.Warning{{
		Bottle:  "reviewer",
		Summary: "Egress route without path limits",
		Detail:  "registry.npmjs.org allows every path.\nAdd paths = [...] to the egress block to narrow it.",
	}}
	return p
}

func updateEgressPlan() *planner.Plan {
	p := prior(func(a resource.Address, c *planner.Change) {
		if a != addr(resource.KindEgress, "api.github.com") {
			return
		}
		c.Action = planner.Update
		c.After = clone(c.Before)
		c.After["paths"] = strs("/repos/acme/app/", "/repos/acme/app/pulls/")
		c.Reasons = []string{"paths changed"}
	})
	p.Security = []string{"bottle reviewer: egress to api.github.com now also allows /repos/acme/app/pulls/"}
	return p
}

func replaceAgentPlan() *planner.Plan {
	p := prior(func(a resource.Address, c *planner.Change) {
		if a != addr(resource.KindAgent, "") {
			return
		}
		c.Action = planner.Replace
		c.After = clone(c.Before)
		c.After["image"] = str("ghcr.io/acme/claude-agent:2.2")
		c.Reasons = []string{"image changed"}
		c.ReplacePaths = []string{"image"}
	})
	p.Security = []string{"the agent of bottle reviewer runs image ghcr.io/acme/claude-agent:2.2 (was 2.1)"}
	return p
}

func replaceEnvPlan() *planner.Plan {
	p := prior(func(a resource.Address, c *planner.Change) {
		if a != addr(resource.KindAgent, "") {
			return
		}
		c.Action = planner.Replace
		c.After = clone(c.Before)
		c.After["env"] = resource.MapOf(map[string]resource.Value{
			"TZ":          str("Europe/Paris"),
			"DB_PASSWORD": expr("secret.db"),
			"GH_TOKEN":    expr("secret.github"),
		})
		c.Reasons = []string{"env changed"}
		c.ReplacePaths = []string{"env"}
	})
	p.Security = []string{
		"the agent of bottle reviewer is given secret.github as env GH_TOKEN",
		"the agent of bottle reviewer is no longer given host_env(\"USER\")",
	}
	return p
}

func promptPlan() *planner.Plan {
	return prior(func(a resource.Address, c *planner.Change) {
		if a != addr(resource.KindPrompt, "") {
			return
		}
		c.Action = planner.Update
		c.After = clone(c.Before)
		text := strings.Replace(promptText, "Point out bugs, missing tests and unclear names.",
			"Point out bugs, security issues, missing tests and unclear names.", 1)
		text = strings.Replace(text, "Never push to main.\n", "Never push to main.\nNever print a token, even a placeholder.\n", 1)
		c.After["content"] = str(text)
		c.Reasons = []string{"content changed"}
	})
}

func driftPlan() *planner.Plan {
	return prior(func(a resource.Address, c *planner.Change) {
		if a != addr(resource.KindAgent, "") {
			return
		}
		c.Action = planner.Update
		c.Reasons = []string{"container stopped out of band"}
		c.Drift = true
	})
}

func destroyPlan() *planner.Plan {
	p := prior(func(_ resource.Address, c *planner.Change) {
		c.Action = planner.Delete
		c.After = nil
	})
	p.Mode = planner.ModeDestroy
	p.Security = []string{
		"bottle reviewer loses egress to api.github.com and registry.npmjs.org",
		"the deploy key of git app in bottle reviewer is revoked",
	}
	return p
}

func destroyEmptyPlan() *planner.Plan {
	return &planner.Plan{Mode: planner.ModeDestroy, Lineage: "5f0c2a1e-7b43-4c1e-9d1a-3f2a9c6b8e10", Serial: 9}
}

// plans are every synthetic plan the golden files show.
var plans = []struct {
	name string
	plan func() *planner.Plan
}{
	{"create", createPlan},
	{"noop", func() *planner.Plan { return prior(nil) }},
	{"update_egress", updateEgressPlan},
	{"replace_agent", replaceAgentPlan},
	{"replace_env", replaceEnvPlan},
	{"update_prompt", promptPlan},
	{"drift", driftPlan},
	{"destroy", destroyPlan},
	{"destroy_empty", destroyEmptyPlan},
}
