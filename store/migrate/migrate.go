// Package migrate copies a bbolt store into an empty PostgreSQL database
// (`keycard migrate --to URL [--db PATH]`, SPEC "Beyond one machine").
//
// Copy refuses a destination that holds anything, checks the source's audit
// chain before it writes, streams every kind from one bbolt read
// transaction into one PostgreSQL transaction with COPY (the file is never
// held in memory whole), and before that transaction commits checks the
// copied chain with the same verifier (same count, same head hash) and
// compares the counts of every kind. Any difference rolls the copy back, so
// the destination is either a complete, verified copy or still empty.
// Requests and events are copied byte for byte in the shared encodings
// (store.EncodeRequest, the canonical event + hash), so ids, hashes and
// `keycard audit verify` agree on both sides.
package migrate

import (
	"context"
	"fmt"
	"iter"

	"keycard/access"
	"keycard/store"
	pgstore "keycard/store/postgres"
)

// Report is what Copy did.
type Report struct {
	Source store.Counts // counted in the bbolt file
	Dest   store.Counts // counted in PostgreSQL after the copy
	Events uint64       // events verified on both sides
	Head   string       // the audit head hash both sides agree on
	// RequestSeq and OpSeq are the counters the copy continues from.
	RequestSeq, OpSeq uint64
}

// Kinds pairs the source and destination counts by kind, for a report.
func (r Report) Kinds() []KindReport {
	src, dst := r.Source.Kinds(), r.Dest.Kinds()
	out := make([]KindReport, len(src))
	for i := range src {
		out[i] = KindReport{Kind: src[i].Kind, Source: src[i].N, Dest: dst[i].N}
	}
	return out
}

// KindReport is one kind's counts on both sides.
type KindReport struct {
	Kind         string
	Source, Dest int64
}

// progressEvery is how many rows pass between progress calls.
const progressEvery = 10000

// Copy copies everything src holds into dst, which must be empty
// (CodeConflict otherwise). progress (may be nil) is called now and then
// with the rows copied so far and the total. A source chain that does not
// verify fails with CodeIntegrity before anything is written.
func Copy(ctx context.Context, src *store.DB, dst *pgstore.DB, progress func(done, total int64)) (Report, error) {
	var rep Report
	srcRes, err := src.Verify(1, nil)
	if err != nil {
		return rep, fmt.Errorf("migrate: verify the source chain: %w", err)
	}
	if !srcRes.OK() {
		return rep, access.Wrap(access.CodeIntegrity, srcRes.Err(),
			"The audit chain in %s does not verify (%s); nothing was copied.", src.Path(), srcRes.Problem)
	}
	rep.Events, rep.Head = srcRes.Count, srcRes.Head

	err = src.View(func(stx *store.Tx) error {
		var err error
		if rep.Source, err = stx.Counts(); err != nil {
			return err
		}
		rep.RequestSeq, rep.OpSeq = stx.Sequences()
		total := rep.Source.Total()
		return dst.Load(ctx, func(l *pgstore.Loader) error {
			var done int64
			if progress != nil {
				progress(0, total)
				l.Row = func() {
					done++
					if done%progressEvery == 0 {
						progress(done, total)
					}
				}
			}
			if err := load(stx, l); err != nil {
				return err
			}
			if err := l.Sequences(rep.RequestSeq, rep.OpSeq); err != nil {
				return fmt.Errorf("migrate: counters: %w", err)
			}
			if rep.Dest, err = l.Counts(); err != nil {
				return fmt.Errorf("migrate: count the copy: %w", err)
			}
			if rep.Dest != rep.Source {
				return access.Errorf(access.CodeIntegrity, "The copy's counts differ from the source's: %s; nothing was copied.", diff(rep))
			}
			dstRes, err := l.Verify()
			if err != nil {
				return fmt.Errorf("migrate: verify the copied chain: %w", err)
			}
			if !dstRes.OK() || dstRes.Count != srcRes.Count || dstRes.Head != srcRes.Head {
				return access.Errorf(access.CodeIntegrity,
					"The copied audit chain differs from the source's (%d events, head %.12s…, %q against %d events, head %.12s…); nothing was copied.",
					dstRes.Count, dstRes.Head, dstRes.Problem, srcRes.Count, srcRes.Head)
			}
			if progress != nil {
				progress(done, total)
			}
			return nil
		})
	})
	if err != nil {
		return rep, err
	}
	// Once committed, check again through the store's own reader.
	dstRes, err := dst.Verify(1, nil)
	if err != nil {
		return rep, fmt.Errorf("migrate: verify the destination chain: %w", err)
	}
	if !dstRes.OK() || dstRes.Count != srcRes.Count || dstRes.Head != srcRes.Head {
		return rep, access.Errorf(access.CodeIntegrity,
			"The audit chain in PostgreSQL does not match the source after the copy: %d events, head %s, %s", dstRes.Count, dstRes.Head, dstRes.Problem)
	}
	return rep, nil
}

