package handlers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/fixture"
	"keycard/policy"
)

// setManager changes who the IdP says is email's manager.
func (f *fakeIdP) setManager(email, manager string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, u := range f.users {
		if u.Email == email {
			u.ManagerRef = manager
			f.users[id] = u
		}
	}
}

func (f *fakeIdP) setAttr(email, key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, u := range f.users {
		if u.Email == email {
			attrs := map[string]string{}
			for k, v := range u.Attributes {
				attrs[k] = v
			}
			attrs[key] = value
			u.Attributes = attrs
			f.users[id] = u
		}
	}
}

func (e *env) reload(text string) *policy.Set {
	e.t.Helper()
	next, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(text)) }, "SIGHUP")
	if err != nil {
		e.t.Fatal(err)
	}
	return next
}

// An approver's right is re-checked at the click against the IdP and the
// policy in force, not frozen at submission (issue 10, "High — an
// approver's right is frozen at submission").
func TestApproverRecheckedAtClick(t *testing.T) {
	withoutAnn := fixture.RolesPolicy().Replace("      - user: ann@example.com", "      - user: dave@example.com").String()
	cases := []struct {
		name    string
		pol     string // policy requested
		by      string // requester
		before  func(e *env, id string)
		change  func(e *env)
		step    int
		who     string
		refusal string // part of the refusal
	}{
		{"carol removed from security-team", "prod-db-admin", "ann@example.com",
			func(e *env, id string) {
				if _, err := e.decide(id, 0, "bob@example.com", true, ""); err != nil {
					t.Fatal(err)
				}
			},
			func(e *env) { e.idp.setMember("security-team", "carol@example.com", false) },
			1, "carol@example.com", "no longer a member of security-team"},
		{"bob no longer ann's manager", "prod-db-admin", "ann@example.com", nil,
			func(e *env) { e.idp.setManager("ann@example.com", "frank@example.com") },
			0, "bob@example.com", "no longer lists you as"},
		{"user approver removed by a policy reload", "lonely", "bob@example.com", nil,
			func(e *env) { e.reload(withoutAnn) },
			0, "ann@example.com", "no longer names you"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r, err := e.submit(tc.by, tc.pol, time.Hour, "INC-7")
			if err != nil {
				t.Fatal(err)
			}
			if tc.before != nil {
				tc.before(e, r.ID)
			}
			tc.change(e)
			_, err = e.decide(r.ID, tc.step, tc.who, true, "")
			wantCode(t, err, access.CodeForbidden)
			if !strings.Contains(access.MessageOf(err), tc.refusal) {
				t.Errorf("refusal %q, want it to say %q", access.MessageOf(err), tc.refusal)
			}
			e.settle()
			got := e.get(r.ID)
			wantState(t, got, access.StatePending)
			if got.Current != tc.step {
				t.Errorf("request moved to step %d", got.Current)
			}
			if !slices.Contains(e.events(r.ID), string(access.EvDecisionRefused)) {
				t.Errorf("refusal not audited: %v", e.events(r.ID))
			}
			e.verify()
		})
	}
	t.Run("a current candidate still decides", func(t *testing.T) {
		e := newEnv(t)
		r, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "INC-7")
		if err != nil {
			t.Fatal(err)
		}
		e.approveAll(r.ID)
		wantState(t, e.get(r.ID), access.StateProvisioning)
	})
	t.Run("an IdP error refuses with try again and records nothing", func(t *testing.T) {
		e := newEnv(t)
		r, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "INC-7")
		if err != nil {
			t.Fatal(err)
		}
		e.idp.failNext("byid", access.Errorf(access.CodeUnavailable, "okta down"))
		_, err = e.decide(r.ID, 0, "bob@example.com", true, "")
		if !access.Retryable(err) || !strings.Contains(access.MessageOf(err), "Try again") {
			t.Fatalf("err %v (%q), want a retryable try-again", err, access.MessageOf(err))
		}
		got := e.get(r.ID)
		if got.Current != 0 || got.State != access.StatePending {
			t.Fatalf("request moved on an IdP error: %s step %d", got.State, got.Current)
		}
		if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
			t.Fatalf("retry after the IdP recovers: %v", err)
		}
	})
}

