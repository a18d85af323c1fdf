package views

import (
	"strings"
	"testing"
)

func TestDecisionWriter(t *testing.T) {
	lines := `{"time":"2026-11-27T12:00:00Z","level":"INFO","msg":"sidecar started"}
{"time":"2026-11-27T12:00:01Z","level":"INFO","msg":"egress","bottle":"b","method":"GET","host":"api.github.com","path":"/repos/acme/app","route":"api.github.com","verdict":"allow","reason":"granted","status":200,"bytes":512}
{"time":"2026-11-27T12:00:02Z","level":"WARN","msg":"egress","bottle":"b","method":"CONNECT","host":"evil.example:443","path":"","route":"","verdict":"deny","reason":"host_not_granted","status":403}
{"time":"2026-11-27T12:00:03Z","level":"INFO","msg":"git","method":"GET","path":"/app.git/info/refs","repo":"app","service":"git-upload-pack","status":200}
{"time":"2026-11-27T12:00:04Z","level":"WARN","msg":"git hook","path":"/app.git/git-receive-pack","repo":"app","line":"bottleform git gate: refusing push: secret found: deploy.env:2 (commit 1a2b3c4, rule aws-access-token)"}
{"time":"2026-11-27T12:00:04Z","level":"WARN","msg":"git","method":"POST","path":"/app.git/git-receive-pack","repo":"app","service":"git-receive-pack","status":200,"exit":1}
{"time":"2026-11-27T12:00:05Z","level":"WARN","msg":"git","method":"GET","path":"/lib.git/info/refs","repo":"lib","service":"git-upload-pack","status":502}
not json at all
`
	tests := []struct {
		name       string
		opts       DecisionOptions
		want, nope []string
	}{
		{"all", DecisionOptions{}, []string{
			"allow  GET     api.github.com/repos/acme/app  200 granted (route api.github.com, 512 bytes)",
			"DENY   CONNECT evil.example:443  403 host_not_granted",
			"git    GET     git-gate/app.git/info/refs  200 git-upload-pack",
			"  >    app: bottleform git gate: refusing push: secret found: deploy.env:2",
			"GIT    GET     git-gate/lib.git/info/refs  502 git-upload-pack",
		}, []string{"sidecar started", "not json"}},
		{"denied", DecisionOptions{Denied: true}, []string{"evil.example:443", "deploy.env:2", "lib.git"}, []string{"api.github.com", "app.git/info/refs"}},
		{"json", DecisionOptions{JSON: true, Denied: true}, []string{`"verdict":"deny"`}, []string{`"verdict":"allow"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			w := NewDecisionWriter(&out, tt.opts)
			// Written in pieces that split lines, as a log stream arrives.
			for i := 0; i < len(lines); i += 7 {
				w.Write([]byte(lines[i:min(i+7, len(lines))]))
			}
			w.Flush()
			for _, s := range tt.want {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.nope {
				if strings.Contains(out.String(), s) {
					t.Errorf("output has %q:\n%s", s, out.String())
				}
			}
		})
	}
}

func TestFileDiff(t *testing.T) {
	before := "a\nb\nc\nd\ne\nf\ng\nh\ni\n"
	after := "a\nb\nc\nd\ne\nf\ng\nh\ni\n# why\negress \"x\" {\n}\n"
	var out strings.Builder
	if err := FileDiff(&out, "main.hcl", []byte(before), []byte(after), false); err != nil {
		t.Fatal(err)
	}
	want := "--- main.hcl\n+++ main.hcl\n@@ 6 unchanged lines @@\n g\n h\n i\n+# why\n+egress \"x\" {\n+}\n"
	if out.String() != want {
		t.Errorf("diff:\n%s\nwant:\n%s", out.String(), want)
	}
}
