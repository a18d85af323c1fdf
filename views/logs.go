package views

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// DecisionOptions choose what a DecisionWriter shows.
type DecisionOptions struct {
	Denied bool // only refusals
	JSON   bool // each decision's JSON line as is
	Color  bool
}

// DecisionWriter reads the sidecar's log lines written to it and prints the
// egress decisions among them; other lines are dropped.
type DecisionWriter struct {
	w    io.Writer
	opts DecisionOptions
	buf  []byte
}

// NewDecisionWriter returns a writer that prints decisions to w.
func NewDecisionWriter(w io.Writer, opts DecisionOptions) *DecisionWriter {
	return &DecisionWriter{w: w, opts: opts}
}

// decision is one gateway decision line.
type decision struct {
	Time    time.Time `json:"time"`
	Msg     string    `json:"msg"`
	Bottle  string    `json:"bottle"`
	Method  string    `json:"method"`
	Host    string    `json:"host"`
	Path    string    `json:"path"`
	Route   string    `json:"route"`
	Verdict string    `json:"verdict"`
	Reason  string    `json:"reason"`
	Status  int       `json:"status"`
	Bytes   *int64    `json:"bytes"`
	// The git gate's lines: a request ("git": Repo, Service) and what git,
	// the push hook and the upstream said about one ("git hook", "git
	// upstream", "git stderr": Line).
	Repo    string `json:"repo"`
	Service string `json:"service"`
	Line    string `json:"line"`
}

func (d *DecisionWriter) Write(p []byte) (int, error) {
	d.buf = append(d.buf, p...)
	for {
		i := bytes.IndexByte(d.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := d.buf[:i]
		d.buf = d.buf[i+1:]
		if err := d.line(line); err != nil {
			return len(p), err
		}
	}
}

// Flush prints a last line that had no newline.
func (d *DecisionWriter) Flush() error {
	if len(d.buf) == 0 {
		return nil
	}
	line := d.buf
	d.buf = nil
	return d.line(line)
}

func (d *DecisionWriter) line(line []byte) error {
	var dec decision
	if json.Unmarshal(line, &dec) != nil {
		return nil
	}
	switch dec.Msg {
	case "egress":
		if d.opts.Denied && dec.Verdict != "deny" {
			return nil
		}
	case "git":
		if d.opts.Denied && dec.Status < 400 {
			return nil
		}
	case "git hook", "git upstream", "git stderr":
	default:
		return nil
	}
	if d.opts.JSON {
		_, err := fmt.Fprintf(d.w, "%s\n", bytes.TrimSpace(line))
		return err
	}
	ts := dec.Time.UTC().Format("2006-01-02T15:04:05.000Z")
	switch dec.Msg {
	case "git":
		verdict := paint(d.opts.Color, ansiGreen, "git  ")
		if dec.Status >= 400 {
			verdict = paint(d.opts.Color, ansiRed, "GIT  ")
		}
		_, err := fmt.Fprintf(d.w, "%s  %s  %-7s git-gate%s  %d %s\n", ts, verdict, clean(dec.Method), clean(dec.Path), dec.Status, clean(dec.Service))
		return err
	case "git hook", "git upstream", "git stderr":
		_, err := fmt.Fprintf(d.w, "%s  %s  %s: %s\n", ts, paint(d.opts.Color, ansiRed, "  >  "), clean(dec.Repo), clean(dec.Line))
		return err
	}
	verdict := paint(d.opts.Color, ansiGreen, "allow")
	if dec.Verdict != "allow" {
		verdict = paint(d.opts.Color, ansiRed, "DENY ")
	}
	var extra []string
	if dec.Route != "" {
		extra = append(extra, "route "+dec.Route)
	}
	if dec.Bytes != nil {
		extra = append(extra, fmt.Sprintf("%d bytes", *dec.Bytes))
	}
	tail := ""
	if len(extra) > 0 {
		tail = " (" + strings.Join(extra, ", ") + ")"
	}
	_, err := fmt.Fprintf(d.w, "%s  %s  %-7s %s%s  %d %s%s\n",
		ts, verdict, clean(dec.Method), clean(dec.Host), clean(dec.Path), dec.Status, clean(dec.Reason), clean(tail))
	return err
}
