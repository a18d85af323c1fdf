package main

// TestE2ESupervise is the supervise loop on this machine's Docker engine:
// the agent asks for a host through the supervise MCP server (curl
// speaking MCP's streamable HTTP from inside the agent), a person approves
// it with `bottleform proposals approve`, which edits the definition; plan
// says what it opens; apply makes it live without replacing the agent; and
// the agent's status tool then reports it applied.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bottleform/bottleform/resource"
)

const supMain = `bottle "sup" {
  image     = "bottleform-agent:test"
  supervise = true
}
`

// mcpScript speaks MCP over streamable HTTP with curl: initialize, the
// initialized notification, then one tools/call of $1 with arguments $2.
// It prints the call's response body.
const mcpScript = `set -eu
url=http://supervise:9100/mcp
h=$(mktemp)
curl -sS -D "$h" -o /dev/null -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  --data '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' "$url"
sid=$(sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *//p' "$h" | tr -d '\r')
set -- "$1" "$2" ${sid:+-H "Mcp-Session-Id: $sid"}
name=$1 args=$2
shift 2
curl -sS -o /dev/null -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "$@" \
  --data '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$url"
curl -sS -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "$@" \
  --data '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"'"$name"'","arguments":'"$args"'}}' "$url"
`

// mcpCall runs one tools/call in the agent and returns the JSON-RPC
// result's structured content (or its text content).
func mcpCall(t *testing.T, dir, tool, args string) string {
	t.Helper()
	r := bfRun(t, dir, nil, "attach", "sup", "--", "sh", "-c", mcpScript, "mcp", tool, args)
	wantCode(t, "tools/call "+tool, r, 0)
	body := r.stdout
	// An SSE response: the JSON is on the data: line.
	if i := strings.Index(body, "data: "); i >= 0 {
		body = strings.TrimSpace(strings.SplitN(body[i+len("data: "):], "\n", 2)[0])
	}
	var resp struct {
		Result struct {
			IsError           bool            `json:"isError"`
			StructuredContent json.RawMessage `json:"structuredContent"`
			Content           []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
		Error *struct{ Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Error != nil || resp.Result.IsError {
		t.Fatalf("tools/call %s: %v %+v\n%s", tool, err, resp.Error, r)
	}
	if len(resp.Result.StructuredContent) > 0 {
		return string(resp.Result.StructuredContent)
	}
	var texts []string
	for _, c := range resp.Result.Content {
		texts = append(texts, c.Text)
	}
	return strings.Join(texts, "\n")
}

func TestE2ESupervise(t *testing.T) {
	e2eRequire(t)
	dir := t.TempDir()
	t.Cleanup(func() { cleanupDir(t, dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(supMain), 0o644); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "apply", bfRun(t, dir, nil, "apply", "--auto-approve"), 0)
	lineage := lineageOf(dir)
	agentID := dockerCLI(t, "inspect", "--format", "{{.Id}}", resource.ObjectName(lineage, "sup", "agent"))

	// The agent asks.
	out := mcpCall(t, dir, "propose_egress", `{"host":"api.example.test","justification":"to read the release notes of our API"}`)
	m := regexp.MustCompile(`p-[0-9a-f]+`).FindString(out)
	if m == "" {
		t.Fatalf("propose_egress returned no proposal id: %s", out)
	}
	list := bfOK(t, dir, nil, "proposals")
	if !strings.Contains(list, m) || !strings.Contains(list, "egress to api.example.test") || !strings.Contains(list, "pending") {
		t.Fatalf("proposals:\n%s", list)
	}

	// A person approves: the definition is edited, with the justification.
	r := bfRun(t, dir, nil, "proposals", "approve", m)
	wantCode(t, "proposals approve", r, 0)
	if !strings.Contains(r.stdout, `+  egress "api.example.test" {`) {
		t.Errorf("approve printed no diff adding the route:\n%s", r.stdout)
	}
	src, _ := os.ReadFile(filepath.Join(dir, "main.hcl"))
	if !strings.Contains(string(src), "to read the release notes of our API") || !strings.Contains(string(src), `egress "api.example.test"`) {
		t.Errorf("main.hcl after approve:\n%s", src)
	}
	if st := mcpCall(t, dir, "proposal_status", `{"id":"`+m+`"}`); !strings.Contains(st, "approved") {
		t.Errorf("status after approve: %s", st)
	}

	// The plan says what it opens; apply makes it live in place.
	plan := bfOK(t, dir, nil, "plan")
	if !strings.Contains(plan, "bottle sup gains egress to api.example.test") {
		t.Errorf("plan does not say what the approval opens:\n%s", plan)
	}
	r = bfRun(t, dir, nil, "apply", "--auto-approve")
	wantCode(t, "apply", r, 0)
	if got := dockerCLI(t, "inspect", "--format", "{{.Id}}", resource.ObjectName(lineage, "sup", "agent")); got != agentID {
		t.Error("the apply replaced the agent")
	}
	if st := mcpCall(t, dir, "proposal_status", `{"id":"`+m+`"}`); !strings.Contains(st, "applied") {
		t.Errorf("status after apply: %s", st)
	}
	if list := bfOK(t, dir, nil, "proposals"); !strings.Contains(list, "applied") {
		t.Errorf("proposals after apply:\n%s", list)
	}

	// A rejection reaches the agent with its reason.
	out = mcpCall(t, dir, "propose_egress", `{"host":"files.example.test","justification":"to download a dataset"}`)
	m2 := regexp.MustCompile(`p-[0-9a-f]+`).FindString(out)
	wantCode(t, "reject", bfRun(t, dir, nil, "proposals", "reject", m2, "--reason", "use the internal mirror"), 0)
	if st := mcpCall(t, dir, "proposal_status", `{"id":"`+m2+`"}`); !strings.Contains(st, "rejected") || !strings.Contains(st, "use the internal mirror") {
		t.Errorf("status after reject: %s", st)
	}
}
