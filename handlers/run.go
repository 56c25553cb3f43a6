package handlers

import (
	"context"
	"time"
)

// Run drives the provisioning worker and the scheduler until ctx ends: it
// catches up at once (grants that expired while keycard was down, ops a
// crash interrupted), then sleeps until the next due time or until a write
// wakes it. It waits on the service's clock (time.After in production); tests
// drive Tick and RunOutbox directly with a fake clock instead.
func (s *Service) Run(ctx context.Context) error {
	const idle = time.Minute // re-check at least this often (clock jumps, missed wakes)
	for {
		nextTick, err := s.Tick(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("scheduler sweep failed", "err", err)
		}
		nextOp, err := s.RunOutbox(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("provisioning worker failed", "err", err)
		}
		if err := s.FlushRefusals(ctx.Err() != nil); err != nil {
			s.log.Error("refusal summaries not audited", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := pause(s.clock.Now(), idle, nextTick, nextOp)
		select {
		case <-ctx.Done():
			if err := s.FlushRefusals(true); err != nil {
				s.log.Error("refusal summaries not audited at shutdown", "err", err)
			}
			return nil
		case <-s.wake:
		case <-s.clock.After(wait):
		}
	}
}

// pause is how long a loop sleeps at now: until the earliest due time in
// next (zero ones are not due), idle at the most, and 10ms at the least, so
// a due time already past does not spin the loop.
func pause(now time.Time, idle time.Duration, next ...time.Time) time.Duration {
	wait := idle
	for _, t := range next {
		if !t.IsZero() {
			if d := t.Sub(now); d < wait {
				wait = d
			}
		}
	}
	return max(wait, 10*time.Millisecond)
}
