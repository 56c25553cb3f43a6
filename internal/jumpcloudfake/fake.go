package jumpcloudfake

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"sync"
	"time"

	"keycard/internal/fakewire"
)

// DefaultAPIKey is the key a Server accepts when Options.APIKey is empty.
const DefaultAPIKey = "jcfake-test-api-key-0000000000000000000000"

// JumpCloud's page sizes: limit defaults to 10 and may be at most 100 on
// the v1 and v2 list endpoints used here.
const (
	defaultLimit = 10
	maxLimit     = 100
)

// Options configure a Server.
type Options struct {
	// APIKey must arrive as the x-api-key header. Default DefaultAPIKey.
	APIKey string
	// OrgID, when set, must arrive as the x-org-id header (multi-tenant
	// administrator keys).
	OrgID string
	// Clock stamps created times, Requests and the rate-limit window.
	// Default: a fixed instant, 2026-01-05 09:00 UTC.
	Clock func() time.Time
}

// User is a system user to create. State defaults to ACTIVATED.
type User struct {
	Email              string
	Username           string
	Firstname          string
	Lastname           string
	Displayname        string
	State              string // ACTIVATED, SUSPENDED, STAGED
	Manager            string // a user id
	Department         string
	JobTitle           string
	EmployeeType       string
	Company            string
	Location           string
	CostCenter         string
	EmployeeIdentifier string
	Attributes         map[string]string // custom attributes[] {name, value}
}

// Request is one request the server received, with the status it answered.
type Request struct {
	Method string
	Path   string // cleaned
	Query  url.Values
	At     time.Time // on the server's clock when it arrived
	Status int
}

// Malformation is a kind of broken answer for Malform.
type Malformation int

// Broken answers.
const (
	// HTMLPage is a 200 text/html page, as a proxy or load balancer sends.
	HTMLPage Malformation = iota + 1
	// TruncatedJSON is a 200 application/json body cut off mid-object.
	TruncatedJSON
)

type user struct {
	User
	id      string
	created time.Time
}

type group struct {
	id, name string
	members  map[string]bool
}

type fault struct {
	method, pattern string
	n, status       int
	malform         Malformation
	html            bool // status with a proxy's text/html page
}

type latency struct {
	method, pattern string
	d               time.Duration
}

// Server is a JumpCloud API emulator on a loopback httptest server.
type Server struct {
	// URL is the API base to give the connector (http://127.0.0.1:PORT).
	URL string

	key   string
	org   string
	clock func() time.Time
	srv   *httptest.Server
	quit  chan struct{}

	mu       sync.Mutex
	seq      int
	users    map[string]*user
	groups   map[string]*group
	faults   []*fault
	limited  int
	limitFor time.Duration
	// limitMethod and limitPattern narrow RateLimitNext to matching
	// requests (RateLimitNextMatching); empty: every request.
	limitMethod, limitPattern string
	latencies                 []latency
	pageLoop                  string
	requests                  []Request
	window                    time.Time
	windowUsed                int
}

// New starts a Server. Close it when done.
func New(opts Options) *Server {
	s := &Server{
		key:    opts.APIKey,
		org:    opts.OrgID,
		clock:  opts.Clock,
		quit:   make(chan struct{}),
		users:  map[string]*user{},
		groups: map[string]*group{},
	}
	if s.key == "" {
		s.key = DefaultAPIKey
	}
	if s.clock == nil {
		fixed := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
		s.clock = func() time.Time { return fixed }
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server; requests held by Latency return at once.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.mu.Unlock()
	s.srv.Close()
}

// APIKey returns the key the server accepts.
func (s *Server) APIKey() string { return s.key }

func (s *Server) now() time.Time { return s.clock().UTC() }

// nextID returns a deterministic 24-hex-digit id (JumpCloud ids are
// MongoDB ObjectIds). kind keeps users and groups apart.
func (s *Server) nextID(kind byte) string {
	s.seq++
	return fmt.Sprintf("%c%023x", kind, s.seq)
}

// UnknownID is shaped like a JumpCloud id and names nothing.
const UnknownID = "5f0000000000000000000000"

// AddUser creates a system user and returns its id.
func (s *Server) AddUser(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.State == "" {
		u.State = "ACTIVATED"
	}
	attrs := make(map[string]string, len(u.Attributes))
	for k, v := range u.Attributes {
		attrs[k] = v
	}
	u.Attributes = attrs
	nu := &user{User: u, id: s.nextID('6'), created: s.now()}
	s.users[nu.id] = nu
	return nu.id
}

// SetState sets a user's state (ACTIVATED, SUSPENDED, STAGED); suspended
// follows it, as JumpCloud keeps the two in step.
func (s *Server) SetState(id, state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if u == nil {
		return fmt.Errorf("jumpcloudfake: no user %q", id)
	}
	u.State = state
	return nil
}

// SetManager sets (or, with "", clears) a user's manager field (a user id).
func (s *Server) SetManager(id, managerID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if u == nil {
		return fmt.Errorf("jumpcloudfake: no user %q", id)
	}
	u.Manager = managerID
	return nil
}

// Suspend puts a user in state SUSPENDED (suspended: true).
func (s *Server) Suspend(id string) error { return s.SetState(id, "SUSPENDED") }

// Delete removes a user and its memberships.
func (s *Server) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[id] == nil {
		return fmt.Errorf("jumpcloudfake: no user %q", id)
	}
	delete(s.users, id)
	for _, g := range s.groups {
		delete(g.members, id)
	}
	return nil
}

