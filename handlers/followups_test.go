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

// withoutPolicy removes one policy from testPolicy (its scope unchanged).

// A policy change that would leave a live grant (provisioning or active)
// outside what the new policy holds — its group out of its connector's
// scope, or its policy gone — is refused and audited as policy.rejected;
// the old policy stays in force and the grant still ends on time (issue 10
// follow-up: otherwise the scope ceiling refuses the removal and access
// outlives its grant; an approved add still queued would be carried out
// under a policy no longer in force).
func TestPolicyChangeRefusedWhileGrantsWouldBeStranded(t *testing.T) {
	cases := []struct {
		name   string
		policy string
		state  access.State // of the grant when the change arrives
		how    string       // reload | change (ChangePolicy) | emergency | staged (change_approval on)
		want   string       // in the refusal message
	}{
		{"scope narrowed, active grant, SIGHUP", narrowed(), access.StateActive, "reload", "prod-db-admins is no longer inside connector okta's scope"},
		{"scope narrowed, active grant, policy apply", narrowed(), access.StateActive, "change", "prod-db-admins is no longer inside connector okta's scope"},
		{"scope narrowed, active grant, emergency change", narrowed(), access.StateActive, "emergency", "prod-db-admins is no longer inside connector okta's scope"},
		{"scope narrowed, active grant, staged for a second admin", narrowed(), access.StateActive, "staged", "prod-db-admins is no longer inside connector okta's scope"},
		{"scope narrowed, add still queued", narrowed(), access.StateProvisioning, "reload", "prod-db-admins is no longer inside connector okta's scope"},
		{"policy removed, add still queued", fixture.RolesPolicy().Without("prod-db-admin-alt").String(), access.StateProvisioning, "reload", "policy prod-db-admin-alt no longer exists"},
		{"policy removed, active grant", fixture.RolesPolicy().Without("prod-db-admin-alt").String(), access.StateActive, "change", "policy prod-db-admin-alt no longer exists"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			text := tc.policy
			if tc.how == "emergency" || tc.how == "staged" {
				guard := func(s string) string { return fixture.Doc(s).Setting("change_approval: true").String() }
				e.reload(guard(testPolicy))
				text = guard(text)
			}
			old := e.svc.Policy()
			g, err := e.submit("ann@example.com", "prod-db-admin-alt", time.Hour, "INC-11")
			if err != nil {
				t.Fatal(err)
			}
			if tc.state == access.StateActive {
				e.settle()
			}
			wantState(t, e.get(g.ID), tc.state)
			load := func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(text)) }
			switch tc.how {
			case "reload":
				_, err = e.svc.ReloadPolicy(load, "SIGHUP")
			default:
				_, _, err = e.svc.ChangePolicy(handlers.PolicyChange{Load: load, By: "frank@example.com", Emergency: tc.how == "emergency", Reason: "INC-11"})
			}
			wantCode(t, err, access.CodeConflict)
			if msg := access.MessageOf(err); !strings.Contains(msg, g.ID) || !strings.Contains(msg, tc.want) {
				t.Fatalf("refusal %q does not name grant %s and %q", msg, g.ID, tc.want)
			}
			if e.svc.Policy() != old {
				t.Fatal("the refused policy took effect")
			}
			if _, staged, _ := e.svc.Staged(); staged {
				t.Fatal("the refused policy was staged")
			}
			var rejected string
			_ = e.svc.Events(0, func(ev access.Event) error {
				if ev.Type == access.EvPolicyRejected {
					rejected = ev.Detail
				}
				return nil
			})
			if !strings.Contains(rejected, g.ID) || !strings.Contains(rejected, "prod-db-admins") {
				t.Fatalf("policy.rejected detail %q does not name the grant and its group", rejected)
			}
			// The grant runs as approved and its membership is removed on time.
			e.settle()
			wantState(t, e.get(g.ID), access.StateActive)
			e.clock.Advance(time.Hour)
			e.settle()
			wantState(t, e.get(g.ID), access.StateExpired)
			if e.idp.isMember("prod-db-admins", "ann@example.com") {
				t.Fatal("membership outlived the grant")
			}
			// Once no grant depends on it, the same change is applied.
			switch tc.how {
			case "staged":
				if _, staged, err := e.svc.ChangePolicy(handlers.PolicyChange{Load: load, By: "frank@example.com"}); err != nil || !staged {
					t.Fatalf("the change was not staged once the grant ended: %v", err)
				}
				return
			case "emergency":
				_, _, err = e.svc.ChangePolicy(handlers.PolicyChange{Load: load, By: "frank@example.com", Emergency: true, Reason: "INC-11"})
			default:
				_, err = e.svc.ReloadPolicy(load, "SIGHUP")
			}
			if err != nil || e.svc.Policy() == old {
				t.Fatalf("the change was not applied once the grant ended: %v", err)
			}
			e.verify()
		})
	}
}

