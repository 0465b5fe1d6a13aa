package policy

import (
	"context"
	"errors"
	"sync"
	"time"
)

// The time bound on one evaluation (policy.timeoutMs) counts CPU time: the
// time the evaluating thread actually ran, not the time since it started.
// A runaway policy uses its budget whatever the load; a policy that is
// merely waiting for one of two busy cores uses none of it, so a saturated
// machine makes decisions slow but never makes them fail.
//
// Under the built-in policy alone there is nothing else: it is linear in
// the number of profiles. With user policies a wall-clock backstop of
// wallFactor times the budget also applies, so that a runaway policy that
// gets almost no CPU still gives the request back eventually.
const wallFactor = 20

// meter measures the work of one evaluation: start is called on the
// evaluating goroutine and returns a function reporting the CPU time used
// since (safe to call from any goroutine until release) and a release to
// call, on the same goroutine, when the evaluation is over.
type meter func() (used func() time.Duration, release func())

// errWorkBudget cancels an evaluation that used up its CPU budget.
var errWorkBudget = errors.New("policy: evaluation used up its CPU budget")

// watch cancels ctx's evaluation once used reports the budget spent. It
// checks when the budget could first be spent and again, after each
// check, when the rest could be; check (tests only) is told of each one.
// stop ends the watch.
func watch(budget time.Duration, used func() time.Duration, cancel context.CancelCauseFunc, check func(time.Duration)) (stop func()) {
	var (
		mu   sync.Mutex
		done bool
		t    *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(budget, func() {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return
		}
		u := used()
		if check != nil {
			check(u)
		}
		if u >= budget {
			cancel(errWorkBudget)
			return
		}
		t.Reset(max(budget-u, time.Millisecond))
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		done = true
		t.Stop()
	}
}

// wallTime measures time since the call: the fallback when a thread's CPU
// clock cannot be read.
func wallTime() (used func() time.Duration, release func()) {
	start := time.Now()
	return func() time.Duration { return time.Since(start) }, func() {}
}
