package handlers_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fakeclock"
	"keycard/internal/fixture"
	"keycard/internal/storetest"
	"keycard/policy"
	pgstore "keycard/store/postgres"
)

// Delegations live in Tx documents, so they work on PostgreSQL exactly as
// on bbolt: create, decide as a delegate (the step's on_behalf_of and
// delegation survive the store's request encoding), the export, off.
// Skips without KEYCARD_TEST_DATABASE_URL.
func TestDelegationOnPostgres(t *testing.T) {
	db, idp, set := pgWorld(t, storetest.PostgresURL(t))
	clock := fakeclock.New(t0)
	svc := handlers.New(adapt.Postgres(db), conns{idp}, set, clock, handlers.Options{BackoffBase: time.Second, BackoffMax: time.Minute})
	ctx := context.Background()

	d, err := svc.Delegate(ctx, handlers.DelegateInput{SlackID: "UBOB", Email: "bob@example.com", ToEmail: "frank@example.com", Until: "2026-11-05", Reason: "leave"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Delegate(ctx, handlers.DelegateInput{SlackID: "UFRANK", Email: "frank@example.com", ToEmail: "carol@example.com", Until: "2026-11-05"})
	wantCode(t, err, access.CodeForbidden)
	r, err := svc.Submit(ctx, handlers.SubmitInput{SlackID: "UANN", Email: "ann@example.com", Policy: "prod-db-admin", Duration: time.Hour, Justification: "INC-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Decide(ctx, handlers.DecideInput{RequestID: r.ID, Step: 0, SlackID: "UFRANK", Email: "frank@example.com", Approve: true}); err != nil {
		t.Fatal(err)
	}
	got, err := svc.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := got.Steps[0]; st.OnBehalfOf.Email != "bob@example.com" || st.Delegation != d.ID || st.DecidedBy.Email != "frank@example.com" {
		t.Fatalf("step 1 as stored in PostgreSQL: %+v", st)
	}
	if _, err := svc.EndDelegation(ctx, "UBOB", "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	m, err := svc.Export(ctx, &out, handlers.ExportRequest{Kind: handlers.KindDelegations, By: "erin@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if m.RowCount != 1 || !strings.Contains(out.String(), d.ID+",bob@example.com,Bob Boss,frank@example.com,") || !strings.Contains(out.String(), ",off,bob@example.com,ended,"+r.ID+" step 1 approved") {
		t.Fatalf("delegations export on PostgreSQL:\n%s", out.String())
	}
	if _, err := svc.ExportAccess(&bytes.Buffer{}, handlers.ExportParams{From: t0.Add(-time.Hour), To: t0.Add(time.Hour)}); err != nil {
		t.Fatalf("access export record check on PostgreSQL: %v", err)
	}
}

// pgWorld is a fresh PostgreSQL database (closed at the test's end), the
// fake IdP with the fixture's people and the handlers tests' policy.
func pgWorld(t *testing.T, admin string) (*pgstore.DB, *fakeIdP, *policy.Set) {
	t.Helper()
	db, err := pgstore.Open(context.Background(), storetest.FreshDatabase(t, admin), pgstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	idp := newIdP()
	idp.seed(fixture.Roles())
	set, err := policy.Parse("policy.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return db, idp, set
}
