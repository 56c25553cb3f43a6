// Package idptest stands up one identity provider's emulator (Okta, Entra
// ID, JumpCloud) seeded with the same people and groups, for the tests that
// run keycard's whole lifecycle once per connector (issue 12: "the bot's
// lifecycle tests run once per connector"). It gives what the wiring needs
// to reach the emulator (the environment variables, and for Entra the HTTP
// client that trusts the emulator's test CA) and what a test needs to look
// at the IdP afterwards (membership, deactivation, an injected rate limit).
package idptest

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"keycard/internal/graphfake"
	"keycard/internal/jumpcloudfake"
	"keycard/internal/oktafake"
)

// Person is one directory user. Manager is the manager's email.
type Person struct {
	Email, Name, Manager string
	Department           string
}

// Group is one directory group and its members' emails.
type Group struct {
	Name    string
	Members []string
}

// World is one running emulator with the people and groups in it.
type World struct {
	Type string            // the connector type: okta, entra, jumpcloud
	Env  map[string]string // the variables that point keycard at the emulator
	// HTTPClient reaches the emulator (Entra: trusts its test CA); nil when
	// the connector's default client will do.
	HTTPClient *http.Client

	// Okta is the Okta emulator (nil for other providers): its Factors API
	// serves the step-up MFA pushes (EnrollPush, AnswerPush).
	Okta *oktafake.Server

	members    func(group string) []string // user ids
	idOf       map[string]string           // lower-cased email -> IdP id
	deactivate func(id string) error
	rateLimit  func(n int, wait time.Duration)
	closeFn    func()
	mu         sync.Mutex
}

// IsMember reports whether email is a member of group in the IdP now.
func (w *World) IsMember(group, email string) bool {
	id := w.idOf[strings.ToLower(email)]
	for _, m := range w.members(group) {
		if m == id {
			return true
		}
	}
	return false
}

// ID is email's id in the IdP.
func (w *World) ID(email string) string { return w.idOf[strings.ToLower(email)] }

// Deactivate suspends or disables email's account, as offboarding does.
func (w *World) Deactivate(email string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.deactivate(w.idOf[strings.ToLower(email)])
}

// RateLimitNextChange answers the next n membership changes (adds and
// removals) with the provider's 429 and a wait of d in its own header;
// reads are not limited, so nothing else in flight can use the 429 up.
func (w *World) RateLimitNextChange(n int, d time.Duration) { w.rateLimit(n, d) }

// Close stops the emulator.
func (w *World) Close() { w.closeFn() }

func split(name string) (string, string) {
	first, last, _ := strings.Cut(name, " ")
	if last == "" {
		last = "X"
	}
	return first, last
}

// Okta starts the Okta emulator (http on loopback, as OKTA_CLIENT_ORGURL
// allows) seeded with people and groups; clock stamps its System Log.
func Okta(clock func() time.Time, people []Person, groups []Group) *World {
	const token = "00okta-test-token"
	f := oktafake.New(oktafake.Options{Token: token, Clock: clock})
	w := &World{Type: "okta", Env: map[string]string{"OKTA_CLIENT_ORGURL": f.URL, "OKTA_CLIENT_TOKEN": token}, idOf: map[string]string{}, Okta: f}
	for _, p := range people {
		first, last := split(p.Name)
		profile := map[string]any{"login": p.Email, "email": p.Email, "firstName": first, "lastName": last, "department": p.Department}
		if p.Manager != "" {
			profile["managerId"] = p.Manager
		}
		w.idOf[strings.ToLower(p.Email)] = f.AddUser(profile, "ACTIVE")
	}
	for _, g := range groups {
		gid := f.AddGroup(g.Name, "OKTA_GROUP")
		for _, m := range g.Members {
			_ = f.AddMember(gid, w.idOf[strings.ToLower(m)])
		}
	}
	w.members = func(group string) []string { return f.Members(f.GroupID(group)) }
	w.deactivate = func(id string) error { return f.SetStatus(id, "SUSPENDED") }
	w.rateLimit = func(n int, d time.Duration) { f.RateLimitNextMatching("PUT /api/v1/groups/", n, d) }
	w.closeFn = f.Close
	return w
}

// Entra starts the Microsoft Graph and token authority emulator (HTTPS with
// a test CA) seeded with people and groups.
func Entra(clock func() time.Time, people []Person, groups []Group) *World {
	// The Graph emulator keeps its own fixed clock: azidentity caches tokens
	// by the wall clock, so a token issued on a test's fake clock would look
	// expired to the emulator once the test moves its clock hours ahead.
	_ = clock
	f := graphfake.New(graphfake.Options{})
	w := &World{Type: "entra", HTTPClient: f.Client(), idOf: map[string]string{}, Env: map[string]string{
		"AZURE_TENANT_ID": f.Tenant(), "AZURE_CLIENT_ID": f.ClientID(), "AZURE_CLIENT_SECRET": f.Secret(),
		"AZURE_AUTHORITY_HOST": f.AuthorityHost(), "KEYCARD_GRAPH_URL": f.GraphURL(),
	}}
	for _, p := range people {
		first, last := split(p.Name)
		w.idOf[strings.ToLower(p.Email)] = f.AddUser(graphfake.User{DisplayName: p.Name, GivenName: first, Surname: last,
			Mail: p.Email, UserPrincipalName: p.Email, Department: p.Department})
	}
	for _, p := range people {
		if p.Manager != "" {
			_ = f.SetManager(w.idOf[strings.ToLower(p.Email)], w.idOf[strings.ToLower(p.Manager)])
		}
	}
	for _, g := range groups {
		gid := f.AddGroup(g.Name)
		for _, m := range g.Members {
			_ = f.AddMember(gid, w.idOf[strings.ToLower(m)])
		}
	}
	w.members = func(group string) []string { return f.Members(f.GroupID(group)) }
	w.deactivate = func(id string) error { return f.SetEnabled(id, false) }
	w.rateLimit = func(n int, d time.Duration) { f.Throttle("POST /v1.0/groups/", n, d) }
	w.closeFn = f.Close
	return w
}

// JumpCloud starts the JumpCloud API emulator (http on loopback) seeded
// with people and groups.
func JumpCloud(clock func() time.Time, people []Person, groups []Group) *World {
	f := jumpcloudfake.New(jumpcloudfake.Options{Clock: clock})
	w := &World{Type: "jumpcloud", idOf: map[string]string{}, Env: map[string]string{"JUMPCLOUD_API_KEY": f.APIKey(), "JUMPCLOUD_API_URL": f.URL}}
	for _, p := range people {
		first, last := split(p.Name)
		w.idOf[strings.ToLower(p.Email)] = f.AddUser(jumpcloudfake.User{Email: p.Email, Username: strings.Split(p.Email, "@")[0],
			Firstname: first, Lastname: last, Displayname: p.Name, Department: p.Department})
	}
	for _, p := range people {
		if p.Manager != "" {
			_ = f.SetManager(w.idOf[strings.ToLower(p.Email)], w.idOf[strings.ToLower(p.Manager)])
		}
	}
	for _, g := range groups {
		gid := f.AddGroup(g.Name)
		for _, m := range g.Members {
			_ = f.AddMember(gid, w.idOf[strings.ToLower(m)])
		}
	}
	w.members = func(group string) []string { return f.Members(f.GroupID(group)) }
	w.deactivate = f.Suspend
	w.rateLimit = func(n int, d time.Duration) { f.RateLimitNextMatching("POST /api/v2/usergroups/", n, d) }
	w.closeFn = f.Close
	return w
}
