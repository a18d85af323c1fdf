package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bottleform/bottleform/resource"
)

// File is a file in the agent user's home that the provider's auth
// writes. Build gets the file's current content (nil when it does not
// exist) and returns what it must hold: the current content when it is to
// stay as it is, nil when it must not exist. Build never returns a secret:
// a file holds placeholders and settings only.
type File struct {
	// Path is relative to the agent user's home.
	Path  string
	Mode  int64
	Build func(current []byte, in FileInput) ([]byte, error)
}

// FileInput is what a File's Build may use.
type FileInput struct {
	Spec resource.AgentSpec
	// Token is the resolved value of Token(Spec), zero when the bottle
	// grants none. Build may read what a token says about itself (its
	// expiry), never write it.
	Token resource.Secret
	// Workdir is the directory the agent's commands start in.
	Workdir string
	// Now is the time of the apply.
	Now time.Time
	// Remove is set when the auth is being removed: Build returns what
	// remains, which is nothing of a file that is bottleform's alone.
	Remove bool
}

// approvedSuffix is what ~/.claude.json records to approve a key: its last
// 20 characters, here the placeholder's.
func approvedSuffix() string { return Placeholder[len(Placeholder)-20:] }

// claudeJSON merges into ~/.claude.json what lets claude start without a
// question: onboarding done, the placeholder approved as a key when the
// bottle grants a token, and the working directory trusted. Everything
// else in the file (the agent's own settings, MCP registrations) is kept.
func claudeJSON(current []byte, in FileInput) ([]byte, error) {
	if in.Remove {
		return current, nil // the agent's own file, with what was merged
	}
	doc := map[string]any{}
	if len(bytes.TrimSpace(current)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(current))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return nil, errors.New("it is not a JSON object; fix it or remove it, then apply again")
		}
	}
	obj := func(parent map[string]any, key, where string) (map[string]any, error) {
		v, ok := parent[key]
		if !ok || v == nil {
			m := map[string]any{}
			parent[key] = m
			return m, nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is not a JSON object; fix it or remove it, then apply again", where)
		}
		return m, nil
	}
	doc["hasCompletedOnboarding"] = true
	if !Token(in.Spec).IsZero() {
		responses, err := obj(doc, "customApiKeyResponses", "customApiKeyResponses")
		if err != nil {
			return nil, err
		}
		suffix := approvedSuffix()
		for _, list := range []string{"approved", "rejected"} {
			v, ok := responses[list]
			if !ok || v == nil {
				v = []any{}
			}
			items, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("customApiKeyResponses.%s is not a JSON array; fix it or remove it, then apply again", list)
			}
			kept := []any{}
			for _, it := range items {
				if it != suffix {
					kept = append(kept, it)
				}
			}
			if list == "approved" {
				kept = append(kept, suffix)
			}
			responses[list] = kept
		}
	}
	projects, err := obj(doc, "projects", "projects")
	if err != nil {
		return nil, err
	}
	project, err := obj(projects, in.Workdir, fmt.Sprintf("projects[%q]", in.Workdir))
	if err != nil {
		return nil, err
	}
	project["hasTrustDialogAccepted"] = true
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// RunAgent is the script that starts the provider's CLI in the agent: it
// loads envFile, then runs Command with Args, with PromptFlag and the
// prompt file when that file is not empty, then the script's own
// arguments. Paths are relative to $HOME. The prompt is looked at when the
// script runs, so adding or removing a prompt needs no new script.
func (p *Provider) RunAgent(envFile, promptFile string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "#!/bin/sh\n# Written by bottleform: runs the %s CLI with the bottle's settings.\n", p.Name)
	s.WriteString("# Usage: bottleform attach BOTTLE -- run-agent [ARGS...]\n")
	fmt.Fprintf(&s, ". \"$HOME/%s\"\n", envFile)
	if p.PromptFlag != "" {
		fmt.Fprintf(&s, "prompt=\"$HOME/%s\"\n", promptFile)
		fmt.Fprintf(&s, "if [ -s \"$prompt\" ]; then\n\tset -- %s \"$prompt\" \"$@\"\nfi\n", ShellQuote(p.PromptFlag))
	}
	s.WriteString("exec " + ShellQuote(p.Command))
	for _, a := range p.Args {
		s.WriteString(" " + ShellQuote(a))
	}
	s.WriteString(" \"$@\"\n")
	return s.String()
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:@%+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
