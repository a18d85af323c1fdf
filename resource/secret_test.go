package resource

import "testing"

func TestParseRefRoundTrip(t *testing.T) {
	for _, r := range []Ref{
		{Secret: "gitea_token"},
		{HostEnv: "GITEA_TOKEN"},
		{HostCredential: "codex"},
		{KeyFile: `~/.ssh/deploy "key"`},
	} {
		got, err := ParseRef(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRef(%s) = %+v, %v; want %+v", r, got, err, r)
		}
	}
	for _, bad := range []string{"", "secret.", "host_env()", `host_env("")`, `file(x)`, `other("x")`, "GITEA_TOKEN"} {
		if r, err := ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) = %+v, want an error", bad, r)
		}
	}
}
