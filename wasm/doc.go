// Package wasm runs OpenSoul's provider modules: small WebAssembly programs,
// one per model provider, that tell the gateway whether a secret looks
// usable (check), how to present it upstream (headers) and what an
// upstream failure means (classify). The ABI is wasm/ABI.md (DESIGN §6).
//
// The package is shaped around the gateway's hot path. A Host owns one
// wazero runtime with a memory cap, deadline enforcement and an on-disk
// compilation cache, so a warm start does not recompile. Each module is
// compiled once and served by a bounded pool of instances; an instance is
// used by one goroutine at a time, and one that traps, loops or misbehaves
// is closed rather than returned. A module that keeps hitting its deadline
// or trapping is skipped for a while by a per-module breaker, and waiting
// for an instance is bounded, so one bad module cannot tax the gateway's
// other providers. A Registry maps provider names to modules (the embedded
// built-ins, or a file from config), loads them lazily, swaps in module
// files that change (Update), falls back to generic behaviour for providers
// without a module, and caches check and headers results per credential so
// that a credential already seen costs no WebAssembly call at all. Check
// verdicts are also kept in the cache dir (by hash, never the secret), so a
// CLI command that checks credentials it has checked before loads no module.
//
// Guests get WASI preview 1 with no files, no environment, no arguments,
// no network and wazero's fake clocks: time comes in the request.
package wasm
