// Package forge manages repo-scoped SSH deploy keys on a git forge (today
// only Gitea) for the git gate: a fresh ed25519 key is generated, its public
// half registered as a deploy key at apply, and the key revoked at destroy.
//
// Security rules kept throughout the package:
//   - the API token is a resource.Secret; it is sent only in the
//     Authorization header and never appears in a URL, an error or a log;
//     response bodies quoted in errors are truncated and have the token
//     redacted;
//   - a generated private key is held only as a resource.Secret, which
//     refuses to be marshalled, so it cannot stray into a plan or state;
//   - MintKeys rolls back the keys it created when a later key fails, and
//     reports a rollback failure (a stranded key) instead of hiding it.
//
// The subpackage giteatest is an in-memory fake of the Gitea endpoints used
// here, for tests.
package forge