// A campaign reviewer is re-checked at the click: the holder's manager now.
func TestCampaignReviewerRecheckedAtClick(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	set, err := policy.Parse("policy.yaml", []byte(testPolicy+strings.Replace(reviewsYAML, "reviewer: {user: ann@example.com}", "reviewer: manager", 1)))
	if err != nil {
		t.Fatal(err)
	}
	e.set = set
	e.restart()
	r, err := e.submit("ann@example.com", "prod-db-admin", 4*time.Hour, "INC-1")
	if err != nil {
		t.Fatal(err)
	}
	e.approveAll(r.ID)
	e.settle()
	c, err := e.svc.OpenCampaign(ctx, access.ActorScheduler, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, items, _ := e.svc.CampaignOf(c.ID)
	if len(items) != 1 || items[0].Reviewers[0].Email != "bob@example.com" {
		t.Fatalf("items %+v", items)
	}
	e.idp.setManager("ann@example.com", "frank@example.com")
	_, err = e.svc.Review(ctx, handlers.ReviewInput{ItemID: items[0].ID, SlackID: slackID("bob@example.com"), Email: "bob@example.com", Decision: access.ReviewKeep, Comment: "still on call"})
	wantCode(t, err, access.CodeForbidden)
	it, _ := e.svc.CampaignItemOf(items[0].ID)
	if it.Decision != "" {
		t.Fatalf("bob, no longer ann's manager, decided %s", it.Decision)
	}
	e.idp.setManager("ann@example.com", "bob@example.com")
	if _, err := e.svc.Review(ctx, handlers.ReviewInput{ItemID: items[0].ID, SlackID: slackID("bob@example.com"), Email: "bob@example.com", Decision: access.ReviewKeep, Comment: "still on call"}); err != nil {
		t.Fatalf("the current manager reviews: %v", err)
	}
}

// narrowed is the test policy after a reload that removes prod-* from the
// scope and deletes every policy on a prod-* group.
func narrowed() string {
	return fixture.RolesPolicy().Scope("app-*").Without("prod-db-admin", "prod-db-admin-alt", "prod-breakglass").String()
}

// A policy change reaches pending requests: one whose policy is gone or
// whose group left the scope ends (cancelled, reason given, audited) and is
// never provisioned — at the reload, or at the click when keycard restarted
// with the new policy.
func TestPolicyChangeEndsOrphanedRequests(t *testing.T) {
	for _, how := range []string{"reload", "restart then click", "restart records the change"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t)
			if err := e.svc.RecordPolicyLoaded(access.ActorKeycard); err != nil {
				t.Fatal(err)
			}
			r, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "INC-9")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
				t.Fatal(err)
			}
			if how == "reload" {
				e.reload(narrowed())
			} else {
				set, err := policy.Parse("policy.yaml", []byte(narrowed()))
				if err != nil {
					t.Fatal(err)
				}
				e.set = set
				e.restart()
			}
			if how == "restart records the change" {
				if err := e.svc.RecordPolicyLoaded(access.ActorKeycard); err != nil {
					t.Fatal(err)
				}
				wantState(t, e.get(r.ID), access.StateCancelled)
			}
			_, err = e.decide(r.ID, 1, "carol@example.com", true, "")
			wantCode(t, err, access.CodeConflict)
			e.settle()
			got := e.get(r.ID)
			wantState(t, got, access.StateCancelled)
			if e.idp.isMember("prod-db-admins", "ann@example.com") {
				t.Fatal("ann was provisioned into a group its policy no longer grants")
			}
			var reason string
			_ = e.svc.Events(0, func(ev access.Event) error {
				if ev.RequestID == r.ID && ev.Type == access.EvRequestCancelled {
					reason = ev.Detail
				}
				return nil
			})
			if !strings.Contains(reason, "policy removed") {
				t.Errorf("cancel detail %q, want reason %q", reason, "policy removed")
			}
			e.verify()
		})
	}
}

