package smolvmfake

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"strconv"
	"strings"
	"time"
)

func (s *session) command(name string, p *parsed, argv []string) error {
	switch name {
	case "create":
		return s.create(p, argv)
	case "start":
		return s.start(p)
	case "stop":
		return s.stop(p)
	case "delete":
		return s.delete(p)
	case "status":
		return s.status(p)
	case "ls":
		return s.ls(p)
	case "exec":
		return s.execCmd(p)
	case "cp":
		return s.cp(p)
	case "shell":
		return s.shell(p)
	case "update":
		return s.update(p)
	case "images":
		return s.images(p)
	case "prune":
		if _, err := s.mustLoad(p.get("name")); err != nil {
			return err
		}
		fmt.Fprintln(s.stdout, "Nothing to prune.")
		return nil
	case "egress-events":
		if p.has("json") {
			fmt.Fprintln(s.stdout, "[]")
		} else {
			fmt.Fprintln(s.stdout, "No denied egress events.")
		}
		return nil
	case "data-dir":
		if _, err := s.mustLoad(p.get("name")); err != nil {
			return err
		}
		fmt.Fprintln(s.stdout, s.store.dir(p.get("name")))
		return nil
	case "run":
		return s.runCmd(p, argv)
	}
	panic("smolvmfake: no handler for " + name)
}

// mustLoad loads a machine or fails with the common `vm not found: N`.
func (s *session) mustLoad(name string) (*Record, error) {
	r, err := s.store.load(name)
	if errors.Is(err, errNoMachine) {
		return nil, errorf("vm not found: %s", name)
	}
	return r, err
}

// observe resolves the reported state the way state_probe.rs does (§2.3),
// with the state_override and crash_after_start faults standing in for the
// PID and agent probes. It persists what it observed.
func (s *session) observe(cmd string, r *Record) string {
	if r.State != "running" {
		return r.State
	}
	if r.Fake.Crashed {
		r.State, r.Pid, r.Fake.Crashed = "stopped", nil, false
		_ = s.store.save(r)
		if s.dockerMode() {
			_ = s.dockerStop(r.Name)
		}
		return r.State
	}
	if s.dockerMode() {
		// The container is the guest: not running means the PID is dead
		// (§2.3 step 3), so the machine is stopped.
		_, running, err := s.dockerState(r.Name)
		if err == nil && !running {
			r.State, r.Pid = "stopped", nil
			_ = s.store.save(r)
			return r.State
		}
	}
	if rule := s.take(cmd, r.Name, func(r Rule) bool { return r.StateOverride != "" }); rule != nil {
		if rule.StateOverride == "stopped" {
			r.State, r.Pid = "stopped", nil
			_ = s.store.save(r)
			if s.dockerMode() {
				_ = s.dockerStop(r.Name)
			}
		}
		return rule.StateOverride
	}
	return r.State
}

// validateName is §2.4.
func validateName(n string) error {
	bad := func(why string) error {
		return errorf("config operation failed: create machine: %s (got: %q)", why, n)
	}
	if len(n) == 0 || len(n) > 128 {
		return bad("machine name must be 1-128 characters")
	}
	c := n[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
		return bad("machine name must start with a letter or digit")
	}
	for _, c := range []byte(n) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return bad("machine name may only contain letters, digits, '_' and '-'")
		}
	}
	if strings.Contains(n, "--") {
		return bad("machine name must not contain '--'")
	}
	if strings.HasSuffix(n, "-") {
		return bad("machine name must not end with '-'")
	}
	return nil
}

func randomName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "vm-" + hex.EncodeToString(b[:])
}

var protected = []string{"/var/run", "/var/log", "/etc", "/boot", "/usr", "/bin", "/sbin", "/lib", "/proc", "/sys", "/dev", "/run"}

