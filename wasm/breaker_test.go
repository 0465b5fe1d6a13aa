package wasm

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// A module whose headers op loops is skipped after three deadline
// failures in a row: its calls fail fast with ErrBackoff and never reach
// the module; the opening is logged once, shown by Providers and written
// to the backoff file; after the backoff one call tries it again.
func TestBreakerSkipsLoopingModule(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	file := filepath.Join(t.TempDir(), "module-backoff.json")
	h, logs := newTestHost(t, Options{CallTimeout: time.Second, BreakerBackoff: time.Minute,
		BackoffFile: file, Now: clock.now})
	ctx := context.Background()
	r, _ := NewRegistry(ctx, h, map[string]string{"loopy": bad("loop-headers.wasm"), "acme": acmeWasm})
	headers := func(secret string) error {
		_, err := r.Headers(ctx, "loopy", HeadersRequest{Type: "api_key", Secret: secret})
		return err
	}
	for i := range 3 {
		if err := headers("k"); !errors.Is(err, ErrDeadline) {
			t.Fatalf("call %d: err = %v, want ErrDeadline", i, err)
		}
	}
	m := r.entry("loopy").mod
	calls := m.calls.Load()
	for range 5 {
		err := headers("k")
		if !errors.Is(err, ErrBackoff) || !strings.Contains(err.Error(), bad("loop-headers.wasm")) {
			t.Fatalf("err = %v, want ErrBackoff naming the file", err)
		}
	}
	if _, err := r.Check(ctx, "loopy", CheckRequest{Type: "api_key", Secret: "fresh-" + t.Name()}); !errors.Is(err, ErrBackoff) {
		t.Errorf("check while skipped: %v, want ErrBackoff (the breaker is per module)", err)
	}
	if got := m.calls.Load(); got != calls {
		t.Errorf("%d calls reached the module while it was skipped", got-calls)
	}
	if got, err := r.Headers(ctx, "acme", HeadersRequest{Type: "api_key", Secret: "acme-1"}); err != nil || got.Set["x-acme-key"] != "acme-1" {
		t.Errorf("another module: %+v %v", got, err)
	}
	want := clock.now().Add(time.Minute)
	var listed *Backoff
	for _, p := range r.Providers(ctx) {
		if p.Name == "loopy" {
			listed = p.Backoff
		}
	}
	if listed == nil || !listed.Until.Equal(want) || listed.Failures != 3 || !strings.Contains(listed.Error, "deadline") {
		t.Errorf("Providers: backoff %+v, want until %v after 3 deadline failures", listed, want)
	}
	onDisk, err := ReadBackoffs(file)
	if err != nil || len(onDisk) != 1 || onDisk[0].Provider != "loopy" || onDisk[0].Module != bad("loop-headers.wasm") || !onDisk[0].Until.Equal(want) {
		t.Errorf("backoff file: %+v %v", onDisk, err)
	}

	// After the backoff, one trial call; it loops again, so the backoff
	// doubles, silently.
	clock.add(time.Minute)
	if err := headers("k"); !errors.Is(err, ErrDeadline) {
		t.Fatalf("trial: %v, want ErrDeadline", err)
	}
	if err := headers("k"); !errors.Is(err, ErrBackoff) {
		t.Fatalf("after a failed trial: %v, want ErrBackoff", err)
	}
	if onDisk, _ := ReadBackoffs(file); len(onDisk) != 1 || !onDisk[0].Until.Equal(clock.now().Add(2*time.Minute)) {
		t.Errorf("after a failed trial the file says %+v, want until now+2m", onDisk)
	}
	if n := strings.Count(logs.String(), "skipped after repeated failures"); n != 1 {
		t.Errorf("opening logged %d times, want once:\n%s", n, logs)
	}
	if n := strings.Count(logs.String(), "call deadline exceeded"); n > 2 { // the failure itself (once), and the opening
		t.Errorf("the deadline was logged %d times:\n%s", n, logs)
	}
}

// A module that recovers closes its breaker on the trial call: logged
// once, and gone from the backoff file.
func TestBreakerClosesWhenModuleRecovers(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	file := filepath.Join(t.TempDir(), "module-backoff.json")
	h, logs := newTestHost(t, Options{CallTimeout: 10 * time.Second, BreakerFailures: 2, BackoffFile: file, Now: clock.now})
	ctx := context.Background()
	r, _ := NewRegistry(ctx, h, map[string]string{"flaky": bad("flaky.wasm")})
	for range 2 {
		if _, err := r.Check(ctx, "flaky", CheckRequest{Secret: "please-trap"}); !errors.Is(err, ErrTrap) {
			t.Fatalf("err = %v, want ErrTrap", err)
		}
	}
	if _, err := r.Check(ctx, "flaky", CheckRequest{Secret: "please-trap"}); !errors.Is(err, ErrBackoff) {
		t.Fatalf("err = %v, want ErrBackoff", err)
	}
	clock.add(DefaultBreakerBackoff)
	fresh := "fine-" + time.Now().Format(time.RFC3339Nano) // verdicts persist across runs
	if got, err := r.Check(ctx, "flaky", CheckRequest{Secret: fresh}); err != nil || !got.Valid {
		t.Fatalf("trial: %+v %v", got, err)
	}
	if got, err := r.Check(ctx, "flaky", CheckRequest{Secret: fresh + "2"}); err != nil || !got.Valid {
		t.Fatalf("after the trial: %+v %v", got, err)
	}
	if onDisk, err := ReadBackoffs(file); err != nil || len(onDisk) != 0 {
		t.Errorf("backoff file after recovery: %+v %v", onDisk, err)
	}
	for _, want := range []string{"skipped after repeated failures", "back in service"} {
		if n := strings.Count(logs.String(), want); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", want, n, logs)
		}
	}
}

// Waiting for a free instance is bounded: with every instance stuck in a
// loop, a call gets ErrPoolBusy instead of queueing.
func TestPoolWaitIsBounded(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{CallTimeout: 3 * time.Second, MaxInstances: 1, PoolWait: 20 * time.Millisecond})
	ctx := context.Background()
	r, _ := NewRegistry(ctx, h, map[string]string{"loopy": bad("loop-headers.wasm")})
	if errs := r.Load(ctx, "loopy"); len(errs) > 0 {
		t.Fatal(errs)
	}
	m := r.entry("loopy").mod
	base := m.calls.Load()
	done := make(chan error, 1)
	go func() {
		_, err := r.Headers(ctx, "loopy", HeadersRequest{Secret: "a"})
		done <- err
	}()
	for m.calls.Load() == base { // the looping call holds the only instance
		time.Sleep(time.Millisecond)
	}
	_, err := r.Headers(ctx, "loopy", HeadersRequest{Secret: "b"})
	if !errors.Is(err, ErrPoolBusy) || !strings.Contains(err.Error(), bad("loop-headers.wasm")) {
		t.Errorf("err = %v, want ErrPoolBusy naming the file", err)
	}
	if err := <-done; !errors.Is(err, ErrDeadline) {
		t.Errorf("the looping call: %v", err)
	}
}

// Ops come from the module's info declaration; a module without one is
// asked every op, so answering unsupported_op to the load-time status-500
// probe does not lose classify for a 429.
func TestDeclaredOps(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{})
	ctx := context.Background()
	r, _ := NewRegistry(ctx, h, map[string]string{"picky": bad("picky.wasm"), "old": bad("picky-old.wasm")})
	listed := map[string]ProviderInfo{}
	for _, p := range r.Providers(ctx) {
		listed[p.Name] = p
	}
	for _, tt := range []struct {
		name, ops string
		declared  bool
	}{
		{"picky", "info,classify", true},
		{"old", "info", false},
		{"anthropic", "info,check,headers,classify,observe", true},
	} {
		if p := listed[tt.name]; strings.Join(p.Ops, ",") != tt.ops || p.OpsDeclared != tt.declared {
			t.Errorf("%s listed with ops %v declared %v, want %s declared %v", tt.name, p.Ops, p.OpsDeclared, tt.ops, tt.declared)
		}
	}
	for _, provider := range []string{"picky", "old"} {
		got, err := r.Classify(ctx, provider, ClassifyRequest{Status: 429})
		if err != nil || got.Reason != ReasonRateLimit || deref(got.RetryAfterMs) != int64(1234) || got.Hint != "picky says wait" {
			t.Errorf("%s classify 429: %+v %v, want the module's own answer", provider, got, err)
		}
		got, err = r.Classify(ctx, provider, ClassifyRequest{Status: 500})
		if err != nil || got.Reason != ReasonTimeout || got.Hint != "" {
			t.Errorf("%s classify 500: %+v %v, want the generic table", provider, got, err)
		}
		// Undeclared (picky) or unsupported (old): the generic Bearer.
		h, err := r.Headers(ctx, provider, HeadersRequest{Secret: "s"})
		if err != nil || h.Set["authorization"] != "Bearer s" {
			t.Errorf("%s headers: %+v %v", provider, h, err)
		}
	}
}
