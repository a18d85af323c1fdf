// Package importer converts bot-bottle manifests into bottleform
// definitions. A manifest is a Markdown file whose YAML front matter
// describes a bottle (or, under agents/, an agent on a bottle) and whose
// body is the agent's prompt; Import reads one, or every *.md of a
// directory, and writes one HCL file of secret and bottle blocks, sorted and
// in `bottleform fmt` form.
//
// Nothing is dropped silently: what the language cannot say becomes a Note,
// returned as a warning and written as a comment where the setting would
// have gone. A manifest bot-bottle itself would have refused (bad YAML, an
// unknown provider, a half-filled auth) is an *Error naming its file and
// line. Secret values are never read: `?prompt` entries become prompt
// secrets, `${VAR}` becomes host_env("VAR"), and token names become env
// secrets.
package importer
