package handlers_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
)

func (e *env) delegate(from, to, until string, loc *time.Location, reason string) (access.Delegation, error) {
	return e.svc.Delegate(context.Background(), handlers.DelegateInput{SlackID: slackID(from), Email: from, ToEmail: to, Until: until, Loc: loc, Reason: reason})
}

func (e *env) mustDelegate(from, to, until string) access.Delegation {
	e.t.Helper()
	d, err := e.delegate(from, to, until, nil, "")
	if err != nil {
		e.t.Fatalf("delegate %s -> %s: %v", from, to, err)
	}
	return d
}

// count returns how many audit events of type typ there are.
func (e *env) count(typ access.EventType) int {
	n := 0
	for _, ev := range e.events("") {
		if ev == string(typ) {
			n++
		}
	}
	return n
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// The end date is the last day of the delegation, read in the delegator's
// time zone: today is allowed, yesterday and more than 90 days ahead are not.
func TestDelegationEnd(t *testing.T) {
	now := t0                                  // 2026-11-02 09:00 UTC
	honolulu := mustLoc(t, "Pacific/Honolulu") // 23:00 on 1 November there
	tokyo := mustLoc(t, "Asia/Tokyo")          // 18:00 on 2 November there
	cases := []struct {
		name, date string
		loc        *time.Location
		want       time.Time // zero: refused
		refusal    string
	}{
		{"today in UTC runs to midnight", "2026-11-02", nil, time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), ""},
		{"a week", "2026-11-09", time.UTC, time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC), ""},
		{"yesterday is the past", "2026-11-01", time.UTC, time.Time{}, "in the past"},
		{"yesterday in UTC is today in Honolulu", "2026-11-01", honolulu, time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), ""},
		{"Tokyo's midnight", "2026-11-02", tokyo, time.Date(2026, 11, 2, 15, 0, 0, 0, time.UTC), ""},
		{"90 days ahead is the latest", "2027-01-31", time.UTC, time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), ""},
		{"91 days ahead is too far", "2027-02-01", time.UTC, time.Time{}, "more than 90 days ahead"},
		{"not a date", "next friday", time.UTC, time.Time{}, "is not a date"},
		{"no such day", "2026-11-31", time.UTC, time.Time{}, "is not a date"},
		{"empty", "", time.UTC, time.Time{}, "is not a date"},
		{"time of day", "2026-11-09T10:00:00Z", time.UTC, time.Time{}, "is not a date"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := handlers.DelegationEnd(tc.date, tc.loc, now)
			if tc.refusal != "" {
				wantCode(t, err, access.CodeInvalid)
				if !strings.Contains(access.MessageOf(err), tc.refusal) {
					t.Fatalf("refusal %q, want it to say %q", access.MessageOf(err), tc.refusal)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("end %v, %v; want %v", got.UTC(), err, tc.want)
			}
		})
	}
}

// Creating a delegation: each rule is a clear refusal, audited.
func TestDelegationRules(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(e *env)
		from, to string
		until    string
		reason   string
		code     access.Code // "" = created
		refusal  string
	}{
		{"created", nil, "bob@example.com", "frank@example.com", "2026-11-09", "parental leave", "", ""},
		{"to yourself", nil, "bob@example.com", "BOB@example.com", "2026-11-09", "", access.CodeForbidden, "yourself"},
		{"unknown delegate", nil, "bob@example.com", "nobody@example.com", "2026-11-09", "", access.CodeUnknownUser, "no user with the email nobody@example.com"},
		{"suspended delegate", func(e *env) { e.idp.setStatus("frank@example.com", access.StatusSuspended) },
			"bob@example.com", "frank@example.com", "2026-11-09", "", access.CodeForbidden, "account is suspended"},
		{"in the past", nil, "bob@example.com", "frank@example.com", "2026-10-30", "", access.CodeInvalid, "in the past"},
		{"too far ahead", nil, "bob@example.com", "frank@example.com", "2027-06-01", "", access.CodeInvalid, "more than 90 days"},
		{"unparseable", nil, "bob@example.com", "frank@example.com", "soon", "", access.CodeInvalid, "not a date"},
		{"reason too long", nil, "bob@example.com", "frank@example.com", "2026-11-09", strings.Repeat("x", handlers.MaxDelegationReason+1), access.CodeInvalid, "limit"},
		{"a delegate cannot delegate away", func(e *env) { e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09") },
			"frank@example.com", "carol@example.com", "2026-11-09", "", access.CodeForbidden, "do not chain"},
		{"nobody who delegated away becomes a delegate", func(e *env) { e.mustDelegate("frank@example.com", "carol@example.com", "2026-11-09") },
			"bob@example.com", "frank@example.com", "2026-11-09", "", access.CodeForbidden, "do not chain"},
		{"an ended delegation does not chain", func(e *env) {
			e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-02")
			e.clock.Advance(24 * time.Hour)
		}, "frank@example.com", "carol@example.com", "2026-11-09", "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			refusedBefore := e.count(access.EvDelegationRefused)
			d, err := e.delegate(tc.from, tc.to, tc.until, nil, tc.reason)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.EqualFold(d.To.Email, tc.to) || !d.InForce(e.clock.Now()) || d.Reason != tc.reason {
					t.Fatalf("delegation %+v", d)
				}
				in, err := e.svc.DelegationsInForce()
				if err != nil || len(in) != 1 || in[0].ID != d.ID {
					t.Fatalf("in force: %+v, %v", in, err)
				}
				return
			}
			wantCode(t, err, tc.code)
			if !strings.Contains(access.MessageOf(err), tc.refusal) {
				t.Fatalf("refusal %q, want it to say %q", access.MessageOf(err), tc.refusal)
			}
			if got := e.count(access.EvDelegationRefused); got != refusedBefore+1 {
				t.Fatalf("%d delegation.refused events, want %d", got, refusedBefore+1)
			}
			e.verify()
		})
	}
}

