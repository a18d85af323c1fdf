package smolvmfake

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// fake is one isolated fake smolvm state root.
type fake struct {
	t    *testing.T
	root string
	env  map[string]string
}

func newFake(t *testing.T) *fake {
	t.Helper()
	root := t.TempDir()
	return &fake{t: t, root: root, env: map[string]string{EnvRoot: root, "PATH": os.Getenv("PATH")}}
}

type result struct {
	out, err string
	code     int
}

func (f *fake) runIn(stdin string, args ...string) result {
	f.t.Helper()
	var out, errb strings.Builder
	code := Main(args, strings.NewReader(stdin), &out, &errb, func(k string) string { return f.env[k] })
	return result{out.String(), errb.String(), code}
}

func (f *fake) run(args ...string) result { f.t.Helper(); return f.runIn("", args...) }

// must runs a command that has to succeed.
func (f *fake) must(args ...string) result {
	f.t.Helper()
	r := f.run(args...)
	if r.code != 0 {
		f.t.Fatalf("smolvm %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r
}

func (f *fake) faults(v Faults) {
	f.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "faults.json"), b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fake) running(name string, extra ...string) {
	f.t.Helper()
	f.must(append([]string{"machine", "create", "--name", name}, extra...)...)
	f.must("machine", "start", "--name", name)
}

func expect(t *testing.T, r result, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.out, stdout) || !strings.Contains(r.err, stderr) {
		t.Errorf("got exit %d, stdout %q, stderr %q; want exit %d, stdout containing %q, stderr containing %q", r.code, r.out, r.err, code, stdout, stderr)
	}
}

// Checklist §8.6: "exit codes: 0, 1, 2, the guest code, 124".
func TestExitCodes(t *testing.T) {
	f := newFake(t)
	f.running("m")
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"success", []string{"machine", "exec", "--name", "m", "--", "true"}, 0, ""},
		{"smolvm error", []string{"machine", "stop", "--name", "nope"}, 1, "Error: vm not found: nope"},
		{"unknown flag", []string{"machine", "ls", "--foo"}, 2, "error: unexpected argument '--foo' found"},
		{"missing required", []string{"machine", "delete"}, 2, "error: the following required arguments were not provided"},
		{"bad value", []string{"machine", "create", "-p", "0:80"}, 2, "error: invalid value '0:80' for '--port <HOST:GUEST>': host port 0 is not valid for VM port forwarding"},
		{"exec without command", []string{"machine", "exec", "--name", "m"}, 2, "<COMMAND>"},
		{"bad timeout", []string{"machine", "exec", "--name", "m", "--timeout", "0s", "--", "true"}, 2, "error: invalid value '0s' for '--timeout"},
		{"unknown subcommand", []string{"machine", "frobnicate"}, 2, "error: unrecognized subcommand 'frobnicate'"},
		{"guest code", []string{"machine", "exec", "--name", "m", "--", "sh", "-c", "exit 42"}, 42, ""},
		{"guest false", []string{"machine", "exec", "--name", "m", "--", "false"}, 1, ""},
		{"guest not found", []string{"machine", "exec", "--name", "m", "--", "nosuchtool"}, 127, "sh: nosuchtool: not found"},
		{"timeout", []string{"machine", "exec", "--name", "m", "--timeout", "50ms", "--", "sleep", "5"}, 124, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.run(c.args...)
			expect(t, r, c.code, "", c.stderr)
			if c.code == 2 && !strings.Contains(r.err, "Usage: ") {
				t.Errorf("usage error without a Usage line: %q", r.err)
			}
			if c.code == 1 && c.stderr != "" && strings.Count(r.err, "\n") != 1 {
				t.Errorf("smolvm error is not one line: %q", r.err)
			}
		})
	}
}

