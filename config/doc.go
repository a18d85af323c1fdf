// Package config reads a directory of bottle definitions (every *.hcl file
// in it forms one configuration) and compiles them into resource.Bottle
// values with `extends` merged. Every rule of the language is checked here
// and reported as an hcl.Diagnostic with a source range, a terse summary
// and a detail that ends with the fix.
//
// Secrets stay references: `secret.NAME`, `host_env("VAR")` and provider
// host credentials become resource.Ref values, never resolved values. With
// Options.LookupEnv set (plan, apply) the host is checked for what those
// references need, so a missing variable fails before anything is created.
package config
