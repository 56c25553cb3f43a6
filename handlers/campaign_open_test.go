package handlers

import (
	"slices"
	"testing"

	"keycard/access"
	"keycard/policy"
)

// The population selection is pure: which policies a campaign reviews, and
// which holders become its items, need no store and no IdP.
func TestSelectPolicies(t *testing.T) {
	db := &policy.Policy{Name: "prod-db", Privileged: true}
	wiki := &policy.Policy{Name: "wiki"}
	logs := &policy.Policy{Name: "logs"}
	all := []*policy.Policy{db, wiki, logs}
	cases := []struct {
		name  string
		job   policy.CertificationJob
		names []string
		want  []string
	}{
		{"privileged policies", policy.CertificationJob{Privileged: true}, nil, []string{"prod-db"}},
		{"listed in the job", policy.CertificationJob{Names: []string{"logs", "wiki"}}, nil, []string{"wiki", "logs"}},
		{"named by the admin, whatever the job covers", policy.CertificationJob{Privileged: true}, []string{"logs"}, []string{"logs"}},
		{"an unknown name selects nothing", policy.CertificationJob{Privileged: true}, []string{"nope"}, nil},
		{"a job that covers nothing", policy.CertificationJob{}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			selected, names := selectPolicies(all, c.job, c.names)
			if !slices.Equal(names, c.want) || len(selected) != len(c.want) {
				t.Fatalf("selected %v (%d), want %v", names, len(selected), c.want)
			}
			for _, n := range c.want {
				if selected[n] == nil || selected[n].Name != n {
					t.Errorf("selected[%q] = %v", n, selected[n])
				}
			}
		})
	}
}

func TestPopulation(t *testing.T) {
	db := &policy.Policy{Name: "prod-db", App: "Production DB", Role: "Admin", Privileged: true}
	ro := &policy.Policy{Name: "prod-db-ro", App: "Production DB", Role: "Read"}
	selected := map[string]*policy.Policy{"prod-db": db, "prod-db-ro": ro}
	ann := access.Person{Email: "ann@example.com", Name: "Ann Lee", IdPID: "u-ann"}
	grant := &access.Request{ID: "REQ-1", Requester: ann}
	rows := []HolderRow{
		{Connector: "okta", Group: "db-admins", Policies: []string{"prod-db"}, Email: "ann@example.com", Name: "ann", ID: "u-ann", Source: SourceKeycard, Grant: grant},
		{Connector: "okta", Group: "wiki", Policies: []string{"wiki"}, Email: "bob@example.com", ID: "u-bob", Source: SourceStanding},
		{Connector: "okta", Group: "db", Policies: []string{"prod-db-ro", "prod-db"}, Email: "dave@example.com", Name: "Dave", ID: "u-dave", Source: SourceUnmanaged},
	}
	items, holders := population("CAMP-1", rows, selected, "manager")
	if len(items) != 2 || len(holders) != 2 {
		t.Fatalf("%d items, %d holders; want 2 (the wiki row is not selected)", len(items), len(holders))
	}
	cases := []struct {
		name string
		got  CampaignItem
		want CampaignItem
	}{
		{"a keycard grant: its requester is the holder", items[0], CampaignItem{Campaign: "CAMP-1", Holder: ann, Policy: "prod-db", App: "Production DB", Role: "Admin",
			Connector: "okta", Group: "db-admins", Privileged: true, Source: SourceKeycard, GrantID: "REQ-1", ReviewerRule: "manager"}},
		{"a group two policies share: one item, both policies", items[1], CampaignItem{Campaign: "CAMP-1", Holder: access.Person{Email: "dave@example.com", Name: "Dave", IdPID: "u-dave"},
			Policy: "prod-db-ro;prod-db", App: "Production DB", Role: "Read", Connector: "okta", Group: "db", Privileged: true, Source: SourceUnmanaged, ReviewerRule: "manager"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, want := c.got, c.want; got.Holder != want.Holder || got.Policy != want.Policy || got.App != want.App || got.Role != want.Role ||
				got.Connector != want.Connector || got.Group != want.Group || got.Privileged != want.Privileged || got.Source != want.Source ||
				got.GrantID != want.GrantID || got.ReviewerRule != want.ReviewerRule || got.Campaign != want.Campaign || got.ID != "" || got.Reviewers != nil {
				t.Fatalf("item\n got %+v\nwant %+v", got, want)
			}
		})
	}
	if holders[0].Email != "ann@example.com" || holders[1].Email != "dave@example.com" {
		t.Errorf("holders %v, want ann's and dave's rows", holders)
	}
}
