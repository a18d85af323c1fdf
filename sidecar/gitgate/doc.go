// Package gitgate is a bottle's git gate: a git smart-HTTP server the agent
// clones from and pushes to, in place of the real remote.
//
// Each declared Repo is a bare repository under Server.Root. Requests are
// served by spawning the real `git http-backend` per request with os/exec
// (not net/http/cgi, which refuses chunked request bodies, and git sends
// chunked bodies for every push larger than http.postBuffer): the request
// body is streamed to its stdin and its CGI response is parsed and streamed
// back. Protocol v0 and v2, shallow and partial clones, side-band progress
// and hooks are therefore exactly git's own.
//
// The push policy lives in each repository's pre-receive hook: a generated
// POSIX shell wrapper that execs Server.Hook (or the built-in PolicyScript)
// with the repository name and its policy file, one ref pattern per line. A
// ref that matches no pattern is refused; a non-fast-forward update or a
// deletion is refused unless the matching pattern starts with '+'.
//
// This is the first slice: the SSH upstream (fetch before every read, push
// through after the policy accepted), secret scanning and the container
// wiring come later; see Server.backend for where they slot in.
package gitgate
