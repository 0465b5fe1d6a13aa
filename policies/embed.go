// Package policies holds OpenSoul's built-in Rego policies and their Rego
// tests, embedded into the binary. select.rego implements credential
// selection (DESIGN §4–5); the examples/ directory holds opt-in policies
// that are documented in the README and are not embedded.
package policies

import "embed"

// FS holds the built-in policy files (*.rego, including *_test.rego) at its
// root.
//
//go:embed *.rego
var FS embed.FS
