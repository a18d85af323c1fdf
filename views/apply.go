package views

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bottleform/bottleform/planner"
	"github.com/bottleform/bottleform/resource"
)

// ApplyHuman shows apply progress as lines: one when a step starts, one
// when it ends with its elapsed time. It is safe for concurrent use.
type ApplyHuman struct {
	W     io.Writer
	Color bool
	mu    sync.Mutex
}

var (
	beginWord = map[planner.Action]string{planner.Create: "Creating...", planner.Update: "Updating in place...", planner.Replace: "Creating...", planner.Delete: "Destroying..."}
	endWord   = map[planner.Action]string{planner.Create: "Creation complete", planner.Update: "Update complete", planner.Replace: "Creation complete", planner.Delete: "Destruction complete"}
)

func (v *ApplyHuman) Begin(addr resource.Address, a planner.Action) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fmt.Fprintf(v.W, "%s: %s\n", paint(v.Color, ansiBold, clean(addr.String())), beginWord[a])
}

func (v *ApplyHuman) End(addr resource.Address, a planner.Action, ids map[string]string, elapsed time.Duration, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		fmt.Fprintf(v.W, "%s: %s after %s\n", paint(v.Color, ansiBold, clean(addr.String())), paint(v.Color, ansiRed, "failed"), round(elapsed))
		return
	}
	fmt.Fprintf(v.W, "%s: %s after %s%s\n", paint(v.Color, ansiBold, clean(addr.String())), endWord[a], round(elapsed), idText(ids))
}

func (v *ApplyHuman) Warn(addr resource.Address, msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fmt.Fprintf(v.W, "%s: %s %s\n", paint(v.Color, ansiBold, clean(addr.String())), paint(v.Color, ansiYellow, "warning:"), clean(msg))
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// idText shows a short form of the first id, as "[container=3f2a9c1e]".
func idText(ids map[string]string) string {
	if len(ids) == 0 {
		return ""
	}
	keys := make([]string, 0, len(ids))
	for k := range ids {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		id := ids[k]
		if isEngineID(id) {
			id = id[:12]
		}
		parts = append(parts, k+"="+id)
	}
	return " [" + clean(strings.Join(parts, " ")) + "]"
}

// isEngineID reports a Docker object id (64 hex digits), which is shown
// as Docker shows it, cut to 12; names and ports are shown whole.
func isEngineID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ApplyJSON streams one JSON object per line and event:
// {"@timestamp", "type": "apply_start"|"apply_complete"|"apply_errored"|"warning",
// "address", "action", "elapsed_ms", "ids", "error", "message"}.
type ApplyJSON struct {
	W   io.Writer
	Now func() time.Time // nil: time.Now
	mu  sync.Mutex
}

type applyEvent struct {
	Timestamp string            `json:"@timestamp"`
	Type      string            `json:"type"`
	Address   string            `json:"address,omitempty"`
	Action    string            `json:"action,omitempty"`
	ElapsedMS int64             `json:"elapsed_ms,omitempty"`
	IDs       map[string]string `json:"ids,omitempty"`
	Error     string            `json:"error,omitempty"`
	Message   string            `json:"message,omitempty"`
}

// Event writes one event; the CLI uses it for the summary too.
func (v *ApplyJSON) Event(typ, message string) {
	v.emit(applyEvent{Type: typ, Message: message})
}

func (v *ApplyJSON) emit(e applyEvent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	e.Timestamp = now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(e)
	if err != nil {
		panic("views: apply event: " + err.Error())
	}
	v.W.Write(append(b, '\n'))
}

func (v *ApplyJSON) Begin(addr resource.Address, a planner.Action) {
	v.emit(applyEvent{Type: "apply_start", Address: addr.String(), Action: a.String()})
}

func (v *ApplyJSON) End(addr resource.Address, a planner.Action, ids map[string]string, elapsed time.Duration, err error) {
	e := applyEvent{Type: "apply_complete", Address: addr.String(), Action: a.String(), ElapsedMS: elapsed.Milliseconds(), IDs: ids}
	if err != nil {
		e.Type, e.Error, e.IDs = "apply_errored", err.Error(), nil
	}
	v.emit(e)
}

func (v *ApplyJSON) Warn(addr resource.Address, msg string) {
	v.emit(applyEvent{Type: "warning", Address: addr.String(), Message: msg})
}