// Checklist §8.6: "--json shapes and the [] empty list".
func TestJSONShapes(t *testing.T) {
	f := newFake(t)
	r := f.must("machine", "ls", "--json")
	if strings.TrimSpace(r.out) != "[]" {
		t.Fatalf("empty ls --json = %q, want []", r.out)
	}
	f.must("machine", "create", "--name", "web", "--net", "-p", "8080:80", "-p", "9000", "--label", "bottle=a", "--storage", "30", "--", "nginx", "-g")
	r = f.must("machine", "status", "--name", "web", "--json")
	var obj map[string]any
	if err := json.Unmarshal([]byte(r.out), &obj); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.out)
	}
	want := map[string]any{"name": "web", "state": "created", "cpus": 4.0, "memory_mib": 8192.0, "pid": nil,
		"mounts": 0.0, "ports": 2.0, "network": true, "storage_gb": 30.0, "overlay_gb": nil, "image": nil,
		"ephemeral": false, "labels": map[string]any{"bottle": "a"}, "cmd": []any{"nginx", "-g"}, "entrypoint": []any{}}
	for k, v := range want {
		if !reflect.DeepEqual(obj[k], v) {
			t.Errorf("%s = %#v, want %#v", k, obj[k], v)
		}
	}
	if _, ok := obj["_fake"]; ok {
		t.Error("status --json leaks the private _fake section")
	}
	if _, ok := obj["created_at"].(float64); !ok {
		t.Errorf("created_at = %#v, want unix seconds", obj["created_at"])
	}
	// Keys come out in alphabetical order, pretty-printed.
	var keys []string
	for _, l := range strings.Split(r.out, "\n") {
		if strings.HasPrefix(l, "  \"") {
			keys = append(keys, strings.SplitN(strings.TrimSpace(l), "\"", 3)[1])
		}
	}
	if !sort.StringsAreSorted(keys) || len(keys) != len(obj) {
		t.Errorf("keys not sorted or not pretty-printed: %v", keys)
	}
	f.must("machine", "start", "--name", "web")
	r = f.must("machine", "ls", "--json")
	var arr []map[string]any
	if err := json.Unmarshal([]byte(r.out), &arr); err != nil || len(arr) != 1 {
		t.Fatalf("ls --json = %q (%v)", r.out, err)
	}
	if arr[0]["state"] != "running" || arr[0]["pid"] == nil {
		t.Errorf("ls --json after start: state %v pid %v", arr[0]["state"], arr[0]["pid"])
	}
	r = f.must("machine", "images", "--name", "web", "--json")
	var img struct {
		Storage map[string]int `json:"storage"`
		Images  []any          `json:"images"`
	}
	if err := json.Unmarshal([]byte(r.out), &img); err != nil || img.Images == nil || len(img.Storage) != 4 {
		t.Errorf("images --json = %q (%v)", r.out, err)
	}
	expect(t, f.must("machine", "egress-events", "--json"), 0, "[]", "")
}

// Checklist §8.6: "the not found substrings and their exact per-command wording".
func TestNotFoundWording(t *testing.T) {
	f := newFake(t)
	cases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"machine", "start", "--name", "x"}, "Error: vm not found: x\n"},
		{[]string{"machine", "stop", "--name", "x"}, "Error: vm not found: x\n"},
		{[]string{"machine", "delete", "-f", "--name", "x"}, "Error: vm not found: x\n"},
		{[]string{"machine", "status", "--name", "x"}, "Error: vm not found: x\n"},
		{[]string{"machine", "status", "--name", "x", "--json"}, "Error: config operation failed: machine status: machine 'x' not found\n"},
		{[]string{"machine", "exec", "--name", "x", "--", "true"}, "Error: vm not found: x\n"},
		{[]string{"machine", "cp", "./a", "x:/a"}, "Error: vm not found: x\n"},
		{[]string{"machine", "update", "--name", "x", "--cpus", "2"}, "Error: config operation failed: update: machine 'x' not found\n"},
		{[]string{"machine", "images", "--name", "x"}, "Error: config operation failed: images: machine 'x' not found\n"},
		{[]string{"machine", "data-dir", "--name", "x"}, "Error: vm not found: x\n"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[1:], "_"), func(t *testing.T) {
			r := f.run(c.args...)
			if r.code != 1 || r.err != c.stderr || !strings.Contains(r.err, "not found") {
				t.Errorf("exit %d stderr %q; want exit 1 stderr %q", r.code, r.err, c.stderr)
			}
		})
	}
	// No --name and no default machine is not an error for text status.
	expect(t, f.run("machine", "status"), 0, "Machine 'default': not running", "")
	expect(t, f.run("machine", "ls"), 0, "No machines found", "")
}

