package handlers

import (
	"testing"
	"time"
)

func TestPause(t *testing.T) {
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		next []time.Time
		want time.Duration
	}{
		{"nothing due: idle", nil, time.Minute},
		{"zero times are not due", []time.Time{{}, {}}, time.Minute},
		{"the earliest due time", []time.Time{now.Add(40 * time.Second), now.Add(5 * time.Second)}, 5 * time.Second},
		{"later than idle: idle", []time.Time{now.Add(time.Hour)}, time.Minute},
		{"already past: the floor", []time.Time{now.Add(-time.Hour)}, 10 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := pause(now, time.Minute, c.next...); got != c.want {
				t.Fatalf("pause = %s, want %s", got, c.want)
			}
		})
	}
}
