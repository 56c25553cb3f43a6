package pgstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/fakeclock"
	"keycard/internal/storetest"
	pgstore "keycard/store/postgres"
)

const lease = "singleton"

// TestLeaseRaceHasOneWinner: replicas racing for a free lease at the same
// moment: exactly one holds it, with token 1; renewing keeps the token.
func TestLeaseRaceHasOneWinner(t *testing.T) {
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	const n = 6
	dbs := make([]*pgstore.DB, n)
	for i := range dbs {
		dbs[i] = open(t, url)
	}
	type result struct {
		holder string
		token  uint64
		held   bool
		err    error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h := fmt.Sprint("replica-", i)
			tok, held, err := dbs[i].Lease(lease, h, 10*time.Second, t0)
			results <- result{h, tok, held, err}
		}(i)
	}
	wg.Wait()
	close(results)
	var winner string
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.held {
			if winner != "" {
				t.Fatalf("%s and %s both hold the lease", winner, r.holder)
			}
			winner = r.holder
			if r.token != 1 {
				t.Errorf("first term's token %d, want 1", r.token)
			}
		}
	}
	if winner == "" {
		t.Fatal("nobody holds the lease")
	}
	tok, held, err := dbs[0].Lease(lease, winner, 10*time.Second, t0.Add(3*time.Second))
	if err != nil || !held || tok != 1 {
		t.Errorf("renewal: token %d held %v err %v; want 1 true", tok, held, err)
	}
}

// TestLeaseTakeoverAndFence: the holder stops renewing; another replica
// cannot take the lease before the ttl, takes it at the ttl with a higher
// token, and the deposed holder's fenced write is refused and rolled back.
func TestLeaseTakeoverAndFence(t *testing.T) {
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	a, b := open(t, url), open(t, url)
	const ttl = 10 * time.Second
	tokA, held, err := a.Lease(lease, "a", ttl, t0)
	if err != nil || !held {
		t.Fatalf("a: %d %v %v", tokA, held, err)
	}
	if _, held, _ := b.Lease(lease, "b", ttl, t0.Add(ttl-time.Nanosecond)); held {
		t.Fatal("b took an unexpired lease")
	}
	// a's fenced write inside its term commits.
	fenced := func(db *pgstore.DB, at time.Time, token uint64, value string) error {
		return db.Update(at, func(tx *pgstore.Tx) error {
			if err := tx.SetCursor("job", value); err != nil {
				return err
			}
			return tx.CheckFence(lease, token)
		})
	}
	if err := fenced(a, t0.Add(time.Second), tokA, "a1"); err != nil {
		t.Fatalf("a's write in its term: %v", err)
	}
	tokB, held, err := b.Lease(lease, "b", ttl, t0.Add(ttl))
	if err != nil || !held || tokB <= tokA {
		t.Fatalf("b at the ttl: token %d held %v err %v (a had %d)", tokB, held, err, tokA)
	}
	// a comes back late: its renewal fails and its write is refused.
	if _, held, _ := a.Lease(lease, "a", ttl, t0.Add(ttl+time.Second)); held {
		t.Error("a renewed a lease b holds")
	}
	if err := fenced(a, t0.Add(ttl+time.Second), tokA, "a-late"); access.CodeOf(err) != access.CodeConflict {
		t.Errorf("deposed leader's write: %v (code %s), want conflict", err, access.CodeOf(err))
	}
	if err := fenced(b, t0.Add(ttl+time.Second), tokB, "b1"); err != nil {
		t.Errorf("b's write: %v", err)
	}
	_ = a.View(func(tx *pgstore.Tx) error {
		if v, _ := tx.Cursor("job"); v != "b1" {
			t.Errorf("cursor = %q, want b1: the refused write must roll back", v)
		}
		return nil
	})
	// An expired term is refused too, even if nobody took over yet.
	if err := fenced(b, t0.Add(2*ttl+time.Second), tokB, "b-expired"); access.CodeOf(err) != access.CodeConflict {
		t.Errorf("write after the term expired: %v", err)
	}

	// Release hands over at once; a stale release does nothing.
	tokB2, held, _ := b.Lease(lease, "b", ttl, t0.Add(2*ttl+2*time.Second))
	if !held || tokB2 <= tokB {
		t.Fatalf("b again after its lapse: token %d held %v, want a new term above %d", tokB2, held, tokB)
	}
	if err := b.Release(lease, "b", tokB, t0.Add(2*ttl+3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, held, _ := a.Lease(lease, "a", ttl, t0.Add(2*ttl+3*time.Second)); held {
		t.Error("a release of an ended term freed the current one")
	}
	if err := b.Release(lease, "b", tokB2, t0.Add(2*ttl+3*time.Second)); err != nil {
		t.Fatal(err)
	}
	tokA2, held, _ := a.Lease(lease, "a", ttl, t0.Add(2*ttl+3*time.Second))
	if !held || tokA2 <= tokB2 {
		t.Errorf("a after b released: token %d held %v, want above %d", tokA2, held, tokB2)
	}
	li, ok, err := a.LeaseState(lease)
	if err != nil || !ok || li.Holder != "a" || li.Token != tokA2 {
		t.Errorf("LeaseState = %+v %v %v", li, ok, err)
	}
}

// leaderHarness runs Leaders on one fake clock; sleeping receives a value
// each time a loop has finished a step and waits on the clock again, so the
// test advances time only when every loop is asleep (no sleeping, no polls).
type leaderHarness struct {
	clock    *fakeclock.Clock
	sleeping chan string
	mu       sync.Mutex
	wake     map[string]time.Time // when each loop's pending After fires
}

func (h *leaderHarness) options(name string, events chan<- string) pgstore.LeaderOptions {
	return pgstore.LeaderOptions{
		TTL: 10 * time.Second, Margin: 2 * time.Second, Clock: h.clock,
		After: func(d time.Duration) <-chan time.Time {
			h.mu.Lock()
			h.wake[name] = h.clock.Now().Add(d)
			h.mu.Unlock()
			ch := h.clock.After(d)
			h.sleeping <- name
			return ch
		},
		OnChange: func(leader bool, token uint64) { events <- fmt.Sprint(name, " ", leader, " ", token) },
	}
}

// TestLeaderTakeoverOnFakeClock: leader a loses the database (its pool is
// closed, as a partition would); it stands down at ttl - margin after its
// last renewal, b takes over only after that, with a higher token, within
// 15 seconds of a's last renewal; the two never lead at once, and a's fenced
// write is refused.
func TestLeaderTakeoverOnFakeClock(t *testing.T) {
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	h := &leaderHarness{clock: fakeclock.New(t0), sleeping: make(chan string, 4), wake: map[string]time.Time{}}
	events := make(chan string, 16)
	dbA, err := pgstore.Open(t.Context(), url, pgstore.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	dbB := open(t, url)
	a := pgstore.NewLeader(dbA, lease, "a", h.options("a", events))
	b := pgstore.NewLeader(dbB, lease, "b", h.options("b", events))

	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, stop := context.WithCancel(t.Context())
	defer stop()
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.Run(runCtx) }()
	<-h.sleeping // a took the lease first
	wg.Add(1)
	go func() { defer wg.Done(); _ = b.Run(runCtx) }()
	<-h.sleeping
	if !a.IsLeader() || b.IsLeader() || a.Token() != 1 {
		t.Fatalf("start: a %v (%d), b %v", a.IsLeader(), a.Token(), b.IsLeader())
	}
	if got := <-events; got != "a true 1" {
		t.Fatalf("event %q", got)
	}
	// step advances the clock and waits until every loop it woke is
	// asleep again.
	step := func(d time.Duration) {
		t.Helper()
		to := h.clock.Now().Add(d)
		fired := 0
		h.mu.Lock()
		for _, w := range h.wake {
			if !w.After(to) {
				fired++
			}
		}
		h.mu.Unlock()
		h.clock.Advance(d)
		for i := 0; i < fired; i++ {
			<-h.sleeping
		}
	}
	// Some healthy renewals: a keeps its term.
	for i := 0; i < 12; i++ {
		step(time.Second)
	}
	if !a.IsLeader() || a.Token() != 1 || b.IsLeader() {
		t.Fatalf("after healthy renewals: a %v (%d), b %v", a.IsLeader(), a.Token(), b.IsLeader())
	}
	li, _, _ := dbB.LeaseState(lease)
	lastRenewal := li.Renewed
	_ = dbA.Close() // a is cut off from the database
	var aDown, bUp time.Time
	for i := 0; i < 40 && bUp.IsZero(); i++ {
		step(500 * time.Millisecond)
		now := h.clock.Now()
		if a.IsLeader() && b.IsLeader() {
			t.Fatalf("%s: both lead", now.Sub(t0))
		}
		if aDown.IsZero() && !a.IsLeader() {
			aDown = now
		}
		if bUp.IsZero() && b.IsLeader() {
			bUp = now
		}
	}
	if bUp.IsZero() {
		t.Fatal("b never took over")
	}
	if !aDown.Before(lastRenewal.Add(10 * time.Second)) {
		t.Errorf("a stood down at +%s after its last renewal, not before the ttl", aDown.Sub(lastRenewal))
	}
	if bUp.Before(lastRenewal.Add(10*time.Second)) || bUp.Sub(lastRenewal) > 15*time.Second {
		t.Errorf("b took over %s after a's last renewal, want in [10s, 15s]", bUp.Sub(lastRenewal))
	}
	if b.Token() <= 1 {
		t.Errorf("b's token %d, want above a's 1", b.Token())
	}
	t.Logf("a's last renewal +%s, a stood down +%s, b leads +%s (token %d)",
		lastRenewal.Sub(t0), aDown.Sub(t0), bUp.Sub(t0), b.Token())
	want := []string{"a false 1", fmt.Sprint("b true ", b.Token())}
	for _, w := range want {
		if got := <-events; got != w {
			t.Errorf("event %q, want %q", got, w)
		}
	}
	// a's late write through a fresh handle (its connection is back) is fenced out.
	late := open(t, url)
	err = late.Update(h.clock.Now(), func(tx *pgstore.Tx) error {
		if err := tx.SetCursor("job", "a-late"); err != nil {
			return err
		}
		return tx.CheckFence(lease, 1)
	})
	if access.CodeOf(err) != access.CodeConflict {
		t.Errorf("a's late write: %v", err)
	}
	if err := late.Update(h.clock.Now(), b.Fence); err != nil {
		t.Errorf("b's fence: %v", err)
	}
	if err := late.Update(h.clock.Now(), a.Fence); access.CodeOf(err) != access.CodeConflict {
		t.Errorf("a's fence: %v", err)
	}
	stop()
	wg.Wait()
	if err := b.Resign(); err != nil {
		t.Fatal(err)
	}
	if tok, held, _ := late.Lease(lease, "c", 10*time.Second, h.clock.Now()); !held || tok <= b.Token() {
		t.Errorf("after b resigned, c: token %d held %v", tok, held)
	}
}