// Checklist §8.6: "delete without -f is a no-op that exits 0".
func TestDeleteWithoutForceIsNoop(t *testing.T) {
	f := newFake(t)
	f.running("m")
	for _, stdin := range []string{"", "n\n", "whatever\n"} {
		r := f.runIn(stdin, "machine", "delete", "--name", "m")
		expect(t, r, 0, "Cancelled", "Delete machine 'm'? [y/N] ")
		expect(t, f.run("machine", "status", "--name", "m"), 0, "Machine 'm': running", "")
	}
	r := f.runIn("yes\n", "vm", "rm", "--name", "m")
	expect(t, r, 0, "Stopping machine 'm'...\nCleaning up data directory for vm: m\nDeleted machine: m\n", "")
	expect(t, f.run("machine", "status", "--name", "m"), 1, "", "vm not found: m")
	f.must("machine", "create", "--name", "n")
	r = f.must("machine", "delete", "-f", "--name", "n")
	if r.out != "Cleaning up data directory for vm: n\nDeleted machine: n\n" {
		t.Errorf("delete -f of a stopped machine printed %q", r.out)
	}
	if _, err := os.Stat(filepath.Join(f.root, "machines", "n")); !os.IsNotExist(err) {
		t.Errorf("data dir survived delete -f: %v", err)
	}
}

// Checklist §8.6: "exec -n is rejected".
func TestExecShortNameRejected(t *testing.T) {
	f := newFake(t)
	f.running("m")
	r := f.run("machine", "exec", "-n", "m", "--", "true")
	expect(t, r, 2, "", "error: unexpected argument '-n' found")
	expect(t, f.run("machine", "exec", "--name", "m", "--", "true"), 0, "", "")
	expect(t, f.run("machine", "exec", "--name=m", "--", "true"), 0, "", "")
	// images and prune take --name long only too.
	expect(t, f.run("machine", "images", "-n", "m"), 2, "", "unexpected argument '-n' found")
	expect(t, f.run("machine", "prune", "-n", "m"), 2, "", "unexpected argument '-n' found")
}

// Checklist §8.6: "create NAME without --name is rejected".
func TestCreatePositionalNameRejected(t *testing.T) {
	f := newFake(t)
	expect(t, f.run("machine", "create", "web"), 2, "", "error: unexpected argument 'web' found")
	expect(t, f.run("machine", "ls", "--json"), 0, "[]", "")
	// A workload after -- is fine, and an omitted name is vm-<8 hex>.
	r := f.must("machine", "create", "--", "web")
	if !strings.HasPrefix(r.out, "Created machine: vm-") || len(strings.SplitN(r.out, "\n", 2)[0]) != len("Created machine: vm-12345678") {
		t.Errorf("auto-named create printed %q", r.out)
	}
	// Name rules (§2.4).
	for _, n := range []string{"-x", "a--b", "a-", "a.b", strings.Repeat("a", 129)} {
		r := f.run("machine", "create", "--name", n)
		expect(t, r, 1, "", "Error: config operation failed: create machine: machine name")
	}
	expect(t, f.run("machine", "create", "--name", "-x"), 1, "", `machine name must start with a letter or digit (got: "-x")`)
	f.must("machine", "create", "--name", "ok_1-2")
	expect(t, f.run("machine", "create", "--name", "ok_1-2"), 1, "",
		"Error: config operation failed: create machine: machine 'ok_1-2' already exists or is being created")
}

// Checklist §8.6: "a registry image without net is rejected at create".
func TestRegistryImageWithoutNetRejected(t *testing.T) {
	f := newFake(t)
	expect(t, f.run("machine", "create", "--name", "a", "--image", "alpine:3.20"), 1, "",
		"Error: config operation failed: create machine: image 'alpine:3.20' must be pulled from a registry, but this machine has no network")
	for i, net := range [][]string{{"--net"}, {"-p", "80"}, {"--allow-host", "example.com"}, {"--allow-cidr", "10.0.0.0/8"},
		{"--outbound-localhost-only"}, {"--dns", "1.1.1.1"}, {"--network", "n"}} {
		name := "ok" + string(rune('a'+i))
		f.must(append([]string{"machine", "create", "--name", name, "-I", "alpine:3.20"}, net...)...)
	}
	dir := t.TempDir()
	f.must("machine", "create", "--name", "local", "--image", dir+"/")
	f.must("machine", "create", "--name", "tar", "--image", "./img.tar")
	expect(t, f.run("machine", "create", "--name", "e", "--image", " "), 2, "", "error: invalid value ' ' for '--image <IMAGE>'")
}

