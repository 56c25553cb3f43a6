package access

import "time"

// Clock is the only source of "now" in keycard's logic, and of its timers:
// services hold one and wait on its After, so a fake clock
// (internal/fakeclock) drives every loop in tests and in the demo. Pure
// functions take a time.Time.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock: the channel receives once the
	// clock has moved d past now.
	After(d time.Duration) <-chan time.Time
}

// SystemClock reads the wall clock. Only main wires it in.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// After is time.After.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }

// After waits on the wall clock: a ClockFunc only moves "now"; a test that
// needs its timers to follow uses internal/fakeclock.
func (f ClockFunc) After(d time.Duration) <-chan time.Time { return time.After(d) }
