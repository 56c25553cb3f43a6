package oktafake

// ResetFaults forgets every FailNext and RateLimitNext rule, spent or not:
// a fault test injects "fail until told otherwise" (FailNext with a large
// n) and then heals the emulator in one call. Latency rules stay (Latency
// with d = 0 removes one).
func (s *Server) ResetFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	s.limited = 0
}
