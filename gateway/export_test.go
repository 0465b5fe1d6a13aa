package gateway

// Flush writes what the gateway learned now (tests only).
func (s *Server) Flush() { s.live.flush() }

// CPUTime is the CPU time this process has used (benchmarks' cpu-ns/op).
var CPUTime = cpuTime

// ScrubSets is how many secret sets agent's current snapshot keeps
// (secretsFor), tests only.
func ScrubSets(s *Server, agent string) int {
	a, err := s.live.agent(agent)
	if err != nil {
		return 0
	}
	m := a.snap.Load().scrub
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}
