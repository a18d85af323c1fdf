package smolvmfake

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// usageError is a clap-style parse failure: `error: <msg>` plus a Usage
// line on stderr, exit 2 (§2.2, §8.2).
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg }

// helpRequest is `-h`/`--help`: clap prints the help to stdout, exit 0.
type helpRequest struct{ spec *cmdSpec }

func (h *helpRequest) Error() string { return "help requested" }

// help renders a subcommand's usage and options, one flag a line, so
// feature detection by grepping `--help` (§8.6) sees the emulated surface.
func (c *cmdSpec) help() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\nOptions:\n", c.usage)
	for _, f := range c.flags {
		short := "    "
		if f.short != 0 {
			short = fmt.Sprintf("-%c, ", f.short)
		}
		v := ""
		if f.value != "" {
			v = " <" + f.value + ">"
		}
		fmt.Fprintf(&b, "  %s--%s%s\n", short, f.long, v)
	}
	b.WriteString("  -h, --help\n")
	return b.String()
}

// flagSpec is one allowed flag of a subcommand (§1.3).
type flagSpec struct {
	long     string
	short    byte // 0: long form only
	value    string
	validate func(string) error
}

// cmdSpec is a subcommand's flag allow-list and its positional shape.
type cmdSpec struct {
	name     string
	usage    string
	flags    []flagSpec
	required []string // flags that must be given
	// positionals: how many bare arguments are allowed before `--`.
	positionals int
	// trailing: "" none, "required" (exec), "optional" (create, run).
	trailing string
	// bareStartsTrailing: a bare argument starts the command (run).
	bareStartsTrailing bool
	// notEmulated: parsed like the real CLI, then refused with exit 1.
	notEmulated bool
}

// parsed is the result of parsing one subcommand's arguments.
type parsed struct {
	vals     map[string][]string // long name -> values ("" for a switch)
	pos      []string
	trailing []string
}

func (p *parsed) has(k string) bool { _, ok := p.vals[k]; return ok }
func (p *parsed) get(k string) string {
	v := p.vals[k]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}
func (p *parsed) all(k string) []string { return p.vals[k] }

func sw(long string, short byte) flagSpec { return flagSpec{long: long, short: short} }
func val(long string, short byte, v string, f func(string) error) flagSpec {
	return flagSpec{long: long, short: short, value: v, validate: f}
}

func vPort(s string) error { _, err := parsePort(s); return err }
func vU8(s string) error {
	_, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return fmt.Errorf("invalid digit found in string")
	}
	return nil
}
func vU32(s string) error {
	_, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("invalid digit found in string")
	}
	return nil
}
func vU64(s string) error { _, err := strconv.ParseUint(s, 10, 64); return err }
func vPositive(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return fmt.Errorf("must be greater than 0")
	}
	return nil
}
func vDuration(s string) error { _, err := parseHumanDuration(s); return err }
func vCIDR(s string) error {
	if _, err := netip.ParsePrefix(s); err == nil {
		return nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	return fmt.Errorf("invalid CIDR or IP address")
}
func vIPv4(s string) error {
	ip := net.ParseIP(s)
	if ip == nil || ip.To4() == nil {
		return fmt.Errorf("invalid IPv4 address syntax")
	}
	return nil
}
func vNetBackend(s string) error {
	if s != "tsi" && s != "virtio-net" {
		return fmt.Errorf("[possible values: tsi, virtio-net]")
	}
	return nil
}
func vNonEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("image must not be empty")
	}
	return nil
}

// parsePort parses HOST:GUEST or N (§1.4): split on the first ':', both u16
// and non-zero.
func parsePort(s string) ([2]int, error) {
	h, g, ok := strings.Cut(s, ":")
	if !ok {
		g = h
	}
	hp, err1 := strconv.ParseUint(h, 10, 16)
	gp, err2 := strconv.ParseUint(g, 10, 16)
	if err1 != nil || err2 != nil {
		return [2]int{}, fmt.Errorf("invalid port mapping '%s': expected HOST:GUEST or PORT", s)
	}
	if hp == 0 {
		return [2]int{}, fmt.Errorf("host port 0 is not valid for VM port forwarding")
	}
	if gp == 0 {
		return [2]int{}, fmt.Errorf("guest port 0 is not valid for VM port forwarding")
	}
	return [2]int{int(hp), int(gp)}, nil
}

var durUnits = map[string]time.Duration{
	"ns": time.Nanosecond, "nsec": time.Nanosecond, "us": time.Microsecond, "usec": time.Microsecond,
	"ms": time.Millisecond, "msec": time.Millisecond, "millis": time.Millisecond,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
}

