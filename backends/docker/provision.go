package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bottleform/bottleform/agent"
	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
)

// Paths in the agent, relative to the agent user's home.
const (
	bottleformDir = ".bottleform"
	promptPath    = ".bottleform/prompt.md"
	authEnvPath   = ".bottleform/env"
	// SecretEnvPath holds `export K='V'` lines of the secret env granted to
	// an agent whose runtime cannot carry it (a smolvm VM); the env file
	// reads it.
	SecretEnvPath = ".bottleform/secret-env"
	gitConfigPath = ".bottleform/gitconfig"
	// binDir holds run-agent; the env file puts it on PATH.
	binDir       = ".bottleform/bin"
	runAgentPath = binDir + "/run-agent"
)

// provision writes what lives in the agent: the prompt, a skill, the auth
// env file, an MCP registration. Creating and updating are the same: the
// object is written again whole. The agent must be running, except for
// auth (see below).
func (b *Backend) provision(ctx context.Context, op *applier.Op) error {
	return b.AgentHandle(op.Lineage, op.Addr.Bottle).Provision(ctx, op, b.configDir)
}

// Provision writes the object of op that lives in the agent (prompt,
// skill, auth, MCP registration) whole; skill directories are relative to
// configDir. Auth is written only into a running agent (see WriteAuth).
func (a *Agent) Provision(ctx context.Context, op *applier.Op, configDir string) error {
	switch op.Addr.Kind {
	case resource.KindPrompt:
		return a.writeFiles(ctx, "", []tarEntry{{Name: promptPath, Mode: 0o644, Data: []byte(op.Bottle.Prompt)}})
	case resource.KindSkill:
		return a.copySkill(ctx, op, configDir)
	case resource.KindAuth:
		// The applier makes auth before the agent (grants first), and the
		// agent is created with its auth provisioned; so auth writes into an
		// agent only when there is one running, as on an update in place.
		if up, err := a.running(ctx); err != nil || !up {
			return err
		}
		return a.WriteAuth(ctx, op)
	case resource.KindMCP:
		return a.registerMCP(ctx, op)
	}
	return fmt.Errorf("%s does not live in the agent", op.Addr.Kind)
}

// unprovision removes what provision wrote. An agent that is gone or
// stopped has nothing to remove: its files go with it.
func (b *Backend) unprovision(ctx context.Context, op *applier.Op) error {
	return b.AgentHandle(op.Lineage, op.Addr.Bottle).Unprovision(ctx, op)
}

