package policy

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU measures the evaluating goroutine's CPU time with its thread's
// CPU clock: the goroutine is locked to its thread for the evaluation, and
// Linux lets other threads of the process read that clock.
func threadCPU() (used func() time.Duration, release func()) {
	runtime.LockOSThread()
	clock := threadClock(unix.Gettid())
	start, ok := readClock(clock)
	if !ok {
		runtime.UnlockOSThread()
		return wallTime()
	}
	used = func() time.Duration {
		now, ok := readClock(clock)
		if !ok {
			return 0
		}
		return now - start
	}
	return used, runtime.UnlockOSThread
}

// threadClock is the clock id of thread tid's CPU time (glibc's
// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)).
func threadClock(tid int) int32 {
	return int32(^uint32(tid)<<3 | 6)
}

func readClock(clock int32) (time.Duration, bool) {
	var ts unix.Timespec
	if unix.ClockGettime(clock, &ts) != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