// parseHumanDuration accepts humantime's `30s`, `5m`, `1h 30m`, `5sec`;
// zero is rejected (§1.3).
func parseHumanDuration(s string) (time.Duration, error) {
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, fmt.Errorf("value was empty")
	}
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("expected number at 0")
		}
		n, _ := strconv.ParseInt(rest[:i], 10, 64)
		rest = rest[i:]
		j := 0
		for j < len(rest) && rest[j] != ' ' && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		u, ok := durUnits[rest[:j]]
		if !ok {
			if j == 0 {
				return 0, fmt.Errorf("time unit needed, for example %dsec or %dms", n, n)
			}
			return 0, fmt.Errorf("unknown time unit %q", rest[:j])
		}
		total += time.Duration(n) * u
		rest = strings.TrimLeft(rest[j:], " ")
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration must be greater than zero")
	}
	return total, nil
}

// createFlags are the `machine create` flags of §1.3.
func createFlags() []flagSpec {
	return []flagSpec{
		val("name", 'n', "NAME", nil),
		val("label", 0, "KEY=VALUE", nil),
		val("image", 'I', "IMAGE", vNonEmpty),
		val("max-image-size", 0, "SIZE", nil),
		val("cpus", 0, "N", vU8),
		val("mem", 0, "MiB", vU32),
		val("storage", 0, "GiB", vU64),
		val("overlay", 0, "GiB", vU64),
		val("volume", 'v', "HOST:GUEST[:ro|:rw]", nil),
		val("port", 'p', "HOST:GUEST", vPort),
		sw("net", 0),
		val("net-backend", 0, "BACKEND", vNetBackend),
		val("dns", 0, "IP", vIPv4),
		val("network", 0, "NAME", nil),
		val("allow-cidr", 0, "CIDR", vCIDR),
		val("allow-host", 0, "HOSTNAME", nil),
		sw("outbound-localhost-only", 0),
		sw("gpu", 0),
		val("gpu-vram", 0, "MiB", vPositive),
		sw("rosetta", 0), sw("cuda", 0), sw("auto-graph", 0), sw("docker-socket", 0), sw("ssh-agent", 0),
		val("expose-socket", 0, "GUEST_PATH[:HOST_PATH]", nil),
		val("mount-socket", 0, "HOST_PATH:GUEST_PATH", nil),
		val("init", 0, "COMMAND", nil),
		val("env", 'e', "KEY=VALUE", nil),
		val("workdir", 'w', "DIR", nil),
		val("secret-env", 0, "GUEST_VAR=HOST_VAR", nil),
		val("secret-file", 0, "GUEST_VAR=PATH", nil),
		val("smolfile", 's', "PATH", nil),
		val("from", 0, "PATH", nil),
	}
}

func runFlags() []flagSpec {
	var out []flagSpec
	for _, f := range createFlags() {
		switch f.long {
		case "label", "init", "expose-socket", "mount-socket":
			continue
		}
		out = append(out, f)
	}
	return append(out,
		sw("detach", 'd'), sw("interactive", 'i'), sw("tty", 't'),
		val("timeout", 0, "DURATION", vDuration),
		val("oci-platform", 0, "OS/ARCH", nil),
		val("docker-config", 0, "PATH", nil),
		sw("no-init-cache", 0), sw("rebuild-init-cache", 0), sw("oci-cache", 0), sw("unprivileged", 0),
		val("proxy", 0, "URL", nil), val("no-proxy", 0, "LIST", nil),
	)
}

