package graphfake

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"keycard/internal/fakewire"
)

// Defaults a Server uses when Options leave them empty.
const (
	DefaultTenant   = "8f4e6a52-1c3b-4f7d-9d2e-0a6b5c4d3e21"
	DefaultClientID = "3c1f0e9a-7b2d-4e5f-8a6b-9c0d1e2f3a4b"
	DefaultSecret   = "graphfake~client~secret~value"
	// defaultPageSize is Graph's default page for /users, /groups and
	// members (100); $top may ask for up to 999.
	defaultPageSize = 100
	maxPageSize     = 999
	// tokenLifetime is what Entra gives an app token (expires_in 3599).
	tokenLifetime = 3599 * time.Second
)

// Options configure a Server.
type Options struct {
	Tenant   string // tenant id in the authority path; default DefaultTenant
	ClientID string // the app registration's client id; default DefaultClientID
	// Secret is the client secret the token endpoint accepts; default
	// DefaultSecret.
	Secret string
	// Certificates whose keys may sign a client_assertion (certificate
	// credential).
	Certificates []*x509.Certificate
	// FederatedTokens are client_assertion values accepted as they are
	// (workload identity federation: the token file's content).
	FederatedTokens []string
	// PageSize is the default page for lists and delta; default 100.
	PageSize int
	// MaxPageSize caps $top (Graph may return fewer items than $top asks
	// for: server-driven paging); default 999. Tests set it low to cross
	// several pages with few objects.
	MaxPageSize int
	// Clock stamps tokens, the Date header and the request log. Default: a
	// fixed instant, 2026-01-05 09:00 UTC.
	Clock func() time.Time
}

// User is an Entra user as a test sets it up. Disabled maps to
// accountEnabled: false (the zero User is enabled).
type User struct {
	ID                string // assigned by AddUser when empty
	DisplayName       string
	GivenName         string
	Surname           string
	Mail              string
	UserPrincipalName string
	Disabled          bool
	Department        string
	JobTitle          string
	EmployeeType      string
	CompanyName       string
	OfficeLocation    string
	UserType          string // Member or Guest; default Member
	ManagerID         string
}

// Request is one HTTP request the server received, with the clock's time
// and the status it was answered with.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	At     time.Time
	Status int
}

type user struct {
	User
	deleted bool
	changed int // change sequence number of the last change
}

type group struct {
	id, name string
	members  map[string]bool
}

type faultKind int

const (
	faultStatus faultKind = iota
	faultHTML
	faultTruncate
	faultEmpty
)

type fault struct {
	kind            faultKind
	method, pattern string
	n, status       int
	retryAfter      time.Duration
}

type latency struct {
	method, pattern string
	d               time.Duration
}

// Server is the emulator. Safe for concurrent use.
type Server struct {
	// URL is https://127.0.0.1:PORT, no trailing slash.
	URL string

	opts Options
	ca   *testCA
	srv  *httptest.Server
	quit chan struct{}

	mu        sync.Mutex
	seq       int // ids
	changeSeq int // delta
	users     map[string]*user
	groups    map[string]*group
	tokens    map[string]time.Time // access token -> expiry
	faults    []*fault
	latencies []latency
	loops     []string
	requests  []Request
}

// New starts a Server on 127.0.0.1 over TLS with a fresh test CA. It
// panics when the CA cannot be made (tests only).
func New(opts Options) *Server {
	if opts.Tenant == "" {
		opts.Tenant = DefaultTenant
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.Secret == "" {
		opts.Secret = DefaultSecret
	}
	if opts.PageSize <= 0 {
		opts.PageSize = defaultPageSize
	}
	if opts.MaxPageSize <= 0 || opts.MaxPageSize > maxPageSize {
		opts.MaxPageSize = maxPageSize
	}
	if opts.Clock == nil {
		t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
		opts.Clock = func() time.Time { return t0 }
	}
	ca, err := newTestCA()
	if err != nil {
		panic(fmt.Sprintf("graphfake: test CA: %v", err))
	}
	s := &Server{
		opts:   opts,
		ca:     ca,
		quit:   make(chan struct{}),
		users:  map[string]*user{},
		groups: map[string]*group{},
		tokens: map[string]time.Time{},
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.server}, MinVersion: tls.VersionTLS12}
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s
}

// Close stops the server, releasing held (Latency) requests first.
func (s *Server) Close() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.srv.Close()
}

// GraphURL is the Graph base URL to configure (KEYCARD_GRAPH_URL).
func (s *Server) GraphURL() string { return s.URL + "/v1.0" }

// AuthorityHost is the authority host to configure (AZURE_AUTHORITY_HOST).
func (s *Server) AuthorityHost() string { return s.URL + "/" }

// Tenant, ClientID and Secret are the app registration the authority knows.
func (s *Server) Tenant() string   { return s.opts.Tenant }
func (s *Server) ClientID() string { return s.opts.ClientID }
func (s *Server) Secret() string   { return s.opts.Secret }

// CAPEM is the test CA certificate, PEM-encoded (for SSL_CERT_FILE).
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.ca.pem...) }

// CertPool holds the test CA.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.ca.cert)
	return p
}

// Client is an *http.Client that trusts the test CA.
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12},
	}}
}

// IssueToken mints an access token directly, for tests that skip the
// authority.
func (s *Server) IssueToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked()
}

