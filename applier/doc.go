// Package applier carries out a plan. It declares the Backend interface the
// backends implement (observe once, create, update in place, delete) and
// walks the plan's changes in dependency order, bottles in parallel up to a
// limit, saving the state after every completed step so that an apply
// killed at any point can be resumed by the next one. It makes no decision
// of its own: what to do is the plan's, how is the backend's. It never
// prints; progress goes to a Hook.
package applier