// machineSpecs returns the subcommands of §1.2 the fake implements, with
// their aliases, for the emulated version (flags added later are gated).
func machineSpecs(version string) map[string]*cmdSpec {
	exec := &cmdSpec{name: "exec", usage: "smolvm machine exec [OPTIONS] -- <COMMAND>...", trailing: "required", flags: []flagSpec{
		val("name", 0, "NAME", nil),
		val("workdir", 'w', "DIR", nil),
		val("env", 'e', "KEY=VALUE", nil),
		val("secret-env", 0, "GUEST_VAR=HOST_VAR", nil),
		val("secret-file", 0, "GUEST_VAR=PATH", nil),
		val("timeout", 0, "DURATION", vDuration),
		sw("interactive", 'i'), sw("tty", 't'), sw("stream", 0), sw("detach", 'd'),
	}}
	if versionAtLeast(version, "1.14.0") {
		exec.flags = append(exec.flags, val("user", 'u', "USER", nil))
	}
	specs := []*cmdSpec{
		{name: "create", usage: "smolvm machine create [OPTIONS] [-- <COMMAND>...]", trailing: "optional", flags: createFlags()},
		{name: "start", usage: "smolvm machine start [OPTIONS]", flags: []flagSpec{
			val("name", 'n', "NAME", nil), sw("forkable", 0), val("fork-pool-size", 0, "N", vU32),
			val("cuda-vram-limit-mib", 0, "MiB", vU32), val("proxy", 0, "URL", nil), val("no-proxy", 0, "LIST", nil),
		}},
		{name: "stop", usage: "smolvm machine stop [OPTIONS]", flags: []flagSpec{val("name", 'n', "NAME", nil)}},
		{name: "delete", usage: "smolvm machine delete [OPTIONS] --name <NAME>", required: []string{"name"}, flags: []flagSpec{
			val("name", 'n', "NAME", nil), sw("force", 'f'), sw("cascade", 0),
		}},
		{name: "status", usage: "smolvm machine status [OPTIONS]", flags: []flagSpec{val("name", 'n', "NAME", nil), sw("json", 0)}},
		{name: "ls", usage: "smolvm machine ls [OPTIONS]", flags: []flagSpec{sw("verbose", 'v'), sw("json", 0)}},
		exec,
		{name: "cp", usage: "smolvm machine cp [OPTIONS] <SRC> <DST>", positionals: 2, flags: []flagSpec{
			val("mode", 0, "OCTAL", nil), val("uid", 0, "N", vU32), val("gid", 0, "N", vU32),
		}},
		{name: "shell", usage: "smolvm machine shell [OPTIONS]", flags: []flagSpec{val("name", 'n', "NAME", nil)}},
		{name: "update", usage: "smolvm machine update [OPTIONS] --name <NAME>", required: []string{"name"}, flags: []flagSpec{
			val("name", 'n', "NAME", nil),
			val("volume", 'v', "HOST:GUEST[:ro|:rw]", nil), val("remove-volume", 0, "HOST:GUEST", nil),
			val("port", 'p', "HOST:GUEST", vPort), val("remove-port", 0, "HOST:GUEST", vPort),
			val("cpus", 0, "N", vU8), val("mem", 0, "MiB", vU32),
			sw("net", 0), sw("no-net", 0),
			val("env", 'e', "KEY=VALUE", nil), val("remove-env", 0, "KEY", nil),
			val("workdir", 'w', "DIR", nil),
			sw("gpu", 0), sw("no-gpu", 0), sw("rosetta", 0), sw("no-rosetta", 0),
			val("storage", 0, "GiB", vU64), val("overlay", 0, "GiB", vU64),
		}},
		{name: "images", usage: "smolvm machine images [OPTIONS] --name <NAME>", required: []string{"name"}, flags: []flagSpec{
			val("name", 0, "NAME", nil), sw("json", 0),
		}},
		{name: "prune", usage: "smolvm machine prune [OPTIONS] --name <NAME>", required: []string{"name"}, flags: []flagSpec{
			val("name", 0, "NAME", nil), sw("dry-run", 0), sw("all", 0),
		}},
		{name: "egress-events", usage: "smolvm machine egress-events [OPTIONS]", flags: []flagSpec{
			val("name", 'n', "NAME", nil), val("limit", 0, "N", vU32), sw("json", 0),
		}},
		{name: "data-dir", usage: "smolvm machine data-dir [OPTIONS] --name <NAME>", required: []string{"name"}, flags: []flagSpec{
			val("name", 'n', "NAME", nil),
		}},
		{name: "monitor", usage: "smolvm machine monitor [OPTIONS]", notEmulated: true, flags: []flagSpec{
			val("name", 'n', "NAME", nil), val("restart", 0, "POLICY", nil), val("health-cmd", 0, "CMD", nil),
			val("health-timeout", 0, "DURATION", vDuration), val("interval", 0, "DURATION", vDuration), val("health-retries", 0, "N", vU32),
		}},
		{name: "fork", usage: "smolvm machine fork [OPTIONS] --golden <NAME>", notEmulated: true, required: []string{"golden"}, flags: []flagSpec{
			val("golden", 0, "NAME", nil), val("name", 'n', "NAME", nil), val("count", 0, "N", vU32), val("name-prefix", 0, "PREFIX", nil),
			val("parallel", 0, "N", vU32), sw("wait-ready", 0), sw("hold", 0), val("ready-timeout", 0, "DURATION", vDuration),
			sw("forkable", 0), val("port", 'p', "HOST:GUEST", vPort), sw("share-weights", 0),
			val("env", 'e', "KEY=VALUE", nil), val("secret-env", 0, "GUEST_VAR=HOST_VAR", nil), val("secret-file", 0, "GUEST_VAR=PATH", nil),
		}},
		{name: "fork-release", usage: "smolvm machine fork-release [OPTIONS] --name <NAME>", notEmulated: true, required: []string{"name"}, flags: []flagSpec{
			val("name", 'n', "NAME", nil), val("env", 'e', "KEY=VALUE", nil),
		}},
		{name: "run", usage: "smolvm machine run [OPTIONS] [-- <COMMAND>...]", trailing: "optional", bareStartsTrailing: true, flags: runFlags()},
	}
	m := map[string]*cmdSpec{}
	for _, s := range specs {
		m[s.name] = s
	}
	m["rm"] = m["delete"]
	m["list"] = m["ls"]
	m["sh"] = m["shell"]
	return m
}

