package okta

import (
	"context"
	"testing"
)

// TestChangeCarriesSystemLogID: each membership change keycard makes comes
// back with the uuid of Okta's own System Log event for it, so a sampled
// grant can be traced to the IdP's record.
func TestChangeCarriesSystemLogID(t *testing.T) {
	e := newEnv(t)
	uid := e.user("a@x.com", "a@x.com", nil)
	other := e.user("b@x.com", "b@x.com", nil)
	gid := e.fake.AddGroup("app-grafana-admins", "OKTA_GROUP")
	ctx := context.Background()
	if _, err := e.conn.AddMember(ctx, "app-grafana-admins", other); err != nil { // a decoy event
		t.Fatal(err)
	}
	add, err := e.conn.AddMember(ctx, "app-grafana-admins", uid)
	if err != nil {
		t.Fatal(err)
	}
	remove, err := e.conn.RemoveMember(ctx, "app-grafana-admins", uid)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, ev := range e.fake.Log() {
		if len(ev.Target) == 2 && ev.Target[0].ID == uid && ev.Target[1].ID == gid {
			want[ev.EventType] = ev.UUID
		}
	}
	if add.IdPEventID == "" || add.IdPEventID != want[EventMembershipAdd] {
		t.Errorf("add traced to %q, want %q", add.IdPEventID, want[EventMembershipAdd])
	}
	if remove.IdPEventID == "" || remove.IdPEventID != want[EventMembershipRemove] {
		t.Errorf("remove traced to %q, want %q", remove.IdPEventID, want[EventMembershipRemove])
	}
}

func TestOktaUserIDShape(t *testing.T) {
	for in, want := range map[string]bool{
		"00u1a2b3c4D5E6F7G8H9": true, "00ub0oNGTSWTBKOLGLNR": true,
		"bob": false, "bob@example.com": false, "00u1a2b3c4D5E6F7G8H": false, "00g1a2b3c4D5E6F7G8H9": false, "00u1a2b3c4D5E6F7G8H!": false,
	} {
		if got := oktaUserID(in); got != want {
			t.Errorf("oktaUserID(%q) = %v, want %v", in, got, want)
		}
	}
}
