package oktafake

import (
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

// DefaultToken is the API token a Server accepts when Options.Token is empty.
const DefaultToken = "00-oktafake-test-token"

// rateLimitPerMinute is the X-Rate-Limit-Limit the emulator reports; Okta's
// limits vary by endpoint and org, 600/min is a common Management API value.
const rateLimitPerMinute = 600

// Options configure a Server.
type Options struct {
	// Token is the API token that must arrive as `Authorization: SSWS <token>`
	// (or Bearer). Default DefaultToken.
	Token string
	// Clock stamps created/published times, the Date header and the
	// X-Rate-Limit-Reset window. Default: a fixed instant, 2026-01-05 09:00 UTC.
	Clock func() time.Time
}

// Request is one HTTP request the server received, as the client sent it.
type Request struct {
	Method string
	Path   string // cleaned
	Query  url.Values
}

// LogEvent is a System Log event (Okta API LogEvent), as served by
// GET /api/v1/logs.
type LogEvent struct {
	UUID           string      `json:"uuid"`
	Published      string      `json:"published"`
	EventType      string      `json:"eventType"`
	Version        string      `json:"version"`
	Severity       string      `json:"severity"`
	DisplayMessage string      `json:"displayMessage"`
	Actor          LogActor    `json:"actor"`
	Outcome        LogOutcome  `json:"outcome"`
	Target         []LogActor  `json:"target"`
	Transaction    LogTransact `json:"transaction"`

	seq       int
	published time.Time
}

// LogActor is an actor or target of a LogEvent.
type LogActor struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AlternateID string `json:"alternateId"`
	DisplayName string `json:"displayName"`
}

// LogOutcome is a LogEvent's outcome.
type LogOutcome struct {
	Result string  `json:"result"`
	Reason *string `json:"reason"`
}

// LogTransact is a LogEvent's transaction.
type LogTransact struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type user struct {
	id            string
	status        string
	profile       map[string]any
	created       time.Time
	statusChanged time.Time
	lastUpdated   time.Time
}

type group struct {
	id, name, typ string
	created       time.Time
	lastMember    time.Time
	members       map[string]bool
}

type fault struct {
	method, pattern string
	n, status       int
	html            bool // answer a proxy's text/html page, not Okta's JSON error
}

type latency struct {
	method, pattern string
	d               time.Duration
}

// Server is an Okta Management API emulator on a loopback httptest server.
// It is safe for concurrent use.
type Server struct {
	// URL is the org URL to give the SDK (http://127.0.0.1:PORT, no slash).
	URL string

	token string
	clock func() time.Time
	srv   *httptest.Server
	quit  chan struct{}

	mu       sync.Mutex
	seq      int
	users    map[string]*user
	groups   map[string]*group
	logs     []*LogEvent
	faults   []*fault
	limited  int
	limitFor time.Duration
	// limitMethod and limitPattern narrow RateLimitNext to matching
	// requests (RateLimitNextMatching); empty: every request.
	limitMethod, limitPattern string
	latencies                 []latency
	requests                  []Request
	window                    time.Time
	windowN                   int
	factors                   map[string][]*factorRec // by user id
	txs                       map[string]*pushTx      // push transactions by id
	txSeq                     int
}

// ActorID is the System Log actor of changes made through the API: the
// token's owner.
const ActorID = "00utokenowner0000001"

