// Package supervise is a bottle's supervise server: the MCP server (over
// streamable HTTP, at http://supervise:9100/mcp) through which the agent
// sees what its bottle is granted and asks for more. It grants nothing
// itself. A request for an egress host (propose_egress) or a push ref
// pattern (propose_push) becomes a Proposal, held in the sidecar's memory
// only, that a person reads and decides on the host through the sidecar's
// control socket; it takes effect only when the person edits the bottle's
// definition and applies it, and the load that makes it live marks it
// applied (Server.Load). proposal_status tells the agent where it stands.
//
// The HTTP handler in front of the SDK's serves only POST /mcp, checks
// Content-Length, caps bodies at MaxBody, bounds the requests in flight, and
// logs one JSON line per request without its body. Proposals are bounded in
// number and size, refuse control characters that could rewrite a
// reviewer's terminal, and refuse any of the bottle's secret values.
package supervise
