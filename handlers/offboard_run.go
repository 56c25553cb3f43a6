package handlers

import (
	"context"
	"maps"
	"slices"
	"time"
)

// MarkJob records a scheduled job's success time in the store for /metrics
// (the "job.NAME.success" cursor).
func (s *Service) MarkJob(name string) {
	_ = s.SetCursor("job."+name+".success", s.clock.Now().UTC().Format(time.RFC3339Nano))
}

// RunOffboarding polls each IdP's lifecycle feed every minute and sweeps the
// holders' status every `sweep` (policy offboarding_check, default 5m).
func (s *Service) RunOffboarding(ctx context.Context, feeds map[string]DeactivationFeed) error {
	log := s.log
	const poll = time.Minute
	var lastSweep time.Time
	for {
		now := s.Clock().Now()
		ok := true
		for _, name := range slices.Sorted(maps.Keys(feeds)) {
			n, err := s.PollDeactivations(ctx, name, feeds[name], now.Add(-s.Policy().OffboardingSLA))
			if err != nil {
				ok = false
				log.Warn("lifecycle feed poll failed", "connector", name, "err", err)
			} else if n > 0 {
				log.Info("offboarded from the lifecycle feed", "connector", name, "ended", n)
			}
		}
		if ok && len(feeds) > 0 {
			s.MarkJob("offboarding.poll")
		}
		sweep := s.Policy().OffboardingCheck
		if sweep <= 0 {
			sweep = 5 * time.Minute
		}
		if lastSweep.IsZero() || now.Sub(lastSweep) >= sweep {
			if n, err := s.SweepHolders(ctx); err != nil {
				log.Warn("holder status sweep failed", "err", err)
			} else {
				lastSweep = now
				s.MarkJob("offboarding.sweep")
				if n > 0 {
					log.Info("offboarded by the status sweep", "ended", n)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock.After(poll):
		}
	}
}
