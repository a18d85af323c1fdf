// Package docker is the Docker Engine backend: it makes a bottle's objects
// real as Docker networks and containers, labelled with the state's
// lineage, the bottle, the component, the address and the spec digest, and
// observes them with one label-filtered list per kind.
//
// A bottle is two networks, bf-<lineage>-<bottle>-internal (Internal, and
// with no address on the host's bridge, so the host is unreachable from
// it) and bf-<lineage>-<bottle>-egress (a plain bridge); a sidecar
// container on both, reachable on the internal one as egress, git-gate and
// supervise, built locally from bottleform's own static binary (image.go);
// and an agent container on the internal network only. The sidecar's
// configuration and secrets reach it through `docker exec -i` into
// `bottleform sidecar ctl`, never through argv, env, labels or disk. The
// prompt, skills, auth env and MCP registrations are provisioned into the
// agent through Agent, which also serves `bottleform attach`.
package docker
