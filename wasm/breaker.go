package wasm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of the per-module circuit breaker (Options).
const (
	DefaultBreakerFailures = 3
	DefaultBreakerBackoff  = 30 * time.Second
	maxBreakerBackoff      = 10 * time.Minute
)

// Backoff describes a module that its breaker has taken out of service:
// its provider gets the generic behaviour until Until, then one call tries
// the module again. It holds no secret.
type Backoff struct {
	Provider string    `json:"provider"`
	Module   string    `json:"module"` // the module's file
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Failures int       `json:"failures"` // consecutive deadline or trap failures that opened it
	Error    string    `json:"error"`    // the last of them
}

// BackoffError is the error of a call the breaker skipped: it is
// ErrBackoff (errors.Is) and says until when.
type BackoffError struct{ Backoff }

func (e *BackoffError) Error() string {
	return fmt.Sprintf("%v until %s (%d failures, the last: %s)", ErrBackoff, e.Until.UTC().Format(time.RFC3339), e.Failures, e.Backoff.Error)
}

func (e *BackoffError) Unwrap() error { return ErrBackoff }

// breaker counts a module's consecutive calls that hit the deadline or
// trapped. At the threshold it opens: calls fail fast with ErrBackoff, so a
// looping module stops burning a core per request and stops filling the
// pool, and the gateway serves with its built-in behaviour. When the
// backoff has passed, one call (the trial) may try the module: success
// closes the breaker, failure doubles the backoff (up to 10 min). Calls
// whose outcome says nothing about the module (the caller gave up, the pool
// was busy) are neutral. Only opening and closing are reported.
type breaker struct {
	threshold int
	base      time.Duration

	mu      sync.Mutex // guards the fields below
	fails   int
	open    *Backoff // nil while closed
	backoff time.Duration
	trial   bool // a trial call is in flight
}

// change is what a call's outcome did to a breaker.
type change int

const (
	unchanged change = iota
	opened
	reopened // a trial failed; the backoff grew
	closed
)

// blocked reports whether calls are being skipped at now, without claiming
// the trial.
func (b *breaker) blocked(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open != nil && (b.trial || now.Before(b.open.Until))
}

// allow reports whether a call may go to the module at now; trial is true
// for the one call that tests an open breaker after its backoff.
func (b *breaker) allow(now time.Time) (ok, trial bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.open == nil:
		return true, false
	case b.trial || now.Before(b.open.Until):
		return false, false
	}
	b.trial = true
	return true, true
}

// done records a call's outcome: err nil is a success, ErrDeadline or
// ErrTrap a failure, anything else neutral.
func (b *breaker) done(now time.Time, trial bool, err error, provider, file string) (change, Backoff) {
	failed := errors.Is(err, ErrDeadline) || errors.Is(err, ErrTrap)
	b.mu.Lock()
	defer b.mu.Unlock()
	if trial {
		b.trial = false
	}
	switch {
	case err == nil && (b.open == nil || trial):
		b.fails = 0
		if b.open != nil {
			was := *b.open
			b.open, b.backoff = nil, 0
			return closed, was
		}
	case failed && b.open == nil:
		b.fails++
		if b.fails >= b.threshold {
			b.backoff = b.base
			b.open = &Backoff{Provider: provider, Module: file, Since: now, Until: now.Add(b.backoff),
				Failures: b.fails, Error: firstLine(err)}
			return opened, *b.open
		}
	case failed && trial:
		b.backoff = min(2*b.backoff, max(maxBreakerBackoff, b.base))
		b.open.Until, b.open.Error = now.Add(b.backoff), firstLine(err)
		return reopened, *b.open
	}
	return unchanged, Backoff{}
}

// firstLine drops the wasm stack trace a trap's error carries.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// state is the breaker's Backoff while open, else nil.
func (b *breaker) state() *Backoff {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open == nil {
		return nil
	}
	s := *b.open
	return &s
}

// backoffs is the host's record of open breakers, mirrored to a file so
// that `providers list` and `doctor`, which run in other processes, can
// show what the gateway is skipping.
type backoffs struct {
	path string // "": memory only

	mu   sync.Mutex // guards open and serializes writes of the file
	open map[string]Backoff
}

// reset forgets every breaker: a new host, or one closing.
func (bs *backoffs) reset() error {
	bs.mu.Lock()
	clear(bs.open)
	bs.mu.Unlock()
	return bs.write()
}

// set records b (open) or forgets it (closed), and rewrites the file.
func (bs *backoffs) set(b Backoff, isOpen bool) error {
	key := b.Provider + "\x00" + b.Module
	bs.mu.Lock()
	if bs.open == nil {
		bs.open = map[string]Backoff{}
	}
	if isOpen {
		bs.open[key] = b
	} else {
		delete(bs.open, key)
	}
	bs.mu.Unlock()
	return bs.write()
}

// write mirrors the open breakers to the file.
func (bs *backoffs) write() error {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.path == "" {
		return nil
	}
	list := make([]Backoff, 0, len(bs.open))
	for _, b := range bs.open {
		list = append(list, b)
	}
	slices.SortFunc(list, func(a, b Backoff) int { return strings.Compare(a.Provider, b.Provider) })
	data, err := json.MarshalIndent(backoffFile{Version: 1, Modules: list}, "", "  ")
	if err == nil {
		err = writeFileAtomic(bs.path, data)
	}
	if err != nil {
		return fmt.Errorf("module backoff file %s: %w", bs.path, err)
	}
	return nil
}

// backoffFile is the file's shape.
type backoffFile struct {
	Version int       `json:"version"`
	Modules []Backoff `json:"modules"`
}

// ReadBackoffs returns the modules a running gateway is skipping, from the
// file it keeps (Options.BackoffFile; emptied when a host starts and when
// it closes). A Backoff whose Until has passed is waiting for a request to
// try the module again. A missing file means none; one that is not a
// backoff file is an error naming it.
func ReadBackoffs(path string) ([]Backoff, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f backoffFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 {
		return nil, fmt.Errorf("%s: not a module backoff file (version 1)", path)
	}
	return f.Modules, nil
}
