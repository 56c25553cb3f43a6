package connectors

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"keycard/access"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "(none)"},
		{"s3cr3t", "[redacted]"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"localhost", true}, {"LocalHost", true}, {"127.0.0.1", true}, {"::1", true},
		{"10.0.0.1", false}, {"acme.okta.com", false}, {"", false},
	} {
		if got := IsLoopback(tc.host); got != tc.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	if got := DurationOr(0, time.Second); got != time.Second {
		t.Errorf("DurationOr(0) = %s", got)
	}
	if got := DurationOr(-1, time.Second); got != time.Second {
		t.Errorf("DurationOr(-1) = %s", got)
	}
	if got := DurationOr(time.Minute, time.Second); got != time.Minute {
		t.Errorf("DurationOr(1m) = %s", got)
	}
	if _, ok := ClockOr(nil).(access.SystemClock); !ok {
		t.Error("ClockOr(nil) is not access.SystemClock")
	}
	if SleepOr(nil) == nil {
		t.Error("SleepOr(nil) is nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := TimerSleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("TimerSleep on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestHTTPClientCopiesAndRefusesRedirects(t *testing.T) {
	base := &http.Client{Timeout: 7 * time.Second}
	hc := HTTPClient(base)
	if hc == base || hc.Timeout != 7*time.Second || hc.Transport == nil || base.Transport != nil {
		t.Fatalf("HTTPClient did not copy base with a transport of its own: %+v", hc)
	}
	if err := hc.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("CheckRedirect = %v, want http.ErrUseLastResponse", err)
	}
	if HTTPClient(nil).Transport == nil {
		t.Error("HTTPClient(nil) has no transport")
	}
}

func TestGroupCache(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var g GroupCache
	g.TTL = time.Minute
	if _, ok := g.Get("eng", t0); ok {
		t.Fatal("empty cache hit")
	}
	g.Put("eng", "g1", t0)
	for _, tc := range []struct {
		name string
		now  time.Time
		hit  bool
	}{
		{"fresh", t0.Add(59 * time.Second), true},
		{"expired", t0.Add(time.Minute), false},
		{"clock stepped back", t0.Add(-time.Second), false},
	} {
		id, ok := g.Get("eng", tc.now)
		if ok != tc.hit || (ok && id != "g1") {
			t.Errorf("%s: Get = %q, %v; want hit %v", tc.name, id, ok, tc.hit)
		}
	}
	g.ForgetOn("eng", access.Errorf(access.CodeUnavailable, "flaky"))
	if _, ok := g.Get("eng", t0); !ok {
		t.Error("ForgetOn dropped the entry on an error that is not CodeNotFound")
	}
	g.ForgetOn("eng", access.Errorf(access.CodeNotFound, "gone"))
	if _, ok := g.Get("eng", t0); ok {
		t.Error("ForgetOn kept the entry on CodeNotFound")
	}
	g.Put("ops", "g2", t0)
	g.Forget("ops")
	if _, ok := g.Get("ops", t0); ok {
		t.Error("Forget kept the entry")
	}
}