// Checklist §8.6: "exec on a stopped machine does not auto-start it".
func TestExecDoesNotAutoStart(t *testing.T) {
	f := newFake(t)
	f.must("machine", "create", "--name", "m")
	want := "Error: agent operation failed: connect: machine 'm' is not running. Use 'smolvm machine start --name m' first.\n"
	for _, args := range [][]string{{"machine", "exec", "--name", "m", "--", "true"}, {"machine", "cp", "./x", "m:/x"}, {"machine", "shell", "--name", "m"}} {
		r := f.run(args...)
		if r.code != 1 || r.err != want {
			t.Errorf("%v: exit %d stderr %q", args, r.code, r.err)
		}
	}
	expect(t, f.run("machine", "status", "--name", "m"), 0, "Machine 'm': created\n", "")
}

// Checklist §8.6: "start and stop are idempotent with exit 0".
func TestStartStopIdempotent(t *testing.T) {
	f := newFake(t)
	f.must("machine", "create", "--name", "m")
	r := f.must("machine", "stop", "--name", "m")
	if r.out != "Machine 'm' is not running (state: created)\n" {
		t.Errorf("stop of a created machine printed %q", r.out)
	}
	r = f.must("machine", "start", "--name", "m")
	if r.out != "Machine 'm' running (PID: 40001)\n" || r.err != "Starting machine 'm'...\n" {
		t.Errorf("start printed %q / %q", r.out, r.err)
	}
	r = f.must("machine", "start", "--name", "m")
	if r.out != "Machine 'm' already running (PID: 40001)\n" {
		t.Errorf("second start printed %q", r.out)
	}
	r = f.must("machine", "stop", "--name", "m")
	if r.out != "Stopping machine 'm'...\nStopped machine: m\n" {
		t.Errorf("stop printed %q", r.out)
	}
	r = f.must("machine", "stop", "--name", "m")
	if r.out != "Machine 'm' is not running (state: stopped)\n" {
		t.Errorf("second stop printed %q", r.out)
	}
	// start without --name auto-creates "default".
	expect(t, f.run("machine", "start"), 0, "Machine 'default' running (PID:", "")
}

// Checklist §8.6: "cp handles files only".
func TestCpFilesOnly(t *testing.T) {
	f := newFake(t)
	f.running("m")
	dir := t.TempDir()
	src := filepath.Join(dir, "a.txt")
	os.WriteFile(src, []byte("hello\n"), 0o644)
	r := f.must("machine", "cp", "--mode", "0o600", "--uid", "1000", src, "m:/workspace/sub/a.txt")
	if !strings.Contains(r.err, "Uploading "+src+" -> /workspace/sub/a.txt: 6 B / 6 B") || r.out != "" {
		t.Errorf("upload printed %q / %q", r.out, r.err)
	}
	fi, err := os.Stat(filepath.Join(f.root, "machines", "m", "rootfs", "workspace", "sub", "a.txt"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("uploaded file: %v %v", fi, err)
	}
	expect(t, f.run("machine", "exec", "--name", "m", "--", "cat", "/workspace/sub/a.txt"), 0, "hello\n", "")
	back := filepath.Join(dir, "b.txt")
	f.must("machine", "cp", "m:/workspace/sub/a.txt", back)
	if b, _ := os.ReadFile(back); string(b) != "hello\n" {
		t.Errorf("downloaded %q", b)
	}
	expect(t, f.run("machine", "cp", dir, "m:/workspace/d"), 1, "", "Error: agent operation failed: read local file: "+dir+": is a directory")
	expect(t, f.run("machine", "cp", "m:/workspace/sub", back), 1, "", "is a directory")
	expect(t, f.run("machine", "cp", filepath.Join(dir, "missing"), "m:/x"), 1, "", "Error: agent operation failed: read local file: ")
	expect(t, f.run("machine", "cp", "--mode", "644", "m:/workspace/sub/a.txt", back), 1, "", "Error: config operation failed: cp:")
	expect(t, f.run("machine", "cp", src, back), 1, "",
		"Error: config operation failed: cp: one of SRC or DST must use machine:path syntax (e.g., myvm:/workspace/file)")
}

// Checklist §8.6: "volume host dirs must exist".
func TestVolumeHostDirsMustExist(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	cases := []struct {
		name, spec, stderr string
	}{
		{"missing", dir + "/nope:/data", "Error: mount source not found: " + dir + "/nope"},
		{"file", file + ":/data", "source path on host must be a directory (virtiofs limitation)"},
		{"protected", "/etc:/data", "Error: invalid mount path:"},
		{"relative guest", dir + ":data", "Error: invalid mount path:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect(t, f.run("machine", "create", "--name", "v", "-v", c.spec), 1, "", c.stderr)
		})
	}
	expect(t, f.run("machine", "create", "--name", "v", "-v", dir+":/a", "-v", dir+":/a:ro"), 1, "", "Error: invalid mount path:")
	r := f.must("machine", "create", "--name", "v", "-v", dir+":/data:ro")
	expect(t, r, 0, "  Mounts: 1\n", "")
	r = f.must("machine", "ls", "-v")
	expect(t, r, 0, " -> /data (ro)", "")
}

