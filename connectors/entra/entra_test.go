package entra_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/connectors/entra"
	"keycard/internal/graphfake"
)

func TestConfigRedactsSecrets(t *testing.T) {
	cfg := entra.Config{TenantID: "contoso.onmicrosoft.com", ClientID: "app", ClientSecret: "s3cr3t~value", CertificatePassword: "pfx-pass"}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("start", "entra", cfg)
	for _, out := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%d", cfg), fmt.Sprintf("%x", &cfg), fmt.Sprintf("%q", cfg), buf.String()} {
		if strings.Contains(out, "s3cr3t") || strings.Contains(out, "pfx-pass") {
			t.Fatalf("secret printed: %s", out)
		}
		if !strings.Contains(out, "redacted") {
			t.Fatalf("no redaction marker: %s", out)
		}
	}
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		method  string
		errWant string // a variable the one-line error names
	}{
		{"secret", map[string]string{"AZURE_TENANT_ID": "t1", "AZURE_CLIENT_ID": "c1", "AZURE_CLIENT_SECRET": "x"}, "client secret", ""},
		{"certificate", map[string]string{"AZURE_TENANT_ID": "t1", "AZURE_CLIENT_ID": "c1", "AZURE_CLIENT_CERTIFICATE_PATH": "/x.pem"}, "certificate", ""},
		{"workload identity", map[string]string{"AZURE_TENANT_ID": "t1", "AZURE_CLIENT_ID": "c1", "AZURE_FEDERATED_TOKEN_FILE": "/var/run/token"}, "workload identity", ""},
		{"managed identity", map[string]string{}, "managed identity", ""},
		{"two credentials", map[string]string{"AZURE_TENANT_ID": "t1", "AZURE_CLIENT_ID": "c1", "AZURE_CLIENT_SECRET": "x", "AZURE_FEDERATED_TOKEN_FILE": "/t"}, "", "AZURE_FEDERATED_TOKEN_FILE"},
		{"secret without tenant", map[string]string{"AZURE_CLIENT_ID": "c1", "AZURE_CLIENT_SECRET": "x"}, "", "AZURE_TENANT_ID"},
		{"secret without client", map[string]string{"AZURE_TENANT_ID": "t1", "AZURE_CLIENT_SECRET": "x"}, "", "AZURE_CLIENT_ID"},
		{"bad tenant", map[string]string{"AZURE_TENANT_ID": "t1/../x", "AZURE_CLIENT_ID": "c1", "AZURE_CLIENT_SECRET": "x"}, "", "AZURE_TENANT_ID"},
		{"http authority", map[string]string{"AZURE_AUTHORITY_HOST": "http://login.example.com/"}, "", "AZURE_AUTHORITY_HOST"},
		{"http graph", map[string]string{"KEYCARD_GRAPH_URL": "http://graph.example.com/v1.0"}, "", "KEYCARD_GRAPH_URL"},
		{"loopback graph", map[string]string{"KEYCARD_GRAPH_URL": "http://127.0.0.1:8080/v1.0"}, "managed identity", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := entra.FromEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.errWant != "" {
				if access.CodeOf(err) != access.CodeInvalid || !strings.Contains(err.Error(), tt.errWant) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line naming %s", err, tt.errWant)
				}
				if strings.Contains(err.Error(), "=x") || strings.Contains(err.Error(), `"x"`) {
					t.Fatalf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil || cfg.Method() != tt.method {
				t.Fatalf("cfg %v, err %v; want method %s", cfg, err, tt.method)
			}
		})
	}
}

func TestValidateGraphURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://graph.microsoft.com/v1.0/", "https://graph.microsoft.com/v1.0"},
		{"https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/v1.0"},
		{"http://localhost:9999/v1.0", "http://localhost:9999/v1.0"},
		{"http://[::1]:9999/v1.0", "http://[::1]:9999/v1.0"},
		{"http://graph.microsoft.com/v1.0", ""},
		{"https://graph.microsoft.com/v1.0?x=1", ""},
		{"https://user:pw@graph.microsoft.com/v1.0", ""},
		{"", ""},
		{"ftp://graph.microsoft.com", ""},
	}
	for _, tt := range tests {
		got, err := entra.ValidateGraphURL(tt.in)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("ValidateGraphURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

type env struct {
	fake *graphfake.Server
	conn *entra.Connector
	h    *harness
}

func newEnv(t *testing.T) env {
	h := newHarness(t)
	return env{fake: h.fake, conn: h.conn, h: h}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestWrongSecret: a refused credential is reported at start in one line,
// as the IdP refusing keycard's credentials, without azidentity's HTTP dump.
func TestWrongSecret(t *testing.T) {
	fake := graphfake.New(graphfake.Options{})
	defer fake.Close()
	conn, err := entra.New(entra.Config{
		TenantID: fake.Tenant(), ClientID: fake.ClientID(), ClientSecret: "wrong-secret-value",
		AuthorityHost: fake.AuthorityHost(), GraphURL: fake.GraphURL(), HTTPClient: fake.Client(), Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = conn.Check(ctx(t))
	if access.CodeOf(err) != access.CodeForbidden || !strings.Contains(err.Error(), "the IdP refused keycard's credentials") ||
		!strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("Check = %v", err)
	}
	if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "RESPONSE") || strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatalf("error is an HTTP dump or holds the secret: %q", err)
	}
	for _, r := range fake.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/") {
			t.Fatalf("Graph called without a token: %+v", r)
		}
	}
}

