package main

import (
	"context"
	"fmt"

	"keycard/access"
	"keycard/connectors"
	"keycard/connectors/okta"
	"keycard/connectors/static"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/policy"
	"keycard/store"
)

// buildConnectors makes every connector the policy names. An okta connector
// needs OKTA_CLIENT_ORGURL and OKTA_CLIENT_TOKEN.
func buildConnectors(set *policy.Set, cfg Config, db *store.DB, clock access.Clock) (*connectorSet, map[string]*static.Connector, error) {
	out := &connectorSet{Set: connectors.NewSet(), okta: map[string]*okta.Connector{}}
	statics := map[string]*static.Connector{}
	for _, name := range sortedKeys(set.Connectors) {
		c := set.Connectors[name]
		switch c.Type {
		case "okta":
			var missing []string
			if cfg.OktaOrgURL == "" {
				missing = append(missing, "OKTA_CLIENT_ORGURL")
			}
			if cfg.OktaToken == "" {
				missing = append(missing, "OKTA_CLIENT_TOKEN")
			}
			if len(missing) > 0 {
				return nil, nil, fmt.Errorf("connector %s (type okta) needs %v", name, missing)
			}
			oc, err := okta.New(okta.Config{OrgURL: cfg.OktaOrgURL, Token: string(cfg.OktaToken), ManagerAttribute: c.ManagerAttribute, Clock: clock})
			if err != nil {
				return nil, nil, fmt.Errorf("connector %s: %w", name, err)
			}
			out.Add(name, oc, oc, c.Scope)
			out.okta[name] = oc
		case "static":
			sc, err := adapt.Static(name, c, db, clock)
			if err != nil {
				return nil, nil, fmt.Errorf("connector %s: %w", name, err)
			}
			statics[name] = sc
			out.Add(name, sc, sc, c.Scope)
		default:
			return nil, nil, fmt.Errorf("connector %s: unknown type %q", name, c.Type)
		}
	}
	return out, statics, nil
}

// reconnect rebuilds the connectors of a policy about to take effect and
// merges them into the running set: a connector the new policy adds is
// built, and every connector it names is wrapped with its new scope, so a
// narrowed scope is enforced from the next call. When any connector cannot
// be built nothing changes and the policy change is refused.
func reconnect(conns *connectorSet, cfg Config, db *store.DB, clock access.Clock) func(*policy.Set) error {
	return func(next *policy.Set) error {
		fresh, _, err := buildConnectors(next, cfg, db, clock)
		if err != nil {
			return err
		}
		conns.Merge(fresh.Set)
		return nil
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// connectorSet is the connectors plus the raw Okta connectors, whose System
// Log feeds offboarding (reads only: changes go through the scoped set).
type connectorSet struct {
	*connectors.Set
	okta map[string]*okta.Connector
}

func oktaConnector(cs *connectorSet, name string) (*okta.Connector, bool) {
	oc, ok := cs.okta[name]
	return oc, ok
}

// oktaFeed adapts the Okta System Log to the offboarding feed.
func oktaFeed(oc *okta.Connector) handlers.DeactivationFeed {
	return func(ctx context.Context, cursor string) ([]handlers.Deactivation, string, error) {
		evs, next, err := oc.LifecycleEvents(ctx, cursor)
		out := make([]handlers.Deactivation, 0, len(evs))
		for _, e := range evs {
			out = append(out, handlers.Deactivation{ID: e.UUID, Type: e.Type, UserID: e.UserID, Published: e.Published})
		}
		return out, next, err
	}
}

// verifier walks the whole audit chain for export manifests.
func verifier(db *store.DB) handlers.ChainVerifier {
	return func(upTo uint64) (uint64, string, string, error) {
		var last string
		res, err := db.Verify(1, func(e access.Event) error {
			last = e.Hash
			if e.Seq >= upTo {
				return store.ErrStop
			}
			return nil
		})
		problem := res.Problem
		if res.BadSeq > upTo {
			problem = "" // a break after the report's head is not this report's
		}
		return res.Count, last, problem, err
	}
}

// instance describes this keycard for manifests: version and the IdPs.
func instance(set *policy.Set, cfg Config) handlers.Instance {
	in := handlers.Instance{Version: version}
	for _, name := range sortedKeys(set.Connectors) {
		c := set.Connectors[name]
		d := c.Type + " " + name
		if c.Type == "okta" && cfg.OktaOrgURL != "" {
			d += " " + cfg.OktaOrgURL
		}
		in.IdP = append(in.IdP, d)
	}
	return in
}
