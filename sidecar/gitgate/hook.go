package gitgate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PolicyFile is the name, inside each bare repository, of the file that
// holds the repository's push patterns, one a line.
const PolicyFile = "bottleform-push-patterns"

// builtinHook is the name, inside each repository's hooks directory, of
// the built-in policy script when Server.Hook is empty.
const builtinHook = "bottleform-policy"

// LogEnv names the environment variable that holds, during a push, the path
// of a file the hook may append lines to; the server logs each line with the
// request path when the request ends. git shows the hook's stderr to the
// client (as "remote:" lines) but not to the server, so this is how the
// gate's own log learns why a push was refused.
const LogEnv = "BOTTLEFORM_GATE_LOG"

// PolicyScript is the built-in pre-receive policy, a POSIX shell script run
// as `PolicyScript <repo> <policy-file>` with git's "<old> <new> <ref>" lines
// on stdin. It refuses (exit 1) any ref no pattern matches, and, for a
// pattern without a leading '+', a non-fast-forward update or a deletion.
// Patterns are matched with case, in which '*' matches any characters
// including '/', like a git refspec glob; SetRepos admits no other glob
// characters.
//
// When every ref passed and ScanEnv is set (the generated wrapper sets it
// when the gate scans pushes), the script runs that command, the secret
// scanner (ScanMain), with the same lines on its stdin. Exit 1 (a finding)
// or any other failure refuses the whole push, failing closed, and the
// scanner's lines are shown to the client and written to the gate's log;
// a clean scan's summary goes to the gate's log only.
//
// When every ref passed the scan too and UpstreamEnv is set (a repository
// with an Upstream), the script pushes the accepted refs there in one atomic
// `git push` through the SSH transport the gate put in its environment:
// fast-forward updates as plain refspecs, and updates and deletions under a
// '+' pattern with --force-with-lease against the old value. If upstream
// refuses, the script prints upstream's output and exits 1, so the client
// sees upstream's verdict and the gate's refs stay where they were.
const PolicyScript = `#!/bin/sh
# bottleform git gate: pre-receive push policy.
# usage: bottleform-policy <repo> <policy-file>; stdin: "<old> <new> <ref>" lines.
set -u
repo=$1
policy=$2

say() {
	printf '%s\n' "$*" >&2
	if [ -n "${BOTTLEFORM_GATE_LOG:-}" ]; then
		printf '%s\n' "$*" >>"$BOTTLEFORM_GATE_LOG"
	fi
}

iszero() {
	case $1 in
	*[!0]*) return 1 ;;
	*) return 0 ;;
	esac
}

if [ ! -r "$policy" ]; then
	say "bottleform git gate: refusing push to $repo: no push policy"
	exit 1
fi

patterns=
while IFS= read -r pat || [ -n "$pat" ]; do
	[ -n "$pat" ] || continue
	patterns="${patterns:+$patterns }$pat"
done <"$policy"

# Accepted refs are collected, as git push arguments, in "$@", and the
# input lines, for the secret scan, in $lines.
set --
status=0
lines=
while read -r old new ref; do
	[ -n "${ref:-}" ] || continue
	lines="$lines$old $new $ref
"
	match=
	while IFS= read -r pat || [ -n "$pat" ]; do
		[ -n "$pat" ] || continue
		glob=${pat#+}
		case $ref in
		$glob) match=$pat; break ;;
		esac
	done <"$policy"
	if [ -z "$match" ]; then
		say "bottleform git gate: refusing $ref: not in the bottle's push patterns ${patterns:-(none)}"
		status=1
		continue
	fi
	case $match in
	+*)
		# Force is granted, but only over what the gate last saw
		# upstream: the lease fails if upstream moved meanwhile.
		lease="--force-with-lease=$ref:"
		iszero "$old" || lease="$lease$old"
		if iszero "$new"; then
			set -- "$@" "$lease" ":$ref"
		else
			set -- "$@" "$lease" "$new:$ref"
		fi
		continue
		;;
	esac
	if iszero "$new"; then
		say "bottleform git gate: refusing $ref: deleting a ref needs force-push, and force-push is not granted (pattern $match; a leading '+' grants it)"
		status=1
		continue
	fi
	if ! iszero "$old" && ! git merge-base --is-ancestor "$old" "$new" 2>/dev/null; then
		say "bottleform git gate: refusing $ref: non-fast-forward update, and force-push is not granted (pattern $match; a leading '+' grants it)"
		status=1
		continue
	fi
	set -- "$@" "$new:$ref"
done
[ "$status" -eq 0 ] || exit "$status"

# Secret scan: every ref passed the policy; refuse the push if what it adds
# holds a secret, or if the scan fails. The scanner never prints a secret.
scan=${BOTTLEFORM_GATE_SCAN:-}
if [ -n "$scan" ]; then
	out=$(printf '%s' "$lines" | eval "$scan" 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ]; then
		if [ -n "$out" ] && [ -n "${BOTTLEFORM_GATE_LOG:-}" ]; then
			printf '%s\n' "$out" >>"$BOTTLEFORM_GATE_LOG"
		fi
	else
		if [ -n "$out" ]; then
			printf '%s\n' "$out" | while IFS= read -r line; do say "$line"; done
		fi
		if [ "$rc" -ne 1 ]; then
			say "bottleform git gate: refusing push: the secret scan failed (exit $rc), and the gate does not take a push it could not scan; nothing was pushed"
		fi
		exit 1
	fi
fi
unset BOTTLEFORM_GATE_CANARIES

# Push-through: every ref passed the policy; push them all upstream,
# atomically, before git updates the gate's own refs. The pushed objects
# are still in quarantine, which git commands run from here can read.
upstream=${BOTTLEFORM_GATE_UPSTREAM:-}
if [ -z "$upstream" ] || [ $# -eq 0 ]; then
	exit 0
fi
unset GIT_PROTOCOL
if out=$(git push --atomic "$upstream" "$@" 2>&1); then
	if [ -n "${BOTTLEFORM_GATE_LOG:-}" ]; then
		printf '%s\n' "bottleform git gate: pushed to the upstream $upstream: $*" >>"$BOTTLEFORM_GATE_LOG"
	fi
else
	printf '%s\n' "$out" >&2
	if [ -n "${BOTTLEFORM_GATE_LOG:-}" ]; then
		printf '%s\n' "$out" >>"$BOTTLEFORM_GATE_LOG"
	fi
	say "bottleform git gate: the upstream $upstream refused the push (its output is above); nothing was updated"
	exit 1
fi
exit 0
`

