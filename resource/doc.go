// Package resource is bottleform's leaf vocabulary: resource addresses, the
// compiled bottle specification that config produces and backends consume,
// attribute values for diffing and display, and the secret types.
//
// A Bottle here holds references to secrets (SecretRef, HostEnvRef), never
// their values. The only type that may carry a secret value is Secret, which
// refuses to be marshalled and prints "(sensitive)". Nothing in this package
// imports another bottleform package.
package resource
