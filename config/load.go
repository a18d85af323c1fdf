package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/bottleform/bottleform/resource"
)

// File is one compiled configuration.
type File struct {
	// Dir is the directory the configuration was read from.
	Dir string
	// Bottles are the bottles to run, by name, with `extends` merged.
	// Abstract bottles (templates for extends) are not included.
	Bottles map[string]*resource.Bottle
	// Secrets are the secret declarations, by name.
	Secrets map[string]resource.SecretSource
	// Files are the parsed sources by file name, for rendering diagnostics.
	Files map[string]*hcl.File
	// Digest is a digest of what the configuration means (bottles and secret
	// declarations), so reformatting a file does not change it.
	Digest string
}

// Options control the checks that look at the host.
type Options struct {
	// LookupEnv, when set, is used to check that every host_env() and every
	// env secret a bottle uses is set, and that file secrets and key files
	// exist. validate leaves it nil; plan and apply set it to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Override, when set, gives the content to read instead of the file at
	// that path (as Load finds it: dir joined with the file's name), so an
	// edit can be checked before it is written.
	Override map[string][]byte
}

// Load reads every *.hcl file in dir. It returns a nil File when there is an
// error diagnostic; files is returned whenever something was parsed, so the
// diagnostics can be rendered with source snippets.
func Load(dir string, opts Options) (*File, map[string]*hcl.File, hcl.Diagnostics) {
	names, err := filepath.Glob(filepath.Join(dir, "*.hcl"))
	if err != nil {
		return nil, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read configuration", Detail: err.Error()}}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No configuration files",
			Detail:   fmt.Sprintf("The directory %s contains no *.hcl files. Run bottleform in the directory that holds your bottle definitions, or pass --chdir DIR.", displayDir(dir)),
		}}
	}
	parser := hclparse.NewParser()
	var diags hcl.Diagnostics
	var files []*hcl.File
	for _, name := range names {
		if src, ok := opts.Override[name]; ok {
			f, d := parser.ParseHCL(src, rel(dir, name))
			diags = append(diags, d...)
			if f != nil {
				files = append(files, f)
			}
			continue
		}
		f, d := parser.ParseHCLFile(rel(dir, name))
		if f == nil {
			// ParseHCLFile failed to read; retry with the full path so the
			// error names a real file.
			f, d = parser.ParseHCLFile(name)
		}
		diags = append(diags, d...)
		if f != nil {
			files = append(files, f)
		}
	}
	if diags.HasErrors() {
		return nil, parser.Files(), diags
	}
	d := &decoder{dir: dir, opts: opts}
	cfg := d.decode(files)
	diags = append(diags, d.diags...)
	if diags.HasErrors() {
		return nil, parser.Files(), diags
	}
	cfg.Dir = dir
	cfg.Files = parser.Files()
	cfg.Digest = digest(cfg)
	return cfg, parser.Files(), diags
}

// rel names a file the way diagnostics should show it: relative to the
// working directory when that is shorter.
func rel(dir, name string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, name); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return name
}

func displayDir(dir string) string {
	if dir == "" || dir == "." {
		return "the current directory"
	}
	return dir
}

func digest(cfg *File) string {
	b, err := json.Marshal(struct {
		Bottles map[string]*resource.Bottle
		Secrets map[string]resource.SecretSource
	}{cfg.Bottles, cfg.Secrets})
	if err != nil {
		panic("config: digest: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
