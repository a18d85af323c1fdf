package config

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/bottleform/bottleform/resource"
)

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "secret", LabelNames: []string{"name"}},
		{Type: "bottle", LabelNames: []string{"name"}},
	},
}

var secretSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "env"}, {Name: "file"}, {Name: "prompt"}},
}

var bottleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "extends"}, {Name: "abstract"}, {Name: "backend"}, {Name: "image"},
		{Name: "env"}, {Name: "supervise"}, {Name: "prompt"}, {Name: "skills"}, {Name: "upstream_ca"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "agent", LabelNames: []string{"provider"}},
		{Type: "egress", LabelNames: []string{"host"}},
		{Type: "git", LabelNames: []string{"name"}},
		{Type: "git_user"},
		{Type: "mcp", LabelNames: []string{"name"}},
		{Type: "resources"},
	},
}

var agentSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "auth_token"}, {Name: "forward_host_credentials"}},
}

var egressSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "paths"}, {Name: "methods"}, {Name: "tls"}, {Name: "role"}, {Name: "allow_private_ip"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "auth"}},
}

var authSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "scheme"}, {Name: "token"}},
}

var gitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "upstream", Required: true}, {Name: "host_key"}, {Name: "push"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "key", LabelNames: []string{"kind"}}},
}

var keyFileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "path", Required: true}},
}

var keyGiteaSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "api_url", Required: true}, {Name: "token", Required: true}},
}

var gitUserSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "name", Required: true}, {Name: "email", Required: true}},
}

var mcpSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "url", Required: true}},
}

var resourcesSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "cpus"}, {Name: "memory"}},
}

// decoder turns parsed files into a File, collecting diagnostics.
type decoder struct {
	dir     string
	opts    Options
	diags   hcl.Diagnostics
	secrets map[string]resource.SecretSource
	// secretRanges are the declarations' ranges, for unused warnings and
	// host checks.
	secretRanges map[string]hcl.Range
	secretUsed   map[string]bool
}

func (d *decoder) errorf(rng hcl.Range, summary, detail string, args ...any) {
	r := rng
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: &r,
	})
}

func (d *decoder) warnf(rng hcl.Range, summary, detail string, args ...any) {
	r := rng
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: &r,
	})
}

func (d *decoder) add(diags hcl.Diagnostics) bool {
	d.diags = append(d.diags, diags...)
	return !diags.HasErrors()
}

func (d *decoder) decode(files []*hcl.File) *File {
	d.secrets = map[string]resource.SecretSource{}
	d.secretRanges = map[string]hcl.Range{}
	d.secretUsed = map[string]bool{}
	var bottleBlocks []*hcl.Block
	for _, f := range files {
		content, diags := f.Body.Content(rootSchema)
		d.add(diags)
		if content == nil {
			continue
		}
		for _, b := range content.Blocks {
			switch b.Type {
			case "secret":
				d.secret(b)
			case "bottle":
				bottleBlocks = append(bottleBlocks, b)
			}
		}
	}
	decls := map[string]*bottleDecl{}
	var order []string
	for _, b := range bottleBlocks {
		bd := d.bottle(b)
		if bd == nil {
			continue
		}
		if prev, ok := decls[bd.name]; ok {
			d.errorf(b.LabelRanges[0], "Duplicate bottle", "A bottle named %q is already defined at %s. Bottle names must be unique across all files of the directory; rename one of them.", bd.name, prev.labelRange)
			continue
		}
		decls[bd.name] = bd
		order = append(order, bd.name)
	}
	bottles := d.merge(decls, order)
	for name, rng := range d.secretRanges {
		if !d.secretUsed[name] {
			d.warnf(rng, "Unused secret", "The secret %q is declared but no bottle uses it. Remove the block, or refer to it as secret.%s.", name, name)
		}
	}
	return &File{Bottles: bottles, Secrets: d.secrets}
}

func (d *decoder) secret(b *hcl.Block) {
	name := b.Labels[0]
	if !validSecretName(name) {
		d.errorf(b.LabelRanges[0], "Invalid secret name", "The secret name %q is not valid: use lower-case letters, digits, '_' and '-', starting with a letter, as in \"github_token\".", name)
		return
	}
	if _, dup := d.secretRanges[name]; dup {
		d.errorf(b.LabelRanges[0], "Duplicate secret", "A secret named %q is already declared at %s; remove or rename one of them.", name, d.secretRanges[name])
		return
	}
	content, diags := b.Body.Content(secretSchema)
	if !d.add(diags) {
		return
	}
	var set []*hcl.Attribute
	for _, n := range []string{"env", "file", "prompt"} {
		if a, ok := content.Attributes[n]; ok {
			set = append(set, a)
		}
	}
	if len(set) != 1 {
		rng := b.DefRange
		if len(set) > 1 {
			rng = set[1].NameRange
		}
		d.errorf(rng, "A secret needs exactly one source", "Set exactly one of env = \"VAR\" (a host environment variable), file = \"PATH\" (a file on the host) or prompt = \"TEXT\" (asked on the terminal at apply).")
		return
	}
	a := set[0]
	v, ok := d.str(a)
	if !ok {
		return
	}
	src := resource.SecretSource{Name: name, Source: v}
	switch a.Name {
	case "env":
		src.Kind = resource.SecretEnv
		if !validEnvName(v) {
			d.errorf(a.Expr.Range(), "Invalid environment variable name", "%q is not a valid environment variable name: use letters, digits and '_', not starting with a digit.", v)
			return
		}
	case "file":
		src.Kind = resource.SecretFile
		if v == "" {
			d.errorf(a.Expr.Range(), "Empty secret file path", "Give the path of the file that holds the secret, as in file = \"~/.config/bottleform/token\".")
			return
		}
	case "prompt":
		src.Kind = resource.SecretPrompt
		if strings.TrimSpace(v) == "" {
			d.errorf(a.Expr.Range(), "Empty prompt", "Give the text to show when asking for the secret, as in prompt = \"Staging DB password\".")
			return
		}
	}
	d.secrets[name] = src
	d.secretRanges[name] = b.LabelRanges[0]
}

