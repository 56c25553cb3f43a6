package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fakeclock"
	"keycard/policy"
	"keycard/store"
)

// serve streams every audit event to KEYCARD_AUDIT_STREAM_URL (issue 14
// item 2): here a file a log shipper would tail, one JSON object per line
// with the chain's seq and hash, woken by each commit.
func TestServeStreamsAuditEvents(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "audit.ndjson")
	t.Setenv("KEYCARD_AUDIT_STREAM_URL", "file:"+out)
	set, err := policy.Load("../../docs/examples/policy-static.yaml")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "keycard.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	conns, err := BuildConnectors(set, Config{}, db, clock)
	if err != nil {
		t.Fatal(err)
	}
	svc := handlers.New(adapt.Store(db), conns, set, clock, handlers.Options{})
	d := Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: clock}
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	if err := startAuditStream(gctx, g, func(fn func(context.Context) error) { g.Go(func() error { return fn(gctx) }) }, svc, adapt.Store(db), d); err != nil {
		t.Fatal(err)
	}
	if err := svc.RecordPolicyLoaded(access.ActorKeycard); err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	for deadline := time.Now().Add(10 * time.Second); len(lines) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // the stream runs in its own goroutine; wait for its write
		lines = readLines(t, out)
	}
	cancel()
	if err := g.Wait(); err != nil && err != context.Canceled {
		t.Fatal(err)
	}
	if len(lines) != 1 {
		t.Fatalf("%d lines streamed, want the one policy.loaded event", len(lines))
	}
	if lines[0]["type"] != string(access.EvPolicyLoaded) || lines[0]["seq"] != float64(1) || lines[0]["hash"] == "" {
		t.Fatalf("streamed %v", lines[0])
	}
	if lag, ok, err := svc.StreamLag(); !ok || err != nil || lag.Events != 0 {
		t.Fatalf("lag %+v ok %v err %v, want caught up", lag, ok, err)
	}
	// /metrics shows the lag (issue 14: "/metrics shows the lag").
	rec := httptest.NewRecorder()
	svc.MetricsHandler(nil, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"keycard_audit_stream_lag_events 0", "keycard_audit_stream_oldest_undelivered_age_seconds 0", "keycard_audit_stream_failures_total 0"} {
		if !strings.Contains(rec.Body.String(), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func readLines(t *testing.T, path string) []map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