// contractorEnv has hank, a contractor managed by bob, holding an active
// prod-db-admin grant of d that bob has been asked about.
func contractorEnv(t *testing.T, d time.Duration) (*env, access.Request) {
	t.Helper()
	e := newEnv(t)
	e.idp.addPerson(fixture.Hank)
	set, err := policy.Parse("policy.yaml", []byte(testPolicy+contractorYAML))
	if err != nil {
		t.Fatal(err)
	}
	e.set = set
	e.restart()
	g, err := e.submit("hank@example.com", "prod-db-admin", d, "INC-3")
	if err != nil {
		t.Fatal(err)
	}
	e.approveAll(g.ID)
	e.settle()
	wantState(t, e.get(g.ID), access.StateActive)
	if err := e.svc.RunJobNow(context.Background(), &fakePublisher{}, handlers.JobContractor, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	return e, e.get(g.ID)
}

// A privileged contractor extension is "requested (pending approval)" until
// its approval chain decides it, then shows the outcome; it is not recorded
// as extended while carol has yet to approve (issue 10 follow-up).
func TestContractorExtensionPendingUntilApproved(t *testing.T) {
	for _, tc := range []struct {
		name    string
		approve bool
		want    access.State
	}{
		{"approved by the chain", true, access.StateProvisioning},
		{"denied by the chain", false, access.StateDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e, g := contractorEnv(t, 4*time.Hour)
			ext, err := e.svc.ContractorExtend(ctx, g.ID, slackID("bob@example.com"), "bob@example.com", 2*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			wantState(t, ext, access.StatePending)
			a, err := e.svc.ContractorAskOf(g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if a.Decision != handlers.AskExtensionRequested || a.Extension != ext.ID || a.ExtensionState != access.StatePending {
				t.Fatalf("question while the chain is pending: decision %q extension %s (%s), want %q", a.Decision, a.Extension, a.ExtensionState, handlers.AskExtensionRequested)
			}
			evs := e.events(g.ID)
			if slices.Contains(evs, string(access.EvContractorExtended)) || !slices.Contains(evs, string(access.EvContractorExtensionRequested)) {
				t.Fatalf("events of the grant %v: want %s, not %s", evs, access.EvContractorExtensionRequested, access.EvContractorExtended)
			}
			if _, err := e.decide(ext.ID, 1, "carol@example.com", tc.approve, "decided"); err != nil {
				t.Fatal(err)
			}
			if a, _ = e.svc.ContractorAskOf(g.ID); a.ExtensionState != tc.want {
				t.Fatalf("question after the chain decided: extension %s, want %s", a.ExtensionState, tc.want)
			}
			// A second answer is refused: the question was answered.
			_, err = e.svc.ContractorExtend(ctx, g.ID, slackID("bob@example.com"), "bob@example.com", 2*time.Hour)
			wantCode(t, err, access.CodeConflict)
			e.verify()
		})
	}
}

// Refusals of a contractor extension — privileged (through the chain) or
// not — are audited as decision.refused: a person acted (issue 10
// follow-up).
func TestContractorExtensionRefusalsAudited(t *testing.T) {
	for _, tc := range []struct {
		name   string
		grant  time.Duration
		ext    time.Duration
		change func(e *env)
		code   access.Code
	}{
		{"over extend.max_total", 8 * time.Hour, 8 * time.Hour, func(*env) {}, access.CodeOverTotal},
		{"over the policy's max", 4 * time.Hour, 9 * time.Hour, func(*env) {}, access.CodeOverMax},
		{"no longer eligible", 4 * time.Hour, time.Hour, func(e *env) { e.idp.setAttr("hank@example.com", "department", "Sales") }, access.CodeNotEligible},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, g := contractorEnv(t, tc.grant)
			tc.change(e)
			_, err := e.svc.ContractorExtend(context.Background(), g.ID, slackID("bob@example.com"), "bob@example.com", tc.ext)
			wantCode(t, err, tc.code)
			var refused []string
			_ = e.svc.Events(0, func(ev access.Event) error {
				if ev.Type == access.EvDecisionRefused && ev.RequestID == g.ID && ev.Actor == "bob@example.com" {
					refused = append(refused, ev.Detail)
				}
				return nil
			})
			if len(refused) != 1 || !strings.Contains(refused[0], string(tc.code)) {
				t.Fatalf("refusals audited: %q, want one with code %s", refused, tc.code)
			}
			if a, _ := e.svc.ContractorAskOf(g.ID); a.Decision != "" {
				t.Fatalf("question answered %q despite the refusal", a.Decision)
			}
		})
	}
}
