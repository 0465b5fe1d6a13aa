package wasm

import (
	"errors"
	"fmt"
)

// Conditions callers and tests branch on. A *ModuleError wraps one of them.
var (
	ErrNotWasm          = errors.New("not a WebAssembly module")
	ErrInvalidModule    = errors.New("invalid WebAssembly module")
	ErrMemoryLimit      = errors.New("module wants more memory than the cap")
	ErrMissingExport    = errors.New("missing or mistyped export")
	ErrABIVersion       = errors.New("unsupported ABI version")
	ErrTrap             = errors.New("module trapped")
	ErrDeadline         = errors.New("call deadline exceeded")
	ErrResponseTooLarge = errors.New("response larger than the cap")
	ErrBadResponse      = errors.New("malformed response")
	ErrUnsupportedOp    = errors.New("op not supported by the module")
	ErrGuest            = errors.New("module answered with an error")
	ErrClosed           = errors.New("host closed")
	ErrPoolBusy         = errors.New("every instance of the module stayed busy past the pool wait")
	ErrBackoff          = errors.New("module skipped after repeated failures")
)

// errRetired: the module was replaced (Registry.Update) while a call
// waited for it; the caller asks the new one.
var errRetired = errors.New("module replaced")

// ModuleError is a failure of one provider module. It names the provider
// and the module file (a path, or builtin:<name>.wasm) and never carries a
// secret.
type ModuleError struct {
	Provider string
	File     string
	Op       string // "" while loading
	Err      error
}

func (e *ModuleError) Error() string {
	if e.Op == "" {
		return fmt.Sprintf("provider %s: module %s: %v", e.Provider, e.File, e.Err)
	}
	return fmt.Sprintf("provider %s: module %s: op %s: %v", e.Provider, e.File, e.Op, e.Err)
}

func (e *ModuleError) Unwrap() error { return e.Err }

// GuestError is an {"ok":false} answer other than unsupported_op.
type GuestError struct {
	Code    string
	Message string
}

func (e *GuestError) Error() string {
	if e.Message == "" {
		return "module error " + e.Code
	}
	return "module error " + e.Code + ": " + e.Message
}

func (e *GuestError) Is(target error) bool { return target == ErrGuest }
