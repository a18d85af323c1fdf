// Package smolvmfake is the stand-in `smolvm` that the smolmachines
// backend's tests put first on PATH, since no real smolvm (KVM/HVF) can run
// here. It follows ../shared/reference/smolvm-cli.md (smolvm 1.9.2) exactly
// where the contract is exact: the flags per subcommand of §1.3 (short forms
// included, so `exec -n` is a clap error), the error envelope and exit codes
// of §2.1–2.2 (`Error: …` exit 1, clap `error: …` plus Usage exit 2, guest
// codes passed through, 124 on --timeout), the status/ls JSON of §2.3 and
// the name rules of §2.4. It is built as §8 proposes: state under
// $SMOLVM_FAKE_ROOT (else $SMOLVM_DATA_DIR/fake) with one record.json and
// rootfs/ per machine (§8.1), clap-like parsing with parse-time and run-time
// validators (§8.2), the command behaviour of §8.3, the exec engine of §8.4
// (responders and built-ins by default, host passthrough with
// SMOLVM_FAKE_EXEC=host) and the faults.json injections of §8.5. Every call
// appends one JSON line to invocations.jsonl so tests can assert on argv.
//
// SMOLVM_FAKE_EXEC=docker makes each machine's guest a real container on
// the local Docker engine (client from DOCKER_HOST etc.), so provisioning
// runs real tools in a real filesystem. create reads a local archive's
// manifest.json (docker save format) and keeps the image as sha256:<id>
// (a registry --image is used as the reference; a bare machine takes
// $SMOLVM_FAKE_DOCKER_IMAGE); nothing is pulled. The container, named
// ContainerName(root, machine) = smolvmfake-<8 hex of sha256(abs root)>-
// <machine> and labelled smolvmfake.root/smolvmfake.machine, is created
// at the first start (network none, init, `sleep infinity`, hostname the
// machine, the -v volumes bound, /tmp and /run tmpfs), stopped by stop and
// removed by delete; a record that says running while its container is
// not is reported stopped. exec is a docker exec with the merged env,
// workdir (created if missing) and --user, stdin only with -i; faults.json
// responders still answer first, built-ins are not used. A runtime "not
// found" is exit 127, --timeout kills the process from the host (exit 124)
// and -d prints the exec's host PID. cp uploads a one-entry tar carrying
// --mode/--uid/--gid (missing parents made by a root mkdir -p) and
// downloads through the engine's archive of the file.
//
// Where the contract elides a message ("…"), the fake's wording is its own;
// tests of the backend should match the stable prefixes the contract quotes.
// Not emulated: Smolfiles, and `monitor`, `fork`/`fork-release`, `pack`,
// `serve` and `config`, which parse and then fail with exit 1. Main is the
// whole CLI; cmd/smolvm wraps it as a binary.
package smolvmfake