func diff(r Report) string {
	s := ""
	for _, k := range r.Kinds() {
		if k.Source != k.Dest {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%s %d in the file, %d copied", k.Kind, k.Source, k.Dest)
		}
	}
	return s
}

// load streams every kind from stx into l.
func load(stx *store.Tx, l *pgstore.Loader) error {
	steps := []struct {
		kind string
		run  func() (int64, error)
	}{
		{"requests", func() (int64, error) {
			return l.Requests(walk(stx.DumpRequests))
		}},
		{"events", func() (int64, error) {
			return l.Events(walk2(stx.DumpEvents, func(seq uint64, v []byte) pgstore.EventRow { return pgstore.EventRow{Seq: seq, Value: v} }))
		}},
		{"ops", func() (int64, error) {
			return l.Ops(walk2(stx.DumpOps, func(id uint64, v []byte) pgstore.OpRow { return pgstore.OpRow{ID: id, JSON: v} }))
		}},
		{"pins", func() (int64, error) {
			return l.Pins(walk2(stx.DumpPins, func(id string, v []byte) pgstore.PinRow { return pgstore.PinRow{SlackID: id, JSON: v} }))
		}},
		{"message refs", func() (int64, error) {
			return l.MessageRefs(walk(stx.DumpMessageRefs))
		}},
		{"cursors", func() (int64, error) {
			return l.Cursors(walk2(stx.DumpCursors, func(n, v string) pgstore.CursorRow { return pgstore.CursorRow{Name: n, Value: v} }))
		}},
		{"seen keys", func() (int64, error) {
			return l.Seen(func(yield func(pgstore.SeenRow, error) bool) {
				pump(yield, stx.DumpSeen(func(k string, at, exp int64) error {
					return cont(yield(pgstore.SeenRow{Key: k, AtNs: at, ExpNs: exp}, nil))
				}))
			})
		}},
		{"static memberships", func() (int64, error) {
			return l.Static(func(yield func(pgstore.StaticRow, error) bool) {
				pump(yield, stx.DumpStatic(func(c, g, u string) error {
					return cont(yield(pgstore.StaticRow{Connector: c, Group: g, UserID: u}, nil))
				}))
			})
		}},
		{"documents", func() (int64, error) {
			return l.Docs(func(yield func(pgstore.DocRow, error) bool) {
				pump(yield, stx.DumpDocs(func(k, id string, v []byte) error {
					return cont(yield(pgstore.DocRow{Kind: k, ID: id, JSON: v}, nil))
				}))
			})
		}},
	}
	for _, s := range steps {
		if _, err := s.run(); err != nil {
			return fmt.Errorf("migrate: copy %s: %w", s.kind, err)
		}
	}
	return nil
}

// cont turns yield's answer into the walk's: stop when the consumer stopped.
func cont(more bool) error {
	if more {
		return nil
	}
	return store.ErrStop
}

// pump hands a walk's error (if any) to the consumer as the last element.
func pump[T any](yield func(T, error) bool, err error) {
	if err != nil {
		var zero T
		yield(zero, err)
	}
}

// walk turns a one-value Dump method into a sequence.
func walk(dump func(func([]byte) error) error) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		pump(yield, dump(func(v []byte) error { return cont(yield(v, nil)) }))
	}
}

// walk2 turns a two-value Dump method into a sequence of rows.
func walk2[A, B, R any](dump func(func(A, B) error) error, row func(A, B) R) iter.Seq2[R, error] {
	return func(yield func(R, error) bool) {
		pump(yield, dump(func(a A, b B) error { return cont(yield(row(a, b), nil)) }))
	}
}
