package idptest

import (
	"context"
	"testing"
	"time"

	"keycard/connectors/entra"
	"keycard/connectors/jumpcloud"
	"keycard/connectors/okta"
	"keycard/internal/fakeclock"
)

// Each world answers its real client: the people, their managers and the
// group members it was seeded with.
func TestWorldsAnswerTheirClients(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	people := []Person{{Email: "ann@example.com", Name: "Ann Lee", Manager: "bob@example.com", Department: "Engineering"},
		{Email: "bob@example.com", Name: "Bob Stone", Department: "Engineering"}}
	groups := []Group{{Name: "security-team", Members: []string{"bob@example.com"}}}
	ctx := context.Background()
	for _, start := range []func(func() time.Time, []Person, []Group) *World{Okta, Entra, JumpCloud} {
		w := start(clock.Now, people, groups)
		t.Run(w.Type, func(t *testing.T) {
			defer w.Close()
			switch w.Type {
			case "okta":
				oc, err := okta.New(okta.Config{OrgURL: w.Env["OKTA_CLIENT_ORGURL"], Token: w.Env["OKTA_CLIENT_TOKEN"], Clock: clock})
				if err != nil {
					t.Fatal(err)
				}
				ann, err := oc.UserByEmail(ctx, "ANN@example.com")
				if err != nil {
					t.Fatal(err)
				}
				if m, err := oc.Manager(ctx, ann); err != nil || m.Email != "bob@example.com" {
					t.Fatalf("manager %+v %v", m, err)
				}
			case "entra":
				cfg, err := entra.FromEnv(func(k string) (string, bool) { v, ok := w.Env[k]; return v, ok })
				if err != nil {
					t.Fatal(err)
				}
				cfg.HTTPClient, cfg.Clock = w.HTTPClient, clock
				ec, err := entra.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				ann, err := ec.UserByEmail(ctx, "ANN@example.com")
				if err != nil {
					t.Fatal(err)
				}
				if m, err := ec.Manager(ctx, ann); err != nil || m.Email != "bob@example.com" {
					t.Fatalf("manager %+v %v", m, err)
				}
			case "jumpcloud":
				cfg, err := jumpcloud.ConfigFromEnv(func(k string) string { return w.Env[k] })
				if err != nil {
					t.Fatal(err)
				}
				cfg.Clock = clock
				jc, err := jumpcloud.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				ann, err := jc.UserByEmail(ctx, "ANN@example.com")
				if err != nil {
					t.Fatal(err)
				}
				if m, err := jc.Manager(ctx, ann); err != nil || m.Email != "bob@example.com" {
					t.Fatalf("manager %+v %v", m, err)
				}
			}
			if !w.IsMember("security-team", "bob@example.com") || w.IsMember("security-team", "ann@example.com") {
				t.Fatal("membership is not as seeded")
			}
		})
	}
}
