// Package sidecar is the process that runs inside a bottle's sidecar
// container (`bottleform sidecar`): it serves the egress gateway, the git
// gate and the supervise MCP server, and takes its configuration and
// secrets over a control socket on tmpfs, so they never appear in
// `docker inspect`, on disk or in argv. Config is the one wire type between
// the host and the sidecar.
package sidecar
