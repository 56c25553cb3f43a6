package fakeclock

import (
	"testing"
	"time"
)

func TestRealTimers(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		d    time.Duration
		// advance moves the clock after After (0: the clock stays).
		advance time.Duration
	}{
		{"fires on Advance long before its real time", time.Hour, time.Hour},
		{"fires in real time without Advance", 20 * time.Millisecond, 0},
		{"fires at once for d <= 0", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := New(start)
			ch := clock.RealTimers().After(c.d)
			if c.advance > 0 {
				clock.Advance(c.advance)
			}
			select {
			case got := <-ch:
				if !got.Equal(clock.Now()) {
					t.Fatalf("fired with %v, want the clock's %v", got, clock.Now())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("did not fire")
			}
			if n := clock.Waiters(); n != 0 {
				t.Fatalf("%d timers still pending after firing", n)
			}
			// A timer fires once: a later Advance does not send again.
			clock.Advance(2 * time.Hour)
			select {
			case <-ch:
				t.Fatal("fired twice")
			default:
			}
		})
	}
	t.Run("does not fire before either", func(t *testing.T) {
		clock := New(start)
		ch := clock.RealTimers().After(time.Hour)
		clock.Advance(59 * time.Minute)
		select {
		case <-ch:
			t.Fatal("fired early")
		case <-time.After(50 * time.Millisecond):
		}
		if n := clock.Waiters(); n != 1 {
			t.Fatalf("%d pending timers, want 1", n)
		}
		if !clock.RealTimers().Now().Equal(clock.Now()) {
			t.Fatal("Now differs from the clock's")
		}
	})
}