// A new delegation replaces the one in force; off ends it; both audited.
func TestDelegationReplaceAndOff(t *testing.T) {
	e := newEnv(t)
	first := e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
	second := e.mustDelegate("bob@example.com", "carol@example.com", "2026-11-12")
	in, err := e.svc.DelegationsInForce()
	if err != nil || len(in) != 1 || in[0].ID != second.ID || in[0].To.Email != "carol@example.com" {
		t.Fatalf("in force after replacing: %+v %v", in, err)
	}
	off, err := e.svc.EndDelegation(context.Background(), slackID("bob@example.com"), "bob@example.com")
	if err != nil || off.ID != second.ID || off.EndReason != access.DelegationEndOff {
		t.Fatalf("off: %+v %v", off, err)
	}
	_, err = e.svc.EndDelegation(context.Background(), slackID("bob@example.com"), "bob@example.com")
	wantCode(t, err, access.CodeNotFound)
	if in, _ := e.svc.DelegationsInForce(); len(in) != 0 {
		t.Fatalf("still in force: %+v", in)
	}
	if c, n, r := e.count(access.EvDelegationCreated), e.count(access.EvDelegationEnded), e.count(access.EvDelegationRefused); c != 2 || n != 2 || r != 1 {
		t.Fatalf("created %d ended %d refused %d, want 2 2 1", c, n, r)
	}
	var ended []access.DelegationDetail
	_ = e.svc.Events(0, func(ev access.Event) error {
		if ev.Type == access.EvDelegationEnded {
			var d access.DelegationDetail
			if err := access.DecodeDetail(ev, &d); err != nil {
				t.Fatal(err)
			}
			ended = append(ended, d)
		}
		return nil
	})
	if ended[0].Delegation != first.ID || ended[0].EndReason != access.DelegationEndReplaced || ended[1].EndReason != access.DelegationEndOff {
		t.Fatalf("ended events %+v", ended)
	}
	e.verify()
}

// Offboarding a delegator or a delegate ends their delegations in force,
// even when they have no request of their own, in the offboarding's
// transaction; a third person's delegation is untouched.
func TestOffboardingEndsDelegations(t *testing.T) {
	for _, who := range []string{"bob@example.com", "frank@example.com"} {
		t.Run(who, func(t *testing.T) {
			e := newEnv(t)
			d := e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
			other := e.mustDelegate("carol@example.com", "dave@example.com", "2026-11-09")
			u, err := e.idp.UserByEmail(context.Background(), who)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.Offboard(context.Background(), u, handlers.Trigger{Source: "user.lifecycle.deactivate", IdPEventID: "ev-" + who}); err != nil {
				t.Fatal(err)
			}
			in, err := e.svc.DelegationsInForce()
			if err != nil || len(in) != 1 || in[0].ID != other.ID {
				t.Fatalf("in force after offboarding %s: %+v %v; want only %s", who, in, err, other.ID)
			}
			var got access.DelegationDetail
			var ended, offboarded int
			_ = e.svc.Events(0, func(ev access.Event) error {
				switch ev.Type {
				case access.EvUserOffboarded:
					offboarded++
				case access.EvDelegationEnded:
					ended++
					if ev.Actor != access.ActorKeycard {
						t.Errorf("delegation.ended actor %q, want keycard", ev.Actor)
					}
					return access.DecodeDetail(ev, &got)
				}
				return nil
			})
			if offboarded != 1 || ended != 1 || got.Delegation != d.ID || got.EndReason != access.DelegationEndOffboarded {
				t.Fatalf("user.offboarded %d, delegation.ended %d %+v; want 1, 1 for %s (offboarded)", offboarded, ended, got, d.ID)
			}
			e.verify()
		})
	}
}

