package supervise

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
)

// countReader counts what is read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// spaces is an endless reader of spaces: padding that is never allocated.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func fuzzCall(tool string, args string) string {
	return `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + `}}`
}

// FuzzSuperviseHTTP sends arbitrary requests (method, path, header lines,
// body, chunked or not, padded past the limit or not) through the hardened
// handler. It must never panic, always answer with a well-formed HTTP
// response (a JSON body when it succeeds), never read more than MaxBody+1
// bytes of a body, keep the store within its limits, and log one line per
// request, of known fields only, and never a secret.
func FuzzSuperviseHTTP(f *testing.F) {
	const mcp = "Content-Type: application/json\nAccept: application/json, text/event-stream"
	seeds := []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
		pingBody,
		fuzzCall(ToolListGrants, `{}`),
		fuzzCall(ToolProposeEgress, `{"host":"registry.npmjs.org","justification":"npm install"}`),
		fuzzCall(ToolProposeEgress, `{"host":"a.example.com","justification":"j","paths":["/v1/"],"tls":"intercept"}`),
		fuzzCall(ToolProposeEgress, `{"host":"0x7f.1","justification":"`+secret+`"}`),
		fuzzCall(ToolProposePush, `{"repo":"app","ref":"+refs/heads/fix/*","justification":"rebase"}`),
		fuzzCall(ToolProposalStatus, `{"id":"p-00000000"}`),
		`[` + pingBody + `,` + fuzzCall(ToolListGrants, `{}`) + `]`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/list"}`,
		`{{{{`,
		``,
	}
	for _, b := range seeds {
		f.Add("POST", "/mcp", mcp, []byte(b), false, uint32(0))
		f.Add("POST", "/mcp", mcp, []byte(b), true, uint32(0))
	}
	f.Add("POST", "/mcp", mcp+"\nContent-Length: 40", []byte(pingBody), false, uint32(0))
	f.Add("POST", "/mcp", mcp+"\nContent-Length: 40\nContent-Length: 41", []byte(pingBody), false, uint32(0))
	f.Add("POST", "/mcp", mcp+"\nContent-Length: -1", []byte(pingBody), false, uint32(0))
	f.Add("POST", "/mcp", mcp+"\nContent-Length: 1048577", []byte(pingBody), false, uint32(MaxBody))
	f.Add("POST", "/mcp", mcp, []byte(pingBody), true, uint32(MaxBody))
	f.Add("POST", "/mcp", mcp+"\nMcp-Session-Id: x\nMCP-Protocol-Version: 2025-06-18", []byte(pingBody), false, uint32(0))
	f.Add("GET", "/mcp", "Accept: text/event-stream", []byte{}, false, uint32(0))
	f.Add("DELETE", "/mcp", "Mcp-Session-Id: "+secret, []byte{}, false, uint32(0))
	f.Add("POST", "/"+secret, mcp, []byte(pingBody), false, uint32(0))

	log := &syncBuffer{}
	s := New(Options{Log: slog.New(slog.NewJSONHandler(log, nil))})
	s.Load(testConfig())

	f.Fuzz(func(t *testing.T, method, path, header string, body []byte, chunk bool, pad uint32) {
		log.mu.Lock()
		log.buf.Reset()
		log.mu.Unlock()
		padding := int64(pad % (3 * MaxBody))
		cr := &countReader{r: io.MultiReader(bytes.NewReader(body), io.LimitReader(spaces{}, padding))}
		r := &http.Request{
			Method: method, URL: &url.URL{Path: path}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Host: "127.0.0.1", RemoteAddr: "127.0.0.1:40000", RequestURI: path,
			Body: io.NopCloser(cr), ContentLength: int64(len(body)) + padding,
		}
		if chunk {
			r.TransferEncoding, r.ContentLength = []string{"chunked"}, -1
		}
		for _, line := range strings.Split(header, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				r.Header.Add(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)), strings.TrimSpace(v))
			}
		}
		r = r.WithContext(context.Background())

		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)

		if cr.n > MaxBody+1 {
			t.Fatalf("read %d bytes of the body; the limit is %d", cr.n, MaxBody)
		}
		if w.Code < 100 || w.Code > 599 || http.StatusText(w.Code) == "" {
			t.Fatalf("status %d", w.Code)
		}
		res := w.Result()
		var wire bytes.Buffer
		if err := res.Write(&wire); err != nil {
			t.Fatalf("write the response: %v", err)
		}
		back, err := http.ReadResponse(bufio.NewReader(&wire), nil)
		if err != nil {
			t.Fatalf("the response does not parse: %v\n%s", err, wire.String())
		}
		back.Body.Close()
		if w.Code == http.StatusOK && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("200 with a body that is not JSON: %q", w.Body.String())
		}
		if w.Code == http.StatusRequestEntityTooLarge && int64(len(body))+padding <= MaxBody && len(r.Header.Values("Content-Length")) == 0 {
			t.Fatalf("413 for a body of %d bytes", int64(len(body))+padding)
		}
		s.mu.Lock()
		open, kept := s.open, len(s.order)
		s.mu.Unlock()
		if open > MaxOpen || kept > MaxKept {
			t.Fatalf("the store holds %d proposals, %d open", kept, open)
		}
		logs := log.String()
		if strings.Contains(logs, secret) {
			t.Fatalf("the log holds a secret:\n%s", logs)
		}
		requests := 0
		for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line is not JSON: %s", l)
			}
			if m["msg"] != "supervise" {
				continue
			}
			requests++
			for k := range m {
				if !strings.Contains(" time level msg method path status bytes_in bytes duration_ms error ", " "+k+" ") {
					t.Fatalf("request log line has field %q: %s", k, l)
				}
			}
			if p := m["path"]; p != Path && p != "other" {
				t.Fatalf("request log line has path %q", p)
			}
		}
		if requests != 1 {
			t.Fatalf("%d request log lines, want 1:\n%s", requests, logs)
		}
	})
}
