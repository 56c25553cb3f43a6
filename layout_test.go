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
	rules := []struct {
		pkg       string
		forbidden []string
		stdOnly   bool
	}{
		{pkg: "keycard/access", stdOnly: true},
		{pkg: "keycard/csvw", stdOnly: true},
		{pkg: "keycard/policy", forbidden: []string{"keycard/internal/server", "keycard/store", "keycard/connectors", "keycard/handlers", "keycard/bot", "go.etcd.io/bbolt", "github.com/slack-go/slack", "github.com/okta/okta-sdk-golang/v2/okta"}},
		{pkg: "keycard/store", forbidden: []string{"keycard/internal/server", "keycard/policy", "keycard/connectors", "keycard/handlers", "keycard/bot", "github.com/slack-go/slack", "github.com/okta/okta-sdk-golang/v2/okta"}},
		{pkg: "keycard/connectors/...", forbidden: []string{"keycard/internal/server", "keycard/policy", "keycard/store", "keycard/handlers", "keycard/bot", "go.etcd.io/bbolt", "github.com/slack-go/slack"}},
		{pkg: "keycard/handlers", forbidden: []string{"keycard/internal/server", "keycard/store", "keycard/connectors", "keycard/bot", "go.etcd.io/bbolt", "github.com/slack-go/slack", "github.com/okta/okta-sdk-golang/v2/okta"}},
		{pkg: "keycard/bot", forbidden: []string{"keycard/internal/server", "keycard/store", "keycard/connectors", "go.etcd.io/bbolt", "github.com/okta/okta-sdk-golang/v2/okta"}},
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
				if r.stdOnly && !p.Standard && !strings.HasPrefix(p.ImportPath, r.pkg) {
					t.Errorf("%s imports %s; it may import only the standard library", r.pkg, p.ImportPath)
				}
				for _, f := range r.forbidden {
					if p.ImportPath == f || strings.HasPrefix(p.ImportPath, f+"/") {
						t.Errorf("%s depends on %s, against the dependency direction in STYLE.md", r.pkg, p.ImportPath)
					}
				}
			}
		})
	}
}
