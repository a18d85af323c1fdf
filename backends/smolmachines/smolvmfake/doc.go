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
// Where the contract elides a message ("…"), the fake's wording is its own;
// tests of the backend should match the stable prefixes the contract quotes.
// Not emulated: Smolfiles, and `monitor`, `fork`/`fork-release`, `pack`,
// `serve` and `config`, which parse and then fail with exit 1. Main is the
// whole CLI; cmd/smolvm wraps it as a binary.
package smolvmfake
