// Package agent describes the agent providers, claude and codex, as data:
// the egress routes each provider owns, the placeholder and flag env it
// sets in the agent, the env names it hides from summaries, and how the
// provider's routes merge with the routes a bottle declares.
//
// Nothing here branches on a provider name outside the table in
// provider.go; the gateway learns everything from route fields.
package agent