func TestCertificateAndWorkloadIdentity(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "keycard"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	certPath := filepath.Join(dir, "keycard.pem")
	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	if err := os.WriteFile(certPath, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	tokPath := filepath.Join(dir, "token")
	if err := os.WriteFile(tokPath, []byte("federated.assertion.jwt"), 0o600); err != nil {
		t.Fatal(err)
	}
	fake := graphfake.New(graphfake.Options{Certificates: []*x509.Certificate{cert}, FederatedTokens: []string{"federated.assertion.jwt"}})
	defer fake.Close()
	base := entra.Config{TenantID: fake.Tenant(), ClientID: fake.ClientID(), AuthorityHost: fake.AuthorityHost(),
		GraphURL: fake.GraphURL(), HTTPClient: fake.Client(), Timeout: 5 * time.Second}
	for name, mut := range map[string]func(*entra.Config){
		"certificate":       func(c *entra.Config) { c.CertificatePath = certPath },
		"workload identity": func(c *entra.Config) { c.FederatedTokenFile = tokPath },
	} {
		cfg := base
		mut(&cfg)
		conn, err := entra.New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := conn.Check(ctx(t)); err != nil {
			t.Fatalf("%s: Check: %v", name, err)
		}
	}
	cfg := base
	cfg.CertificatePath = filepath.Join(dir, "missing.pem")
	if _, err := entra.New(cfg); access.CodeOf(err) != access.CodeInvalid || !strings.Contains(err.Error(), "AZURE_CLIENT_CERTIFICATE_PATH") {
		t.Fatalf("missing certificate: %v", err)
	}
}

// TestMalformedAnswers: an HTML page, a truncated body and a page loop are
// errors naming the call (retried while they may be transient), never a
// panic, and never read as "not a member".
func TestMalformedAnswers(t *testing.T) {
	e := newEnv(t)
	e.fake.AddUser(graphfake.User{Mail: "ann@example.com"})
	gid := e.fake.AddGroup("app-admins")
	uid := e.fake.AddUser(graphfake.User{Mail: "bob@example.com"})
	_ = e.fake.AddMember(gid, uid)

	e.fake.HTMLNext("GET /v1.0/users", 1, 200)
	if _, err := e.conn.UserByEmail(ctx(t), "ann@example.com"); err != nil {
		t.Fatalf("one HTML page is retried: %v", err)
	}
	e.fake.HTMLNext("GET /v1.0/users", 100, 502)
	_, err := e.conn.UserByEmail(ctx(t), "ann@example.com")
	if access.CodeOf(err) != access.CodeUnavailable || !strings.Contains(err.Error(), "find user by email") {
		t.Fatalf("HTML pages: %v", err)
	}
	e.fake.ClearFaults()

	e.fake.TruncateNext("/v1.0/groups/*/members", 100)
	ok, err := e.conn.IsMember(ctx(t), "app-admins", uid)
	if err == nil || ok || !strings.Contains(err.Error(), "list members of app-admins") || !strings.Contains(err.Error(), "malformed JSON") {
		t.Fatalf("truncated member list: %v, %v", ok, err)
	}
	e.fake.ClearFaults()

	e.fake.LoopPages("/v1.0/groups/*/members")
	if _, err := e.conn.GroupMembers(ctx(t), "app-admins"); access.CodeOf(err) != access.CodeUnavailable || !strings.Contains(err.Error(), "paging did not end") {
		t.Fatalf("page loop: %v", err)
	}
	e.fake.ClearFaults()
	if got := e.fake.Members(gid); len(got) != 1 {
		t.Fatalf("membership changed: %v", got)
	}
}

// TestLongRetryAfter: a Retry-After longer than the connector waits inside
// a call is returned as rate_limited with RetryAt, and nothing more is sent.
func TestLongRetryAfter(t *testing.T) {
	e := newEnv(t)
	e.fake.AddUser(graphfake.User{Mail: "ann@example.com"})
	_, _ = e.conn.UserByEmail(ctx(t), "ann@example.com") // token
	e.fake.ResetRequests()
	now := e.h.clock.Now()
	e.fake.Throttle("/v1.0/", 1, 10*time.Minute)
	_, err := e.conn.UserByEmail(ctx(t), "ann@example.com")
	var ae *access.Error
	if !errors.As(err, &ae) || ae.Code != access.CodeRateLimited || !ae.RetryAt.Equal(now.Add(10*time.Minute)) {
		t.Fatalf("err = %v", err)
	}
	if n := len(e.fake.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestFilterEscaping(t *testing.T) {
	e := newEnv(t)
	id := e.fake.AddUser(graphfake.User{Mail: "o'brien+ops@example.com"})
	upn := e.fake.AddUser(graphfake.User{Mail: "", UserPrincipalName: "Guest_x#EXT#@contoso.onmicrosoft.com"})
	u, err := e.conn.UserByEmail(ctx(t), "O'Brien+ops@example.com")
	if err != nil || u.ID != id {
		t.Fatalf("quote and plus: %+v, %v", u, err)
	}
	u, err = e.conn.UserByEmail(ctx(t), "guest_x#ext#@contoso.onmicrosoft.com")
	if err != nil || u.ID != upn || u.Email != "Guest_x#EXT#@contoso.onmicrosoft.com" {
		t.Fatalf("by userPrincipalName: %+v, %v", u, err)
	}
	if _, err := e.conn.UserByEmail(ctx(t), "x' or mail eq 'o''brien+ops@example.com"); access.CodeOf(err) != access.CodeNotFound {
		t.Fatalf("filter injection: %v", err)
	}
}

func TestAttributes(t *testing.T) {
	e := newEnv(t)
	id := e.fake.AddUser(graphfake.User{Mail: "a@example.com", DisplayName: "A", Department: "Eng", JobTitle: "SRE",
		EmployeeType: "Employee", CompanyName: "Acme", OfficeLocation: "Berlin", UserType: "Guest"})
	u, err := e.conn.UserByID(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"department": "Eng", "jobTitle": "SRE", "employeeType": "Employee",
		"companyName": "Acme", "officeLocation": "Berlin", "userType": "Guest", "accountEnabled": "true"} {
		if got, _ := u.Attr(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if u.Status != access.StatusActive || u.Login != "a@example.com" {
		t.Fatalf("user %+v", u)
	}
	groups, err := e.conn.Groups(ctx(t))
	if err != nil || len(groups) != 0 {
		t.Fatalf("Groups = %v, %v", groups, err)
	}
}

func TestGroupsPaged(t *testing.T) {
	e := newEnv(t)
	for i := range 12 {
		e.fake.AddGroup(fmt.Sprintf("g%02d", i))
	}
	groups, err := e.conn.Groups(ctx(t))
	if err != nil || len(groups) != 12 || groups[0] != "g00" || groups[11] != "g11" {
		t.Fatalf("Groups = %v, %v", groups, err)
	}
}

// TestDeltaCursor: a stored cursor that is not a Graph link is refused
// (the token never leaves for another host); a delta token Graph has
// forgotten (410) restarts with a full round.
func TestDeltaCursor(t *testing.T) {
	e := newEnv(t)
	id := e.fake.AddUser(graphfake.User{Mail: "a@example.com", Disabled: true})
	if _, _, err := e.conn.LifecycleEvents(ctx(t), "https://evil.example.com/v1.0/users/delta?$deltatoken=x"); access.CodeOf(err) != access.CodeInvalid {
		t.Fatalf("foreign cursor: %v", err)
	}
	gone := e.fake.GraphURL() + "/users/delta?$deltatoken=bm9wZQ"
	evs, next, err := e.conn.LifecycleEvents(ctx(t), gone)
	if err != nil || len(evs) != 0 || !strings.Contains(next, "deltatoken") || strings.Contains(next, "latest") {
		t.Fatalf("410 restart from now: %+v %q %v", evs, next, err)
	}
	if err := e.fake.DeleteUser(id); err != nil {
		t.Fatal(err)
	}
	evs, next, err = e.conn.LifecycleEvents(ctx(t), next)
	if err != nil || len(evs) != 1 || evs[0].UserID != id || evs[0].Type != entra.EventDeleted {
		t.Fatalf("after the restart: %+v %q %v", evs, next, err)
	}
	e.fake.FailNext("/v1.0/users/delta", 100, 500, 0)
	if _, cur, err := e.conn.LifecycleEvents(ctx(t), next); err == nil || cur != next {
		t.Fatalf("on error the cursor stays: %q %v", cur, err)
	}
}

// TestRemoveKeepsOthers: removal touches only the named member.
func TestRemoveKeepsOthers(t *testing.T) {
	e := newEnv(t)
	gid := e.fake.AddGroup("app-admins")
	a := e.fake.AddUser(graphfake.User{Mail: "a@example.com"})
	b := e.fake.AddUser(graphfake.User{Mail: "b@example.com"})
	_ = e.fake.AddMember(gid, a)
	_ = e.fake.AddMember(gid, b)
	if _, err := e.conn.RemoveMember(ctx(t), "app-admins", a); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Members(gid); len(got) != 1 || got[0] != b {
		t.Fatalf("members %v", got)
	}
	if _, err := e.conn.AddMember(ctx(t), "no-such-group", a); access.CodeOf(err) != access.CodeNotFound {
		t.Fatalf("unknown group: %v", err)
	}
}

// TestDeltaPaged: one poll follows nextLinks (five users a page) to the
// deltaLink and reports every leaver once; the next poll reports none.
func TestDeltaPaged(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := range 12 {
		ids = append(ids, e.fake.AddUser(graphfake.User{Mail: fmt.Sprintf("u%02d@example.com", i)}))
	}
	_, cur, err := e.conn.LifecycleEvents(ctx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:8] {
		_ = e.fake.SetEnabled(id, false)
	}
	_ = e.fake.SetEnabled(ids[8], false)
	_ = e.fake.SetEnabled(ids[8], true) // disabled and back: not a leaver
	e.fake.ResetRequests()
	evs, cur, err := e.conn.LifecycleEvents(ctx(t), cur)
	if err != nil || len(evs) != 8 {
		t.Fatalf("leavers %d (%+v), %v", len(evs), evs, err)
	}
	if n := len(e.fake.Requests()); n < 2 {
		t.Fatalf("%d delta pages, want several", n)
	}
	if evs, _, err := e.conn.LifecycleEvents(ctx(t), cur); err != nil || len(evs) != 0 {
		t.Fatalf("second poll: %+v, %v", evs, err)
	}
}

// TestServiceUnavailableRetryAfter: a 503 with Retry-After is retried no
// sooner than the header says; one without it backs off.
func TestServiceUnavailableRetryAfter(t *testing.T) {
	e := newEnv(t)
	e.fake.AddUser(graphfake.User{Mail: "ann@example.com"})
	_, _ = e.conn.UserByEmail(ctx(t), "ann@example.com")
	for _, st := range []int{503, 504} {
		e.fake.ResetRequests()
		e.fake.FailNext("/v1.0/", 1, st, 7*time.Second)
		if _, err := e.conn.UserByEmail(ctx(t), "ann@example.com"); err != nil {
			t.Fatalf("%d: %v", st, err)
		}
		reqs := e.fake.Requests()
		if len(reqs) != 2 || reqs[0].Status != st || reqs[1].At.Sub(reqs[0].At) != 7*time.Second {
			t.Fatalf("%d: requests %+v", st, reqs)
		}
	}
	e.fake.ResetRequests()
	e.fake.FailNext("/v1.0/", 100, 500, 0)
	_, err := e.conn.UserByEmail(ctx(t), "ann@example.com")
	if access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("persistent 500: %v", err)
	}
	if n := len(e.fake.Requests()); n != 1+entra.DefaultMaxRetries {
		t.Fatalf("%d requests, want %d (bounded)", n, 1+entra.DefaultMaxRetries)
	}
}

// TestNonGraph404IsNotSuccess: a 404 that is not Graph's error JSON (a
// proxy or gateway page) must not be read as "not a member": the removal
// would be reported done while the access stays.
func TestNonGraph404IsNotSuccess(t *testing.T) {
	e := newEnv(t)
	gid := e.fake.AddGroup("app-admins")
	a := e.fake.AddUser(graphfake.User{Mail: "a@example.com"})
	_ = e.fake.AddMember(gid, a)
	_, _ = e.conn.UserByID(ctx(t), a) // token and nothing else
	e.fake.HTMLNext("DELETE /v1.0/groups/", 100, 404)
	if _, err := e.conn.RemoveMember(ctx(t), "app-admins", a); access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("RemoveMember over a proxy 404 page: %v, want unavailable", err)
	}
	if got := e.fake.Members(gid); len(got) != 1 {
		t.Fatalf("members %v", got)
	}
	e.fake.ClearFaults()
	e.fake.HTMLNext("DELETE /v1.0/groups/", 100, 200)
	if _, err := e.conn.RemoveMember(ctx(t), "app-admins", a); access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("RemoveMember answered by a 200 HTML page: %v, want unavailable", err)
	}
	if got := e.fake.Members(gid); len(got) != 1 {
		t.Fatalf("members %v", got)
	}
	e.fake.HTMLNext("GET /v1.0/users/", 100, 404)
	if _, err := e.conn.UserByID(ctx(t), a); access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("UserByID over a proxy 404 page: %v, want unavailable (not a deleted user)", err)
	}
}

// TestJSONNotAsDocumented: valid JSON that is not the documented object or
// collection is an error naming the call, never an empty list or a blank
// user.
func TestJSONNotAsDocumented(t *testing.T) {
	e := newEnv(t)
	gid := e.fake.AddGroup("app-admins")
	a := e.fake.AddUser(graphfake.User{Mail: "a@example.com"})
	_ = e.fake.AddMember(gid, a)
	for name, tc := range map[string]struct {
		pattern string
		run     func() error
		what    string
	}{
		"user by email": {"GET /v1.0/users", func() error { _, err := e.conn.UserByEmail(ctx(t), "a@example.com"); return err }, "find user by email"},
		"user by id":    {"GET /v1.0/users/", func() error { _, err := e.conn.UserByID(ctx(t), a); return err }, "read user"},
		"members": {"/v1.0/groups/*/members", func() error {
			ok, err := e.conn.IsMember(ctx(t), "app-admins", a)
			if err == nil && !ok {
				return errors.New("read as not a member")
			}
			return err
		}, "list members of app-admins"},
		"delta": {"/v1.0/users/delta", func() error { _, _, err := e.conn.LifecycleEvents(ctx(t), ""); return err }, "read the users delta"},
	} {
		e.fake.ClearFaults()
		e.fake.EmptyNext(tc.pattern, 100)
		err := tc.run()
		if access.CodeOf(err) != access.CodeUnavailable || !strings.Contains(err.Error(), tc.what) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRemoveUnsafeIDIsNotDone: a user id keycard will not put in a URL
// means nothing was sent, so the revoke must not be reported done.
func TestRemoveUnsafeIDIsNotDone(t *testing.T) {
	e := newEnv(t)
	e.fake.AddGroup("app-admins")
	for _, id := range []string{"../users/x", "a?b", ""} {
		if _, err := e.conn.RemoveMember(ctx(t), "app-admins", id); access.CodeOf(err) != access.CodeInvalid {
			t.Fatalf("RemoveMember(%q): err = %v, want invalid", id, err)
		}
	}
}

// TestRetryAfterHoldsLaterCalls: a Retry-After handed back as rate_limited
// still holds the next calls; none reaches Graph before the header's time,
// and the hold is capped at entra.MaxHold.
func TestRetryAfterHoldsLaterCalls(t *testing.T) {
	e := newEnv(t)
	e.fake.AddUser(graphfake.User{Mail: "ann@example.com"})
	_, _ = e.conn.UserByEmail(ctx(t), "ann@example.com") // token
	e.fake.ResetRequests()
	now := e.h.clock.Now()
	e.fake.Throttle("/v1.0/", 1, 10*time.Minute)
	if _, err := e.conn.UserByEmail(ctx(t), "ann@example.com"); access.CodeOf(err) != access.CodeRateLimited {
		t.Fatalf("first call: %v", err)
	}
	_, err := e.conn.UserByEmail(ctx(t), "ann@example.com")
	var ae *access.Error
	if !errors.As(err, &ae) || ae.Code != access.CodeRateLimited || !ae.RetryAt.Equal(now.Add(10*time.Minute)) {
		t.Fatalf("second call at the same instant: %v", err)
	}
	if n := len(e.fake.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1: the second call went out inside the Retry-After", n)
	}
	e.h.clock.Advance(10 * time.Minute)
	if _, err := e.conn.UserByEmail(ctx(t), "ann@example.com"); err != nil {
		t.Fatalf("after the Retry-After: %v", err)
	}

	// A Retry-After of days holds for MaxHold only.
	now = e.h.clock.Now()
	e.fake.Throttle("/v1.0/", 1, 72*time.Hour)
	_, _ = e.conn.UserByEmail(ctx(t), "ann@example.com")
	_, err = e.conn.UserByEmail(ctx(t), "ann@example.com")
	if !errors.As(err, &ae) || ae.Code != access.CodeRateLimited || !ae.RetryAt.Equal(now.Add(entra.MaxHold)) {
		t.Fatalf("long Retry-After: %v", err)
	}
	e.h.clock.Advance(entra.MaxHold)
	if _, err := e.conn.UserByEmail(ctx(t), "ann@example.com"); err != nil {
		t.Fatalf("after MaxHold: %v", err)
	}
}
