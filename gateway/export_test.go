package gateway

// Flush writes what the gateway learned now (tests only).
func (s *Server) Flush() { s.live.flush() }
