package docker

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bottleform/bottleform/agent"
	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
)

// Paths in the agent, relative to the agent user's home.
const (
	bottleformDir = ".bottleform"
	promptPath    = ".bottleform/prompt.md"
	authEnvPath   = ".bottleform/env"
	gitConfigPath = ".bottleform/gitconfig"
)

// provision writes what lives in the agent: the prompt, a skill, the auth
// env file, an MCP registration. Creating and updating are the same: the
// object is written again whole. The agent must be running, except for
// auth (see below).
func (b *Backend) provision(ctx context.Context, op *applier.Op) error {
	a := b.AgentHandle(op.Lineage, op.Addr.Bottle)
	switch op.Addr.Kind {
	case resource.KindPrompt:
		return a.writeFiles(ctx, "", []tarEntry{{Name: promptPath, Mode: 0o644, Data: []byte(op.Bottle.Prompt)}})
	case resource.KindSkill:
		return b.copySkill(ctx, a, op)
	case resource.KindAuth:
		// The applier makes auth before the agent (grants first), and the
		// agent is created with its auth provisioned; so auth writes into an
		// agent only when there is one running, as on an update in place.
		if up, err := a.running(ctx); err != nil || !up {
			return err
		}
		return a.writeAuth(ctx, op)
	case resource.KindMCP:
		return a.registerMCP(ctx, op)
	}
	return fmt.Errorf("%s does not live in the agent", op.Addr.Kind)
}

// unprovision removes what provision wrote. An agent that is gone or
// stopped has nothing to remove: its files go with it.
func (b *Backend) unprovision(ctx context.Context, op *applier.Op) error {
	a := b.AgentHandle(op.Lineage, op.Addr.Bottle)
	if up, err := a.running(ctx); err != nil || !up {
		return err
	}
	switch op.Addr.Kind {
	case resource.KindPrompt:
		return a.remove(ctx, promptPath)
	case resource.KindAuth:
		if err := a.remove(ctx, gitConfigPath); err != nil {
			return err
		}
		return a.remove(ctx, authEnvPath)
	case resource.KindSkill:
		p, err := agent.Lookup(providerOf(op))
		if err != nil {
			return nil // no provider recorded: nothing is known to remove
		}
		return a.remove(ctx, path.Join(p.SkillsDir, op.Addr.Key))
	case resource.KindMCP:
		if provider := providerOf(op); provider != "" {
			a.runMCP(ctx, op, provider, mcpRemove(provider, op.Addr.Key), "removed")
		}
		return nil
	}
	return fmt.Errorf("%s does not live in the agent", op.Addr.Kind)
}

// writeFiles copies entries into the agent under dir (relative to the
// agent user's home), owned by the agent user. Each directory on the way
// from home is created (mode 0700) if missing.
func (a *Agent) writeFiles(ctx context.Context, dir string, entries []tarEntry) error {
	id, err := a.identity(ctx)
	if err != nil {
		return err
	}
	var all []tarEntry
	seen := map[string]bool{}
	add := func(e tarEntry) {
		if seen[e.Name] {
			return
		}
		seen[e.Name] = true
		all = append(all, e)
	}
	for _, e := range entries {
		isDir := strings.HasSuffix(e.Name, "/")
		e.Name = path.Join(dir, e.Name)
		parts := strings.Split(e.Name, "/")
		for i := 1; i < len(parts); i++ {
			add(tarEntry{Name: strings.Join(parts[:i], "/") + "/", Mode: 0o700})
		}
		if isDir {
			e.Name += "/"
		}
		add(e)
	}
	for i := range all {
		all[i].UID, all[i].GID = id.uid, id.gid
	}
	archive, err := tarOf(all)
	if err != nil {
		return err
	}
	return a.CopyIn(ctx, id.home, bytes.NewReader(archive))
}

// remove deletes rel (relative to the agent user's home) and everything
// under it, as the agent user.
func (a *Agent) remove(ctx context.Context, rel string) error {
	id, err := a.identity(ctx)
	if err != nil {
		return err
	}
	p := path.Join(id.home, rel)
	_, errb, code, err := a.Exec(ctx, []string{"rm", "-rf", "--", p}, "", nil)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("`rm -rf %s` exited %d in %s: %s", p, code, a.name, tailText(errb))
	}
	return nil
}

