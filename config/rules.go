package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/agext/levenshtein"
)

var (
	bottleNameRe = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	secretNameRe = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	gitNameRe    = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	mcpNameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	envNameRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hostLabelRe  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

func validBottleName(s string) bool { return bottleNameRe.MatchString(s) }
func validSecretName(s string) bool { return secretNameRe.MatchString(s) }
func validMCPName(s string) bool    { return mcpNameRe.MatchString(s) }
func validEnvName(s string) bool    { return envNameRe.MatchString(s) }

// validGitName: the name becomes a directory and a URL path in the gate.
func validGitName(s string) bool {
	return gitNameRe.MatchString(s) && s != "." && s != ".."
}

// suggestBottleName offers a valid spelling of an invalid bottle name.
func suggestBottleName(s string) string {
	s = strings.ToLower(strings.NewReplacer("_", "-", " ", "-", ".", "-").Replace(s))
	s = strings.TrimLeft(s, "0123456789-")
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "my-bottle"
	}
	return b.String()
}

// suggest returns the candidate closest to s, if it is close enough to be
// a likely typo.
func suggest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(s, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// checkHost validates an egress host label; it returns a message, or "".
func checkHost(h string) string {
	if h == "" {
		return "The egress host is empty; give a host name such as \"api.github.com\"."
	}
	if strings.Contains(h, "://") || strings.Contains(h, "/") {
		return fmt.Sprintf("%q is not a host name: give the host alone, as in \"api.github.com\", and limit paths with paths = [...].", h)
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return "" // an IP literal, allowed when a route names it
	}
	if i := strings.LastIndex(h, ":"); i >= 0 {
		return fmt.Sprintf("%q has a port: routes are for port 443 (and 80 for plain HTTP); give the host alone.", h)
	}
	if h != strings.ToLower(h) {
		return fmt.Sprintf("%q has upper-case letters; host names are written in lower case: %q.", h, strings.ToLower(h))
	}
	if strings.Contains(h, "*") {
		return fmt.Sprintf("%q has a wildcard; name each host the bottle may reach.", h)
	}
	if len(h) > 253 {
		return "The host name is longer than 253 characters."
	}
	for _, l := range strings.Split(h, ".") {
		if !hostLabelRe.MatchString(l) {
			return fmt.Sprintf("%q is not a valid host name: each dot-separated part must be 1-63 letters, digits or '-', not starting or ending with '-'.", h)
		}
	}
	return ""
}

// checkMethod validates one entry of a route's methods; it returns a
// message, or "".
func checkMethod(m string) string {
	switch {
	case m == "":
		return "A method is empty; give method names such as \"GET\" or \"POST\"."
	case strings.ContainsFunc(m, func(r rune) bool { return !isMethodChar(r) }):
		return fmt.Sprintf("%q is not an HTTP method: a method is one word of letters, as in \"GET\", \"POST\" or \"PATCH\".", m)
	case m != strings.ToUpper(m):
		return fmt.Sprintf("%q is not upper case; methods are written in upper case: %q.", m, strings.ToUpper(m))
	case m == "CONNECT" || m == "TRACE" || m == "TRACK":
		return fmt.Sprintf("The gateway never forwards %s requests; remove %q.", m, m)
	}
	return ""
}

// isMethodChar reports whether r may appear in an HTTP method (an RFC 9110
// token character).
func isMethodChar(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

// hostKey is a host name or address in the one spelling two names of the
// same host share: lower case, without brackets or a trailing dot, an
// address in canonical form.
func hostKey(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")), ".")
	if a, err := netip.ParseAddr(h); err == nil {
		return a.WithZone("").Unmap().String()
	}
	return h
}

// checkRefPattern validates a push ref pattern. A leading '+' allows
// force-pushes to the refs it matches.
func checkRefPattern(p string) string {
	q := strings.TrimPrefix(p, "+")
	switch {
	case !strings.HasPrefix(q, "refs/"):
		return fmt.Sprintf("%q must be a full ref pattern starting with refs/, as in \"refs/heads/agent/*\" (prefix + to allow force-pushes).", p)
	case strings.Count(q, "*") > 1:
		return fmt.Sprintf("%q has more than one '*'; use at most one.", p)
	case strings.Contains(q, "..") || strings.Contains(q, "//") || strings.Contains(q, "@{"):
		return fmt.Sprintf("%q is not a valid ref pattern: it holds \"..\", \"//\" or \"@{\".", p)
	case strings.ContainsAny(q, " ~^:?[\\\t\n"):
		return fmt.Sprintf("%q is not a valid ref pattern: refs cannot hold spaces or any of ~^:?[\\.", p)
	case strings.HasSuffix(q, "/") || strings.HasSuffix(q, ".lock") || strings.HasSuffix(q, "."):
		return fmt.Sprintf("%q is not a valid ref pattern: it cannot end in '/', '.' or \".lock\".", p)
	}
	return ""
}

var memUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1000, "kb": 1000, "m": 1000 * 1000, "mb": 1000 * 1000, "g": 1000 * 1000 * 1000, "gb": 1000 * 1000 * 1000,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

var memRe = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$`)

// parseMemory parses "4GiB", "512MiB", "2G" into bytes.
func parseMemory(s string) (int64, error) {
	m := memRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a memory size: write a number and a unit, as in \"4GiB\" or \"512MiB\"", s)
	}
	unit, ok := memUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("%q has an unknown unit %q: use B, KiB, MiB, GiB, TiB, KB, MB or GB", s, m[2])
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a memory size", s)
	}
	n := int64(f * float64(unit))
	if n < 6<<20 {
		return 0, fmt.Errorf("%q is less than the 6MiB an agent needs at the least", s)
	}
	return n, nil
}
