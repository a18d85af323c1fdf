package supervise

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxBody is the largest request body served: a declared Content-Length
// over it is refused with 413 before any of the body is read, and a
// chunked body is cut when it passes it, with 413.
const MaxBody = 1 << 20

// maxInFlight bounds the requests served at once (each holds up to
// MaxBody); the next is refused with 503.
const maxInFlight = 16

// ServeHTTP serves the MCP endpoint: POST /mcp, JSON-RPC over streamable
// HTTP, stateless, JSON responses. In front of the SDK's handler it
// answers itself:
//
//   - another path: 404; no configuration yet: 503; supervise off: 404;
//   - another method: 405;
//   - a Content-Length that is not one non-negative decimal number (or
//     several equal ones), or one beside Transfer-Encoding: 400;
//   - a body over MaxBody, declared or read: 413;
//   - more than maxInFlight requests at once: 503.
//
// It logs one JSON line per request: method, path, status, sizes and time,
// never the body, query or headers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	path, failure := "other", ""
	if r.URL != nil && r.URL.Path == Path {
		path = Path
	}
	var bytesIn int
	defer func() {
		lvl := slog.LevelInfo
		if rw.status >= 400 {
			lvl = slog.LevelWarn
		}
		attrs := []slog.Attr{
			slog.String("method", logMethod(r.Method)), slog.String("path", path),
			slog.Int("status", rw.status), slog.Int("bytes_in", bytesIn), slog.Int64("bytes", rw.bytes),
			slog.Int64("duration_ms", time.Since(start).Milliseconds()),
		}
		if failure != "" {
			attrs = append(attrs, slog.String("error", failure))
		}
		s.log.LogAttrs(r.Context(), lvl, "supervise", attrs...)
	}()
	fail := func(code int, msg string) {
		failure = msg
		h := rw.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		if code == http.StatusRequestEntityTooLarge || code == http.StatusBadRequest {
			// The rest of the body is not read: the connection cannot
			// carry another request.
			h.Set("Connection", "close")
		}
		rw.WriteHeader(code)
		_, _ = io.WriteString(rw, "bottleform supervise: "+msg+"\n")
	}

	if path != Path {
		fail(http.StatusNotFound, "not found: the MCP endpoint is POST "+Path)
		return
	}
	c := s.config()
	switch {
	case c == nil:
		fail(http.StatusServiceUnavailable, "the sidecar has no configuration yet; bottleform apply delivers it")
		return
	case !c.Enabled:
		fail(http.StatusNotFound, fmt.Sprintf("supervise is off for bottle %s: set supervise = true in its definition and run bottleform apply", c.Grants.Bottle))
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, "the MCP endpoint takes POST only (stateless streamable HTTP)")
		return
	}
	n, err := contentLength(r)
	if err != nil {
		var tl tooLarge
		if errors.As(err, &tl) {
			fail(http.StatusRequestEntityTooLarge, err.Error())
		} else {
			fail(http.StatusBadRequest, err.Error())
		}
		return
	}
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		rw.Header().Set("Retry-After", "1")
		fail(http.StatusServiceUnavailable, fmt.Sprintf("busy: %d requests are being served; retry", maxInFlight))
		return
	}
	body, err := readBody(r.Body, n)
	bytesIn = len(body)
	if err != nil {
		var tl tooLarge
		if errors.As(err, &tl) {
			fail(http.StatusRequestEntityTooLarge, err.Error())
		} else {
			fail(http.StatusBadRequest, err.Error())
		}
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	s.sdk.ServeHTTP(rw, r)
}

// tooLarge is the error for a body over MaxBody.
type tooLarge struct{ declared bool }

func (t tooLarge) Error() string {
	if t.declared {
		return fmt.Sprintf("the declared Content-Length is over the limit of %d bytes", MaxBody)
	}
	return fmt.Sprintf("the request body is over the limit of %d bytes", MaxBody)
}

// contentLength returns the declared length of r's body, or -1 when it
// declares none (a chunked body, or none at all). Every Content-Length
// field, and every element of a comma-separated one, must be the same
// decimal number; none may stand beside Transfer-Encoding. Errors never
// quote the header.
func contentLength(r *http.Request) (int64, error) {
	vals := r.Header.Values("Content-Length")
	if len(vals) == 0 {
		if r.ContentLength > MaxBody {
			return 0, tooLarge{declared: true}
		}
		return -1, nil
	}
	if len(r.TransferEncoding) > 0 || r.Header.Get("Transfer-Encoding") != "" {
		return 0, errors.New("bad request: Content-Length and Transfer-Encoding together")
	}
	n := int64(-1)
	for _, v := range vals {
		for _, e := range strings.Split(v, ",") {
			e = strings.Trim(e, " \t")
			if e == "" || len(e) > 19 || !isDigits(e) {
				return 0, errors.New("bad Content-Length: want one non-negative decimal number")
			}
			m, err := strconv.ParseInt(e, 10, 64)
			if err != nil {
				return 0, errors.New("bad Content-Length: want one non-negative decimal number")
			}
			if n >= 0 && m != n {
				return 0, errors.New("bad Content-Length: several that differ")
			}
			n = m
		}
	}
	if n > MaxBody {
		return 0, tooLarge{declared: true}
	}
	return n, nil
}

// readBody reads a body of declared length n (-1: undeclared), at most
// MaxBody bytes of it.
func readBody(body io.Reader, n int64) ([]byte, error) {
	if body == nil {
		body = http.NoBody
	}
	limit := int64(MaxBody + 1)
	if n >= 0 {
		limit = n
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(max(n, 512), MaxBody)))
	if _, err := buf.ReadFrom(io.LimitReader(body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge{}
		}
		return nil, errors.New("bad request: could not read the body")
	}
	switch {
	case buf.Len() > MaxBody:
		return nil, tooLarge{}
	case n >= 0 && int64(buf.Len()) < n:
		return nil, errors.New("bad request: the body is shorter than its Content-Length")
	}
	return buf.Bytes(), nil
}

// logMethod is r.Method if it is a standard method, else "other": the log
// holds nothing the client chose freely.
func logMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "other"
}

// responseWriter records the status and size of a response.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