// parseVolume is §1.4's HostMount::_parse plus its run-time checks.
func parseVolume(spec string) (Volume, error) {
	v := Volume{}
	rest := spec
	if strings.HasSuffix(rest, ":ro") {
		v.ReadOnly, rest = true, strings.TrimSuffix(rest, ":ro")
	} else {
		rest = strings.TrimSuffix(rest, ":rw")
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return v, errorf("invalid mount path: expected HOST:GUEST[:ro|:rw], got '%s'", spec)
	}
	v.Host, v.Guest = rest[:i], rest[i+1:]
	fi, err := os.Stat(v.Host)
	if err != nil {
		return v, errorf("mount source not found: %s", v.Host)
	}
	if !fi.IsDir() {
		return v, errorf("invalid mount path: source path on host must be a directory (virtiofs limitation): %s", v.Host)
	}
	abs, err := filepath.Abs(v.Host)
	if err == nil {
		if ev, err := filepath.EvalSymlinks(abs); err == nil {
			abs = ev
		}
		v.Host = abs
	}
	if v.Host == "/" || v.Host == "/var" {
		return v, errorf("invalid mount path: refusing to mount protected host path %s", v.Host)
	}
	for _, p := range protected {
		if v.Host == p || strings.HasPrefix(v.Host, p+"/") {
			return v, errorf("invalid mount path: refusing to mount protected host path %s", v.Host)
		}
	}
	if !strings.HasPrefix(v.Guest, "/") {
		return v, errorf("invalid mount path: guest path must be absolute: %s", v.Guest)
	}
	return v, nil
}

func checkVolumes(vs []Volume) error {
	seen := map[string]bool{}
	for _, v := range vs {
		if seen[v.Guest] {
			return errorf("invalid mount path: duplicate guest mount target: %s", v.Guest)
		}
		seen[v.Guest] = true
	}
	return nil
}

func checkPorts(ps [][2]int) error {
	seen := map[int]bool{}
	for _, p := range ps {
		if seen[p[0]] {
			return errorf("config operation failed: validate ports: duplicate host port %d: each host port can only be mapped once", p[0])
		}
		seen[p[0]] = true
	}
	return nil
}

func isLocalImage(img string) bool {
	for _, p := range []string{"/", "./", "../", "-"} {
		if strings.HasPrefix(img, p) {
			return true
		}
	}
	return strings.HasSuffix(img, ".tar") || strings.HasSuffix(img, ".tar.gz") || strings.HasSuffix(img, ".tgz")
}

func resolveImage(img string) string {
	if !isLocalImage(img) {
		return img
	}
	if fi, err := os.Stat(img); err == nil && fi.IsDir() {
		abs, _ := filepath.Abs(img)
		return "local-dir:" + abs
	}
	h := sha256.Sum256([]byte(img))
	return "local:" + hex.EncodeToString(h[:8])
}

func intp(v int) *int { return &v }

// buildRecord validates create/run flags (§8.2 run-time validators) and
// returns the record to write. op names the operation in error text.
func (s *session) buildRecord(p *parsed, name, op string) (*Record, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	cfg := func(format string, a ...any) error {
		return errorf("config operation failed: %s: %s", op, fmt.Sprintf(format, a...))
	}
	r := &Record{Status: Status{Name: name, State: "created", Cpus: 4, MemoryMib: 8192, CreatedAt: time.Now().Unix(),
		RestartPolicy: "never", Labels: map[string]string{}}}
	if p.has("cpus") {
		n, _ := strconv.Atoi(p.get("cpus"))
		if n == 0 {
			return nil, cfg("cpus must be at least 1")
		}
		r.Cpus = n
	}
	if p.has("mem") {
		n, _ := strconv.Atoi(p.get("mem"))
		if n < 64 {
			return nil, cfg("memory must be at least 64 MiB (got %d)", n)
		}
		r.MemoryMib = n
	}
	for _, k := range []string{"storage", "overlay"} {
		if p.has(k) {
			n, _ := strconv.Atoi(p.get(k))
			if n == 0 {
				return nil, cfg("%s size must be greater than 0 GiB", k)
			}
			if k == "storage" {
				r.StorageGb = intp(n)
			} else {
				r.OverlayGb = intp(n)
			}
		}
	}
	for _, l := range p.all("label") {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, cfg("invalid label '%s': key must not be empty", l)
		}
		r.Labels[k] = v
	}
	for _, spec := range p.all("volume") {
		v, err := parseVolume(spec)
		if err != nil {
			return nil, err
		}
		r.Fake.Volumes = append(r.Fake.Volumes, v)
	}
	if err := checkVolumes(r.Fake.Volumes); err != nil {
		return nil, err
	}
	for _, spec := range p.all("port") {
		pm, _ := parsePort(spec)
		r.Fake.Ports = append(r.Fake.Ports, pm)
	}
	if err := checkPorts(r.Fake.Ports); err != nil {
		return nil, err
	}
	for _, h := range p.all("allow-host") {
		if strings.Contains(h, ":") {
			return nil, cfg("invalid --allow-host '%s': expected a hostname without a port", h)
		}
		if s.unresolvable(h) {
			return nil, cfg("failed to resolve --allow-host '%s'", h)
		}
	}
	policy := p.has("allow-host") || p.has("allow-cidr") || p.has("outbound-localhost-only")
	if p.get("net-backend") == "tsi" && (p.has("port") || policy || p.has("network")) {
		return nil, cfg("--net-backend tsi cannot be used with port mappings, an egress policy or a named network; use virtio-net")
	}
	r.Network = p.has("net") || p.has("port") || policy || p.has("dns") || p.has("network")
	if img := p.get("image"); img != "" {
		if !isLocalImage(img) && !r.Network {
			return nil, cfg("image '%s' must be pulled from a registry, but this machine has no network, so the pull would fail; add --net (or --allow-host/--allow-cidr), or use a local image archive or directory", img)
		}
		ri := resolveImage(img)
		r.Image = &ri
		if s.dockerMode() {
			if err := s.dockerResolveImage(r, img, cfg); err != nil {
				return nil, err
			}
		}
	}
	for _, e := range p.all("env") {
		k, v, ok := strings.Cut(e, "=")
		if k == "" {
			continue
		}
		if !ok {
			hv := s.env(k)
			if hv == "" {
				continue
			}
			v = hv
		}
		r.Fake.Env = append(r.Fake.Env, k+"="+v)
	}
	r.Fake.Workdir = p.get("workdir")
	r.Fake.AllowCIDRs = p.all("allow-cidr")
	r.Fake.AllowHosts = p.all("allow-host")
	r.Fake.Init = p.all("init")
	r.Fake.SecretEnv = p.all("secret-env")
	r.Fake.SecretFile = p.all("secret-file")
	r.Mounts, r.Ports = len(r.Fake.Volumes), len(r.Fake.Ports)
	r.Cmd = p.trailing
	return r, nil
}

