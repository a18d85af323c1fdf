// Package state is bottleform's record of what is live: the model (State,
// Bottle, Resource), its versioned JSON file format with an upgrade path
// from older versions, atomic writes with a backup of the previous copy,
// and the lock that keeps two processes from writing one state at once.
//
// The state holds attributes (references, never secret values), the digest
// of the spec each object was created from and the backend's ids, so that
// destroy can find and revoke everything apply made.
package state
