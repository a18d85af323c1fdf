package state

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead checks that Read never panics and that any state it accepts
// round-trips: Write then Read gives a state that writes the same bytes.
func FuzzRead(f *testing.F) {
	// Seeds: the golden state, and the state an apply of each example
	// leaves (written by go test ./examples -update).
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files in testdata: %v", err)
	}
	fromExamples, err := filepath.Glob("testdata/examples/*.json")
	if err != nil || len(fromExamples) == 0 {
		f.Fatalf("no seeds from the examples in testdata/examples (run go test ./examples -update): %v", err)
	}
	files = append(files, fromExamples...)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
		f.Add(bytes.Replace(data, []byte(`"version": 1`), []byte(`"version": 2`), 1))
		f.Add(bytes.Replace(data, []byte(`"lineage"`), []byte(`"lineag"`), 1))
		f.Add(bytes.Replace(data, []byte(`"expr"`), []byte(`"map"`), 1))
		f.Add(bytes.Replace(data, []byte(`.network"`), []byte(`.sidecar"`), 1))
		f.Add(bytes.ReplaceAll(data, []byte("\n"), nil))
	}
	for _, s := range []string{
		``,
		`{}`,
		`null`,
		`{"version": 1}`,
		`{"version": 1, "bottles": {"a": {"backend": "docker", "resources": [{"address": "bottle.a.egress[\"x\\\"y\"]", "attributes": {"v": {"map": {"k": ["s", {"expr": "e"}, []]}}}, "ids": {}}]}}}`,
		`{"version": 1, "bottles": {"a": {"backend": "smolmachines", "resources": null}}}`,
		`{"version": 1, "serial": 18446744073709551615}`,
		`{"version": 1, "lineage": "\u2028<&>\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		var first bytes.Buffer
		if err := Write(&first, s); err != nil {
			t.Fatalf("Read accepted a state that Write refuses: %v\ninput: %q", err, data)
		}
		again, err := Read(bytes.NewReader(first.Bytes()))
		if err != nil {
			t.Fatalf("Read refuses what Write wrote: %v\nwritten:\n%s", err, first.Bytes())
		}
		var second bytes.Buffer
		if err := Write(&second, again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatalf("round trip changed the file:\n%s", firstDiff(second.Bytes(), first.Bytes()))
		}
	})
}
