package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection keeps the design's map true (STYLE.md):
// bot -> handlers -> policy -> access <- store, connectors; only main and
// the wiring it hands over to (internal/server) see everything, and no
// product package imports the wiring: one that did would reach every other.
// It lists each package's non-test dependencies with `go list -deps` and
// fails on a forbidden edge (after tailscale's deptest).
func TestDependencyDirection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	// Why each edge is forbidden, printed with the failure so the fix is
	// "move the code", not "delete the rule".
	const (
		whyDomain   = "the domain (access) must stay free of every outside system, so each adapter can change without touching it"
		whyCSV      = "csvw is a leaf writer pinned by a byte-for-byte equivalence test; a dependency would make it more than a writer"
		whyStore    = "only the wiring opens the store; use cases see it through the small interfaces handlers declares"
		whyBolt     = "bbolt is the store's private detail; a second importer would bypass its transactions and audit chain"
		whyConn     = "identity providers are reached only through access.Provisioner/Directory, so every change passes the scope check and is audited"
		whyOkta     = "the Okta SDK belongs to connectors/okta alone; anything else must work with every identity provider"
		whySlack    = "Slack is the edge: only bot speaks it, so use cases stay testable and another front end stays possible"
		whyBot      = "bot is the outermost layer (STYLE.md: bot -> handlers -> policy -> access); an inner package importing it makes a cycle of responsibility"
		whyHandlers = "use cases sit above the rules and adapters; policy, store and connectors must not call back into them"
		whyPolicy   = "store and connectors are adapters of the domain (access) and must not depend on the policy rules"
		whyServer   = "internal/server is the wiring: it imports everything, so nothing it wires may import it back"
	)
	rules := []struct {
		pkg       string
		forbidden map[string]string // import path -> why it is forbidden
		stdOnly   string            // non-empty: only the standard library, for this reason
	}{
		{pkg: "keycard/access", stdOnly: whyDomain},
		{pkg: "keycard/csvw", stdOnly: whyCSV},
		{pkg: "keycard/policy", forbidden: map[string]string{"keycard/internal/server": whyServer, "keycard/store": whyStore, "keycard/connectors": whyConn, "keycard/handlers": whyHandlers, "keycard/bot": whyBot,
			"go.etcd.io/bbolt": whyBolt, "github.com/slack-go/slack": whySlack, "github.com/okta/okta-sdk-golang/v2/okta": whyOkta}},
		{pkg: "keycard/store", forbidden: map[string]string{"keycard/internal/server": whyServer, "keycard/policy": whyPolicy, "keycard/connectors": whyConn, "keycard/handlers": whyHandlers, "keycard/bot": whyBot,
			"github.com/slack-go/slack": whySlack, "github.com/okta/okta-sdk-golang/v2/okta": whyOkta}},
		{pkg: "keycard/store/postgres", forbidden: map[string]string{"keycard/internal/server": whyServer, "keycard/policy": whyPolicy, "keycard/connectors": whyConn, "keycard/handlers": whyHandlers, "keycard/bot": whyBot,
			"keycard/internal": "the PostgreSQL store is an adapter of the domain; wiring and test support live above it", "github.com/slack-go/slack": whySlack, "github.com/okta/okta-sdk-golang/v2/okta": whyOkta}},
		// migrate copies one store into the other: it sees both backends, nothing above them.
		{pkg: "keycard/store/migrate", forbidden: map[string]string{"keycard/internal/server": whyServer, "keycard/policy": whyPolicy, "keycard/connectors": whyConn, "keycard/handlers": whyHandlers, "keycard/bot": whyBot,
			"keycard/internal": "the migration is an adapter-to-adapter copy; wiring and test support live above it", "github.com/slack-go/slack": whySlack, "github.com/okta/okta-sdk-golang/v2/okta": whyOkta}},
		{pkg: "keycard/connectors/...", forbidden: map[string]string{"keycard/internal/server": whyServer, "keycard/policy": whyPolicy, "keycard/store": whyStore, "keycard/handlers": whyHandlers, "keycard/bot": whyBot,
			"go.etcd.io/bbolt": whyBolt, "github.com/slack-go/slack": whySlack}},
		{pkg: "keycard/handlers", forbidden: map[string]string{"keycard/internal/server": whyServer, "keycard/store": whyStore, "keycard/connectors": whyConn, "keycard/bot": whyBot,
			"go.etcd.io/bbolt": whyBolt, "github.com/slack-go/slack": whySlack, "github.com/okta/okta-sdk-golang/v2/okta": whyOkta}},
		{pkg: "keycard/bot", forbidden: map[string]string{"keycard/internal/server": whyServer, "keycard/store": whyStore, "keycard/connectors": whyConn,
			"go.etcd.io/bbolt": whyBolt, "github.com/okta/okta-sdk-golang/v2/okta": whyOkta}},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard", r.pkg).Output()
			if err != nil {
				t.Fatalf("go list %s: %v", r.pkg, err)
			}
			dec := json.NewDecoder(strings.NewReader(string(out)))
			for dec.More() {
				var p struct {
					ImportPath string
					Standard   bool
				}
				if err := dec.Decode(&p); err != nil {
					t.Fatal(err)
				}
				if r.stdOnly != "" && !p.Standard && !strings.HasPrefix(p.ImportPath, r.pkg) {
					t.Errorf("%s imports %s; it may import only the standard library: %s", r.pkg, p.ImportPath, r.stdOnly)
				}
				for f, why := range r.forbidden {
					if p.ImportPath == f || strings.HasPrefix(p.ImportPath, f+"/") {
						t.Errorf("%s depends on %s, against the dependency direction in STYLE.md: %s", r.pkg, p.ImportPath, why)
					}
				}
			}
		})
	}
}
