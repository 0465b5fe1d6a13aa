//go:build !linux

package policy

import "time"

// threadCPU falls back to wall time where no thread CPU clock is read.
func threadCPU() (used func() time.Duration, release func()) { return wallTime() }