// The holder sweep, the safety net under the lifecycle feed (and the only
// way leavers are found on an IdP without one), looks at both sides of
// every delegation in force too: a deactivated delegator with no request,
// or one deleted from the IdP before the feed read the deactivation.
func TestSweepEndsDelegationsOfLeavers(t *testing.T) {
	cases := []struct {
		name  string
		leave func(e *env)
	}{
		{"delegator and delegate deactivated, no requests", func(e *env) {
			e.idp.setStatus("carol@example.com", access.StatusDeprovisioned)
			e.idp.setStatus("frank@example.com", access.StatusDeprovisioned)
		}},
		{"delegator deleted before the feed read the deactivation", func(e *env) {
			const id = "00ucarol" // the fake IdP's id for carol@example.com
			e.idp.mu.Lock()
			delete(e.idp.users, id)
			e.idp.mu.Unlock()
			feed := func(context.Context, string) ([]handlers.Deactivation, string, error) {
				return []handlers.Deactivation{{ID: "uuid-1", Type: "user.lifecycle.deactivate", UserID: id, Published: e.clock.Now()}}, "after-1", nil
			}
			if _, err := e.svc.PollDeactivations(context.Background(), "okta", feed, e.clock.Now().Add(-time.Hour)); err != nil {
				e.t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustDelegate("carol@example.com", "frank@example.com", "2026-11-09")
			kept := e.mustDelegate("bob@example.com", "dave@example.com", "2026-11-09")
			c.leave(e)
			if _, err := e.svc.SweepHolders(context.Background()); err != nil {
				t.Fatal(err)
			}
			in, err := e.svc.DelegationsInForce()
			if err != nil || len(in) != 1 || in[0].ID != kept.ID {
				t.Fatalf("in force after the sweep: %+v %v; want only %s", in, err, kept.ID)
			}
			if n := e.count(access.EvDelegationEnded); n != 1 {
				t.Fatalf("%d delegation.ended events, want 1", n)
			}
			e.verify()
		})
	}
}

// The scheduler records an expiry at the delegation's end date, once.
func TestDelegationExpiry(t *testing.T) {
	e := newEnv(t)
	d := e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-03") // ends 2026-11-04T00:00Z
	next, err := e.svc.Tick(context.Background())
	if err != nil || !next.Equal(d.Until) {
		t.Fatalf("next due %v, %v; want the delegation's end %v", next, err, d.Until)
	}
	e.clock.Advance(2 * 24 * time.Hour)
	e.settle()
	e.settle()
	if n := e.count(access.EvDelegationEnded); n != 1 {
		t.Fatalf("%d delegation.ended events, want 1", n)
	}
	var got access.DelegationDetail
	_ = e.svc.Events(0, func(ev access.Event) error {
		if ev.Type == access.EvDelegationEnded {
			if ev.Actor != access.ActorScheduler {
				t.Errorf("expiry actor %q", ev.Actor)
			}
			return access.DecodeDetail(ev, &got)
		}
		return nil
	})
	if got.EndReason != access.DelegationEndExpired || !got.EndedAt.Equal(d.Until) {
		t.Fatalf("expiry detail %+v, want ended at %v", got, d.Until)
	}
}

// putChainedDelegation writes a delegation straight into the store, past
// Delegate's creation rules (a store edited by hand, a rule changed later):
// the click must refuse the chain on its own, as defence in depth.
func (e *env) putChainedDelegation(id, from, to string) {
	e.t.Helper()
	d := access.Delegation{ID: id, From: access.Person{Email: from}, To: access.Person{Email: to}, CreatedAt: e.clock.Now(), Until: e.clock.Now().Add(72 * time.Hour)}
	err := adapt.Store(e.db).Update(e.clock.Now(), func(tx handlers.Tx) error {
		if err := tx.PutDoc(handlers.DocDelegation, id, d); err != nil {
			return err
		}
		return tx.PutDoc("delegation.in_force", from, id)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// Authorization at the click: the delegation must be in force when the
// delegate clicks, straight from a candidate, and never lets anyone decide
// their own request or a second step.
func TestDelegateAtClick(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(e *env, id string) // after ann's prod-db-admin request
		who     string                  // clicks step 1 (bob's manager step) unless step says otherwise
		step    int
		approve bool
		refusal string // "" = decided
		code    access.Code
	}{
		{"delegate approves", func(e *env, _ string) { e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09") },
			"frank@example.com", 0, true, "", ""},
		{"delegate denies", func(e *env, _ string) { e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09") },
			"frank@example.com", 0, false, "", ""},
		{"delegation expired at the click, before the scheduler saw it", func(e *env, _ string) {
			e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-02")
			e.clock.Advance(16 * time.Hour) // 2026-11-03T01:00Z
		}, "frank@example.com", 0, true, "ended at 2026-11-03T00:00:00Z", access.CodeForbidden},
		{"delegation expired and recorded", func(e *env, _ string) {
			e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-02")
			e.clock.Advance(16 * time.Hour)
			e.settle()
		}, "frank@example.com", 0, true, "(DLG-1) ended at 2026-11-03T00:00:00Z", access.CodeForbidden},
		{"delegation turned off while the DM was out", func(e *env, _ string) {
			e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
			if _, err := e.svc.EndDelegation(context.Background(), slackID("bob@example.com"), "bob@example.com"); err != nil {
				e.t.Fatal(err)
			}
		}, "frank@example.com", 0, true, "was turned off by Bob Boss", access.CodeForbidden},
		{"self-approval through a delegation", func(e *env, _ string) { e.mustDelegate("bob@example.com", "ann@example.com", "2026-11-09") },
			"ann@example.com", 0, true, "not even as Bob Boss's delegate", access.CodeForbidden},
		{"a delegate's delegate", func(e *env, _ string) {
			e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
			e.putChainedDelegation("DLG-99", "frank@example.com", "mallory@example.com")
		}, "mallory@example.com", 0, true, "do not chain", access.CodeForbidden},
		{"delegation from someone who is not an approver", func(e *env, _ string) { e.mustDelegate("erin@example.com", "frank@example.com", "2026-11-09") },
			"frank@example.com", 0, true, "not an approver of step 1", access.CodeForbidden},
		{"the person delegated for is no longer the manager", func(e *env, _ string) {
			e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
			e.idp.setManager("ann@example.com", "erin@example.com")
		}, "frank@example.com", 0, true, "Bob Boss, for whom you would decide as their delegate, is no longer an approver", access.CodeForbidden},
		{"the delegate approved the first step", func(e *env, id string) {
			e.mustDelegate("bob@example.com", "carol@example.com", "2026-11-09")
			if _, err := e.decide(id, 0, "carol@example.com", true, ""); err != nil {
				e.t.Fatal(err)
			}
		}, "carol@example.com", 1, true, "You already approved step 1", access.CodeForbidden},
		{"the delegator approved the first step", func(e *env, id string) {
			e.mustDelegate("dave@example.com", "frank@example.com", "2026-11-09")
			e.mustDelegate("carol@example.com", "frank@example.com", "2026-11-09")
			if _, err := e.decide(id, 0, "bob@example.com", true, ""); err != nil {
				e.t.Fatal(err)
			}
			e.mustDelegate("bob@example.com", "mallory@example.com", "2026-11-09")
		}, "mallory@example.com", 1, true, "Bob Boss already approved step 1", access.CodeForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.setMember("security-team", "bob@example.com", true) // bob may be asked at both steps
			r, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "INC-9")
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(e, r.ID)
			refusedBefore := e.count(access.EvDecisionRefused)
			got, err := e.decide(r.ID, tc.step, tc.who, tc.approve, "covering")
			if tc.refusal != "" {
				wantCode(t, err, tc.code)
				if !strings.Contains(access.MessageOf(err), tc.refusal) {
					t.Fatalf("refusal %q, want it to say %q", access.MessageOf(err), tc.refusal)
				}
				if n := e.count(access.EvDecisionRefused); n != refusedBefore+1 {
					t.Fatalf("%d decision.refused events, want %d", n, refusedBefore+1)
				}
				if st := e.get(r.ID).Steps[tc.step]; st.Decision != access.DecisionNone {
					t.Fatalf("step decided anyway: %+v", st)
				}
				e.verify()
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st := got.Steps[0]
			if st.DecidedBy.Email != tc.who || st.OnBehalfOf.Email != "bob@example.com" || st.Delegation != "DLG-1" {
				t.Fatalf("step recorded as %+v", st)
			}
			if st.DeciderLabel() != "Frank Admin for Bob Boss" {
				t.Errorf("decider label %q", st.DeciderLabel())
			}
			wantType := access.EvStepApproved
			if !tc.approve {
				wantType = access.EvRequestDenied
				wantState(t, got, access.StateDenied)
			}
			var detail map[string]any
			_ = e.svc.Events(0, func(ev access.Event) error {
				if ev.Type == wantType && ev.RequestID == r.ID {
					return access.DecodeDetail(ev, &detail)
				}
				return nil
			})
			if detail["for"] != "bob@example.com" || detail["delegation"] != "DLG-1" {
				t.Fatalf("%s detail %v", wantType, detail)
			}
			in, _ := e.svc.DelegationsInForce()
			if len(in) != 1 || len(in[0].Decisions) != 1 || !strings.HasPrefix(in[0].Decisions[0], r.ID+" step 1 ") {
				t.Fatalf("delegation's decisions: %+v", in)
			}
			e.verify()
		})
	}
}

// The decision record, the access export's approval_chain and the
// delegations export show who decided for whom; the export's record check
// holds the delegated fields to the chain.
func TestDelegationEvidence(t *testing.T) {
	e := newEnv(t)
	e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
	if _, err := e.delegate("carol@example.com", "dave@example.com", "2026-11-02", nil, "=HYPERLINK(\"x\") offsite"); err != nil {
		t.Fatal(err)
	}
	r, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "INC-9")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.decide(r.ID, 0, "frank@example.com", true, "covering for Bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.decide(r.ID, 1, "carol@example.com", true, ""); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.clock.Advance(20 * time.Hour) // carol's delegation expires at midnight
	e.settle()
	if _, err := e.delegate("erin@example.com", "carol@example.com", "2026-11-20", nil, "audit week"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.EndDelegation(context.Background(), slackID("erin@example.com"), "erin@example.com"); err != nil {
		t.Fatal(err)
	}

	chain := handlers.ApprovalChain(ptr(e.get(r.ID)))
	want := "approved by frank@example.com for bob@example.com (delegation DLG-1 from bob@example.com to frank@example.com) at 2026-11-02T09:00:00Z (covering for Bob)"
	if !strings.Contains(chain, want) {
		t.Fatalf("approval_chain %q\nwant it to contain %q", chain, want)
	}
	var access_ bytes.Buffer
	if _, err := e.svc.Export(t.Context(), &access_, handlers.ExportRequest{Kind: handlers.KindAccess, Params: handlers.ExportParams{From: t0.Add(-time.Hour), To: t0.Add(48 * time.Hour)}, By: "erin@example.com"}); err != nil {
		t.Fatalf("access export (record check): %v", err)
	}
	if !strings.Contains(access_.String(), want) {
		t.Fatalf("access export lacks the delegated decision:\n%s", access_.String())
	}

	var out bytes.Buffer
	m, err := e.svc.Export(t.Context(), &out, handlers.ExportRequest{Kind: handlers.KindDelegations, By: "erin@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "delegations.golden.csv", out.Bytes())
	rows, err := csv.NewReader(bytes.NewReader(out.Bytes())).ReadAll()
	if err != nil || len(rows) != 4 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	if m.RowCount != 3 || m.CountsColumn != "status" || m.Counts["in_force"] != 1 || m.Counts["ended"] != 2 || m.InclusionRule == "" {
		t.Fatalf("manifest rows %d counts %v (%s) inclusion %q", m.RowCount, m.Counts, m.CountsColumn, m.InclusionRule)
	}
	// A period after carol's and erin's delegations ended leaves them out.
	out.Reset()
	m, err = e.svc.Export(t.Context(), &out, handlers.ExportRequest{Kind: handlers.KindDelegations, By: "erin@example.com",
		Params: handlers.ExportParams{From: time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)}})
	if err != nil || m.RowCount != 1 || !strings.Contains(out.String(), "DLG-1,") {
		t.Fatalf("period export: %d rows, %v\n%s", m.RowCount, err, out.String())
	}
	e.verify()
}

// Tampering with a delegated decision in the stored record is caught by the
// access export's record check.
func TestDelegatedDecisionAttested(t *testing.T) {
	e := newEnv(t)
	e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
	r, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "INC-9")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.decide(r.ID, 0, "frank@example.com", true, ""); err != nil {
		t.Fatal(err)
	}
	err = adapt.Store(e.db).Update(e.clock.Now(), func(tx handlers.Tx) error {
		got, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		got.Steps[0].OnBehalfOf = access.Person{Email: "mallory@example.com"}
		return tx.PutRequest(&got)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.ExportAccess(&bytes.Buffer{}, handlers.ExportParams{From: t0.Add(-time.Hour), To: t0.Add(time.Hour)})
	wantCode(t, err, access.CodeIntegrity)
}

func ptr[T any](v T) *T { return &v }
