package handlers

import (
	"sync"
	"time"
)

// StreamLag is how far the audit stream to a SIEM is behind the chain, for
// /metrics (handlers/auditstream measures it).
type StreamLag struct {
	Events   uint64        // events not yet acknowledged by the receiver
	Oldest   time.Duration // age of the oldest of them
	Failures uint64        // failed deliveries since start
}

// streamLag holds the stream's gauge function, set once at start when a
// stream is configured.
type streamLag struct {
	mu sync.Mutex
	fn func() (StreamLag, error)
}

// SetStreamLag registers the audit stream's lag for /metrics.
func (s *Service) SetStreamLag(fn func() (StreamLag, error)) {
	s.lag.mu.Lock()
	defer s.lag.mu.Unlock()
	s.lag.fn = fn
}

// StreamLag reports the audit stream's lag; ok is false when no stream runs.
func (s *Service) StreamLag() (lag StreamLag, ok bool, err error) {
	s.lag.mu.Lock()
	fn := s.lag.fn
	s.lag.mu.Unlock()
	if fn == nil {
		return StreamLag{}, false, nil
	}
	lag, err = fn()
	return lag, true, err
}