// Someone else closes an alert about you (issue 10, "Low — admins can
// acknowledge or resolve alerts about their own actions").
func TestAlertAboutYouIsClosedBySomeoneElse(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.idp.setMember("keycard-admins", "carol@example.com", true)
	text := fixture.RolesPolicy().Replace("auditors: {group: auditors}", "change_approval: true\nauditors: {group: auditors}").String()
	e.set, _ = policy.Parse("policy.yaml", []byte(text))
	e.restart()
	changed := text + "alerts: {channel: \"#security-alerts\"}\n"
	if _, _, err := e.svc.ChangePolicy(handlers.PolicyChange{By: "frank@example.com", Emergency: true, Reason: "outage",
		Load: func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(changed)) }}); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	_ = e.svc.Events(0, func(ev access.Event) error {
		if handlers.IsAlert(ev.Type) {
			seqs = append(seqs, ev.Seq)
		}
		return nil
	})
	if len(seqs) == 0 {
		t.Fatal("no alert for the emergency change")
	}
	for _, seq := range seqs {
		for _, resolve := range []bool{false, true} {
			_, err := e.svc.TriageAlert(ctx, slackID("frank@example.com"), "frank@example.com", seq, resolve, "it was me")
			wantCode(t, err, access.CodeForbidden)
		}
		if st, _ := e.svc.AlertStateOf(seq); st.State != handlers.AlertOpen {
			t.Fatalf("alert %d is %s after its actor's click", seq, st.State)
		}
		if st, err := e.svc.TriageAlert(ctx, slackID("carol@example.com"), "carol@example.com", seq, true, "checked with frank"); err != nil || st.State != handlers.AlertResolved {
			t.Fatalf("another admin resolves: %+v %v", st, err)
		}
	}
}

const contractorYAML = `reviews:
  contractor_expiry:
    schedule: "0 9 * * *"
    within: 7d
    contractors: {userType: [Contractor]}
`

// A contractor-expiry extension re-checks the holder and, for a privileged
// policy, goes through the policy's approval chain (issue 10, "Low — a
// contractor-expiry extension is a one-person approval").
func TestContractorExtensionRechecks(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		pol    string
		change func(e *env)
		code   access.Code
		state  access.State // of the extension when allowed
	}{
		{"privileged: the chain's other steps still decide", "prod-db-admin", func(*env) {}, "", access.StatePending},
		{"privileged: no longer eligible", "prod-db-admin", func(e *env) { e.idp.setAttr("hank@example.com", "department", "Sales") }, access.CodeNotEligible, ""},
		{"non-privileged: the manager's click suffices", "grafana-viewer", func(*env) {}, "", access.StateProvisioning},
		{"non-privileged: suspended holder", "grafana-viewer", func(e *env) { e.idp.setStatus("hank@example.com", access.StatusSuspended) }, access.CodeUserInactive, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.addPerson(fixture.Hank)
			set, err := policy.Parse("policy.yaml", []byte(testPolicy+contractorYAML))
			if err != nil {
				t.Fatal(err)
			}
			e.set = set
			e.restart()
			g, err := e.submit("hank@example.com", tc.pol, 4*time.Hour, "INC-3")
			if err != nil {
				t.Fatal(err)
			}
			if tc.pol == "prod-db-admin" {
				e.approveAll(g.ID)
			}
			e.settle()
			wantState(t, e.get(g.ID), access.StateActive)
			if err := e.svc.RunJobNow(ctx, &fakePublisher{}, handlers.JobContractor, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.ContractorAskOf(g.ID); err != nil {
				t.Fatalf("bob was not asked: %v", err)
			}
			tc.change(e)
			ext, err := e.svc.ContractorExtend(ctx, g.ID, slackID("bob@example.com"), "bob@example.com", 2*time.Hour)
			wantCode(t, err, tc.code)
			if tc.code != "" {
				if got := e.get(g.ID); got.ExtendedBy != "" {
					t.Fatalf("extended by %s despite the refusal", got.ExtendedBy)
				}
				return
			}
			wantState(t, ext, tc.state)
			if tc.state == access.StatePending {
				if ext.Current != 1 || ext.Steps[0].DecidedBy.Email != "bob@example.com" || len(ext.Steps) != 2 {
					t.Fatalf("extension at step %d, steps %+v", ext.Current, ext.Steps)
				}
				if _, err := e.decide(ext.ID, 1, "carol@example.com", true, ""); err != nil {
					t.Fatal(err)
				}
				wantState(t, e.get(ext.ID), access.StateProvisioning)
			}
		})
	}
}
