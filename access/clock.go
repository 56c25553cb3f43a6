package access

import "time"

// Clock is the only source of "now" in keycard's logic. Services hold one;
// pure functions take a time.Time. Tests pass a fake.
type Clock interface {
	Now() time.Time
}

// SystemClock reads the wall clock. Only main wires it in.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }
