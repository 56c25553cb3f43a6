package auditstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"keycard/access"
	"keycard/handlers"
)

// CursorName is the store cursor holding the seq of the last event the
// sink acknowledged ("" before the first).
const CursorName = "auditstream.seq"

// Defaults of Options.
const (
	DefaultMaxEvents   = 500
	DefaultMaxBytes    = 1 << 20 // Splunk HEC's max_content_length is 1 MB in older releases; most webhooks take more
	DefaultPoll        = 5 * time.Second
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 5 * time.Minute
)

// Options configure a Stream. Sink and Clock are required.
type Options struct {
	Sink Sink // its Format decides the lines' format
	// Clock is "now" and the timer the loop waits on (its After: time.After
	// in main, a fakeclock's in tests): the stream never sleeps on the wall
	// clock itself.
	Clock access.Clock
	// Wake, when not nil, nudges the stream after a commit so events go out
	// at once; without it (or between nudges) the stream polls every Poll.
	// It is not listened to while backing off after a failure.
	Wake <-chan struct{}
	Poll time.Duration

	MaxEvents int // events per batch
	MaxBytes  int // encoded bytes per batch (a single larger event still goes, alone)

	BackoffBase, BackoffMax time.Duration
	// Jitter turns a backoff step d into the actual wait; default a uniform
	// pick in [d/2, d) so that several keycards do not retry in lockstep.
	Jitter func(d time.Duration) time.Duration

	Logger   *slog.Logger
	Instance string // goes into every record (and HEC's host)
	Version  string // keycard's version, into every record
}

// Stream delivers the audit log to a sink from a durable cursor.
type Stream struct {
	store    handlers.Store
	opt      Options
	log      *slog.Logger
	failures atomic.Uint64
	sent     atomic.Uint64
}

// New returns a stream over st (adapt.Store(db) in main).
func New(st handlers.Store, opt Options) (*Stream, error) {
	if st == nil || opt.Sink == nil || opt.Clock == nil {
		return nil, errors.New("auditstream: New needs a store, a sink and a clock")
	}
	if opt.Poll <= 0 {
		opt.Poll = DefaultPoll
	}
	if opt.MaxEvents <= 0 {
		opt.MaxEvents = DefaultMaxEvents
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = DefaultMaxBytes
	}
	if opt.BackoffBase <= 0 {
		opt.BackoffBase = DefaultBackoffBase
	}
	if opt.BackoffMax < opt.BackoffBase {
		opt.BackoffMax = max(DefaultBackoffMax, opt.BackoffBase)
	}
	if opt.Jitter == nil {
		opt.Jitter = func(d time.Duration) time.Duration {
			if d < 2 {
				return d
			}
			return d/2 + rand.N(d/2)
		}
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stream{store: st, opt: opt, log: log.With("component", "auditstream")}, nil
}

// Setup is the wiring in one call: the stream cfg asks for, its sink opened
// with so, or (nil, nil) when no stream is configured. Close it on shutdown.
func Setup(cfg Config, st handlers.Store, opt Options, so SinkOptions) (*Stream, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if so.Clock == nil {
		so.Clock = opt.Clock
	}
	sink, err := Open(cfg, so)
	if err != nil {
		return nil, err
	}
	opt.Sink = sink
	s, err := New(st, opt)
	if err != nil {
		sink.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the sink (closes the file, idle connections).
func (s *Stream) Close() error { return s.opt.Sink.Close() }

// Run delivers until ctx ends, then returns nil. Failures are logged and
// retried with exponential backoff and jitter; they never end the loop, so
// a receiver outage only delays delivery (Lag shows by how much).
func (s *Stream) Run(ctx context.Context) error {
	attempt := 0
	for {
		b, more, err := s.Once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait, wake := s.opt.Poll, s.opt.Wake
		switch {
		case err != nil:
			s.failures.Add(1)
			wait, wake = s.backoff(attempt), nil
			attempt++
			s.log.Warn("audit stream delivery failed; retrying", "first_seq", b.First, "last_seq", b.Last, "attempt", attempt, "in", wait, "err", err)
		case more:
			attempt = 0
			continue
		default:
			attempt = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-s.opt.Clock.After(wait):
		}
	}
}

// backoff is the wait after the attempt-th consecutive failure (0-based):
// BackoffBase doubling up to BackoffMax, jittered.
func (s *Stream) backoff(attempt int) time.Duration {
	d := s.opt.BackoffBase
	for i := 0; i < attempt && d < s.opt.BackoffMax; i++ {
		d *= 2
	}
	return s.opt.Jitter(min(d, s.opt.BackoffMax))
}

// Once reads the next batch after the cursor, delivers it and moves the
// cursor past it. It returns the batch (empty when caught up), whether more
// events were waiting behind it, and the error that left the cursor where
// it was.
func (s *Stream) Once(ctx context.Context) (Batch, bool, error) {
	b, more, err := s.read()
	if err != nil || b.Count == 0 {
		return b, false, err
	}
	if err := s.opt.Sink.Deliver(ctx, b); err != nil {
		return b, more, err
	}
	err = s.store.Update(s.opt.Clock.Now(), func(tx handlers.Tx) error {
		return tx.SetCursor(CursorName, strconv.FormatUint(b.Last, 10))
	})
	if err != nil {
		// Delivered but not recorded: the batch goes again (at least once).
		return b, more, fmt.Errorf("audit stream cursor: %w", err)
	}
	s.sent.Add(uint64(b.Count))
	return b, more, nil
}

var errFull = errors.New("batch full")

// read encodes the events after the cursor, up to MaxEvents or MaxBytes,
// in one read transaction (no network inside it).
func (s *Stream) read() (Batch, bool, error) {
	var b Batch
	more := false
	err := s.store.View(func(tx handlers.Tx) error {
		after, err := cursor(tx)
		if err != nil {
			return err
		}
		err = tx.Events(after, func(e access.Event) error {
			if b.Count == s.opt.MaxEvents {
				more = true
				return errFull
			}
			line, err := encode(s.opt.Sink.Format(), NewRecord(e, s.opt.Instance, s.opt.Version), e.Time)
			if err != nil {
				return fmt.Errorf("audit stream: encode event %d: %w", e.Seq, err)
			}
			if b.Count > 0 && len(b.Body)+len(line) > s.opt.MaxBytes {
				more = true
				return errFull
			}
			if b.Count == 0 {
				b.First = e.Seq
			}
			b.Last = e.Seq
			b.Count++
			b.Body = append(b.Body, line...)
			return nil
		})
		if errors.Is(err, errFull) {
			return nil
		}
		return err
	})
	return b, more, err
}

func cursor(tx handlers.Tx) (uint64, error) {
	v, err := tx.Cursor(CursorName)
	if err != nil || v == "" {
		return 0, err
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("audit stream cursor %q: %w", v, err)
	}
	return n, nil
}

// Lag is how far the stream is behind the audit log, for /metrics.
type Lag struct {
	Head      uint64        // newest event's seq
	Delivered uint64        // seq of the last acknowledged event
	Events    uint64        // Head - Delivered
	Oldest    time.Duration // age of the oldest undelivered event (0 when caught up)
	Failures  uint64        // failed delivery attempts since start
	Sent      uint64        // events delivered since start
}

// Lag reads the cursor and the head in one read transaction.
func (s *Stream) Lag() (Lag, error) {
	l := Lag{Failures: s.failures.Load(), Sent: s.sent.Load()}
	now := s.opt.Clock.Now()
	err := s.store.View(func(tx handlers.Tx) error {
		var err error
		if l.Delivered, err = cursor(tx); err != nil {
			return err
		}
		l.Head, _, _ = tx.Head()
		if l.Head <= l.Delivered {
			return nil
		}
		l.Events = l.Head - l.Delivered
		e, err := tx.Event(l.Delivered + 1)
		if err != nil {
			return err
		}
		l.Oldest = max(now.Sub(e.Time), 0)
		return nil
	})
	return l, err
}
