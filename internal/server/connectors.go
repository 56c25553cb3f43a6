package server

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"keycard/access"
	"keycard/connectors"
	"keycard/connectors/entra"
	"keycard/connectors/jumpcloud"
	"keycard/connectors/okta"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/buildinfo"
	"keycard/policy"
)

// BuildConnectors makes every connector the policy names. An okta connector
// needs OKTA_CLIENT_ORGURL and OKTA_CLIENT_TOKEN, an entra connector the
// AZURE_* variables, a jumpcloud connector JUMPCLOUD_API_KEY. Building makes
// no network call: checkConnectors proves the credentials at start.
func BuildConnectors(set *policy.Set, cfg Config, db adapt.StaticStore, clock access.Clock) (*ConnectorSet, error) {
	out := &ConnectorSet{Set: connectors.NewSet(), feeds: map[string]handlers.DeactivationFeed{}, checks: map[string]checker{}}
	for _, name := range slices.Sorted(maps.Keys(set.Connectors)) {
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
				return nil, fmt.Errorf("connector %s (type okta) needs %v", name, missing)
			}
			oc, err := okta.New(okta.Config{OrgURL: cfg.OktaOrgURL, Token: string(cfg.OktaToken), ManagerAttribute: c.ManagerAttribute, Clock: clock, Timeout: cfg.IdPTimeout})
			if err != nil {
				return nil, fmt.Errorf("connector %s: %w", name, err)
			}
			out.Add(name, oc, oc, c.Scope)
			out.feeds[name] = feedOf(oc.LifecycleEvents, func(e okta.LifecycleEvent) handlers.Deactivation {
				return handlers.Deactivation{ID: e.UUID, Type: e.Type, UserID: e.UserID, Published: e.Published}
			})
		case policy.ConnectorEntra:
			ecfg, err := entra.FromEnv(LookupEnv)
			if err != nil {
				return nil, fmt.Errorf("connector %s (type entra): %w", name, err)
			}
			ecfg.Clock = clock
			if cfg.IdPTimeout > 0 {
				ecfg.Timeout = cfg.IdPTimeout
			}
			if cfg.IdPHTTPClient != nil {
				ecfg.HTTPClient = cfg.IdPHTTPClient
			}
			ec, err := entra.New(ecfg)
			if err != nil {
				return nil, fmt.Errorf("connector %s: %w", name, err)
			}
			out.Add(name, ec, ec, c.Scope)
			out.checks[name] = ec
			out.feeds[name] = feedOf(ec.LifecycleEvents, func(e entra.LifecycleEvent) handlers.Deactivation {
				return handlers.Deactivation{ID: e.UUID, Type: e.Type, UserID: e.UserID, Published: e.Published}
			})
		case policy.ConnectorJumpCloud:
			jcfg, err := jumpcloud.ConfigFromEnv(func(k string) string { v, _ := LookupEnv(k); return v })
			if err != nil {
				return nil, fmt.Errorf("connector %s (type jumpcloud): %w", name, err)
			}
			jcfg.Clock = clock
			if cfg.IdPTimeout > 0 {
				jcfg.Timeout = cfg.IdPTimeout
			}
			jc, err := jumpcloud.New(jcfg)
			if err != nil {
				return nil, fmt.Errorf("connector %s: %w", name, err)
			}
			// JumpCloud has no lifecycle feed keycard may rely on: leavers
			// are found by the holder sweep (handlers.SweepHolders).
			out.Add(name, jc, jc, c.Scope)
			out.checks[name] = jc
		case "static":
			sc, err := adapt.Static(name, c, db, clock)
			if err != nil {
				return nil, fmt.Errorf("connector %s: %w", name, err)
			}
			out.Add(name, sc, sc, c.Scope)
		default:
			return nil, fmt.Errorf("connector %s: unknown type %q", name, c.Type)
		}
	}
	return out, nil
}

// reconnect rebuilds the connectors of a policy about to take effect and
// merges them into the running set: a connector the new policy adds is
// built, and every connector it names is wrapped with its new scope, so a
// narrowed scope is enforced from the next call. When any connector cannot
// be built nothing changes and the policy change is refused.
func reconnect(conns *ConnectorSet, cfg Config, db adapt.StaticStore, clock access.Clock) func(*policy.Set) error {
	return func(next *policy.Set) error {
		fresh, err := BuildConnectors(next, cfg, db, clock)
		if err != nil {
			return err
		}
		conns.Merge(fresh.Set)
		return nil
	}
}

// ConnectorSet is the connectors plus what serve needs of the live IdPs:
// their leaver feeds (Okta System Log, Entra users delta; reads only, since
// changes go through the scoped set) and their start-up credential checks.
type ConnectorSet struct {
	*connectors.Set
	feeds  map[string]handlers.DeactivationFeed
	checks map[string]checker
}

// checker proves an IdP accepts keycard's credentials.
type checker interface {
	Check(ctx context.Context) error
}

// checkConnectors proves each live IdP's credentials at start, so a wrong
// secret stops keycard with one sentence (CodeForbidden: "the IdP refused
// keycard's credentials") instead of failing on the first request. An IdP
// that does not answer is only logged: readiness reports it until it does.
func checkConnectors(ctx context.Context, cs *ConnectorSet, warn func(name string, err error)) error {
	for _, name := range slices.Sorted(maps.Keys(cs.checks)) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := cs.checks[name].Check(cctx)
		cancel()
		switch {
		case err == nil:
		case access.CodeOf(err) == access.CodeForbidden:
			return fmt.Errorf("connector %s: %s", name, access.MessageOf(err))
		default:
			warn(name, err)
		}
	}
	return nil
}

// feedOf adapts a connector's lifecycle events to the offboarding feed.
func feedOf[E any](list func(context.Context, string) ([]E, string, error), conv func(E) handlers.Deactivation) handlers.DeactivationFeed {
	return func(ctx context.Context, cursor string) ([]handlers.Deactivation, string, error) {
		evs, next, err := list(ctx, cursor)
		out := make([]handlers.Deactivation, 0, len(evs))
		for _, e := range evs {
			out = append(out, conv(e))
		}
		return out, next, err
	}
}

// LookupEnv reads a variable as written or with the KEYCARD_ prefix (SPEC:
// "Every variable may also be given with the KEYCARD_ prefix").
func LookupEnv(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok {
		return v, true
	}
	return os.LookupEnv("KEYCARD_" + name)
}

// Instance describes this keycard for manifests: version and the IdPs.
func Instance(set *policy.Set, cfg Config) handlers.Instance {
	in := handlers.Instance{Version: buildinfo.Get().Short()}
	for _, name := range slices.Sorted(maps.Keys(set.Connectors)) {
		c := set.Connectors[name]
		d := c.Type + " " + name
		if c.Type == "okta" && cfg.OktaOrgURL != "" {
			d += " " + cfg.OktaOrgURL
		}
		in.IdP = append(in.IdP, d)
	}
	return in
}
