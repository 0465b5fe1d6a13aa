//go:build unix

package gateway_test

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time, to report benchmark
// costs that do not depend on how busy the machine is.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}
