package handlers_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"slices"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/store"
)

// queuedOps counts the provisioning operations waiting in the outbox.
func (e *env) queuedOps() int {
	e.t.Helper()
	n := 0
	if err := e.db.View(func(tx *store.Tx) error {
		return tx.Ops(func(access.Op) error { n++; return nil })
	}); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) submitAt(email, pol string, start time.Time, why string) (access.Request, error) {
	return e.svc.Submit(context.Background(), handlers.SubmitInput{SlackID: slackID(email), Email: email, Policy: pol,
		Justification: why, StartAt: start})
}

// approvedFrom is ann's prod-db-admin request starting at start, approved
// by every step (scheduled until its start).
func (e *env) approvedFrom(start time.Time, why string) access.Request {
	e.t.Helper()
	r, err := e.submitAt("ann@example.com", "prod-db-admin", start, why)
	if err != nil {
		e.t.Fatal(err)
	}
	e.approveAll(r.ID)
	return r
}

// removes counts the removals sent to the IdP.
func (f *fakeIdP) removes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls["remove"]
}

// refusedWith reports whether a request.refused event says why.
func (e *env) refusedWith(why string) bool {
	e.t.Helper()
	found := false
	if err := e.svc.Events(0, func(ev access.Event) error {
		if ev.Type == access.EvRequestRefused && strings.Contains(ev.Detail, why) {
			found = true
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return found
}

func TestScheduledSubmission(t *testing.T) {
	cases := []struct {
		name  string
		start time.Duration // from now; 0: start now
		code  access.Code
		state access.State // after approval
		says  string       // the refusal names this (and the audit says it too)
	}{
		{"start now", 0, "", access.StateProvisioning, ""},
		{"start in 2 days", 48 * time.Hour, "", access.StateScheduled, ""},
		{"a start a minute ago is now", -time.Minute, "", access.StateProvisioning, ""},
		{"beyond schedule_ahead", 15 * 24 * time.Hour, access.CodeBadStart, "", "at most 2w ahead (policy prod-db-admin, schedule_ahead)"},
		{"in the past", -2 * time.Hour, access.CodeBadStart, "", "is in the past"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			var start time.Time
			if c.start != 0 {
				start = e.clock.Now().Add(c.start)
			}
			r, err := e.submitAt("ann@example.com", "prod-db-admin", start, "INC-1")
			if c.code != "" {
				wantCode(t, err, c.code)
				if !strings.Contains(access.MessageOf(err), c.says) {
					t.Fatalf("message %q does not say %q", access.MessageOf(err), c.says)
				}
				if !e.refusedWith(c.says) {
					t.Fatal("the refusal was not audited")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			e.approveAll(r.ID)
			if c.state == access.StateScheduled && e.queuedOps() != 0 {
				t.Fatalf("an IdP add was queued at the approval of a scheduled start (%d ops)", e.queuedOps())
			}
			e.settle()
			r = e.get(r.ID)
			want := c.state
			if want == access.StateProvisioning {
				want = access.StateActive // settle ran the outbox
			}
			wantState(t, r, want)
			if want == access.StateScheduled {
				if !r.StartAt.Equal(start) || !r.NextDue().Equal(start) || r.ExportStatus() != "pending" {
					t.Fatalf("start %v due %v status %s", r.StartAt, r.NextDue(), r.ExportStatus())
				}
				if e.idp.isMember("prod-db-admins", "ann@example.com") || e.queuedOps() != 0 {
					t.Fatalf("provisioned (or an add queued: %d ops) before the start", e.queuedOps())
				}
			}
			e.verify()
		})
	}
}

// The scheduler provisions at the start on the fake clock, and the
// grant's clock starts then: ends_at = start + duration.
func TestScheduledStartProvisionsAndStartsTheClock(t *testing.T) {
	e := newEnv(t)
	start := e.clock.Now().Add(48 * time.Hour)
	r := e.approvedFrom(start, "change window")
	e.settle()
	e.clock.Advance(47 * time.Hour)
	e.settle()
	wantState(t, e.get(r.ID), access.StateScheduled)
	if holders, err := e.svc.Active(false); err != nil || len(holders) != 0 {
		t.Fatalf("a grant that has not started counts as active: %v %v", holders, err)
	}
	e.clock.Advance(time.Hour) // the start
	e.settle()
	r = e.get(r.ID)
	wantState(t, r, access.StateActive)
	if !r.ProvisionedAt.Equal(start) || !r.EndsAt.Equal(start.Add(4*time.Hour)) || !r.AccessStart().Equal(start) {
		t.Fatalf("provisioned %v, ends %v, access start %v; want the clock from %v", r.ProvisionedAt, r.EndsAt, r.AccessStart(), start)
	}
	if !e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("not added at the start")
	}
	evs := e.events(r.ID)
	if i, j := slices.Index(evs, "grant.starting"), slices.Index(evs, "grant.active"); i < 0 || j < i {
		t.Fatalf("events %v", evs)
	}
	e.clock.Advance(4 * time.Hour)
	e.settle()
	wantState(t, e.get(r.ID), access.StateExpired)
	e.verify()
}

// Cancelled by the requester, revoked by an admin or offboarded before
// the start: revoked at once, and no removal is ever sent.
func TestScheduledWithdrawnBeforeStartSendsNoRemoval(t *testing.T) {
	cases := []struct {
		name   string
		end    func(e *env, id string) error
		by     string
		reason access.Reason
	}{
		{"requester cancels", func(e *env, id string) error {
			_, err := e.svc.Cancel(context.Background(), id, slackID("ann@example.com"), "ann@example.com")
			return err
		}, "ann@example.com", access.ReasonRevoked},
		{"admin revokes", func(e *env, id string) error {
			_, err := e.svc.Revoke(context.Background(), id, slackID("frank@example.com"), "frank@example.com")
			return err
		}, "frank@example.com", access.ReasonRevoked},
		{"requester offboarded", func(e *env, id string) error {
			u, _ := e.idp.UserByEmail(context.Background(), "ann@example.com")
			_, err := e.svc.Offboard(context.Background(), u, handlers.Trigger{Source: "test"})
			return err
		}, "", access.ReasonOffboarded},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			start := e.clock.Now().Add(48 * time.Hour)
			r := e.approvedFrom(start, "change window")
			e.clock.Advance(time.Hour)
			if err := c.end(e, r.ID); err != nil {
				t.Fatal(err)
			}
			r = e.get(r.ID)
			wantState(t, r, access.StateRevoked)
			if r.EndReason != c.reason || r.EndedBy.Email != c.by || !r.DeprovisionedAt.IsZero() || !r.ProvisionedAt.IsZero() {
				t.Fatalf("%+v", r)
			}
			e.clock.Advance(48 * time.Hour) // past the start
			e.settle()
			if e.idp.removes() != 0 || e.idp.isMember("prod-db-admins", "ann@example.com") {
				t.Fatalf("removals %d; member %v", e.idp.removes(), e.idp.isMember("prod-db-admins", "ann@example.com"))
			}
			if evs := e.events(r.ID); slices.Contains(evs, "grant.ending") || slices.Contains(evs, "grant.starting") {
				t.Fatalf("events %v", evs)
			}
			// The export: approved, revoked, no access_start / end / deprovisioned_at.
			p, err := handlers.Period("2026-11-01", "2026-11-30", e.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := e.svc.ExportAccess(&buf, p); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(&buf).ReadAll()
			if err != nil || len(recs) != 2 {
				t.Fatalf("%v %v", recs, err)
			}
			row := map[string]string{}
			for i, h := range handlers.AccessHeader {
				row[h] = recs[1][i]
			}
			if row["decision"] != "approved" || row["status"] != "revoked" || row["access_start"] != "" || row["access_end"] != "" ||
				row["deprovisioned_at"] != "" || row["revocation_reason"] != string(c.reason) {
				t.Fatalf("row %v", row)
			}
			e.verify()
		})
	}
}

// At the start keycard re-checks what an approval relies on.
func TestScheduledStartRechecks(t *testing.T) {
	t.Run("no longer eligible: failed, nothing added", func(t *testing.T) {
		e := newEnv(t)
		r, err := e.submitAt("ann@example.com", "prod-db-admin", e.clock.Now().Add(time.Hour), "x")
		if err != nil {
			t.Fatal(err)
		}
		e.approveAll(r.ID)
		e.idp.mu.Lock()
		u := e.idp.users["00uann"]
		u.Attributes = map[string]string{"department": "Sales"}
		e.idp.users["00uann"] = u
		e.idp.mu.Unlock()
		e.clock.Advance(time.Hour)
		e.settle()
		r = e.get(r.ID)
		wantState(t, r, access.StateFailed)
		if !strings.Contains(r.FailReason, "no longer eligible") || e.idp.isMember("prod-db-admins", "ann@example.com") {
			t.Fatalf("fail reason %q", r.FailReason)
		}
	})
	t.Run("suspended: withdrawn as offboarded", func(t *testing.T) {
		e := newEnv(t)
		r, err := e.submitAt("ann@example.com", "prod-db-admin", e.clock.Now().Add(time.Hour), "x")
		if err != nil {
			t.Fatal(err)
		}
		e.approveAll(r.ID)
		e.idp.setStatus("ann@example.com", access.StatusSuspended)
		e.clock.Advance(time.Hour)
		e.settle()
		r = e.get(r.ID)
		wantState(t, r, access.StateRevoked)
		if r.EndReason != access.ReasonOffboarded || e.idp.removes() != 0 {
			t.Fatalf("%s, %d removals", r.EndReason, e.idp.removes())
		}
	})
	t.Run("the IdP is down: tried again a minute later, then provisioned", func(t *testing.T) {
		e := newEnv(t)
		r, err := e.submitAt("ann@example.com", "prod-db-admin", e.clock.Now().Add(time.Hour), "x")
		if err != nil {
			t.Fatal(err)
		}
		e.approveAll(r.ID)
		e.clock.Advance(time.Hour)
		e.idp.failNext("byid", access.Errorf(access.CodeUnavailable, "down"))
		e.settle()
		r = e.get(r.ID)
		wantState(t, r, access.StateScheduled)
		if !r.NextDue().Equal(e.clock.Now().Add(time.Minute)) {
			t.Fatalf("next due %v", r.NextDue())
		}
		e.clock.Advance(time.Minute)
		e.settle()
		r = e.get(r.ID)
		wantState(t, r, access.StateActive)
		if !r.StartAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("the requested start moved: %v", r.StartAt)
		}
	})
}

func TestScheduledRefusals(t *testing.T) {
	e := newEnv(t)
	start := e.clock.Now().Add(24 * time.Hour)
	r := e.approvedFrom(start, "x")
	_, err := e.submitAt("ann@example.com", "prod-db-admin", time.Time{}, "again")
	wantCode(t, err, access.CodeAlreadyActive)
	if !strings.Contains(access.MessageOf(err), r.ID) {
		t.Fatalf("%v", err)
	}
	_, err = e.svc.Submit(context.Background(), handlers.SubmitInput{SlackID: slackID("ann@example.com"), Email: "ann@example.com",
		Policy: "prod-breakglass", Justification: "fire", BreakGlass: true, StartAt: start})
	wantCode(t, err, access.CodeBadStart)
}

// The access export of scheduled access, pinned: a grant exported while it
// waits for its start (pending, no access_start), the same grant after it
// ran (access_start = the scheduled start, access_end = start + duration),
// and one withdrawn before its start (revoked, no access at all). A closed
// period ending before the start shows the first grant as it stood then.
func TestScheduledAccessExportGolden(t *testing.T) {
	e := newEnv(t)
	start := e.clock.Now().Add(48 * time.Hour) // Wed 4 Nov 2026 09:00 UTC
	ran, err := e.submitAt("ann@example.com", "prod-db-admin", start, "CHG-1 change window")
	if err != nil {
		t.Fatal(err)
	}
	e.approveAll(ran.ID)
	withdrawn, err := e.submitAt("ann@example.com", "grafana-viewer", start.Add(24*time.Hour), "dashboards for the window")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	if _, err := e.svc.Revoke(context.Background(), withdrawn.ID, slackID("frank@example.com"), "frank@example.com"); err != nil {
		t.Fatal(err)
	}
	export := func(from, to string) []byte {
		t.Helper()
		p, err := handlers.Period(from, to, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := e.svc.ExportAccess(&buf, p); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	waiting := export("2026-11-01", "2026-11-02")
	e.clock.Set(start)
	e.settle()
	e.clock.Advance(4*time.Hour + time.Minute)
	e.settle()
	wantState(t, e.get(ran.ID), access.StateExpired)
	if again := export("2026-11-01", "2026-11-02"); !bytes.Equal(again, waiting) {
		t.Fatalf("the closed period's export changed after the start:\n%s\nwas\n%s", again, waiting)
	}
	golden(t, "access_scheduled_waiting.golden.csv", waiting)
	golden(t, "access_scheduled_ran.golden.csv", export("2026-11-01", "2026-11-04"))
	e.verify()
}

// A grant waiting for its scheduled start counts toward separation of
// duties: the set it would complete is refused now, not discovered at the
// start.
func TestScheduledGrantCountsForSeparationOfDuties(t *testing.T) {
	e := newConflictsEnv(t, "refuse")
	r, err := e.submitAt("ann@example.com", "prod-db-admin", e.clock.Now().Add(24*time.Hour), "CHG-3")
	if err != nil {
		t.Fatal(err)
	}
	e.approveAll(r.ID)
	wantState(t, e.get(r.ID), access.StateScheduled)
	_, err = e.submit("ann@example.com", "grafana-viewer", 0, "")
	wantCode(t, err, access.CodeConflictingDuties)
	if !strings.Contains(access.MessageOf(err), r.ID) {
		t.Fatalf("the refusal does not name the scheduled grant: %v", err)
	}
}
