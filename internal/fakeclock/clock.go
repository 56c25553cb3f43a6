// Package fakeclock is a manual clock with timers, for tests and the offline
// demo: time moves only when Advance or Set is called, and timers created
// with After fire when it passes their deadline. Nothing sleeps.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a manually advanced clock. The zero value is not usable; use New.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []timer
}

type timer struct {
	at time.Time
	ch chan time.Time
}

// New returns a clock reading now.
func New(now time.Time) *Clock { return &Clock{now: now} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the clock's time once it has moved
// d past now (at once when d <= 0), like time.After.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, timer{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock forward by d and fires every timer that is due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	kept := c.timers[:0]
	var fire []chan time.Time
	for _, t := range c.timers {
		if !t.at.After(now) {
			fire = append(fire, t.ch)
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, ch := range fire {
		ch <- now
	}
}

// Set moves the clock to t (forward only) and fires due timers.
func (c *Clock) Set(t time.Time) {
	if d := t.Sub(c.Now()); d > 0 {
		c.Advance(d)
	}
}

// Waiters reports how many timers are pending (tests use it to know that a
// loop has gone back to sleep).
func (c *Clock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}