// Checklist §8.6: "ports are unique across running machines".
func TestPortsUniqueAcrossRunningMachines(t *testing.T) {
	f := newFake(t)
	expect(t, f.run("machine", "create", "--name", "d", "-p", "8080:80", "-p", "8080:81"), 1, "",
		"Error: config operation failed: validate ports: duplicate host port 8080: each host port can only be mapped once")
	f.running("a", "-p", "8080:80")
	f.must("machine", "create", "--name", "b", "-p", "8080:90")
	expect(t, f.run("machine", "start", "--name", "b"), 1, "", "host port 8080 is already in use by running machine 'a'")
	f.must("machine", "stop", "--name", "a")
	expect(t, f.run("machine", "start", "--name", "b"), 0, "Machine 'b' running", "Starting machine 'b' with 1 port mapping(s)...")
}

// countingWriter records each Write, to tell buffered from streamed output.
type countingWriter struct{ writes []string }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

// Checklist §8.6: "output is buffered without --stream".
func TestOutputBufferedWithoutStream(t *testing.T) {
	f := newFake(t)
	f.running("m")
	f.env[EnvExec] = "host"
	script := "echo a; sleep 0.3; echo b"
	runW := func(args ...string) []string {
		var w countingWriter
		var errb strings.Builder
		code := Main(args, strings.NewReader(""), &w, &errb, func(k string) string { return f.env[k] })
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		return w.writes
	}
	got := runW("machine", "exec", "--name", "m", "--", "sh", "-c", script)
	if len(got) != 1 || got[0] != "a\nb\n" {
		t.Errorf("buffered exec wrote %q, want one write of everything", got)
	}
	got = runW("machine", "exec", "--name", "m", "--stream", "--", "sh", "-c", script)
	if len(got) < 2 || got[0] != "a\n" {
		t.Errorf("streamed exec wrote %q, want a\\n first on its own", got)
	}
}

// §8.4: env and workdir precedence, secrets, host passthrough in the rootfs.
func TestExecEngine(t *testing.T) {
	f := newFake(t)
	f.env["HOST_TOKEN"] = "s3cret"
	f.env["FWD"] = "fwd"
	f.running("m", "-e", "A=record", "-e", "B=record", "-w", "/srv", "--secret-env", "TOKEN=HOST_TOKEN")
	r := f.must("machine", "exec", "--name", "m", "-e", "B=exec", "-e", "FWD", "-e", "UNSET_ONE", "--", "env")
	for _, want := range []string{"A=record\n", "B=exec\n", "TOKEN=s3cret\n", "FWD=fwd\n", defaultPath + "\n"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("env output %q lacks %q", r.out, want)
		}
	}
	if strings.Contains(r.out, "UNSET_ONE") {
		t.Errorf("key-only -e of an unset host var was not dropped: %q", r.out)
	}
	expect(t, f.run("machine", "exec", "--name", "m", "--", "pwd"), 0, "/srv\n", "")
	expect(t, f.run("machine", "exec", "--name", "m", "-w", "/tmp", "--", "pwd"), 0, "/tmp\n", "")
	expect(t, f.run("machine", "exec", "--name", "m", "--", "id", "-u"), 0, "0\n", "")
	expect(t, f.run("machine", "exec", "--name", "m", "--", "cat", "/nope"), 1, "", "cat: can't open '/nope': No such file or directory")
	expect(t, f.run("machine", "exec", "--name", "m", "--secret-env", "X=NOT_SET_ANYWHERE", "--", "true"), 1, "", "Error: ")
	expect(t, f.run("machine", "exec", "--name", "m", "-d", "--", "sleep", "1"), 0, "", "")
	expect(t, f.run("machine", "exec", "--name", "m", "-d", "--stream", "--", "true"), 2, "", "cannot be used with")

	f.faults(Faults{Responders: []Responder{{Machine: "m", ArgvPrefix: []string{"git", "status"}, Stdout: "clean\n", Exit: 3}}})
	expect(t, f.run("machine", "exec", "--name", "m", "--", "git", "status", "-s"), 3, "clean\n", "")

	f.env[EnvExec] = "host"
	r = f.must("machine", "exec", "--name", "m", "--", "sh", "-c", `pwd; echo "$B $SMOLVM_FAKE_ROOTFS"; echo hi > f.txt`)
	rootfs := filepath.Join(f.root, "machines", "m", "rootfs")
	if r.out != filepath.Join(rootfs, "srv")+"\nrecord "+rootfs+"\n" {
		t.Errorf("host exec printed %q", r.out)
	}
	f.env[EnvExec] = ""
	expect(t, f.run("machine", "exec", "--name", "m", "--", "cat", "/srv/f.txt"), 0, "hi\n", "")
	f.env[EnvExec] = "host"
	expect(t, f.run("machine", "exec", "--name", "m", "--timeout", "100ms", "--", "sleep", "5"), 124, "", "")
	expect(t, f.runIn("piped\n", "machine", "exec", "--name", "m", "-i", "--", "cat"), 0, "piped\n", "")
	expect(t, f.runIn("piped\n", "machine", "exec", "--name", "m", "--", "cat"), 0, "", "")
}