// AddGroup creates a user group and returns its id.
func (s *Server) AddGroup(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &group{id: s.nextID('7'), name: name, members: map[string]bool{}}
	s.groups[g.id] = g
	return g.id
}

// GroupID returns the id of the first group named name, or "".
func (s *Server) GroupID(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.sortedGroups() {
		if g.name == name {
			return g.id
		}
	}
	return ""
}

// AddMember adds a membership directly (an out-of-band console change).
func (s *Server) AddMember(groupID, userID string) error {
	return s.setMember(groupID, userID, true)
}

// RemoveMember removes a membership directly.
func (s *Server) RemoveMember(groupID, userID string) error {
	return s.setMember(groupID, userID, false)
}

func (s *Server) setMember(groupID, userID string, member bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, u := s.groups[groupID], s.users[userID]
	if g == nil || u == nil {
		return fmt.Errorf("jumpcloudfake: no group %q or user %q", groupID, userID)
	}
	if member {
		g.members[userID] = true
	} else {
		delete(g.members, userID)
	}
	return nil
}

// Members returns the ids of a group's members, sorted.
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

// FailNext makes the next n requests matching pattern answer status (a
// 5xx) with JumpCloud's error body. pattern is "METHOD /path-prefix",
// "/path-prefix", or a path.Match glob ("/api/v2/usergroups/*/members"),
// with or without a method.
func (s *Server) FailNext(pattern string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, p := fakewire.Split(pattern)
	s.faults = append(s.faults, &fault{method: m, pattern: p, n: n, status: status})
}

// FailNextHTML makes the next n requests matching pattern (see FailNext)
// answer status with a text/html page, as nginx or a load balancer in
// front of JumpCloud does: "<html>404 Not Found (nginx)</html>". It is not
// JumpCloud's answer, so a 404 here says nothing about the user or group.
func (s *Server) FailNextHTML(pattern string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, p := fakewire.Split(pattern)
	s.faults = append(s.faults, &fault{method: m, pattern: p, n: n, status: status, html: true})
}

// Malform makes the next n requests matching pattern answer 200 with a
// broken body of the given kind.
func (s *Server) Malform(pattern string, n int, kind Malformation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, p := fakewire.Split(pattern)
	s.faults = append(s.faults, &fault{method: m, pattern: p, n: n, malform: kind})
}

// RateLimitNext makes the next n requests answer 429 with Retry-After
// (whole seconds, rounded up) and X-RateLimit-Remaining 0.
func (s *Server) RateLimitNext(n int, retryAfter time.Duration) {
	s.RateLimitNextMatching("", n, retryAfter)
}

// RateLimitNextMatching is RateLimitNext for the requests matching pattern
// (see FailNext) only, e.g. "POST /api/v2/usergroups/" for membership changes.
func (s *Server) RateLimitNextMatching(pattern string, n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited, s.limitFor = n, retryAfter
	s.limitMethod, s.limitPattern = "", ""
	if pattern != "" {
		s.limitMethod, s.limitPattern = fakewire.Split(pattern)
	}
}

// Latency delays requests matching pattern (see FailNext) by d; the delay
// ends early when the client gives up or the server closes. d = 0 removes
// the rule for pattern.
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

// PageLoop makes list requests whose path matches pattern ignore `skip`,
// so every page is the first one: a paging loop. "" turns it off.
func (s *Server) PageLoop(pattern string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageLoop = pattern
}

// ResetFaults forgets every FailNext, Malform, RateLimitNext, Latency and
// PageLoop rule.
func (s *Server) ResetFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.latencies, s.limited, s.pageLoop = nil, nil, 0, ""
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// ResetRequests forgets the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func (s *Server) sortedUsers() []*user {
	out := make([]*user, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (s *Server) sortedGroups() []*group {
	out := make([]*group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
