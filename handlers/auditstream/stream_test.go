package auditstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/handlers/auditstream"
	"keycard/internal/adapt"
	"keycard/internal/fakeclock"
	"keycard/store"
)

const secret auditstream.Secret = "0123456789abcdef-test-key"

var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// openStore opens the real bbolt store at dir/keycard.db.
func openStore(t *testing.T, dir string) (*store.DB, handlers.Store) {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, "keycard.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return db, adapt.Store(db)
}

// appendEvents adds n events, one transaction each, as a use case would.
func appendEvents(t *testing.T, st handlers.Store, clock access.Clock, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		err := st.Update(clock.Now(), func(tx handlers.Tx) error {
			_, err := tx.Append(access.Event{Type: access.EvRequestSubmitted, Actor: "dev@example.com", Subject: "dev@example.com",
				Policy: "prod-db", RequestID: fmt.Sprintf("r%d", i), Detail: `{"reason":"incident 42"}`})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// receiver is a SIEM's HTTPS endpoint whose behaviour the test switches:
// "ok" stores and answers 204; "fail" answers 503 without storing; "hang"
// stores the batch and then never answers (the sender times out without
// knowing it succeeded).
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	now func() time.Time

	mu       sync.Mutex
	mode     string
	got      []uint64 // seqs in arrival order, duplicates included
	requests []string // mode of each request, in order
	bad      []string // verification failures
}

func newReceiver(t *testing.T, now func() time.Time) *receiver {
	r := &receiver{t: t, mode: "ok", now: now}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setMode(m string) { r.mu.Lock(); r.mode = m; r.mu.Unlock() }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	mode := r.mode
	r.requests = append(r.requests, mode)
	if mode == "fail" {
		r.mu.Unlock()
		http.Error(w, "indexer busy", http.StatusServiceUnavailable)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		r.bad = append(r.bad, "content type "+ct)
	}
	if err := auditstream.Verify(secret, req.Header.Get(auditstream.HeaderTimestamp), req.Header.Get(auditstream.HeaderSignature), body, r.now(), 5*time.Minute); err != nil {
		r.bad = append(r.bad, err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var first, last uint64
	for dec.More() {
		var rec auditstream.Record
		if err := dec.Decode(&rec); err != nil {
			r.bad = append(r.bad, err.Error())
			break
		}
		if first == 0 {
			first = rec.Seq
		}
		last = rec.Seq
		r.got = append(r.got, rec.Seq)
	}
	if h := req.Header.Get(auditstream.HeaderBatch); h != fmt.Sprintf("%d-%d", first, last) {
		r.bad = append(r.bad, "batch header "+h)
	}
	r.mu.Unlock()
	if mode == "hang" {
		<-req.Context().Done() // the sender gave up
		// Close the connection without an answer: whatever the server saw,
		// the sender must not learn that the batch was stored.
		panic(http.ErrAbortHandler)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) seqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) count(mode string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.requests {
		if m == mode {
			n++
		}
	}
	return n
}

// waitFor waits (without advancing any clock) until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// sleeper is the stream's clock: it reports each wait the loop starts, so
// the test knows the loop is asleep (and for how long) before it moves the
// fake clock.
type sleeper struct {
	fc    *fakeclock.Clock
	waits chan time.Duration
}

// Now is the fake clock's: a sleeper is the stream's whole Clock.
func (s *sleeper) Now() time.Time { return s.fc.Now() }

func (s *sleeper) After(d time.Duration) <-chan time.Time {
	ch := s.fc.After(d)
	s.waits <- d
	return ch
}

func (s *sleeper) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-s.waits:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not go back to sleep")
		return 0
	}
}

func newStream(t *testing.T, st handlers.Store, r *receiver, fc *fakeclock.Clock, sl *sleeper, wake <-chan struct{}) *auditstream.Stream {
	t.Helper()
	cfg := auditstream.Config{Kind: auditstream.KindHTTPS, URL: r.srv.URL, Secret: secret, Format: auditstream.FormatJSON}
	sink, err := auditstream.Open(cfg, auditstream.SinkOptions{Clock: fc, Client: r.srv.Client(), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	s, err := auditstream.New(st, auditstream.Options{Sink: sink, Clock: sl, Wake: wake,
		Poll: time.Minute, MaxEvents: 10, BackoffBase: time.Second, BackoffMax: 8 * time.Second,
		Jitter: func(d time.Duration) time.Duration { return d }, Instance: "kc-test", Version: "v0.0.0-test"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOutageLosesNothing runs the stream against a receiver that fails,
// times out after storing a batch, and recovers, then restarts keycard:
// every event arrives, in order, signed; the only duplicates are the batch
// whose acknowledgement was lost; the cursor survives the restart.
func TestOutageLosesNothing(t *testing.T) {
	dir := t.TempDir()
	fc := fakeclock.New(start)
	db, st := openStore(t, dir)
	r := newReceiver(t, fc.Now)
	sl := &sleeper{fc: fc, waits: make(chan time.Duration, 100)}
	wake := make(chan struct{}, 1)
	s := newStream(t, st, r, fc, sl, wake)

	appendEvents(t, st, fc, 25)
	r.setMode("fail")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	// Three 503s: the waits double (1s, 2s, 4s), nothing is stored.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := sl.next(t); got != want {
			t.Fatalf("backoff %d = %s, want %s", i, got, want)
		}
		if i < 2 {
			fc.Advance(want)
		}
	}
	r.setMode("hang")
	fc.Advance(10 * time.Minute) // the outage lasts; the next retry is due
	if got := sl.next(t); got != 8*time.Second {
		t.Fatalf("backoff after the 4th failure = %s, want the 8s cap", got)
	}
	if r.count("hang") != 1 {
		t.Fatalf("requests while hanging = %d", r.count("hang"))
	}
	lag, err := s.Lag()
	if err != nil {
		t.Fatal(err)
	}
	if lag.Events != 25 || lag.Delivered != 0 || lag.Oldest < 10*time.Minute || lag.Failures != 4 {
		t.Fatalf("lag during the outage = %+v", lag)
	}
	// Writers are not held up while the receiver is down.
	appendEvents(t, st, fc, 2)

	r.setMode("ok")
	fc.Advance(8 * time.Second)
	if got := sl.next(t); got != time.Minute {
		t.Fatalf("after recovery the stream waits %s, want the 1m poll", got)
	}
	want := seqRange(1, 27)
	if got := dedupe(t, r.seqs()); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if lag, _ := s.Lag(); lag.Events != 0 || lag.Oldest != 0 || lag.Delivered != 27 || lag.Sent != 27 {
		t.Fatalf("lag after recovery = %+v", lag)
	}

	// A new event and a nudge: delivered without waiting for the poll.
	appendEvents(t, st, fc, 3)
	wake <- struct{}{}
	sl.next(t)
	waitFor(t, "events 28-30", func() bool { return len(dedupe(t, r.seqs())) == 30 })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: a new process, the same database.
	db2, st2 := openStore(t, dir)
	defer db2.Close()
	appendEvents(t, st2, fc, 4)
	before := len(r.seqs())
	s2 := newStream(t, st2, r, fc, sl, nil)
	if b, more, err := s2.Once(context.Background()); err != nil || more || b.First != 31 || b.Last != 34 {
		t.Fatalf("first batch after restart: %d-%d more=%v err=%v", b.First, b.Last, more, err)
	}
	if got := r.seqs()[before:]; !slices.Equal(got, seqRange(31, 34)) {
		t.Fatalf("after restart the receiver got %v, want 31-34 only", got)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Fatalf("receiver rejected requests: %v", r.bad)
	}
	// The only duplicates are the batch stored before the lost answer (1-10).
	dups := map[uint64]int{}
	for _, s := range r.got {
		dups[s]++
	}
	if dups[1] != 2 || dups[10] != 2 {
		t.Errorf("the batch whose answer was lost was not sent again: %v", r.got)
	}
	for seq, n := range dups {
		if n > 1 && (seq > 10 || n > 2) {
			t.Errorf("seq %d arrived %d times", seq, n)
		}
	}
}

// dedupe checks that seqs only ever restart at an earlier batch (a resend)
// and never skip ahead, and returns them without repeats.
func dedupe(t *testing.T, seqs []uint64) []uint64 {
	t.Helper()
	var out []uint64
	var high uint64
	for _, s := range seqs {
		switch {
		case s == high+1:
			high = s
			out = append(out, s)
		case s <= high:
			// a resend of something already seen
		default:
			t.Fatalf("seq %d arrived after %d: a gap or a reordering in %v", s, high, seqs)
		}
	}
	return out
}

func seqRange(a, b uint64) []uint64 {
	var out []uint64
	for s := a; s <= b; s++ {
		out = append(out, s)
	}
	return out
}

func TestBatchLimits(t *testing.T) {
	fc := fakeclock.New(start)
	_, st := openStore(t, t.TempDir())
	appendEvents(t, st, fc, 7)
	var out bytes.Buffer
	sink, _ := auditstream.Open(auditstream.Config{Kind: auditstream.KindStdout}, auditstream.SinkOptions{Stdout: &out})
	oneLine := len(mustLine(t, st))
	cases := []struct {
		name      string
		maxEvents int
		maxBytes  int
		want      [][2]uint64
	}{
		{"by count", 3, 1 << 20, [][2]uint64{{1, 3}, {4, 6}, {7, 7}}},
		{"by bytes", 100, 2*oneLine + 10, [][2]uint64{{1, 2}, {3, 4}, {5, 6}, {7, 7}}},
		{"one event larger than the limit still goes", 100, 10, [][2]uint64{{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}, {6, 6}, {7, 7}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := st.Update(fc.Now(), func(tx handlers.Tx) error { return tx.SetCursor(auditstream.CursorName, "") }); err != nil {
				t.Fatal(err)
			}
			out.Reset()
			s, _ := auditstream.New(st, auditstream.Options{Sink: sink, Clock: fc, MaxEvents: c.maxEvents, MaxBytes: c.maxBytes})
			var got [][2]uint64
			for {
				b, more, err := s.Once(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if b.Count == 0 {
					break
				}
				got = append(got, [2]uint64{b.First, b.Last})
				if !more && b.Last != 7 {
					t.Fatalf("batch %d-%d says nothing more", b.First, b.Last)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("batches %v, want %v", got, c.want)
			}
			if n := bytes.Count(out.Bytes(), []byte("\n")); n != 7 {
				t.Fatalf("%d lines on stdout", n)
			}
		})
	}
}

func mustLine(t *testing.T, st handlers.Store) []byte {
	var e access.Event
	if err := st.View(func(tx handlers.Tx) error { var err error; e, err = tx.Event(1); return err }); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(auditstream.NewRecord(e, "", ""))
	return append(b, '\n')
}

func TestSplunkHECDelivery(t *testing.T) {
	fc := fakeclock.New(start)
	_, st := openStore(t, t.TempDir())
	appendEvents(t, st, fc, 3)
	const token = "12345678-1234-1234-1234-123456789012"
	var gotAuth, gotCT string
	var events []map[string]any
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotCT = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		dec := json.NewDecoder(r.Body) // HEC: envelopes concatenated
		for dec.More() {
			var ev map[string]any
			if err := dec.Decode(&ev); err != nil {
				t.Error(err)
				return
			}
			events = append(events, ev)
		}
		fmt.Fprint(w, `{"text":"Success","code":0}`)
	}))
	defer srv.Close()
	cfg := auditstream.Config{Kind: auditstream.KindHTTPS, URL: srv.URL + "/services/collector/event", Secret: token, Format: auditstream.FormatSplunkHEC}
	sink, err := auditstream.Open(cfg, auditstream.SinkOptions{Clock: fc, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := auditstream.New(st, auditstream.Options{Sink: sink, Clock: fc, Instance: "kc1"})
	if _, _, err := s.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if gotAuth != "Splunk "+token || gotCT != "application/json" {
		t.Fatalf("headers: Authorization %q, Content-Type %q", gotAuth, gotCT)
	}
	if len(events) != 3 {
		t.Fatalf("%d events", len(events))
	}
	for i, ev := range events {
		inner, _ := ev["event"].(map[string]any)
		if ev["source"] != "keycard" || ev["sourcetype"] != "keycard:audit" || ev["host"] != "kc1" || ev["time"] != float64(start.Unix()) || inner["seq"] != float64(i+1) {
			t.Fatalf("event %d: %v", i, ev)
		}
	}
}

// A receiver that refuses for a long time never ends the loop and never
// moves the cursor; the wait stays at the cap.
func TestRunStopsOnlyWithContext(t *testing.T) {
	fc := fakeclock.New(start)
	_, st := openStore(t, t.TempDir())
	appendEvents(t, st, fc, 1)
	r := newReceiver(t, fc.Now)
	r.setMode("fail")
	sl := &sleeper{fc: fc, waits: make(chan time.Duration, 100)}
	s := newStream(t, st, r, fc, sl, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for i := 0; i < 12; i++ {
		d := sl.next(t)
		if i >= 4 && d != 8*time.Second {
			t.Fatalf("wait %d = %s, want the cap", i, d)
		}
		fc.Advance(d)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lag, _ := s.Lag(); lag.Delivered != 0 || lag.Events != 1 || lag.Failures < 12 {
		t.Fatalf("lag %+v", lag)
	}
}

// A redirect is not followed: the signed batch must not go to another host.
func TestRedirectNotFollowed(t *testing.T) {
	fc := fakeclock.New(start)
	_, st := openStore(t, t.TempDir())
	appendEvents(t, st, fc, 1)
	other := newReceiver(t, fc.Now)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.srv.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	cfg := auditstream.Config{Kind: auditstream.KindHTTPS, URL: srv.URL, Secret: secret}
	sink, err := auditstream.Open(cfg, auditstream.SinkOptions{Clock: fc, Client: other.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := auditstream.New(st, auditstream.Options{Sink: sink, Clock: fc})
	_, _, err = s.Once(context.Background())
	var se *auditstream.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusTemporaryRedirect {
		t.Fatalf("err = %v, want the 307 as a failure", err)
	}
	if got := other.seqs(); len(got) != 0 {
		t.Fatalf("the redirect target received %v", got)
	}
	if lag, _ := s.Lag(); lag.Delivered != 0 {
		t.Fatalf("cursor moved: %+v", lag)
	}
}

func TestSetup(t *testing.T) {
	fc := fakeclock.New(start)
	_, st := openStore(t, t.TempDir())
	if s, err := auditstream.Setup(auditstream.Config{}, st, auditstream.Options{Clock: fc}, auditstream.SinkOptions{}); s != nil || err != nil {
		t.Fatalf("no stream configured: %v %v", s, err)
	}
	appendEvents(t, st, fc, 2)
	var out bytes.Buffer
	cfg, err := auditstream.ParseConfig(func(k string) string {
		return map[string]string{auditstream.EnvURL: "stdout", auditstream.EnvFormat: "splunk-hec"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := auditstream.Setup(cfg, st, auditstream.Options{Clock: fc}, auditstream.SinkOptions{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	if len(lines) != 2 || !bytes.HasPrefix(lines[0], []byte(`{"time":`)) || !bytes.Contains(lines[1], []byte(`"sourcetype":"keycard:audit"`)) {
		t.Fatalf("the sink's format was not used:\n%s", out.String())
	}
}
