// Package backendtest is what every applier.Backend is tested with: Fake,
// an in-memory backend that keeps the rules a real runtime keeps (objects
// per lineage labelled with their spec digest, containers that run or stop,
// files that live inside the agent and go with it), and Run, the
// conformance suite that the fake, Docker and smolmachines all pass through
// a small Harness. Tests of the applier use the fake; tests of a backend
// call Run with a harness that reaches the real runtime.
package backendtest
