package agent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bottleform/bottleform/resource"
)

// DockerGate is the git gate's base URL as an agent on the Docker backend
// reaches it: the sidecar's alias on the bottle's internal network.
const DockerGate = "http://git-gate"

// GateURL is where an agent on the Docker backend reaches a git entry.
func GateURL(name string) string { return GateURLAt(DockerGate, name) }

// GateURLAt is where the agent reaches a git entry through the git gate at
// base (a URL without a trailing slash).
func GateURLAt(base, name string) string { return base + "/" + name + ".git" }

// GitConfig is the git configuration bottleform gives the agent (included
// from its ~/.gitconfig): the bottle's git_user, and for every git entry
// url.<gate>.insteadOf for each way of writing its upstream, so that the
// agent's clones, fetches and pushes of the upstream go through the gate.
// gate is the git gate's base URL as the agent reaches it (DockerGate on
// Docker). It holds no secret.
func GitConfig(b *resource.Bottle, gate string) string {
	var s strings.Builder
	s.WriteString("# Written by bottleform; rewritten by every apply. Nothing here is secret.\n")
	if gu := b.GitUser; gu != nil {
		fmt.Fprintf(&s, "[user]\n\tname = %s\n\temail = %s\n", quote(gu.Name), quote(gu.Email))
	}
	for _, g := range b.Git {
		fmt.Fprintf(&s, "[url %s]\n", quote(GateURLAt(gate, g.Name)))
		for _, u := range UpstreamForms(g) {
			fmt.Fprintf(&s, "\tinsteadOf = %s\n", quote(u))
		}
	}
	return s.String()
}

// UpstreamForms lists the ways an agent may write g's upstream: as
// declared, as a canonical ssh:// URL, in scp form (port 22) and as https.
// git's insteadOf matches prefixes and the longest wins, so a path without
// ".git" also gets its ".git" form: otherwise ".../repo" would rewrite
// ".../repo.git" to the gate URL followed by ".git".
func UpstreamForms(g resource.GitEntry) []string {
	paths := []string{g.Path}
	if !strings.HasSuffix(g.Path, ".git") {
		paths = append(paths, g.Path+".git")
	}
	out := []string{g.Upstream}
	seen := map[string]bool{g.Upstream: true}
	add := func(u string) {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	for _, p := range paths {
		if g.Port == 0 || g.Port == 22 {
			add("ssh://" + g.User + "@" + g.Host + p)
			add(g.User + "@" + g.Host + ":" + strings.TrimPrefix(p, "/"))
		} else {
			add("ssh://" + g.User + "@" + g.Host + ":" + strconv.Itoa(g.Port) + p)
		}
		add("https://" + g.Host + p)
	}
	return out
}

// quote writes s as a git config value: in double quotes, with backslash,
// quote and control characters escaped.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}