// copySkill replaces $HOME/<provider's skills dir>/<name>/ with the skill's
// directory: its regular files (what the skill's digest covers) and the
// directories that hold them.
func (b *Backend) copySkill(ctx context.Context, a *Agent, op *applier.Op) error {
	var skill *resource.Skill
	for i := range op.Bottle.Skills {
		if op.Bottle.Skills[i].Name == op.Addr.Key {
			skill = &op.Bottle.Skills[i]
		}
	}
	if skill == nil {
		return fmt.Errorf("bottle %s has no skill %q", op.Bottle.Name, op.Addr.Key)
	}
	if skill.Name == "" || skill.Name == "." || skill.Name == ".." || strings.ContainsAny(skill.Name, `/\`) {
		return fmt.Errorf("skill name %q cannot be a directory name", skill.Name)
	}
	p, err := agent.Lookup(op.Bottle.Agent.Provider)
	if err != nil {
		return err
	}
	src := skill.Dir
	if !filepath.IsAbs(src) {
		src = filepath.Join(b.configDir, src)
	}
	entries := []tarEntry{{Name: skill.Name + "/", Mode: 0o755}}
	err = filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		name := path.Join(skill.Name, filepath.ToSlash(rel))
		switch {
		case e.IsDir():
			entries = append(entries, tarEntry{Name: name + "/", Mode: 0o755})
		case e.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := int64(0o644)
			if info, err := e.Info(); err == nil && info.Mode().Perm()&0o111 != 0 {
				mode = 0o755
			}
			entries = append(entries, tarEntry{Name: name, Mode: mode, Data: data})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read skill %s: %w", skill.Name, err)
	}
	if err := a.remove(ctx, path.Join(p.SkillsDir, skill.Name)); err != nil {
		return err
	}
	return a.writeFiles(ctx, p.SkillsDir, entries)
}

// writeAuth writes $HOME/.bottleform/env, the provider's settings as
// `export K='V'` lines (placeholders and flags: never a secret), and sets
// git's user.name and user.email when the bottle has a git_user and the
// image has git.
func (a *Agent) writeAuth(ctx context.Context, op *applier.Op) error {
	env := agent.Env(op.Bottle.Agent)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.WriteString("# Written by bottleform: the agent provider's settings. Nothing here is secret.\n")
	for _, k := range keys {
		fmt.Fprintf(&buf, "export %s=%s\n", k, shellQuote(env[k]))
	}
	if err := a.writeFiles(ctx, "", []tarEntry{{Name: authEnvPath, Mode: 0o644, Data: buf.Bytes()}}); err != nil {
		return err
	}
	if err := a.writeFiles(ctx, "", []tarEntry{{Name: gitConfigPath, Mode: 0o644, Data: []byte(agent.GitConfig(op.Bottle))}}); err != nil {
		return err
	}
	if op.Bottle.GitUser == nil && len(op.Bottle.Git) == 0 {
		return nil
	}
	if _, _, code, err := a.Exec(ctx, []string{"git", "--version"}, "", nil); err != nil {
		return err
	} else if code != 0 {
		warn(op, "git is not in the image %s: its git_user and git entries were not configured", op.Bottle.Image)
		return nil
	}
	// ~/.gitconfig includes bottleform's file once; the agent's own
	// settings there are left alone.
	argv := []string{"git", "config", "--global", "--replace-all", "include.path", "~/" + gitConfigPath, `^~/\.bottleform/gitconfig$`}
	_, errb, code, err := a.Exec(ctx, argv, "", nil)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("`git config --global include.path` exited %d in %s: %s", code, a.name, tailText(errb))
	}
	return nil
}

// registerMCP registers an MCP server with the provider's CLI, as the
// agent user. The CLI missing from the image or failing is a warning, not
// an error: the bottle works without the registration.
func (a *Agent) registerMCP(ctx context.Context, op *applier.Op) error {
	provider := op.Bottle.Agent.Provider
	url := op.Attrs["url"].Str
	name := op.Addr.Key
	// An earlier registration of the name (a repeated step, an update) is
	// removed first; the CLIs refuse to add a name twice.
	if argv := mcpRemove(provider, name); argv != nil {
		if _, _, _, err := a.Exec(ctx, argv, "", nil); err != nil {
			return err
		}
	}
	a.runMCP(ctx, op, provider, mcpAdd(provider, name, url), "registered")
	return nil
}

// runMCP runs an MCP registration command and turns its failure into a
// warning.
func (a *Agent) runMCP(ctx context.Context, op *applier.Op, provider string, argv []string, done string) {
	if argv == nil {
		warn(op, "the agent provider %q has no MCP registration command: MCP server %s was not %s", provider, op.Addr.Key, done)
		return
	}
	_, errb, code, err := a.Exec(ctx, argv, "", nil)
	switch {
	case err != nil:
		warn(op, "MCP server %s was not %s: %v", op.Addr.Key, done, err)
	case code == 126 || code == 127:
		warn(op, "the %s CLI is not in the agent's image: MCP server %s was not %s", argv[0], op.Addr.Key, done)
	case code != 0:
		warn(op, "`%s` exited %d: %s; MCP server %s was not %s", strings.Join(argv, " "), code, tailText(errb), op.Addr.Key, done)
	}
}

func mcpAdd(provider, name, url string) []string {
	switch provider {
	case resource.ProviderClaude:
		return []string{"claude", "mcp", "add", "--scope", "user", "--transport", "http", name, url}
	case resource.ProviderCodex:
		return []string{"codex", "mcp", "add", name, "--url", url}
	}
	return nil
}

func mcpRemove(provider, name string) []string {
	switch provider {
	case resource.ProviderClaude:
		return []string{"claude", "mcp", "remove", "--scope", "user", name}
	case resource.ProviderCodex:
		return []string{"codex", "mcp", "remove", name}
	}
	return nil
}

// providerOf is the bottle's agent provider: the desired one, or on a
// destroy the one the state recorded for the agent or its auth.
func providerOf(op *applier.Op) string {
	if op.Bottle != nil {
		return op.Bottle.Agent.Provider
	}
	for _, k := range []resource.Kind{resource.KindAgent, resource.KindAuth} {
		if r := applier.Lookup(op.Resources, resource.Address{Bottle: op.Addr.Bottle, Kind: k}); r != nil {
			if v, ok := r.Attrs["provider"]; ok {
				return v.Str
			}
		}
	}
	return ""
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:@%+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
