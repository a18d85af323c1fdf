package supervise

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const pingBody = `{"jsonrpc":"2.0","id":1,"method":"ping"}`

// mcpHeaders are the headers a streamable HTTP client sends with a POST.
func mcpHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
}

// raw sends head (a request line and header fields, "\r\n"-separated,
// without the blank line) and body over a new connection to addr and
// returns the response. The body is written while the response is read,
// so a server that answers early does not deadlock the test.
func raw(t *testing.T, addr, head string, body []byte) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		_, _ = io.WriteString(conn, head+"\r\n\r\n")
		_, _ = conn.Write(body)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// chunked encodes data in chunks of n bytes.
func chunked(data []byte, n int) []byte {
	var b bytes.Buffer
	for len(data) > 0 {
		c := data[:min(n, len(data))]
		data = data[len(c):]
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(c), c)
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

// padded is a ping request padded with spaces to exactly n bytes.
func padded(n int) []byte {
	return append([]byte(pingBody), bytes.Repeat([]byte(" "), n-len(pingBody))...)
}

func TestHTTPLimits(t *testing.T) {
	s, log := newServer(t)
	s.Load(testConfig())
	u, err := url.Parse(serve(t, s))
	if err != nil {
		t.Fatal(err)
	}
	addr := u.Host
	post := func(extra string) string {
		return "POST /mcp HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream" + extra
	}
	tests := []struct {
		name   string
		head   string
		body   []byte
		status int
		want   string
	}{
		{"ping", post("\r\nContent-Length: " + fmt.Sprint(len(pingBody))), []byte(pingBody), 200, `"result"`},
		{"exactly the limit", post("\r\nContent-Length: " + fmt.Sprint(MaxBody)), padded(MaxBody), 200, `"result"`},
		{"declared over the limit", post("\r\nContent-Length: " + fmt.Sprint(MaxBody+1)), nil, 413, "Content-Length is over the limit"},
		{"declared far over the limit", post("\r\nContent-Length: 99999999999"), nil, 413, "over the limit"},
		{"chunked under the limit", post("\r\nTransfer-Encoding: chunked"), chunked([]byte(pingBody), 7), 200, `"result"`},
		{"chunked at the limit", post("\r\nTransfer-Encoding: chunked"), chunked(padded(MaxBody), 64<<10), 200, `"result"`},
		{"chunked over the limit", post("\r\nTransfer-Encoding: chunked"), chunked(padded(MaxBody+1), 64<<10), 413, "body is over the limit"},
		{"chunked far over the limit", post("\r\nTransfer-Encoding: chunked"), chunked(padded(4*MaxBody), 64<<10), 413, "body is over the limit"},
		// net/http refuses these before the handler sees them; the handler
		// refuses them too (TestContentLength).
		{"non-numeric Content-Length", post("\r\nContent-Length: ten"), nil, 400, ""},
		{"negative Content-Length", post("\r\nContent-Length: -1"), nil, 400, ""},
		{"two differing Content-Lengths", post("\r\nContent-Length: 5\r\nContent-Length: 6"), []byte("hello!"), 400, ""},
		{"a Content-Length list", post("\r\nContent-Length: 5, 6"), []byte("hello!"), 400, ""},
		{"another path", "POST /mcp/x HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 0", nil, 404, "POST /mcp"},
		{"GET", "GET /mcp HTTP/1.1\r\nHost: " + addr, nil, 405, "POST only"},
		{"malformed JSON", post("\r\nContent-Length: 5"), []byte("{{{{{"), 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := raw(t, addr, tt.head, tt.body)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("%d %q, want %d with %q", resp.StatusCode, trim(body), tt.status, tt.want)
			}
		})
	}

	logs := log.String()
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not JSON: %s", l)
		}
	}
	if strings.Contains(logs, "ping") || strings.Contains(logs, "hello") || strings.Contains(logs, "/mcp/x") {
		t.Errorf("the log holds a body or a path:\n%s", logs)
	}
	for _, want := range []string{`"status":413`, `"status":405`, `"status":404`, `"path":"other"`, `"bytes_in":1048576`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// TestContentLength sends to the handler itself what net/http would
// refuse before it.
func TestContentLength(t *testing.T) {
	s, _ := newServer(t)
	s.Load(testConfig())
	tests := []struct {
		name   string
		cl     []string
		te     []string
		body   string
		status int
		want   string
	}{
		{"one", []string{"40"}, nil, pingBody, 200, `"result"`},
		{"equal duplicates", []string{"40", "40"}, nil, pingBody, 200, `"result"`},
		{"equal list", []string{"40, 40"}, nil, pingBody, 200, `"result"`},
		{"non-numeric", []string{"forty"}, nil, pingBody, 400, "bad Content-Length"},
		{"empty", []string{""}, nil, pingBody, 400, "bad Content-Length"},
		{"negative", []string{"-40"}, nil, pingBody, 400, "bad Content-Length"},
		{"plus sign", []string{"+40"}, nil, pingBody, 400, "bad Content-Length"},
		{"hex", []string{"0x28"}, nil, pingBody, 400, "bad Content-Length"},
		{"overflow", []string{"99999999999999999999999"}, nil, pingBody, 400, "bad Content-Length"},
		{"differing", []string{"40", "41"}, nil, pingBody, 400, "several that differ"},
		{"differing list", []string{"40, 41"}, nil, pingBody, 400, "several that differ"},
		{"with Transfer-Encoding", []string{"40"}, []string{"chunked"}, pingBody, 400, "together"},
		{"short body", []string{"41"}, nil, pingBody, 400, "shorter than its Content-Length"},
		{"over the limit", []string{fmt.Sprint(MaxBody + 1)}, nil, pingBody, 413, "over the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(tt.body))
			mcpHeaders(r.Header)
			r.Header.Del("Content-Length")
			for _, v := range tt.cl {
				r.Header.Add("Content-Length", v)
			}
			r.TransferEncoding = tt.te
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("%d %q, want %d with %q", w.Code, w.Body.String(), tt.status, tt.want)
			}
			if strings.Contains(w.Body.String(), "forty") {
				t.Errorf("the reply quotes the header")
			}
		})
	}
}

func TestEndpointStates(t *testing.T) {
	s, _ := newServer(t)
	do := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(pingBody))
		mcpHeaders(r.Header)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	if w := do(); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "no configuration") {
		t.Errorf("before Load: %d %s", w.Code, w.Body)
	}
	c := testConfig()
	c.Enabled = false
	s.Load(c)
	if w := do(); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "supervise is off for bottle reviewer: set supervise = true") {
		t.Errorf("supervise off: %d %s", w.Code, w.Body)
	}
	s.Load(testConfig())
	if w := do(); w.Code != http.StatusOK {
		t.Errorf("supervise on: %d %s", w.Code, w.Body)
	}
	// Every slot taken: the next request is turned away, not queued.
	for range maxInFlight {
		s.inflight <- struct{}{}
	}
	if w := do(); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("busy: %d %s", w.Code, w.Body)
	}
	for range maxInFlight {
		<-s.inflight
	}
}
