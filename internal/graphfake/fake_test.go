package graphfake

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"keycard/internal/fakeclock"
)

func clientOptions(s *Server) azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: s.AuthorityHost()},
		Transport: s.Client(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
}

func scope(s *Server) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{s.URL + "/.default"}}
}

// TestAzidentityClientSecret proves the authority against the real client:
// azidentity's ClientSecretCredential gets a token that Graph accepts, and
// a wrong secret fails with the AADSTS error Entra sends.
func TestAzidentityClientSecret(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	ctx := context.Background()
	cred, err := azidentity.NewClientSecretCredential(s.Tenant(), s.ClientID(), s.Secret(),
		&azidentity.ClientSecretCredentialOptions{ClientOptions: clientOptions(s), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(ctx, scope(s))
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	id := s.AddUser(User{DisplayName: "Ann", Mail: "ann@example.com"})
	status, body := get(t, s, tok.Token, "/v1.0/users/"+id)
	if status != 200 || body["mail"] != "ann@example.com" {
		t.Fatalf("GET user with azidentity token: %d %v", status, body)
	}

	bad, _ := azidentity.NewClientSecretCredential(s.Tenant(), s.ClientID(), "wrong",
		&azidentity.ClientSecretCredentialOptions{ClientOptions: clientOptions(s), DisableInstanceDiscovery: true})
	_, err = bad.GetToken(ctx, scope(s))
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) || afe.RawResponse == nil || afe.RawResponse.StatusCode != 401 || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestAzidentityCertificateAndFederated(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "keycard"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	s := New(Options{Certificates: []*x509.Certificate{cert}, FederatedTokens: []string{"federated.jwt.token"}})
	defer s.Close()
	ctx := context.Background()

	cc, err := azidentity.NewClientCertificateCredential(s.Tenant(), s.ClientID(), []*x509.Certificate{cert}, key,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: clientOptions(s), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.GetToken(ctx, scope(s)); err != nil {
		t.Fatalf("certificate credential: %v", err)
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherDER, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &other.PublicKey, other)
	otherCert, _ := x509.ParseCertificate(otherDER)
	bad, err := azidentity.NewClientCertificateCredential(s.Tenant(), s.ClientID(), []*x509.Certificate{otherCert}, other,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: clientOptions(s), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.GetToken(ctx, scope(s)); err == nil || !strings.Contains(err.Error(), "AADSTS700027") {
		t.Fatalf("assertion signed by an unregistered key: %v", err)
	}

	fc, err := azidentity.NewClientAssertionCredential(s.Tenant(), s.ClientID(),
		func(context.Context) (string, error) { return "federated.jwt.token", nil },
		&azidentity.ClientAssertionCredentialOptions{ClientOptions: clientOptions(s), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fc.GetToken(ctx, scope(s)); err != nil {
		t.Fatalf("federated assertion: %v", err)
	}
}

func get(t *testing.T, s *Server, tok, pathQuery string) (int, map[string]any) {
	t.Helper()
	return do(t, s, tok, http.MethodGet, pathQuery, "")
}

func do(t *testing.T, s *Server, tok, method, pathQuery, body string) (int, map[string]any) {
	t.Helper()
	target := pathQuery
	if !strings.HasPrefix(target, "https://") {
		target = s.URL + pathQuery
	}
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestGraphSubset(t *testing.T) {
	s := New(Options{PageSize: 2})
	defer s.Close()
	tok := s.IssueToken()
	o := s.AddUser(User{DisplayName: "O'Brien", Mail: "o'brien@example.com", Department: "Eng"})
	m := s.AddUser(User{DisplayName: "Mia", Mail: "mia@example.com"})
	_ = s.SetManager(o, m)
	g := s.AddGroup("prod-admins")
	for i := 0; i < 5; i++ {
		_ = s.AddMember(g, s.AddUser(User{Mail: "u" + string(rune('a'+i)) + "@example.com"}))
	}

	if st, b := get(t, s, "", "/v1.0/users"); st != 401 || errCode(b) != "InvalidAuthenticationToken" {
		t.Fatalf("no token: %d %v", st, b)
	}
	q := url.Values{"$filter": {"mail eq 'O''BRIEN@example.com'"}, "$select": {"id,accountEnabled,department"}}
	st, b := get(t, s, tok, "/v1.0/users?"+q.Encode())
	vals, _ := b["value"].([]any)
	if st != 200 || len(vals) != 1 || vals[0].(map[string]any)["department"] != "Eng" || vals[0].(map[string]any)["accountEnabled"] != true {
		t.Fatalf("filter with a doubled quote, any case: %d %v", st, b)
	}
	if _, b := get(t, s, tok, "/v1.0/users/"+o); b["accountEnabled"] != nil {
		t.Fatalf("accountEnabled is not a default property: %v", b)
	}
	if _, b := get(t, s, tok, "/v1.0/users/"+o+"/manager"); b["id"] != m || b["@odata.type"] != "#microsoft.graph.user" {
		t.Fatalf("manager: %v", b)
	}
	if st, b := get(t, s, tok, "/v1.0/users/"+m+"/manager"); st != 404 || errCode(b) != "Request_ResourceNotFound" {
		t.Fatalf("no manager: %d %v", st, b)
	}

	// Members, two per page, followed to the end.
	n, next, pages := 0, "/v1.0/groups/"+g+"/members?$select=id", 0
	for next != "" {
		st, b := get(t, s, tok, next)
		if st != 200 {
			t.Fatalf("page %d: %d %v", pages, st, b)
		}
		n += len(b["value"].([]any))
		next, _ = b["@odata.nextLink"].(string)
		pages++
	}
	if n != 5 || pages != 3 {
		t.Fatalf("members: %d in %d pages", n, pages)
	}

	ref := `{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/` + o + `"}`
	if st, _ := do(t, s, tok, "POST", "/v1.0/groups/"+g+"/members/$ref", ref); st != 204 {
		t.Fatalf("add: %d", st)
	}
	st, b = do(t, s, tok, "POST", "/v1.0/groups/"+g+"/members/$ref", ref)
	msg, _ := b["error"].(map[string]any)["message"].(string)
	if st != 400 || !strings.Contains(msg, "One or more added object references already exist") {
		t.Fatalf("add twice: %d %v", st, b)
	}
	if st, _ := do(t, s, tok, "DELETE", "/v1.0/groups/"+g+"/members/"+o+"/$ref", ""); st != 204 {
		t.Fatalf("remove: %d", st)
	}
	if st, b := do(t, s, tok, "DELETE", "/v1.0/groups/"+g+"/members/"+o+"/$ref", ""); st != 404 || errCode(b) != "Request_ResourceNotFound" {
		t.Fatalf("remove a non-member: %d %v", st, b)
	}
}

func TestDelta(t *testing.T) {
	s := New(Options{PageSize: 2})
	defer s.Close()
	tok := s.IssueToken()
	a := s.AddUser(User{Mail: "a@example.com"})
	b := s.AddUser(User{Mail: "b@example.com"})
	s.AddUser(User{Mail: "c@example.com"})
	round := func(start string) (ids []string, removed []string, delta string) {
		next := start
		for next != "" {
			st, body := get(t, s, tok, next)
			if st != 200 {
				t.Fatalf("delta: %d %v", st, body)
			}
			for _, v := range body["value"].([]any) {
				u := v.(map[string]any)
				if _, ok := u["@removed"]; ok {
					removed = append(removed, u["id"].(string))
				} else {
					ids = append(ids, u["id"].(string))
				}
			}
			next, _ = body["@odata.nextLink"].(string)
			delta, _ = body["@odata.deltaLink"].(string)
		}
		return
	}
	ids, _, dl := round("/v1.0/users/delta?$select=id,accountEnabled")
	if len(ids) != 3 || dl == "" {
		t.Fatalf("initial round: %v %q", ids, dl)
	}
	_ = s.SetEnabled(a, false)
	_ = s.DeleteUser(b)
	ids, removed, dl2 := round(dl)
	if len(ids) != 1 || ids[0] != a || len(removed) != 1 || removed[0] != b {
		t.Fatalf("changes: %v removed %v", ids, removed)
	}
	if ids, removed, _ := round(dl2); len(ids)+len(removed) != 0 {
		t.Fatalf("nothing changed, got %v %v", ids, removed)
	}
}

func TestFaults(t *testing.T) {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	s := New(Options{Clock: fakeclock.New(now).Now})
	defer s.Close()
	tok := s.IssueToken()
	s.Throttle("GET /v1.0/users", 1, 7*time.Second)
	req, _ := http.NewRequest("GET", s.GraphURL()+"/users", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("throttle: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	s.HTMLNext("/v1.0/groups", 1, 502)
	if st, b := get(t, s, tok, "/v1.0/groups"); st != 502 || b != nil {
		t.Fatalf("html page: %d %v", st, b)
	}
	s.TruncateNext("/v1.0/groups", 1)
	if st, b := get(t, s, tok, "/v1.0/groups"); st != 200 || b != nil {
		t.Fatalf("truncated JSON decoded: %d %v", st, b)
	}
	s.LoopPages("/v1.0/groups")
	if _, b := get(t, s, tok, "/v1.0/groups"); b["@odata.nextLink"] != s.URL+"/v1.0/groups" {
		t.Fatalf("loop: %v", b)
	}
	reqs := s.Requests()
	if len(reqs) != 4 || reqs[0].Status != 429 || !reqs[0].At.Equal(now) {
		t.Fatalf("request log: %+v", reqs)
	}
}
