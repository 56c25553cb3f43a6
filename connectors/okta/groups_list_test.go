package okta

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// TestGroupsListsEveryPage: the policy/IdP sync check sees every group,
// across pages, once each, through the real SDK.
func TestGroupsListsEveryPage(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := 0; i < 450; i++ {
		name := fmt.Sprintf("app-team-%03d", i)
		e.fake.AddGroup(name, "OKTA_GROUP")
		want = append(want, name)
	}
	e.fake.AddGroup("app-team-000", "APP_GROUP") // same name, other type: listed once
	e.fake.ResetRequests()
	got, err := e.conn.Groups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%d groups, want %d (first %v)", len(got), len(want), got[:min(3, len(got))])
	}
	pages := 0
	for _, r := range e.fake.Requests() {
		if r.Path == "/api/v1/groups" {
			pages++
		}
	}
	if pages < 3 {
		t.Fatalf("read %d pages of groups, want at least 3 (limit 200)", pages)
	}
}