// New starts a Server. Close it when done.
func New(opts Options) *Server {
	s := &Server{
		token:  opts.Token,
		clock:  opts.Clock,
		quit:   make(chan struct{}),
		users:  map[string]*user{},
		groups: map[string]*group{},
	}
	if s.token == "" {
		s.token = DefaultToken
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

// Token returns the API token the server accepts.
func (s *Server) Token() string { return s.token }

func (s *Server) now() time.Time { return s.clock().UTC() }

func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%017d", prefix, s.seq)
}

// AddUser creates a user with the given profile (login, email, firstName,
// lastName, department, userType, managerId, ...) and status (default
// ACTIVE), and returns its id.
func (s *Server) AddUser(profile map[string]any, status string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == "" {
		status = "ACTIVE"
	}
	p := make(map[string]any, len(profile))
	for k, v := range profile {
		p[k] = v
	}
	now := s.now()
	u := &user{id: s.nextID("00u"), status: status, profile: p, created: now, statusChanged: now, lastUpdated: now}
	s.users[u.id] = u
	return u.id
}

// SetStatus changes a user's status and appends the System Log lifecycle
// event an admin's action would: deactivate, suspend, unsuspend, activate,
// or account.lock.
func (s *Server) SetStatus(userID, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.findUser(userID)
	if u == nil {
		return fmt.Errorf("oktafake: no user %q", userID)
	}
	prev := u.status
	u.status = status
	u.statusChanged, u.lastUpdated = s.now(), s.now()
	var typ, msg string
	switch {
	case status == "DEPROVISIONED":
		typ, msg = "user.lifecycle.deactivate", "Deactivate Okta user"
	case status == "SUSPENDED":
		typ, msg = "user.lifecycle.suspend", "Suspend Okta user"
	case status == "ACTIVE" && prev == "SUSPENDED":
		typ, msg = "user.lifecycle.unsuspend", "Unsuspend Okta user"
	case status == "ACTIVE":
		typ, msg = "user.lifecycle.activate", "Activate Okta user"
	case status == "LOCKED_OUT":
		typ, msg = "user.account.lock", "Max sign in attempts exceeded"
	default:
		return nil
	}
	s.appendLog(typ, msg, "00uadminconsole00001", s.userTarget(u))
	return nil
}

// AddGroup creates a group of type OKTA_GROUP (default), APP_GROUP or
// BUILT_IN and returns its id.
func (s *Server) AddGroup(name, typ string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if typ == "" {
		typ = "OKTA_GROUP"
	}
	g := &group{id: s.nextID("00g"), name: name, typ: typ, created: s.now(), lastMember: s.now(), members: map[string]bool{}}
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

// AddMember adds a membership directly (an out-of-band change in the admin
// console), logging group.user_membership.add when it changes state.
func (s *Server) AddMember(groupID, userID string) error {
	return s.setMember(groupID, userID, true, "00uadminconsole00001")
}

// RemoveMember removes a membership directly, logging
// group.user_membership.remove when it changes state.
func (s *Server) RemoveMember(groupID, userID string) error {
	return s.setMember(groupID, userID, false, "00uadminconsole00001")
}

func (s *Server) setMember(groupID, userID string, member bool, actor string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, u := s.groups[groupID], s.users[userID]
	if g == nil || u == nil {
		return fmt.Errorf("oktafake: no group %q or user %q", groupID, userID)
	}
	s.applyMember(g, u, member, actor)
	return nil
}

// applyMember changes state and logs; s.mu must be held.
func (s *Server) applyMember(g *group, u *user, member bool, actor string) {
	if g.members[u.id] == member {
		return
	}
	if member {
		g.members[u.id] = true
	} else {
		delete(g.members, u.id)
	}
	g.lastMember = s.now()
	typ, msg := "group.user_membership.add", "Add user to group membership"
	if !member {
		typ, msg = "group.user_membership.remove", "Remove user from group membership"
	}
	s.appendLog(typ, msg, actor, s.userTarget(u), LogActor{ID: g.id, Type: "UserGroup", AlternateID: "unknown", DisplayName: g.name})
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

// Log returns a copy of the System Log, oldest first.
func (s *Server) Log() []LogEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LogEvent, len(s.logs))
	for i, e := range s.logs {
		out[i] = *e
	}
	return out
}

// FailNext makes the next n requests matching pattern answer with status
// (a 5xx) and an Okta error body. pattern is "METHOD /path-prefix",
// "/path-prefix", or a path.Match glob ("/api/v1/groups/*/users"), with or
// without a method.
func (s *Server) FailNext(pattern string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, p := fakewire.Split(pattern)
	s.faults = append(s.faults, &fault{method: m, pattern: p, n: n, status: status})
}

// RateLimitNext makes the next n requests answer 429 E0000047 with
// X-Rate-Limit-Reset = now+resetAfter and a Date header, as Okta does.
// FailNextHTML makes the next n requests matching pattern (see FailNext)
// answer status with a text/html page, as a proxy or gateway in front of
// Okta does ("<html>404 Not Found (nginx)</html>"): not Okta's answer.
func (s *Server) FailNextHTML(pattern string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, p := fakewire.Split(pattern)
	s.faults = append(s.faults, &fault{method: m, pattern: p, n: n, status: status, html: true})
}

// ClearFaults drops every pending injected failure (FailNext, FailNextHTML,
// RateLimitNext).
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.limited = nil, 0
}

func (s *Server) RateLimitNext(n int, resetAfter time.Duration) {
	s.RateLimitNextMatching("", n, resetAfter)
}

// RateLimitNextMatching is RateLimitNext for the requests matching pattern
// (see FailNext) only, e.g. "PUT /api/v1/groups/" for membership adds.
func (s *Server) RateLimitNextMatching(pattern string, n int, resetAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited, s.limitFor = n, resetAfter
	s.limitMethod, s.limitPattern = "", ""
	if pattern != "" {
		s.limitMethod, s.limitPattern = fakewire.Split(pattern)
	}
}

// Latency delays requests matching pattern (see FailNext) by d; the delay
// ends early when the client gives up (request context) or the server
// closes. d = 0 removes the rule for pattern.
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

func (s *Server) findUser(idOrLogin string) *user {
	if u := s.users[idOrLogin]; u != nil {
		return u
	}
	for _, u := range s.users {
		if l, _ := u.profile["login"].(string); l != "" && strings.EqualFold(l, idOrLogin) {
			return u
		}
	}
	return nil
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

func (s *Server) userTarget(u *user) LogActor {
	login, _ := u.profile["login"].(string)
	return LogActor{ID: u.id, Type: "User", AlternateID: login, DisplayName: displayName(u.profile)}
}

func displayName(p map[string]any) string {
	if d, _ := p["displayName"].(string); d != "" {
		return d
	}
	f, _ := p["firstName"].(string)
	l, _ := p["lastName"].(string)
	return strings.TrimSpace(f + " " + l)
}

// appendLog adds a System Log event; s.mu must be held.
func (s *Server) appendLog(typ, msg, actorID string, targets ...LogActor) {
	s.seq++
	now := s.now()
	actor := LogActor{ID: actorID, Type: "User", AlternateID: "admin@example.com", DisplayName: "Okta Admin"}
	if actorID == ActorID {
		actor = LogActor{ID: ActorID, Type: "User", AlternateID: "keycard-bot@example.com", DisplayName: "keycard"}
	}
	s.logs = append(s.logs, &LogEvent{
		UUID:           fmt.Sprintf("%08x-74e5-11ee-8a5a-%012x", s.seq, s.seq),
		Published:      now.Format(okTime),
		EventType:      typ,
		Version:        "0",
		Severity:       "INFO",
		DisplayMessage: msg,
		Actor:          actor,
		Outcome:        LogOutcome{Result: "SUCCESS"},
		Target:         targets,
		Transaction:    LogTransact{Type: "WEB", ID: fmt.Sprintf("tx%08d", s.seq)},
		seq:            s.seq,
		published:      now,
	})
}

// okTime is how Okta writes timestamps: RFC 3339, milliseconds, Z.
const okTime = "2006-01-02T15:04:05.000Z"
