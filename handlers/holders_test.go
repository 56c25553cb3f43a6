package handlers_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"path/filepath"
	"testing"
	"time"

	"keycard/connectors"
	"keycard/connectors/okta"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fakeclock"
	"keycard/internal/oktafake"
	"keycard/policy"
	"keycard/store"
)

const oktaPolicy = `version: 1
directory: okta
connectors:
  okta:
    type: okta
    scope: {groups: ["prod-*"]}
profiles:
  everyone: {}
policies:
  - name: db-admin
    app: Database
    role: Admin
    group: prod-db-admins
    privileged: true
    eligible: [everyone]
    approval: auto
    duration: {default: 1h, max: 2h}
    justification: optional
`

// TestHoldersSnapshotAgainstOkta classifies every member of a policy group
// read through the real Okta SDK: a keycard grant, a standing member (there
// when keycard first looked) and an unmanaged one (added outside keycard
// later), and reconciles the counts.
func TestHoldersSnapshotAgainstOkta(t *testing.T) {
	clock := fakeclock.New(t0)
	fake := oktafake.New(oktafake.Options{Token: "t0k3n", Clock: clock.Now})
	defer fake.Close()
	user := func(login string) string {
		return fake.AddUser(map[string]any{"login": login, "email": login, "firstName": login[:3], "lastName": "X"}, "ACTIVE")
	}
	ann, bob, zed := user("ann@example.com"), user("bob@example.com"), user("zed@example.com")
	gid := fake.AddGroup("prod-db-admins", "OKTA_GROUP")
	if err := fake.AddMember(gid, bob); err != nil { // standing before keycard
		t.Fatal(err)
	}
	oc, err := okta.New(okta.Config{OrgURL: fake.URL, Token: "t0k3n", Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	cs := connectors.NewSet()
	cs.Add("okta", oc, oc, []string{"prod-*"})
	set, err := policy.Parse("policy.yaml", []byte(oktaPolicy))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "k.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := handlers.New(adapt.Store(db), cs, set, clock, handlers.Options{})
	ctx := context.Background()
	if err := svc.TakeBaselines(ctx); err != nil {
		t.Fatal(err)
	}
	before := clock.Now()
	clock.Advance(time.Minute)
	r, err := svc.Submit(ctx, handlers.SubmitInput{SlackID: "UANN", Email: "ann@example.com", Policy: "db-admin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RunOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fake.AddMember(gid, zed); err != nil { // out of band
		t.Fatal(err)
	}
	clock.Advance(time.Minute)

	var buf bytes.Buffer
	m, err := svc.Export(t.Context(), &buf, handlers.ExportRequest{Kind: handlers.KindHolders, By: "erin@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, rec := range recs[1:] {
		got[rec[6]] = rec
	}
	want := map[string]struct{ source, grant string }{ann: {"keycard", r.ID}, bob: {"standing", ""}, zed: {"unmanaged", ""}}
	if len(got) != len(want) {
		t.Fatalf("rows %v", recs)
	}
	for id, w := range want {
		if got[id][7] != w.source || got[id][8] != w.grant || got[id][11] != "yes" {
			t.Errorf("%s: %v, want source %s grant %q", id, got[id], w.source, w.grant)
		}
	}
	if m.Counts["keycard"] != 1 || m.Counts["standing"] != 1 || m.Counts["unmanaged"] != 1 ||
		m.Summary["idp_members"] != 3 || m.Summary["keycard_grants"] != 1 {
		t.Fatalf("manifest counts %v summary %v", m.Counts, m.Summary)
	}
	// As of before the grant: ann is not in that population; the manifest says
	// the IdP part is as of now.
	buf.Reset()
	m, err = svc.Export(t.Context(), &buf, handlers.ExportRequest{Kind: handlers.KindHolders, Params: handlers.ExportParams{AsOf: before}, By: "erin@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Counts["keycard"] != 0 || m.Summary["granted_after_as_of"] != 1 || m.Summary["note"] == nil || m.Parameters.AsOf == "" {
		t.Fatalf("past as-of: counts %v summary %v", m.Counts, m.Summary)
	}
}

// A keycard holder at baseline time is not standing access: once the grant
// ends, a membership that remains is unmanaged (security review M5).
func TestBaselineLeavesOutKeycardHolders(t *testing.T) {
	e := newEnv(t)
	r, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	e.settle()
	if err := e.svc.TakeBaselines(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Revoke(context.Background(), r.ID, slackID("ann@example.com"), "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.idp.setMember("app-grafana-viewers", "ann@example.com", true) // re-added outside keycard
	rows, _, err := e.svc.Holders(context.Background(), e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if row.Email == "ann@example.com" && row.Group == "app-grafana-viewers" && row.Source != handlers.SourceUnmanaged {
			t.Fatalf("ann is %s, want unmanaged", row.Source)
		}
	}
}
