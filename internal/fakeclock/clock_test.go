package fakeclock

import (
	"testing"
	"time"
)

func TestAfterFiresOnAdvance(t *testing.T) {
	c := New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ch := c.After(time.Hour)
	select {
	case <-ch:
		t.Fatal("fired before its time")
	default:
	}
	c.Advance(59 * time.Minute)
	select {
	case <-ch:
		t.Fatal("fired early")
	default:
	}
	c.Advance(time.Minute)
	select {
	case got := <-ch:
		if !got.Equal(c.Now()) {
			t.Fatalf("fired with %v", got)
		}
	default:
		t.Fatal("did not fire at its deadline")
	}
	if c.Waiters() != 0 {
		t.Fatal("fired timer still pending")
	}
	select {
	case <-c.After(0):
	default:
		t.Fatal("After(0) must fire at once")
	}
}