// parseArgs mirrors clap for one subcommand: long flags as `--f v` or
// `--f=v`, short flags as `-f v` or `-fv`, bundled switches (`-it`),
// repeatable flags accumulate, `--` ends the options.
func parseArgs(spec *cmdSpec, args []string) (*parsed, error) {
	p := &parsed{vals: map[string][]string{}}
	byLong := map[string]flagSpec{}
	byShort := map[byte]flagSpec{}
	for _, f := range spec.flags {
		byLong[f.long] = f
		if f.short != 0 {
			byShort[f.short] = f
		}
	}
	uerr := func(format string, a ...any) error {
		return &usageError{msg: fmt.Sprintf(format, a...), usage: spec.usage}
	}
	setVal := func(f flagSpec, v string) error {
		if f.validate != nil {
			if err := f.validate(v); err != nil {
				return uerr("invalid value '%s' for '--%s <%s>': %v", v, f.long, f.value, err)
			}
		}
		p.vals[f.long] = append(p.vals[f.long], v)
		return nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help":
			return nil, &helpRequest{spec}
		case a == "--":
			if spec.trailing == "" {
				if i+1 < len(args) {
					return nil, uerr("unexpected argument '%s' found", args[i+1])
				}
				continue
			}
			p.trailing = append(p.trailing, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			name, v, hasV := strings.Cut(a[2:], "=")
			f, ok := byLong[name]
			if !ok {
				return nil, uerr("unexpected argument '--%s' found", name)
			}
			if f.value == "" {
				if hasV {
					return nil, uerr("unexpected value '%s' for '--%s' found; no more were expected", v, name)
				}
				p.vals[f.long] = append(p.vals[f.long], "")
				continue
			}
			if !hasV {
				if i+1 >= len(args) {
					return nil, uerr("a value is required for '--%s <%s>' but none was supplied", f.long, f.value)
				}
				i++
				v = args[i]
			}
			if err := setVal(f, v); err != nil {
				return nil, err
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				f, ok := byShort[a[j]]
				if !ok {
					return nil, uerr("unexpected argument '-%c' found", a[j])
				}
				if f.value == "" {
					p.vals[f.long] = append(p.vals[f.long], "")
					continue
				}
				v := a[j+1:]
				if v == "" {
					if i+1 >= len(args) {
						return nil, uerr("a value is required for '--%s <%s>' but none was supplied", f.long, f.value)
					}
					i++
					v = args[i]
				}
				if err := setVal(f, strings.TrimPrefix(v, "=")); err != nil {
					return nil, err
				}
				break
			}
		default:
			if spec.bareStartsTrailing {
				p.trailing = append(p.trailing, args[i:]...)
				i = len(args)
				continue
			}
			if len(p.pos) >= spec.positionals {
				return nil, uerr("unexpected argument '%s' found", a)
			}
			p.pos = append(p.pos, a)
		}
	}
	for _, r := range spec.required {
		if !p.has(r) {
			return nil, uerr("the following required arguments were not provided:\n  --%s <%s>", r, byLong[r].value)
		}
	}
	if len(p.pos) < spec.positionals {
		return nil, uerr("the following required arguments were not provided:\n  <SRC>\n  <DST>")
	}
	if spec.trailing == "required" && len(p.trailing) == 0 {
		return nil, uerr("the following required arguments were not provided:\n  <COMMAND>...")
	}
	return p, nil
}

// versionAtLeast compares dotted semvers numerically.
func versionAtLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := 0; i < 3; i++ {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x > y
		}
	}
	return true
}
