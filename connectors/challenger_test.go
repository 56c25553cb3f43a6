package connectors_test

import (
	"testing"

	"keycard/access"
	"keycard/connectors/entra"
	"keycard/connectors/jumpcloud"
	"keycard/connectors/okta"
	"keycard/connectors/static"
)

// The policy parser lets approval_mfa only on okta connectors; this keeps
// that rule and the connectors' access.Challenger capability in step.
func TestOnlyOktaChallenges(t *testing.T) {
	cases := []struct {
		typ  string
		conn any
		want bool
	}{
		{"okta", (*okta.Connector)(nil), true},
		{"entra", (*entra.Connector)(nil), false},
		{"jumpcloud", (*jumpcloud.Connector)(nil), false},
		{"static", (*static.Connector)(nil), false},
	}
	for _, c := range cases {
		if _, got := c.conn.(access.Challenger); got != c.want {
			t.Errorf("%s implements access.Challenger: %v, want %v (update policy's approval_mfa check)", c.typ, got, c.want)
		}
	}
}