func (s *Server) issueLocked() string {
	s.seq++
	tok := fmt.Sprintf("eyJ0eXAiOiJKV1QifQ.graphfake-%06d.sig", s.seq)
	s.tokens[tok] = s.now().Add(tokenLifetime)
	return tok
}

func (s *Server) now() time.Time { return s.opts.Clock().UTC() }

func (s *Server) newID() string {
	s.seq++
	return fmt.Sprintf("%08x-4a1b-4c2d-8e3f-%012x", s.seq, s.seq*7919)
}

func (s *Server) touch(u *user) {
	s.changeSeq++
	u.changed = s.changeSeq
}

// AddUser creates a user and returns its id.
func (s *Server) AddUser(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = s.newID()
	}
	if u.UserType == "" {
		u.UserType = "Member"
	}
	if u.UserPrincipalName == "" {
		u.UserPrincipalName = u.Mail
	}
	nu := &user{User: u}
	s.touch(nu)
	s.users[u.ID] = nu
	return u.ID
}

// SetEnabled sets a user's accountEnabled.
func (s *Server) SetEnabled(id string, enabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if u == nil || u.deleted {
		return fmt.Errorf("graphfake: no user %s", id)
	}
	u.Disabled = !enabled
	s.touch(u)
	return nil
}

// SetManager sets (or, with "", clears) a user's manager.
func (s *Server) SetManager(id, managerID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if u == nil || u.deleted {
		return fmt.Errorf("graphfake: no user %s", id)
	}
	u.ManagerID = managerID
	s.touch(u)
	return nil
}

// DeleteUser deletes a user: it disappears from reads and memberships and
// is reported as @removed by the next delta round.
func (s *Server) DeleteUser(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if u == nil || u.deleted {
		return fmt.Errorf("graphfake: no user %s", id)
	}
	u.deleted = true
	s.touch(u)
	for _, g := range s.groups {
		delete(g.members, id)
	}
	return nil
}

// AddGroup creates a security group and returns its id.
func (s *Server) AddGroup(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID()
	s.groups[id] = &group{id: id, name: name, members: map[string]bool{}}
	return id
}

// GroupID returns the id of the group named name ("" if none).
func (s *Server) GroupID(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.groups {
		if strings.EqualFold(g.name, name) {
			return g.id
		}
	}
	return ""
}

// AddMember adds a user to a group out of band (standing membership).
func (s *Server) AddMember(groupID, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, u := s.groups[groupID], s.users[userID]
	if g == nil || u == nil || u.deleted {
		return fmt.Errorf("graphfake: no group %s or user %s", groupID, userID)
	}
	g.members[userID] = true
	return nil
}

// Members lists a group's member ids, sorted.
func (s *Server) Members(groupID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupID]
	if g == nil {
		return nil
	}
	out := make([]string, 0, len(g.members))
	for id := range g.members {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// FailNext makes the next n requests matching pattern answer status with a
// Graph error body; 429, 503 and 504 carry Retry-After: retryAfter (whole
// seconds, omitted when 0). pattern is "METHOD /path-prefix", a
// "/path-prefix", or a path.Match glob ("/v1.0/groups/*/members"), with or
// without a method; "" matches every Graph and token request.
func (s *Server) FailNext(pattern string, n, status int, retryAfter time.Duration) {
	s.addFault(&fault{kind: faultStatus, n: n, status: status, retryAfter: retryAfter}, pattern)
}

// Throttle makes the next n matching requests answer 429 TooManyRequests
// with Retry-After: retryAfter, as Graph throttling does.
func (s *Server) Throttle(pattern string, n int, retryAfter time.Duration) {
	s.FailNext(pattern, n, http.StatusTooManyRequests, retryAfter)
}

// HTMLNext makes the next n matching requests answer status with an HTML
// error page (a proxy or gateway in front of Graph).
func (s *Server) HTMLNext(pattern string, n, status int) {
	s.addFault(&fault{kind: faultHTML, n: n, status: status}, pattern)
}

// TruncateNext makes the next n matching requests answer 200 with their
// JSON body cut in half.
func (s *Server) TruncateNext(pattern string, n int) {
	s.addFault(&fault{kind: faultTruncate, n: n, status: http.StatusOK}, pattern)
}

func (s *Server) addFault(f *fault, pattern string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.method, f.pattern = fakewire.Split(pattern)
	s.faults = append(s.faults, f)
}

// EmptyNext makes the next n matching requests answer 200 with {}: JSON,
// but not the object or collection the API documents.
func (s *Server) EmptyNext(pattern string, n int) {
	s.addFault(&fault{kind: faultEmpty, n: n, status: http.StatusOK}, pattern)
}

// LoopPages makes paged answers to requests matching pattern carry an
// @odata.nextLink that points back at the same page, forever.
func (s *Server) LoopPages(pattern string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loops = append(s.loops, pattern)
}

// Latency holds requests matching pattern for d before answering; the hold
// ends early when the client gives up or the server closes. d = 0 removes
// the rule.
func (s *Server) Latency(pattern string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, p := fakewire.Split(pattern)
	kept := s.latencies[:0]
	for _, l := range s.latencies {
		if l.method != m || l.pattern != p {
			kept = append(kept, l)
		}
	}
	s.latencies = kept
	if d > 0 {
		s.latencies = append(s.latencies, latency{method: m, pattern: p, d: d})
	}
}

// ClearFaults removes every fault, latency and page loop.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.latencies, s.loops = nil, nil, nil
}

// Requests returns every request so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}
