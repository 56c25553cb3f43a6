package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keycard/internal/oktafake"
	"keycard/internal/slackemu"
)

// person is one employee, known to Okta and to Slack by the same email.
type person struct {
	slackID, login, first, last, dept, manager string
}

// people of the test org. Ann and Gus request; Bob is their manager; Carol
// and Dave are the security team; Gus is also a standing (non-keycard)
// member of app-deploy, which keycard must never remove.
var people = []person{
	{"U0ANN", "ann@example.com", "Ann", "Lee", "Engineering", "bob@example.com"},
	{"U0BOB", "bob@example.com", "Bob", "Stone", "Engineering", ""},
	{"U0CAROL", "carol@example.com", "Carol", "Diaz", "Security", "bob@example.com"},
	{"U0DAVE", "dave@example.com", "Dave", "Kim", "Security", "bob@example.com"},
	{"U0ERIN", "erin@example.com", "Erin", "Park", "Engineering", "bob@example.com"},
	{"U0GUS", "gus@example.com", "Gus", "Tran", "Engineering", "bob@example.com"},
}

// managedGroups are the groups the policy lets keycard change (scope app-*).
var managedGroups = []string{"app-grafana-viewers", "app-db-admins", "app-deploy"}

// org is the seeded Okta emulator: ids by email and by group name.
type org struct {
	fake   *oktafake.Server
	users  map[string]string // email -> Okta id
	groups map[string]string // name -> Okta id
	// standing are memberships the test made outside keycard (group -> ids).
	standing map[string]map[string]bool
}

// seedOkta creates the people and groups; Gus is a standing member of
// app-deploy.
func seedOkta(fake *oktafake.Server) *org {
	o := &org{fake: fake, users: map[string]string{}, groups: map[string]string{}, standing: map[string]map[string]bool{}}
	for _, p := range people {
		prof := map[string]any{"login": p.login, "email": p.login, "firstName": p.first, "lastName": p.last,
			"department": p.dept, "userType": "Employee"}
		if p.manager != "" {
			prof["managerId"] = p.manager
		}
		o.users[p.login] = fake.AddUser(prof, "ACTIVE")
	}
	for _, g := range append([]string{"security-team", "keycard-admins", "auditors"}, managedGroups...) {
		o.groups[g] = fake.AddGroup(g, "OKTA_GROUP")
	}
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(fake.AddMember(o.groups["security-team"], o.users["carol@example.com"]))
	must(fake.AddMember(o.groups["security-team"], o.users["dave@example.com"]))
	must(fake.AddMember(o.groups["keycard-admins"], o.users["dave@example.com"]))
	must(fake.AddMember(o.groups["auditors"], o.users["erin@example.com"]))
	must(fake.AddMember(o.groups["app-deploy"], o.users["gus@example.com"]))
	o.standing["app-deploy"] = map[string]bool{o.users["gus@example.com"]: true}
	return o
}

// isMember reports whether the user (by email) is in the group in Okta.
func (o *org) isMember(group, email string) bool {
	for _, id := range o.fake.Members(o.groups[group]) {
		if id == o.users[email] {
			return true
		}
	}
	return false
}

// seedSlack adds the same people to the Slack emulator, and the alerts
// channel the policy names.
func seedSlack(emu *slackemu.Server) {
	for _, p := range people {
		emu.AddUser(slackemu.User{ID: p.slackID, Name: strings.Split(p.login, "@")[0], RealName: p.first + " " + p.last, Email: p.login})
	}
	emu.AddChannel("security-alerts")
}

// policyYAML is the okta-connector policy of both the in-process fault tests
// and the chaos runs: an auto-approved role, a one-step (manager) role and a
// two-step (manager, then security team) role, all on app-* groups. dur is
// the duration block, e.g. "{default: 3s, max: 10s}".
func policyYAML(dur string) string {
	return `version: 1
directory: okta
connectors:
  okta:
    type: okta
    scope:
      groups: ["app-*"]
profiles:
  everyone: {}
policies:
  - name: grafana-viewer
    app: Grafana
    role: Viewer
    group: app-grafana-viewers
    eligible: [everyone]
    approval: auto
    duration: ` + dur + `
    justification: optional
  - name: deploy
    app: Deploy
    role: Operator
    group: app-deploy
    eligible: [everyone]
    approval:
      - manager
    duration: ` + dur + `
    justification: optional
  - name: db-admin
    app: Production Database
    role: Admin
    group: app-db-admins
    privileged: true
    eligible: [everyone]
    approval:
      - manager
      - group: security-team
    duration: ` + dur + `
    justification: required
auditors: {group: auditors}
admins: {group: keycard-admins}
alerts: {channel: "#security-alerts"}
`
}

// stage is what both chaos runs start from: the Slack and Okta emulators
// (on the wall clock) seeded with the test org, and the policy (grants of 3
// to 10 s) written into a temp dir.
type stage struct {
	emu    *slackemu.Server
	fake   *oktafake.Server
	org    *org
	dir    string
	policy string // the policy file's path
}

func newStage(t *testing.T) stage {
	t.Helper()
	emu := slackemu.New(slackemu.Options{})
	t.Cleanup(emu.Close)
	seedSlack(emu)
	fake := oktafake.New(oktafake.Options{Clock: time.Now})
	t.Cleanup(fake.Close)
	w := stage{emu: emu, fake: fake, org: seedOkta(fake), dir: t.TempDir()}
	w.policy = filepath.Join(w.dir, "policy.yaml")
	if err := os.WriteFile(w.policy, []byte(policyYAML("{default: 3s, max: 10s}")), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}
