package handlers

import (
	"context"
	"time"
)

// Run drives the provisioning worker and the scheduler until ctx ends, on
// the leader only (Options.Leadership; every commit they make is fenced): it
// catches up at once (grants that expired while keycard was down, ops a
// crash interrupted), then sleeps until the next due time or until a write
// wakes it. It waits on the service's clock (time.After in production); tests
// drive Tick and RunOutbox directly with a fake clock instead.
func (s *Service) Run(ctx context.Context) error {
	const idle = time.Minute // re-check at least this often (clock jumps, missed wakes)
	for {
		leading := s.lead.IsLeader()
		var nextTick, nextOp time.Time
		if leading {
			var err error
			nextTick, err = s.Tick(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Error("scheduler sweep failed", "err", err)
			}
			nextOp, err = s.RunOutbox(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Error("provisioning worker failed", "err", err)
			}
		}
		// Refusal summaries are this replica's own (its in-memory limiter),
		// so every replica flushes them, leader or not.
		if err := s.FlushRefusals(ctx.Err() != nil); err != nil {
			s.log.Error("refusal summaries not audited", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := pause(s.clock.Now(), idle, nextTick, nextOp)
		if s.opt.Poll > 0 && wait > s.opt.Poll {
			// Other replicas' commits do not wake this loop: a short poll
			// finds the ops they enqueued and the due times they set. A
			// standby polls too, so it notices at once when it leads (the
			// lease also wakes it: LeadershipChanged).
			wait = s.opt.Poll
		}
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
