package handlers_test

import (
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

// withoutPolicy removes one policy from testPolicy (its scope unchanged).
func withoutPolicy(name string) string {
	s := testPolicy
	start := strings.Index(s, "  - name: "+name+"\n")
	end := strings.Index(s[start+1:], "  - name: ")
	return s[:start] + s[start+1+end:]
}

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
		{"policy removed, add still queued", withoutPolicy("prod-db-admin-alt"), access.StateProvisioning, "reload", "policy prod-db-admin-alt no longer exists"},
		{"policy removed, active grant", withoutPolicy("prod-db-admin-alt"), access.StateActive, "change", "policy prod-db-admin-alt no longer exists"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			text := tc.policy
			if tc.how == "emergency" || tc.how == "staged" {
				guard := func(s string) string {
					return strings.Replace(s, "version: 1\n", "version: 1\nchange_approval: true\n", 1)
				}
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