// §8.3: init runs on first start only; a failing init stops the VM.
func TestInitFirstStartOnly(t *testing.T) {
	f := newFake(t)
	f.env[EnvExec] = "host"
	marker := filepath.Join(t.TempDir(), "count")
	f.must("machine", "create", "--name", "m", "--init", "echo x >> "+marker)
	expect(t, f.run("machine", "start", "--name", "m"), 0, "Running 1 init command(s)...\nMachine 'm' running", "")
	f.must("machine", "stop", "--name", "m")
	f.must("machine", "start", "--name", "m")
	if b, _ := os.ReadFile(marker); string(b) != "x\n" {
		t.Errorf("init ran %q times", b)
	}
	f.must("machine", "create", "--name", "bad", "--init", "echo out; echo oops >&2; exit 3")
	expect(t, f.run("machine", "start", "--name", "bad"), 1, "", "Error: init[0] failed (exit 3): oops; stdout: out")
	expect(t, f.run("machine", "status", "--name", "bad"), 0, "Machine 'bad': stopped", "")
}

// §8.3: update only while stopped; counts recomputed.
func TestUpdate(t *testing.T) {
	f := newFake(t)
	f.running("m", "-p", "8080:80")
	expect(t, f.run("machine", "update", "--name", "m", "--cpus", "2"), 1, "", "Error: invalid vm state: expected stopped, got Running")
	f.must("machine", "stop", "--name", "m")
	expect(t, f.run("machine", "update", "--name", "m"), 0, "No changes specified.", "")
	r := f.must("machine", "update", "--name", "m", "--remove-port", "8080:80", "-p", "9090:90", "-p", "9091:91", "--cpus", "2")
	expect(t, r, 0, "Updated machine 'm':", "")
	expect(t, r, 0, "Start with: smolvm machine start --name m", "")
	var st Status
	json.Unmarshal([]byte(f.must("machine", "status", "--name", "m", "--json").out), &st)
	if st.Ports != 2 || st.Cpus != 2 {
		t.Errorf("after update: ports %d cpus %d", st.Ports, st.Cpus)
	}
}

// §8.3: run in the foreground is ephemeral; run -d persists.
func TestRun(t *testing.T) {
	f := newFake(t)
	r := f.run("machine", "run", "--", "sh", "-c", "exit 5")
	expect(t, r, 5, "", "Starting ephemeral machine (vm-")
	expect(t, f.run("machine", "ls", "--json"), 0, "[]", "")
	expect(t, f.run("machine", "run"), 1, "", "Error: no command specified")
	expect(t, f.run("machine", "run", "-d", "--name", "bg", "--", "sleep", "1"), 0, "Machine 'bg' running (PID:", "")
	expect(t, f.run("machine", "run", "-d", "--name", "bg", "--", "true"), 1, "",
		"Error: config operation failed: machine run -d --name: a machine named 'bg' already exists.")
	expect(t, f.run("machine", "run", "--label", "a=b", "--", "true"), 2, "", "unexpected argument '--label' found")
}

