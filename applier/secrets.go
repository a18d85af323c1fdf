package applier

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
)

// Source is where secret values come from at apply time.
type Source struct {
	LookupEnv func(string) (string, bool)
	ReadFile  func(string) ([]byte, error)
	// Prompt asks the user for a value; nil when there is no terminal.
	Prompt func(text string) (string, error)
	// HostCredential reads a provider's credential on the host
	// (codex: ~/.codex/auth.json, see agent.ReadHostCredential); nil when
	// none can be read. Its errors must name what was read and hold no
	// credential value.
	HostCredential func(provider string) (resource.Secret, error)
	// Dir is the configuration directory, for relative file secrets.
	Dir string
}

// Refs lists the references the bottles with changes in p use, sorted.
func Refs(p *planner.Plan) []resource.Ref {
	seen := map[resource.Ref]bool{}
	changed := map[string]bool{}
	for _, c := range p.Changes {
		if c.Action.Changes() {
			changed[c.Addr.Bottle] = true
		}
	}
	for name, b := range p.Bottles {
		if changed[name] {
			for _, r := range b.Refs() {
				seen[r] = true
			}
		}
	}
	// Revoking a deploy key needs its forge token, from the state.
	for _, c := range p.Changes {
		if c.Addr.Kind == resource.KindDeployKey && (c.Action == planner.Delete || c.Action == planner.Replace) {
			if r, err := resource.ParseRef(c.Before["token"].Str); err == nil {
				seen[r] = true
			}
		}
	}
	out := make([]resource.Ref, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Resolve reads the value of every reference p needs, before anything is
// created. Errors name the secret and where it was looked for, never a
// value.
func Resolve(p *planner.Plan, src Source) (Secrets, error) {
	return ResolveRefs(Refs(p), p.Secrets, src)
}

// ResolveRefs reads the values of refs, whose declared secrets decls
// describes; every failure is reported, and then nothing is returned.
func ResolveRefs(refs []resource.Ref, decls map[string]resource.SecretSource, src Source) (Secrets, error) {
	out := Secrets{}
	var errs []error
	for _, ref := range refs {
		v, err := resolve(ref, decls, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[ref] = v
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func resolve(ref resource.Ref, decls map[string]resource.SecretSource, src Source) (resource.Secret, error) {
	switch {
	case ref.HostEnv != "":
		v, ok := src.LookupEnv(ref.HostEnv)
		if !ok {
			return resource.Secret{}, fmt.Errorf("host_env(%q): the variable is not set; export it and apply again", ref.HostEnv)
		}
		return resource.NewSecret(v), nil
	case ref.KeyFile != "":
		b, err := src.ReadFile(hostPath(ref.KeyFile, src))
		if err != nil {
			return resource.Secret{}, fmt.Errorf("%s, a git key: %w", ref, err)
		}
		return resource.NewSecret(string(b)), nil
	case ref.HostCredential != "":
		if src.HostCredential == nil {
			return resource.Secret{}, fmt.Errorf("%s: reading host credentials is not supported for %s", ref, ref.HostCredential)
		}
		v, err := src.HostCredential(ref.HostCredential)
		if err != nil {
			return resource.Secret{}, fmt.Errorf("%s: %w", ref, err)
		}
		return v, nil
	}
	d, ok := decls[ref.Secret]
	if !ok {
		return resource.Secret{}, fmt.Errorf("%s is not declared in the plan", ref)
	}
	switch d.Kind {
	case resource.SecretEnv:
		v, ok := src.LookupEnv(d.Source)
		if !ok {
			return resource.Secret{}, fmt.Errorf("secret.%s reads $%s, which is not set; export it and apply again", d.Name, d.Source)
		}
		return resource.NewSecret(v), nil
	case resource.SecretFile:
		b, err := src.ReadFile(hostPath(d.Source, src))
		if err != nil {
			return resource.Secret{}, fmt.Errorf("secret.%s: %w", d.Name, err)
		}
		return resource.NewSecret(strings.TrimRight(string(b), "\r\n")), nil
	case resource.SecretPrompt:
		if src.Prompt == nil {
			return resource.Secret{}, fmt.Errorf("secret.%s is asked on the terminal (%q), but there is no terminal; run apply in a terminal, or declare it with env = \"VAR\" for automation", d.Name, d.Source)
		}
		v, err := src.Prompt(d.Source)
		if err != nil {
			return resource.Secret{}, fmt.Errorf("secret.%s: %w", d.Name, err)
		}
		return resource.NewSecret(v), nil
	}
	return resource.Secret{}, fmt.Errorf("secret.%s has an unknown source", d.Name)
}

// hostPath expands a leading ~ to $HOME and makes a relative path relative
// to the configuration directory.
func hostPath(path string, src Source) string {
	if path == "~" || strings.HasPrefix(path, "~/") {
		home, _ := src.LookupEnv("HOME")
		return filepath.Join(home, strings.TrimPrefix(path, "~"))
	}
	if !filepath.IsAbs(path) {
		return filepath.Join(src.Dir, path)
	}
	return path
}