func (s *session) create(p *parsed, argv []string) error {
	name := p.get("name")
	if !p.has("name") {
		name = randomName()
	}
	r, err := s.buildRecord(p, name, "create machine")
	if err != nil {
		return err
	}
	if _, err := s.store.load(name); err == nil {
		return errorf("config operation failed: create machine: machine '%s' already exists or is being created", name)
	}
	r.Fake.Argv = append([]string{"smolvm"}, argv...)
	if err := s.store.save(r); err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "Created machine: %s\n  CPUs: %d, Memory: %d MiB\n", name, r.Cpus, r.MemoryMib)
	if r.Mounts > 0 {
		fmt.Fprintf(s.stdout, "  Mounts: %d\n", r.Mounts)
	}
	if r.Ports > 0 {
		fmt.Fprintf(s.stdout, "  Ports: %d\n", r.Ports)
	}
	if n := len(r.Fake.Init); n > 0 {
		fmt.Fprintf(s.stdout, "  Init commands: %d\n", n)
	}
	fmt.Fprintf(s.stdout, "\nUse 'smolvm machine start --name %s' to start it.\nUse 'smolvm machine exec --name %s -- <command>' to run commands in it.\n", name, name)
	return nil
}

func plural(n int, word string) string { return fmt.Sprintf("%d %s(s)", n, word) }