// §8.1: every invocation is one JSON line in invocations.jsonl.
func TestInvocationLog(t *testing.T) {
	f := newFake(t)
	f.must("machine", "create", "--name", "m", "--net")
	f.runIn("n\n", "machine", "delete", "--name", "m")
	f.run("machine", "exec", "-n", "m", "--", "true")
	invs, err := ReadInvocations(f.root)
	if err != nil || len(invs) != 3 {
		t.Fatalf("invocations: %v %v", invs, err)
	}
	if !reflect.DeepEqual(invs[0].Argv, []string{"smolvm", "machine", "create", "--name", "m", "--net"}) || invs[0].Exit != 0 ||
		!strings.HasPrefix(invs[0].Stdout, "Created machine: m") || invs[0].Env[EnvRoot] != f.root {
		t.Errorf("first invocation: %+v", invs[0])
	}
	if invs[1].StdinBytes == 0 || invs[1].Stdout != "Cancelled\n" {
		t.Errorf("second invocation: %+v", invs[1])
	}
	if invs[2].Exit != 2 || !strings.Contains(invs[2].Stderr, "'-n'") {
		t.Errorf("third invocation: %+v", invs[2])
	}
	var rec map[string]any
	b, _ := os.ReadFile(filepath.Join(f.root, "machines", "m", "record.json"))
	json.Unmarshal(b, &rec)
	if rec["_fake"] == nil {
		t.Errorf("record.json lacks _fake: %s", b)
	}
}

// §8.1: without a state root the fake refuses to run.
func TestStateRootRequired(t *testing.T) {
	var out, errb strings.Builder
	code := Main([]string{"machine", "ls"}, nil, &out, &errb, func(string) string { return "" })
	if code != 1 || !strings.HasPrefix(errb.String(), "Error: ") {
		t.Errorf("exit %d stderr %q", code, errb.String())
	}
	dd := t.TempDir()
	code = Main([]string{"machine", "ls", "--json"}, nil, &out, &errb, func(k string) string {
		if k == EnvDataDir {
			return dd
		}
		return ""
	})
	if _, err := os.Stat(filepath.Join(dd, "fake", "invocations.jsonl")); code != 0 || err != nil {
		t.Errorf("SMOLVM_DATA_DIR fallback: exit %d, %v", code, err)
	}
}

// §1.9/§8.6: flags added after 1.9.2 are version-gated.
func TestVersionGate(t *testing.T) {
	f := newFake(t)
	f.running("m")
	expect(t, f.run("--version"), 0, "smolvm 1.9.2\n", "")
	expect(t, f.run("machine", "exec", "--name", "m", "--user", "1000", "--", "true"), 2, "", "unexpected argument '--user' found")
	os.WriteFile(filepath.Join(f.root, "version"), []byte("1.14.0\n"), 0o644)
	expect(t, f.run("-V"), 0, "smolvm 1.14.0\n", "")
	expect(t, f.run("machine", "exec", "--name", "m", "--user", "1000", "--", "true"), 0, "", "")
	expect(t, f.run("machine", "exec", "--help"), 0, "--user <USER>", "")
	os.WriteFile(filepath.Join(f.root, "version"), []byte("1.9.2\n"), 0o644)
	r := f.must("machine", "exec", "--help")
	if strings.Contains(r.out, "--user") || !strings.Contains(r.out, "    --name <NAME>") || strings.Contains(r.out, "-n, --name") {
		t.Errorf("1.9.2 exec --help:\n%s", r.out)
	}
	expect(t, f.run("machine", "create", "-h"), 0, "-n, --name <NAME>", "")
}

// Commands outside what bottleform uses parse like the real CLI and then
// refuse with exit 1, never silently succeed.
func TestNotEmulated(t *testing.T) {
	f := newFake(t)
	expect(t, f.run("machine", "monitor", "-n", "m"), 1, "", "Error: fake smolvm: 'machine monitor' is not emulated")
	expect(t, f.run("machine", "fork"), 2, "", "--golden <NAME>")
	expect(t, f.run("serve", "start"), 1, "", "Error: fake smolvm: 'serve' is not emulated")
	expect(t, f.run("nonsense"), 2, "", "error: unrecognized subcommand 'nonsense'")
}

// §8.5 delay_ms: a slow first start.
func TestFaultSlowFirstStart(t *testing.T) {
	f := newFake(t)
	f.must("machine", "create", "--name", "m")
	f.faults(Faults{Rules: []Rule{{Command: "start", Machine: "m", Count: 1, DelayMs: 300}}})
	t0 := time.Now()
	f.must("machine", "start", "--name", "m")
	// A lower bound only: the sleep guarantees it, whatever the machine's load.
	if slow := time.Since(t0); slow < 300*time.Millisecond {
		t.Errorf("first start took %v, want at least the injected 300ms", slow)
	}
	// Count 1: the rule is used up, so the next start is not delayed.
	b, _ := os.ReadFile(filepath.Join(f.root, "faults.fired.json"))
	var fired map[string]int
	if json.Unmarshal(b, &fired) != nil || len(fired) != 1 {
		t.Errorf("faults.fired.json = %s", b)
	}
	for _, n := range fired {
		if n != 1 {
			t.Errorf("rule fired %d times, want 1", n)
		}
	}
}