// Unprovision removes what Provision wrote for op. An agent that is gone
// or stopped has nothing to remove: its files go with it.
func (a *Agent) Unprovision(ctx context.Context, op *applier.Op) error {
	if up, err := a.running(ctx); err != nil || !up {
		return err
	}
	switch op.Addr.Kind {
	case resource.KindPrompt:
		return a.remove(ctx, promptPath)
	case resource.KindAuth:
		for _, p := range []string{gitConfigPath, binDir, authEnvPath} {
			if err := a.remove(ctx, p); err != nil {
				return err
			}
		}
		// The provider's files go too, where they are bottleform's alone
		// (codex's placeholder sign-in); settings merged into the agent's
		// own files (~/.claude.json) stay.
		if p, err := agent.Lookup(providerOf(op)); err == nil {
			return a.writeProviderFiles(ctx, op, p, agent.FileInput{Spec: resource.AgentSpec{Provider: p.Name}, Remove: true})
		}
		return nil
	case resource.KindSkill:
		p, err := agent.Lookup(providerOf(op))
		if err != nil {
			return nil // no provider recorded: nothing is known to remove
		}
		return a.remove(ctx, path.Join(p.SkillsDir, op.Addr.Key))
	case resource.KindMCP:
		if p, err := agent.Lookup(providerOf(op)); err == nil {
			a.unregisterMCP(ctx, op, p)
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
func (a *Agent) copySkill(ctx context.Context, op *applier.Op, configDir string) error {
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
		src = filepath.Join(configDir, src)
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

// WriteAuth provisions the agent's side of the provider's auth, none of
// it secret:
//
//   - $HOME/.bottleform/env: the provider's env as `export K='V'` lines
//     (placeholders and flags, and RootEnv when the agent user is root),
//     and $HOME/.bottleform/bin on PATH;
//   - $HOME/.bottleform/bin/run-agent, which starts the provider's CLI
//     with its flags and the prompt (agent.Provider.RunAgent);
//   - the provider's files (agent.Provider.Files: claude's ~/.claude.json
//     merged, codex's placeholder ~/.codex/auth.json);
//   - the git configuration, included from ~/.gitconfig when the image
//     has git and the bottle has a git_user or git entries.
func (a *Agent) WriteAuth(ctx context.Context, op *applier.Op) error {
	id, err := a.identity(ctx)
	if err != nil {
		return err
	}
	p, err := agent.Lookup(op.Bottle.Agent.Provider)
	if err != nil {
		return err
	}
	env := agent.AgentEnv(op.Bottle.Agent, id.uid == 0)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.WriteString("# Written by bottleform: the agent provider's settings. Nothing here is secret.\n")
	for _, k := range keys {
		fmt.Fprintf(&buf, "export %s=%s\n", k, agent.ShellQuote(env[k]))
	}
	// The smolmachines backend keeps the agent's granted secret env here
	// (a VM's record would put it on smolvm's argv).
	buf.WriteString("if [ -r \"$HOME/" + SecretEnvPath + "\" ]; then . \"$HOME/" + SecretEnvPath + "\"; fi\n")
	fmt.Fprintf(&buf, "case \":$PATH:\" in *\":$HOME/%s:\"*) ;; *) PATH=\"$HOME/%s:$PATH\" ;; esac\nexport PATH\n", binDir, binDir)
	err = a.writeFiles(ctx, "", []tarEntry{
		{Name: authEnvPath, Mode: 0o644, Data: buf.Bytes()},
		{Name: binDir + "/", Mode: 0o755},
		{Name: runAgentPath, Mode: 0o755, Data: []byte(p.RunAgent(authEnvPath, promptPath))},
		{Name: gitConfigPath, Mode: 0o644, Data: []byte(agent.GitConfig(op.Bottle, a.ep.Gate))},
	})
	if err != nil {
		return err
	}
	in := agent.FileInput{Spec: op.Bottle.Agent, Workdir: id.workdir, Now: time.Now()}
	if ref := agent.Token(op.Bottle.Agent); !ref.IsZero() {
		v, ok := op.Secrets.Value(ref)
		if !ok {
			return fmt.Errorf("the value of %s was not resolved", ref)
		}
		in.Token = v
	}
	if err := a.writeProviderFiles(ctx, op, p, in); err != nil {
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

// writeProviderFiles brings the provider's files to what their Build
// returns for in: written (owned by the agent user), left alone, or
// removed. Reading them needs a shell in the image; without one they are
// left alone, with a warning.
func (a *Agent) writeProviderFiles(ctx context.Context, op *applier.Op, p *agent.Provider, in agent.FileInput) error {
	for _, f := range p.Files {
		current, err := a.readFile(ctx, f.Path)
		if errors.Is(err, errNoShell) {
			warn(op, "the agent's image has no /bin/sh: ~/%s was not provisioned", f.Path)
			continue
		}
		if err != nil {
			return err
		}
		next, err := f.Build(current, in)
		if err != nil {
			return fmt.Errorf("~/%s in the agent: %w", f.Path, err)
		}
		switch {
		case next == nil && current != nil:
			if err := a.remove(ctx, f.Path); err != nil {
				return err
			}
		case next != nil && !bytes.Equal(next, current):
			if err := a.writeFiles(ctx, "", []tarEntry{{Name: f.Path, Mode: f.Mode, Data: next}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// readFileScript prints the file $1 or, if it does not exist, exits 3.
const readFileScript = `if [ -e "$1" ] || [ -L "$1" ]; then exec cat -- "$1"; fi; exit 3`

// errNoShell is readFile's error when the image has no /bin/sh.
var errNoShell = errors.New("no /bin/sh in the agent's image")

// readFile returns the content of rel (relative to the agent user's home)
// as the agent user reads it, or nil when it does not exist.
func (a *Agent) readFile(ctx context.Context, rel string) ([]byte, error) {
	id, err := a.identity(ctx)
	if err != nil {
		return nil, err
	}
	p := path.Join(id.home, rel)
	out, errb, code, err := a.Exec(ctx, []string{"/bin/sh", "-c", readFileScript, "sh", p}, "", nil)
	switch {
	case err != nil:
		return nil, err
	case code == 3:
		return nil, nil
	case code == 126 || code == 127:
		return nil, errNoShell
	case code != 0:
		return nil, fmt.Errorf("read %s in %s (exit %d): %s", p, a.name, code, tailText(errb))
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// registerMCP registers an MCP server with the provider's CLI, as the
// agent user. The CLI missing from the image is a warning: the image
// cannot use an MCP server at all, and applying again would not change
// that. The CLI failing is an error, so the step is not recorded as done
// and the next apply tries again.
func (a *Agent) registerMCP(ctx context.Context, op *applier.Op) error {
	p, err := agent.Lookup(op.Bottle.Agent.Provider)
	if err != nil {
		return err
	}
	name, url := op.Addr.Key, op.Attrs["url"].Str
	if name == "supervise" && a.ep.Supervise != "" {
		url = a.ep.Supervise
	}
	add := p.MCPAddArgv(name, url)
	if add == nil {
		warn(op, "the agent provider %q has no MCP registration command: MCP server %s was not registered", p.Name, name)
		return nil
	}
	// An earlier registration of the name (a repeated step, an update) is
	// removed first, whatever its outcome: the CLIs refuse to add a name
	// twice, and removing a name that is not there fails.
	if _, _, _, err := a.Exec(ctx, p.MCPRemoveArgv(name), "", nil); err != nil {
		return err
	}
	_, errb, code, err := a.Exec(ctx, add, "", nil)
	switch {
	case err != nil:
		return err
	case code == 126 || code == 127:
		warn(op, "the %s CLI is not in the agent's image: MCP server %s was not registered", add[0], name)
	case code != 0:
		return fmt.Errorf("register MCP server %s: `%s` exited %d in %s: %s; check the CLI with `bottleform attach %s -- %s mcp list`, then apply again",
			name, strings.Join(add, " "), code, a.name, tailText(errb), op.Addr.Bottle, add[0])
	}
	return nil
}

// unregisterMCP removes an MCP registration. Its failure is a warning: the
// server's route goes with it (or, for supervise, the sidecar), so a
// registration left behind reaches nothing, and it must not hold up a
// destroy.
func (a *Agent) unregisterMCP(ctx context.Context, op *applier.Op, p *agent.Provider) {
	argv := p.MCPRemoveArgv(op.Addr.Key)
	if argv == nil {
		return
	}
	_, errb, code, err := a.Exec(ctx, argv, "", nil)
	switch {
	case err != nil:
		warn(op, "MCP server %s was not removed: %v", op.Addr.Key, err)
	case code == 126 || code == 127:
		warn(op, "the %s CLI is not in the agent's image: MCP server %s was not removed", argv[0], op.Addr.Key)
	case code != 0:
		warn(op, "`%s` exited %d: %s; MCP server %s was not removed", strings.Join(argv, " "), code, tailText(errb), op.Addr.Key)
	}
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