func (s *session) start(p *parsed) error {
	name := p.get("name")
	if !p.has("name") {
		name = "default"
	}
	r, err := s.store.load(name)
	if errors.Is(err, errNoMachine) {
		if p.has("name") {
			return errorf("vm not found: %s", name)
		}
		r = &Record{Status: Status{Name: name, State: "created", Cpus: 4, MemoryMib: 8192, CreatedAt: time.Now().Unix(), RestartPolicy: "never"}}
	} else if err != nil {
		return err
	}
	switch s.observe("start", r) {
	case "running":
		fmt.Fprintf(s.stdout, "Machine '%s' already running (PID: %d)\n", name, *r.Pid)
		return nil
	case "unreachable":
		// The real CLI kills the wedged VM and starts it fresh.
		r.State, r.Pid = "stopped", nil
	}
	others, err := s.store.list()
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.Name == name || o.State != "running" {
			continue
		}
		for _, op := range o.Fake.Ports {
			for _, mp := range r.Fake.Ports {
				if op[0] == mp[0] {
					return errorf("host port %d is already in use by running machine '%s'", mp[0], o.Name)
				}
			}
		}
	}
	msg := fmt.Sprintf("Starting machine '%s'", name)
	if r.Mounts > 0 {
		msg += " with " + plural(r.Mounts, "mount")
	}
	if r.Ports > 0 {
		if r.Mounts > 0 {
			msg += " and "
		} else {
			msg += " with "
		}
		msg += plural(r.Ports, "port mapping")
	}
	fmt.Fprintln(s.stderr, msg+"...")
	if s.take("start", name, func(r Rule) bool { return r.StartFailsAfterBoot }) != nil {
		if err := s.store.save(r); err != nil {
			return err
		}
		return errorf("agent operation failed: start machine: the VM booted but its agent never became ready")
	}
	first := !r.Fake.InitCompleted
	if first && r.Image != nil {
		fmt.Fprintf(s.stderr, "Pulling %s...\n", *r.Image)
	}
	if s.dockerMode() {
		if err := s.dockerUp(r); err != nil {
			return errorf("agent operation failed: start machine: %v", err)
		}
	}
	if first && r.Image != nil && len(r.Entrypoint) == 0 && len(r.Cmd) == 0 {
		ic := s.faults.Images[*r.Image]
		r.Entrypoint, r.Cmd = ic.Entrypoint, ic.Cmd
		if len(r.Cmd) == 0 && len(r.Entrypoint) == 0 {
			r.Cmd = []string{"/bin/sh"}
		}
	}
	if first && len(r.Fake.Init) > 0 {
		fmt.Fprintf(s.stdout, "Running %d init command(s)...\n", len(r.Fake.Init))
		for i, c := range r.Fake.Init {
			res, err := s.runGuest(r, execReq{argv: []string{"sh", "-c", c}})
			if err != nil {
				return err
			}
			if res.exit != 0 {
				r.State, r.Pid = "stopped", nil
				if s.dockerMode() {
					_ = s.dockerStop(name)
				}
				if err := s.store.save(r); err != nil {
					return err
				}
				return errorf("init[%d] failed (exit %d): %s; stdout: %s", i, res.exit, strings.TrimSpace(res.stderr), strings.TrimSpace(res.stdout))
			}
		}
	}
	r.Fake.InitCompleted = true
	r.State, r.Pid = "running", intp(s.store.nextPID())
	_ = os.RemoveAll(filepath.Join(s.store.rootfs(name), "tmp"))
	if s.take("start", name, func(r Rule) bool { return r.CrashAfterStart }) != nil {
		r.Fake.Crashed = true
		if s.dockerMode() {
			_ = s.dockerStop(name)
		}
	}
	if err := s.store.save(r); err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "Machine '%s' running (PID: %d)\n", name, *r.Pid)
	return nil
}

func (s *session) stop(p *parsed) error {
	name := p.get("name")
	if !p.has("name") {
		name = "default"
	}
	r, err := s.mustLoad(name)
	if err != nil {
		return err
	}
	if st := s.observe("stop", r); st != "running" && st != "unreachable" {
		fmt.Fprintf(s.stdout, "Machine '%s' is not running (state: %s)\n", name, st)
		return nil
	}
	fmt.Fprintf(s.stdout, "Stopping machine '%s'...\n", name)
	if s.dockerMode() {
		if err := s.dockerStop(name); err != nil {
			return errorf("agent operation failed: stop machine: %v", err)
		}
	}
	r.State, r.Pid = "stopped", nil
	if err := s.store.save(r); err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "Stopped machine: %s\n", name)
	return nil
}

func (s *session) delete(p *parsed) error {
	name := p.get("name")
	r, err := s.mustLoad(name)
	if err != nil {
		return err
	}
	if !p.has("force") && !p.has("cascade") {
		fmt.Fprintf(s.stderr, "Delete machine '%s'? [y/N] ", name)
		line, _ := bufio.NewReader(s.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(s.stdout, "Cancelled")
			return nil
		}
	}
	if r.State == "running" {
		fmt.Fprintf(s.stdout, "Stopping machine '%s'...\n", name)
	}
	if s.dockerMode() {
		if err := s.dockerRemove(name); err != nil {
			return errorf("agent operation failed: delete machine: %v", err)
		}
	}
	fmt.Fprintf(s.stdout, "Cleaning up data directory for vm: %s\n", name)
	if err := s.store.remove(name); err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "Deleted machine: %s\n", name)
	return nil
}

