package bot_test

import (
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/fakeclock"
	"keycard/internal/fixture"
	"keycard/internal/idptest"
	"keycard/internal/slackemu"
)

// idpPolicy is the lab's prod-db-admin on a live identity provider: the
// connector "idp" of type typ, people and groups read from the IdP.
func idpPolicy(typ string) fixture.Doc {
	return fixture.Directory("idp", typ, fixture.Org{}).Append(idpRules)
}

const idpRules = `profiles:
  engineers:
    where: {department: [Engineering, SRE]}
policies:
  - name: prod-db-admin
    app: Production Database
    role: Admin
    group: prod-db-admins
    privileged: true
    eligible: [engineers]
    approval:
      - manager
      - group: security-team
    duration: {default: 4h, max: 8h}
    justification: required
auditors: {group: auditors}
admins: {group: keycard-admins}
alerts: {channel: "#security-alerts"}
`

// idpPeople and idpGroups are the IdP emulators' directory: the lab's
// people (without gus) and groups.
var idpPeople, idpGroups = idpDirectory(fixture.Lab().Without("gus"))

func idpDirectory(org fixture.Org) ([]idptest.Person, []idptest.Group) {
	var people []idptest.Person
	for _, p := range org.People {
		people = append(people, idptest.Person{Email: p.Email, Name: p.Name, Manager: p.Manager, Department: p.Department})
	}
	var groups []idptest.Group
	for _, g := range org.Groups {
		groups = append(groups, idptest.Group(g))
	}
	return people, groups
}

// The lifecycle runs once per identity provider, each through its real
// client against its emulator (issue 12 item 6): request, two approvals
// (the manager the IdP names, a member of the IdP group), the membership in
// the IdP, expiry and its removal, the auditor's export; a rate-limited add
// that waits for the provider's header; offboarding when the IdP suspends
// the person.
func TestE2ELifecyclePerConnector(t *testing.T) {
	starts := []func(func() time.Time, []idptest.Person, []idptest.Group) *idptest.World{idptest.Okta, idptest.Entra, idptest.JumpCloud}
	for _, start := range starts {
		clock := newClock()
		idp := start(clock.Now, idpPeople, idpGroups)
		t.Run(idp.Type, func(t *testing.T) {
			// Registered before boot, so it runs after the bot has stopped:
			// work still in flight would otherwise meet a closed IdP and
			// back off on the wall clock.
			t.Cleanup(idp.Close)
			e := bootIdP(t, idp, clock)

			// Request, the manager the IdP names, a security-team member.
			r := e.submit(uAnn, "prod-db-admin", "4h", "INC-42 database failover")
			e.click(uBob, e.approvalDM(uBob), "keycard_approve")
			e.click(uCarol, e.approvalDM(uCarol), "keycard_approve")
			e.waitFor("step 2 recorded", func(*slackemu.Server) bool { return e.state(r.ID) == access.StateProvisioning })
			e.provision()
			if st := e.state(r.ID); st != access.StateActive || !idp.IsMember("prod-db-admins", "ann@example.com") {
				t.Fatalf("after provisioning: %s, member %v", st, idp.IsMember("prod-db-admins", "ann@example.com"))
			}

			// Expiry removes the membership in the IdP.
			e.clock.Advance(4*time.Hour + time.Minute)
			e.provision()
			e.provision()
			if st := e.state(r.ID); st != access.StateExpired || idp.IsMember("prod-db-admins", "ann@example.com") {
				t.Fatalf("after expiry: %s, member %v", st, idp.IsMember("prod-db-admins", "ann@example.com"))
			}

			// The auditor's export names the IdP's approvers.
			rows := e.exportFile("", "access")
			if len(rows) != 2 || rows[1][17] != "expired" || rows[1][10] != "bob@example.com;carol@example.com" {
				t.Fatalf("export rows: %q", rows)
			}

			// A rate-limited add waits for the provider's header, then goes through.
			r2 := e.submit(uAnn, "prod-db-admin", "4h", "INC-43 replica lag")
			e.click(uBob, e.approvalDM(uBob), "keycard_approve")
			e.click(uCarol, e.approvalDM(uCarol), "keycard_approve")
			e.waitFor("second request approved", func(*slackemu.Server) bool { return e.state(r2.ID) == access.StateProvisioning })
			idp.RateLimitNextChange(1, time.Minute)
			e.provision()
			if st := e.state(r2.ID); st != access.StateProvisioning || idp.IsMember("prod-db-admins", "ann@example.com") {
				t.Fatalf("during the rate limit: %s, member %v", st, idp.IsMember("prod-db-admins", "ann@example.com"))
			}
			e.clock.Advance(2 * time.Minute)
			e.provision()
			if st := e.state(r2.ID); st != access.StateActive || !idp.IsMember("prod-db-admins", "ann@example.com") {
				t.Fatalf("after the rate limit: %s, member %v", st, idp.IsMember("prod-db-admins", "ann@example.com"))
			}

			// Offboarding: the IdP suspends ann; the holder sweep ends her grant
			// and keycard removes the membership it added.
			if err := idp.Deactivate("ann@example.com"); err != nil {
				t.Fatal(err)
			}
			if n, err := e.svc.SweepHolders(e.ctx); err != nil || n != 1 {
				t.Fatalf("sweep: %d, %v", n, err)
			}
			e.provision()
			got, err := e.svc.Get(r2.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != access.StateRevoked || got.EndReason != access.ReasonOffboarded || idp.IsMember("prod-db-admins", "ann@example.com") {
				t.Fatalf("after offboarding: %s %s, member %v", got.State, got.EndReason, idp.IsMember("prod-db-admins", "ann@example.com"))
			}
		})
	}
}

// bootIdP boots the e2e workspace with the policy on idp's connector type.
func bootIdP(t *testing.T, idp *idptest.World, clock *fakeclock.Clock) *env {
	t.Helper()
	return boot(t, world{policy: idpPolicy(idp.Type).String(), idp: idp, clock: clock})
}