// shellQuote quotes s for a POSIX shell: it wraps s in single quotes and
// writes each embedded single quote as quote, backslash-quote, quote.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// hookWrapper is the repository's hooks/pre-receive: it sets ScanEnv to
// scan (the scanner command, or empty for none) and execs hook with the
// repository name and the policy file. Every word is quoted.
func hookWrapper(hook, repo, policy, scan string) string {
	return "#!/bin/sh\n# Generated by bottleform's git gate; rewritten by every SetRepos.\n" +
		ScanEnv + "=" + shellQuote(scan) + "\nexport " + ScanEnv + "\nexec " +
		shellQuote(hook) + " " + shellQuote(repo) + " " + shellQuote(policy) + "\n"
}

// scanCommand is command as one shell command line, each word quoted.
func scanCommand(command []string) string {
	words := make([]string, len(command))
	for i, w := range command {
		words[i] = shellQuote(w)
	}
	return strings.Join(words, " ")
}

// attributes is each repository's info/attributes, which outranks any
// .gitattributes a push brings: it resets the diff attribute, so that a
// pushed "*.env binary" or "-diff" cannot hide text from the secret scan
// (git 2.42+ reads a bare repository's attributes from HEAD).
const attributes = "# Generated by bottleform's git gate: the secret scan diffs every file as git detects it.\n* !diff\n"

// installPolicy writes the repository's policy file, its info/attributes
// and its pre-receive hook (and, when hook is empty, the built-in policy
// script), each atomically. scan is the scanner command line, or empty.
func installPolicy(dir, hook, scan string, r Repo) error {
	policy := filepath.Join(dir, PolicyFile)
	if err := writeAtomic(policy, []byte(strings.Join(r.Push, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "info"), 0o755); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "info", "attributes"), []byte(attributes), 0o644); err != nil {
		return err
	}
	hooks := filepath.Join(dir, "hooks")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return err
	}
	if hook == "" {
		hook = filepath.Join(hooks, builtinHook)
		if err := writeAtomic(hook, []byte(PolicyScript), 0o755); err != nil {
			return err
		}
	}
	return writeAtomic(filepath.Join(hooks, "pre-receive"), []byte(hookWrapper(hook, r.Name, policy, scan)), 0o755)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("gitgate: write %s: %w", path, err)
	}
	return nil
}