func (s *session) status(p *parsed) error {
	name := p.get("name")
	if !p.has("name") {
		name = "default"
	}
	r, err := s.store.load(name)
	if errors.Is(err, errNoMachine) {
		switch {
		case p.has("json"):
			return errorf("config operation failed: machine status: machine '%s' not found", name)
		case !p.has("name"):
			fmt.Fprintf(s.stdout, "Machine '%s': not running\n", name)
			return nil
		}
		return errorf("vm not found: %s", name)
	}
	if err != nil {
		return err
	}
	r.State = s.observe("status", r)
	if p.has("json") {
		return writeJSON(s.stdout, r.Status)
	}
	if r.State == "running" {
		fmt.Fprintf(s.stdout, "Machine '%s': running (PID: %d)\n", name, *r.Pid)
	} else {
		fmt.Fprintf(s.stdout, "Machine '%s': %s\n", name, r.State)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func orDefault(p *int, d int) int {
	if p == nil {
		return d
	}
	return *p
}

func (s *session) ls(p *parsed) error {
	recs, err := s.store.list()
	if err != nil {
		return err
	}
	sts := []Status{}
	for _, r := range recs {
		r.State = s.observe("ls", r)
		sts = append(sts, r.Status)
	}
	if p.has("json") {
		return writeJSON(s.stdout, sts)
	}
	if len(recs) == 0 {
		fmt.Fprintln(s.stdout, "No machines found")
		return nil
	}
	fmt.Fprintf(s.stdout, "%-20s %-12s %5s %10s %7s %7s %8s %8s\n", "NAME", "STATE", "CPUS", "MEMORY", "MOUNTS", "PORTS", "STORAGE", "OVERLAY")
	fmt.Fprintln(s.stdout, strings.Repeat("-", 88))
	for _, r := range recs {
		name := r.Name
		if len(name) > 18 {
			name = name[:18]
		}
		st := r.State
		if r.Ephemeral && st == "running" {
			st = "running (eph)"
		}
		fmt.Fprintf(s.stdout, "%-20s %-12s %5d %10s %7d %7d %8s %8s\n", name, st, r.Cpus, fmt.Sprintf("%d MiB", r.MemoryMib),
			r.Mounts, r.Ports, fmt.Sprintf("%d GiB", orDefault(r.StorageGb, 20)), fmt.Sprintf("%d GiB", orDefault(r.OverlayGb, 10)))
		if !p.has("verbose") {
			continue
		}
		if r.Pid != nil {
			fmt.Fprintf(s.stdout, "  PID: %d\n", *r.Pid)
		}
		for _, v := range r.Fake.Volumes {
			mode := ""
			if v.ReadOnly {
				mode = " (ro)"
			}
			fmt.Fprintf(s.stdout, "  Mount: %s -> %s%s\n", v.Host, v.Guest, mode)
		}
		for _, pm := range r.Fake.Ports {
			fmt.Fprintf(s.stdout, "  Port: %d -> %d\n", pm[0], pm[1])
		}
		if r.Network {
			fmt.Fprintln(s.stdout, "  Network: enabled")
		}
		for _, e := range r.Fake.Env {
			fmt.Fprintf(s.stdout, "  Env: %s\n", e)
		}
		if r.Fake.Workdir != "" {
			fmt.Fprintf(s.stdout, "  Workdir: %s\n", r.Fake.Workdir)
		}
		fmt.Fprintf(s.stdout, "  Created: %s\n", time.Unix(r.CreatedAt, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// mustRun loads a machine that exec, cp and shell need running; it never
// starts one (§0: exec does not auto-start).
func (s *session) mustRun(cmd, name string) (*Record, error) {
	r, err := s.mustLoad(name)
	if err != nil {
		return nil, err
	}
	notRunning := errorf("agent operation failed: connect: machine '%s' is not running. Use 'smolvm machine start --name %s' first.", name, name)
	switch s.observe(cmd, r) {
	case "running":
	case "unreachable":
		return nil, errorf("agent operation failed: connect: agent for machine '%s' is not responding", name)
	default:
		return nil, notRunning
	}
	if s.take(cmd, name, func(r Rule) bool { return r.ExecNotRunningOnce }) != nil {
		return nil, notRunning
	}
	return r, nil
}

func (s *session) shell(p *parsed) error {
	name := p.get("name")
	if !p.has("name") {
		name = "default"
	}
	r, err := s.mustRun("shell", name)
	if err != nil {
		return err
	}
	s.unlock()
	res, err := s.runGuest(r, execReq{argv: []string{"/bin/sh"}, interactive: true, stream: true})
	if err != nil {
		return err
	}
	return exitCode(res.exit)
}

func (s *session) execCmd(p *parsed) error {
	name := p.get("name")
	if !p.has("name") {
		name = "default"
	}
	if p.has("detach") && (p.has("interactive") || p.has("tty") || p.has("stream")) {
		return &usageError{msg: "the argument '--detach' cannot be used with '--interactive', '--tty' or '--stream'", usage: "smolvm machine exec [OPTIONS] -- <COMMAND>..."}
	}
	r, err := s.mustRun("exec", name)
	if err != nil {
		return err
	}
	req := execReq{argv: p.trailing, workdir: p.get("workdir"), env: p.all("env"), secretEnv: p.all("secret-env"),
		secretFile: p.all("secret-file"), interactive: p.has("interactive"), stream: p.has("stream"), detach: p.has("detach"),
		user: p.get("user")}
	if p.has("timeout") {
		req.timeout, _ = parseHumanDuration(p.get("timeout"))
	}
	s.unlock()
	res, err := s.runGuest(r, req)
	if err != nil {
		return err
	}
	return exitCode(res.exit)
}

// guestPath maps a guest path into the machine's emulated rootfs.
func (s *session) guestPath(name, p string) string {
	return filepath.Join(s.store.rootfs(name), filepath.Clean("/"+p))
}

func (s *session) cp(p *parsed) error {
	src, dst := p.pos[0], p.pos[1]
	upload := false
	var machine, guest, local string
	// The source is checked first, so a local source containing ':' is
	// taken for a machine path (§1.3).
	if m, g, ok := strings.Cut(src, ":"); ok {
		machine, guest, local = m, g, dst
	} else if m, g, ok := strings.Cut(dst, ":"); ok {
		machine, guest, local, upload = m, g, src, true
	} else {
		return errorf("config operation failed: cp: one of SRC or DST must use machine:path syntax (e.g., myvm:/workspace/file)")
	}
	if !upload && (p.has("mode") || p.has("uid") || p.has("gid")) {
		return errorf("config operation failed: cp: --mode, --uid and --gid apply to uploads only")
	}
	var mode os.FileMode = 0o644
	if p.has("mode") {
		m := strings.TrimPrefix(strings.TrimPrefix(p.get("mode"), "0o"), "0")
		if m == "" {
			m = "0"
		}
		n, err := strconv.ParseUint(m, 8, 32)
		if err != nil || n > 0o7777 {
			return errorf("config operation failed: cp: invalid --mode '%s': expected octal like 644 or 0o600", p.get("mode"))
		}
		mode = os.FileMode(n)
	}
	if _, err := s.mustRun("cp", machine); err != nil {
		return err
	}
	if s.dockerMode() {
		return s.dockerCp(machine, guest, local, upload, mode, parseID(p.get("uid")), parseID(p.get("gid")))
	}
	gp := s.guestPath(machine, guest)
	if upload {
		b, err := readUpload(local)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(gp); err == nil && fi.IsDir() {
			return errorf("agent operation failed: upload: %s: is a directory", guest)
		}
		if err := os.MkdirAll(filepath.Dir(gp), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(gp, b, mode); err != nil {
			return err
		}
		if err := os.Chmod(gp, mode); err != nil {
			return err
		}
		if p.has("uid") || p.has("gid") {
			owner := map[string]string{"uid": p.get("uid"), "gid": p.get("gid")}
			ob, _ := json.Marshal(owner)
			_ = os.WriteFile(s.ownerFile(machine, guest), ob, 0o644)
		}
		fmt.Fprintf(s.stderr, "Uploading %s -> %s: %d B / %d B (100.0%%)\n", local, guest, len(b), len(b))
		return nil
	}
	fi, err := os.Stat(gp)
	if err != nil {
		return errorf("agent operation failed: download: %s: No such file or directory", guest)
	}
	if fi.IsDir() {
		return errorf("agent operation failed: download: %s: is a directory (cp copies single files only)", guest)
	}
	b, err := os.ReadFile(gp)
	if err != nil {
		return err
	}
	if err := os.WriteFile(local, b, 0o644); err != nil {
		return errorf("io operation failed: write local file: %s: %v", local, errors.Unwrap(err))
	}
	fmt.Fprintf(s.stderr, "Downloading %s -> %s: %d B\n", guest, local, len(b))
	return nil
}

// ownerFile records a non-root upload owner next to the machine record,
// since the fake cannot chown.
func (s *session) ownerFile(machine, guest string) string {
	h := sha256.Sum256([]byte(filepath.Clean("/" + guest)))
	d := filepath.Join(s.store.dir(machine), "owners")
	_ = os.MkdirAll(d, 0o755)
	return filepath.Join(d, hex.EncodeToString(h[:8])+".json")
}

func (s *session) update(p *parsed) error {
	name := p.get("name")
	r, err := s.store.load(name)
	if errors.Is(err, errNoMachine) {
		return errorf("config operation failed: update: machine '%s' not found", name)
	}
	if err != nil {
		return err
	}
	if st := s.observe("update", r); st == "running" || st == "unreachable" {
		return errorf("invalid vm state: expected stopped, got Running")
	}
	var changes []string
	for _, spec := range p.all("remove-volume") {
		kept := r.Fake.Volumes[:0]
		for _, v := range r.Fake.Volumes {
			if spec == v.Host+":"+v.Guest || strings.HasSuffix(spec, ":"+v.Guest) {
				changes = append(changes, "removed mount "+v.Host+" -> "+v.Guest)
				continue
			}
			kept = append(kept, v)
		}
		r.Fake.Volumes = kept
	}
	for _, spec := range p.all("volume") {
		v, err := parseVolume(spec)
		if err != nil {
			return err
		}
		r.Fake.Volumes = append(r.Fake.Volumes, v)
		changes = append(changes, "added mount "+v.Host+" -> "+v.Guest)
	}
	if err := checkVolumes(r.Fake.Volumes); err != nil {
		return err
	}
	for _, spec := range p.all("remove-port") {
		pm, _ := parsePort(spec)
		kept := r.Fake.Ports[:0]
		for _, q := range r.Fake.Ports {
			if q == pm {
				changes = append(changes, fmt.Sprintf("removed port %d -> %d", q[0], q[1]))
				continue
			}
			kept = append(kept, q)
		}
		r.Fake.Ports = kept
	}
	for _, spec := range p.all("port") {
		pm, _ := parsePort(spec)
		r.Fake.Ports = append(r.Fake.Ports, pm)
		changes = append(changes, fmt.Sprintf("added port %d -> %d", pm[0], pm[1]))
	}
	if err := checkPorts(r.Fake.Ports); err != nil {
		return err
	}
	if p.has("cpus") {
		r.Cpus, _ = strconv.Atoi(p.get("cpus"))
		changes = append(changes, fmt.Sprintf("cpus: %d", r.Cpus))
	}
	if p.has("mem") {
		r.MemoryMib, _ = strconv.Atoi(p.get("mem"))
		changes = append(changes, fmt.Sprintf("memory: %d MiB", r.MemoryMib))
	}
	if p.has("net") {
		r.Network = true
		changes = append(changes, "network: enabled")
	}
	if p.has("no-net") {
		r.Network = false
		changes = append(changes, "network: disabled")
	}
	for _, k := range p.all("remove-env") {
		kept := r.Fake.Env[:0]
		for _, e := range r.Fake.Env {
			if strings.HasPrefix(e, k+"=") {
				changes = append(changes, "removed env "+k)
				continue
			}
			kept = append(kept, e)
		}
		r.Fake.Env = kept
	}
	for _, e := range p.all("env") {
		r.Fake.Env = mergeEnv(r.Fake.Env, []string{e})
		changes = append(changes, "env "+e)
	}
	if p.has("workdir") {
		r.Fake.Workdir = p.get("workdir")
		changes = append(changes, "workdir: "+r.Fake.Workdir)
	}
	for _, k := range []string{"storage", "overlay"} {
		if p.has(k) {
			n, _ := strconv.Atoi(p.get(k))
			cur := orDefault(r.StorageGb, 20)
			if k == "overlay" {
				cur = orDefault(r.OverlayGb, 10)
			}
			if n < cur {
				return errorf("storage operation failed: %s can only grow (current %d GiB, requested %d GiB)", k, cur, n)
			}
			if k == "storage" {
				r.StorageGb = intp(n)
			} else {
				r.OverlayGb = intp(n)
			}
			changes = append(changes, fmt.Sprintf("%s: %d GiB", k, n))
		}
	}
	if len(changes) == 0 {
		fmt.Fprintln(s.stdout, "No changes specified.")
		return nil
	}
	r.Mounts, r.Ports = len(r.Fake.Volumes), len(r.Fake.Ports)
	if err := s.store.save(r); err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "Updated machine '%s':\n", name)
	for _, c := range changes {
		fmt.Fprintf(s.stdout, "  %s\n", c)
	}
	fmt.Fprintf(s.stdout, "Start with: smolvm machine start --name %s\n", name)
	return nil
}

func (s *session) images(p *parsed) error {
	name := p.get("name")
	if _, err := s.store.load(name); errors.Is(err, errNoMachine) {
		return errorf("config operation failed: images: machine '%s' not found", name)
	}
	if p.has("json") {
		return writeJSON(s.stdout, map[string]any{
			"images":  []any{},
			"storage": map[string]int{"image_count": 0, "layer_count": 0, "total_bytes": 0, "used_bytes": 0},
		})
	}
	fmt.Fprintln(s.stdout, "No cached images.")
	return nil
}

func (s *session) runCmd(p *parsed, argv []string) error {
	if len(p.trailing) == 0 && !(p.has("interactive") && p.has("tty")) {
		return errorf("no command specified")
	}
	if len(p.trailing) > 0 && !p.has("image") {
		if w := p.trailing[0]; strings.Contains(w, "/") || strings.Contains(w, ":") {
			return errorf("no command specified: '%s' looks like an image; use --image %s", w, w)
		}
	}
	if p.has("detach") {
		name := p.get("name")
		if !p.has("name") {
			name = "default"
		}
		if _, err := s.store.load(name); err == nil {
			return errorf("config operation failed: machine run -d --name: a machine named '%s' already exists. Use 'smolvm machine start --name %s' to start it.", name, name)
		}
		r, err := s.buildRecord(p, name, "machine run")
		if err != nil {
			return err
		}
		r.Fake.Argv = append([]string{"smolvm"}, argv...)
		if err := s.store.save(r); err != nil {
			return err
		}
		if s.dockerMode() {
			if err := s.dockerUp(r); err != nil {
				return errorf("agent operation failed: start machine: %v", err)
			}
		}
		r.State, r.Pid, r.Fake.InitCompleted = "running", intp(s.store.nextPID()), true
		if err := s.store.save(r); err != nil {
			return err
		}
		if r.Image != nil {
			fmt.Fprintf(s.stdout, "Machine '%s' running in background\n", name)
		} else {
			fmt.Fprintf(s.stdout, "Machine '%s' running (PID: %d)\n", name, *r.Pid)
		}
		return nil
	}
	name := randomName()
	r, err := s.buildRecord(p, name, "machine run")
	if err != nil {
		return err
	}
	r.Ephemeral, r.State, r.Pid, r.Fake.InitCompleted = true, "running", intp(s.store.nextPID()), true
	r.Cmd = nil
	if err := s.store.save(r); err != nil {
		return err
	}
	fmt.Fprintf(s.stderr, "Starting ephemeral machine (%s)...\n", name)
	req := execReq{argv: p.trailing, interactive: p.has("interactive")}
	if p.has("timeout") {
		req.timeout, _ = parseHumanDuration(p.get("timeout"))
	}
	if s.dockerMode() {
		if err := s.dockerUp(r); err != nil {
			_ = s.dockerRemove(name)
			_ = s.store.remove(name)
			return errorf("agent operation failed: start machine: %v", err)
		}
	}
	s.unlock()
	res, err := s.runGuest(r, req)
	if s.dockerMode() {
		_ = s.dockerRemove(name)
	}
	_ = s.store.remove(name)
	if err != nil {
		return err
	}
	return exitCode(res.exit)
}

// mergeEnv applies overrides by key, keeping first-seen order (§5).
func mergeEnv(base, over []string) []string {
	idx := map[string]int{}
	out := append([]string{}, base...)
	for i, e := range out {
		k, _, _ := strings.Cut(e, "=")
		idx[k] = i
	}
	for _, e := range over {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := idx[k]; ok {
			out[i] = e
			continue
		}
		idx[k] = len(out)
		out = append(out, e)
	}
	return out
}

// readUpload reads the host file cp uploads; cp copies single files only.
func readUpload(local string) ([]byte, error) {
	if fi, err := os.Stat(local); err == nil && fi.IsDir() {
		return nil, errorf("agent operation failed: read local file: %s: is a directory (cp copies single files only)", local)
	}
	b, err := os.ReadFile(local)
	if err != nil {
		return nil, errorf("agent operation failed: read local file: %s: %v", local, errors.Unwrap(err))
	}
	return b, nil
}
