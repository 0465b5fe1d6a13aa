package gateway

// Flush writes what the gateway learned now (tests only).
func (s *Server) Flush() { s.live.flush() }

// CPUTime is the CPU time this process has used (benchmarks' cpu-ns/op).
var CPUTime = cpuTime
