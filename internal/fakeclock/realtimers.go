package fakeclock

import "time"

// RealTimers is c for a program whose timers must also run at real speed:
// Now is c's, and a timer from After fires when c passes its deadline
// (Advance, Set) or once its duration has passed in real time, whichever
// comes first, with c's time. The bot e2e tests give it to keycard: their
// fake clock moves the domain's time (expiries, due dates) by hand, while
// the bot's waits (the notifier's poll, a Slack 429's Retry-After, a
// retry's backoff, the submit budget) go by as in production without the
// test moving the clock. Waiters counts a pending timer until it fires
// either way.
type RealTimers struct{ *Clock }

// RealTimers returns c with timers that also fire in real time.
func (c *Clock) RealTimers() RealTimers { return RealTimers{c} }

// After returns a channel that receives c's time once c has moved d past
// now or d has passed in real time (at once when d <= 0).
func (r RealTimers) After(d time.Duration) <-chan time.Time {
	c := r.Clock
	ch := c.After(d)
	if d <= 0 {
		return ch
	}
	time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, t := range c.timers {
			if t.ch == ch {
				// Still pending, so Advance has not sent on it: this is
				// the only send (the channel has room for it).
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				t.ch <- c.now
				return
			}
		}
	})
	return ch
}
