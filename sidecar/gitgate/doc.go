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
// A Repo with an Upstream is a mirror of a real remote reached over SSH.
// Before serving any ref advertisement or upload-pack, the gate fetches
// (`git fetch --prune <url> +refs/*:refs/*`, one at a time per repository)
// and fails closed with 502 if that fails: it never serves what may be
// stale. A push goes through the pre-receive hook, which, after the policy
// accepted every ref, pushes them upstream atomically, so a push succeeds
// only once upstream took it. git reaches upstream through Server.SSHCommand,
// a program that runs SSHMain: golang.org/x/crypto/ssh with the pinned host
// key (none pinned: the repository is refused; no trust on first use) and
// the key in Repo.KeyFile.
//
// Between the policy and the push-through the hook runs Server.ScanCommand,
// a program that runs ScanMain: it scans only what the push adds to the
// repository (the commits `git rev-list <new> --not --all` lists, their
// added lines from `git log -p -U0 --cc` parsed here, their messages, and
// pushed tags' messages) with gitleaks' default rules, and for the bottle's
// own secret values set with SetCanaries, which reach it only through the
// push's environment (CanariesEnv). A finding refuses the push naming file,
// line, commit and rule or secret name, never the value; a scanner that
// fails refuses it too. Without a ScanCommand, SetRepos refuses repositories
// that take pushes unless Server.NoScan is set.
package gitgate