// str evaluates an attribute as a string literal.
func (d *decoder) str(a *hcl.Attribute) (string, bool) {
	var s string
	return s, d.value(a, cty.String, &s)
}

func (d *decoder) value(a *hcl.Attribute, ty cty.Type, target any) bool {
	v, diags := a.Expr.Value(nil)
	if !d.add(diags) {
		return false
	}
	if v.IsNull() {
		d.errorf(a.Expr.Range(), "Missing value", "The attribute %q cannot be null; give it a value or remove it.", a.Name)
		return false
	}
	v, err := convert.Convert(v, ty)
	if err != nil {
		d.errorf(a.Expr.Range(), "Wrong type", "The attribute %q must be a %s: %s.", a.Name, ty.FriendlyName(), err)
		return false
	}
	if err := gocty.FromCtyValue(v, target); err != nil {
		d.errorf(a.Expr.Range(), "Wrong type", "The attribute %q must be a %s: %s.", a.Name, ty.FriendlyName(), err)
		return false
	}
	return true
}

// ref evaluates a reference to a sensitive value: secret.NAME or
// host_env("VAR"). what names the attribute for messages.
func (d *decoder) ref(expr hcl.Expression, what string) (resource.Ref, bool) {
	if call, ok := expr.(*hclsyntax.FunctionCallExpr); ok && call.Name == "host_env" {
		return d.hostEnv(call)
	}
	trav, diags := hcl.AbsTraversalForExpr(expr)
	if diags.HasErrors() {
		d.errorf(expr.Range(), "Secret values must be references", "%s must refer to a secret, not hold one: declare `secret \"NAME\" { env = \"VAR\" }` and write secret.NAME, or write host_env(\"VAR\"). A value written into a definition would be committed to git.", what)
		return resource.Ref{}, false
	}
	if trav.RootName() != "secret" || len(trav) != 2 {
		d.errorf(expr.Range(), "Invalid reference", "Only secret.NAME and host_env(\"VAR\") can be referred to here; %s is neither.", traversalString(trav))
		return resource.Ref{}, false
	}
	attr, ok := trav[1].(hcl.TraverseAttr)
	if !ok {
		d.errorf(expr.Range(), "Invalid reference", "Refer to a secret as secret.NAME.")
		return resource.Ref{}, false
	}
	if _, ok := d.secrets[attr.Name]; !ok {
		detail := fmt.Sprintf("No secret named %q is declared.", attr.Name)
		if s := suggest(attr.Name, keys(d.secretRanges)); s != "" {
			detail += fmt.Sprintf(" Did you mean secret.%s?", s)
		} else {
			detail += fmt.Sprintf(" Declare it: secret %q { env = \"VAR\" }.", attr.Name)
		}
		d.errorf(expr.Range(), "Reference to undeclared secret", "%s", detail)
		return resource.Ref{}, false
	}
	d.secretUsed[attr.Name] = true
	return resource.Ref{Secret: attr.Name}, true
}

func (d *decoder) hostEnv(call *hclsyntax.FunctionCallExpr) (resource.Ref, bool) {
	if len(call.Args) != 1 {
		d.errorf(call.Range(), "Wrong number of arguments", "host_env takes one argument, the variable's name, as in host_env(\"USER\").")
		return resource.Ref{}, false
	}
	v, diags := call.Args[0].Value(nil)
	if !d.add(diags) {
		return resource.Ref{}, false
	}
	if v.Type() != cty.String || v.IsNull() {
		d.errorf(call.Args[0].Range(), "Invalid argument", "host_env takes the variable's name as a string, as in host_env(\"USER\").")
		return resource.Ref{}, false
	}
	name := v.AsString()
	if !validEnvName(name) {
		d.errorf(call.Args[0].Range(), "Invalid environment variable name", "%q is not a valid environment variable name: use letters, digits and '_', not starting with a digit.", name)
		return resource.Ref{}, false
	}
	if d.opts.LookupEnv != nil {
		if _, ok := d.opts.LookupEnv(name); !ok {
			d.errorf(call.Range(), "Undefined host environment variable", "The variable %s is not set in the environment bottleform runs in. Export it (export %s=...) and run the command again, or remove the reference.", name, name)
			return resource.Ref{}, false
		}
	}
	return resource.Ref{HostEnv: name}, true
}

func traversalString(t hcl.Traversal) string {
	var b strings.Builder
	for i, s := range t {
		switch s := s.(type) {
		case hcl.TraverseRoot:
			b.WriteString(s.Name)
		case hcl.TraverseAttr:
			b.WriteString("." + s.Name)
		default:
			_ = i
			b.WriteString("[...]")
		}
	}
	return b.String()
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// path resolves a path written in a file of the configuration: ~ is the
// home directory, a relative path is relative to the configuration's
// directory.
func (d *decoder) path(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		return p // expanded on the host at apply; kept as written for the plan
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}