// §8.5 exec_not_running_once: exec right after start loses a readiness race.
func TestFaultExecNotReadyRace(t *testing.T) {
	f := newFake(t)
	f.running("m")
	f.faults(Faults{Rules: []Rule{{Command: "exec", Machine: "m", Count: 1, ExecNotRunningOnce: true}}})
	expect(t, f.run("machine", "exec", "--name", "m", "--", "true"), 1, "", "is not running. Use 'smolvm machine start --name m' first.")
	expect(t, f.run("machine", "exec", "--name", "m", "--", "true"), 0, "", "")
}

// §8.5 state_override: unreachable (PID alive, agent dead) and a host reboot.
func TestFaultUnreachableState(t *testing.T) {
	f := newFake(t)
	f.running("m")
	f.faults(Faults{Rules: []Rule{{Machine: "m", Count: 2, StateOverride: "unreachable"}}})
	expect(t, f.run("machine", "status", "--name", "m"), 0, "Machine 'm': unreachable\n", "")
	// start kills an unreachable machine and starts it fresh.
	expect(t, f.run("machine", "start", "--name", "m"), 0, "Machine 'm' running (PID: 40002)", "Starting machine 'm'...")
	expect(t, f.run("machine", "status", "--name", "m"), 0, "Machine 'm': running (PID: 40002)", "")

	f.faults(Faults{Rules: []Rule{{Command: "ls", Machine: "m", Count: 1, StateOverride: "stopped"}}})
	var arr []Status
	json.Unmarshal([]byte(f.must("machine", "ls", "--json").out), &arr)
	if len(arr) != 1 || arr[0].State != "stopped" || arr[0].Pid != nil {
		t.Errorf("after a simulated reboot: %+v", arr)
	}
}

// §8.5 start_fails_after_boot, crash_after_start and fail.
func TestFaultStartFailure(t *testing.T) {
	f := newFake(t)
	f.must("machine", "create", "--name", "m")
	f.faults(Faults{Rules: []Rule{
		{Command: "start", Machine: "m", Count: 1, StartFailsAfterBoot: true},
		{Command: "start", Machine: "c", Count: 1, CrashAfterStart: true},
		{Command: "ls", Count: 1, Fail: &Fail{Exit: 1, Stderr: "Error: database not available: locked"}},
	}})
	expect(t, f.run("machine", "start", "--name", "m"), 1, "", "Error: agent operation failed: start machine: ")
	expect(t, f.run("machine", "status", "--name", "m"), 0, "Machine 'm': created\n", "")
	expect(t, f.run("machine", "start", "--name", "m"), 0, "Machine 'm' running", "")

	f.running("c")
	expect(t, f.run("machine", "status", "--name", "c"), 0, "Machine 'c': stopped\n", "")

	expect(t, f.run("machine", "ls"), 1, "", "Error: database not available: locked\n")
	expect(t, f.run("machine", "ls"), 0, "NAME", "")
}

// The fake builds as a binary named smolvm and behaves the same on PATH.
func TestBinaryOnPath(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "smolvm"), "./cmd/smolvm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	root := t.TempDir()
	env := append(os.Environ(), EnvRoot+"="+root, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	run := func(args ...string) (string, int) {
		cmd := exec.Command(filepath.Join(bin, "smolvm"), args...)
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := run("--version"); code != 0 || out != "smolvm 1.9.2\n" {
		t.Errorf("--version: %d %q", code, out)
	}
	if _, code := run("machine", "create", "--name", "m"); code != 0 {
		t.Fatal("create failed")
	}
	if out, code := run("machine", "exec", "-n", "m", "--", "true"); code != 2 || !strings.Contains(out, "'-n'") {
		t.Errorf("exec -n: %d %q", code, out)
	}
	if out, code := run("machine", "delete", "--name", "m"); code != 0 || !strings.Contains(out, "Cancelled") {
		t.Errorf("delete without -f: %d %q", code, out)
	}
	invs, err := ReadInvocations(root)
	if err != nil || len(invs) != 4 || invs[3].Argv[2] != "delete" {
		t.Errorf("invocations from the binary: %d %v", len(invs), err)
	}
}
