package oktafake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"keycard/internal/fakewire"
)

// serve is the single entry point: bookkeeping, faults, then routing.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	q := r.URL.Query()

	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: p, Query: q})
	var delay time.Duration
	for _, l := range s.latencies {
		if fakewire.Match(l.method, l.pattern, r.Method, p) && l.d > delay {
			delay = l.d
		}
	}
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.quit:
			t.Stop()
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.stampHeaders(w)

	auth := r.Header.Get("Authorization")
	if auth != "SSWS "+s.token && auth != "Bearer "+s.token {
		s.writeError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
		return
	}
	if s.limited > 0 && (s.limitPattern == "" || fakewire.Match(s.limitMethod, s.limitPattern, r.Method, p)) {
		s.limited--
		reset := s.now().Add(s.limitFor)
		w.Header().Set("X-Rate-Limit-Remaining", "0")
		w.Header().Set("X-Rate-Limit-Reset", strconv.FormatInt(reset.Unix(), 10))
		s.writeError(w, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
		return
	}
	for _, f := range s.faults {
		if f.n > 0 && fakewire.Match(f.method, f.pattern, r.Method, p) {
			f.n--
			if f.html {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(f.status)
				_, _ = io.WriteString(w, fmt.Sprintf("<html>%d %s (nginx)</html>", f.status, http.StatusText(f.status)))
				return
			}
			s.writeError(w, f.status, "E0000009", "Internal Server Error")
			return
		}
	}
	s.route(w, r, p)
}

// stampHeaders writes the headers Okta puts on every response: Date (which
// the SDK's 429 backoff needs) and the X-Rate-Limit-* trio (Okta
// rate-limit best practices: Reset is UTC epoch seconds).
func (s *Server) stampHeaders(w http.ResponseWriter) {
	now := s.now()
	if now.Sub(s.window) >= time.Minute || now.Before(s.window) {
		s.window, s.windowN = now.Truncate(time.Minute), 0
	}
	s.windowN++
	remaining := rateLimitPerMinute - s.windowN
	if remaining < 0 {
		remaining = 0
	}
	h := w.Header()
	h.Set("Date", now.Format(http.TimeFormat))
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(rateLimitPerMinute))
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(remaining))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(s.window.Add(time.Minute).Unix(), 10))
	s.seq++
	h.Set("X-Okta-Request-Id", fmt.Sprintf("req%014d", s.seq))
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, p string) {
	seg := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(seg) < 3 || seg[0] != "api" || seg[1] != "v1" {
		s.writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+p+" (Resource)")
		return
	}
	seg = seg[2:]
	get := r.Method == http.MethodGet
	switch {
	case seg[0] == "users" && len(seg) == 1 && get:
		s.listUsers(w, r)
	case seg[0] == "users" && len(seg) == 2 && get:
		s.getUser(w, seg[1])
	case seg[0] == "users" && len(seg) == 3 && seg[2] == "groups" && get:
		s.userGroups(w, r, seg[1])
	case seg[0] == "users" && len(seg) == 3 && seg[2] == "factors" && get:
		s.listFactors(w, r, seg[1])
	case seg[0] == "users" && len(seg) == 5 && seg[2] == "factors" && seg[4] == "verify" && r.Method == http.MethodPost:
		s.verifyFactor(w, r, seg[1], seg[3])
	case seg[0] == "users" && len(seg) == 6 && seg[2] == "factors" && seg[4] == "transactions" && get:
		s.transaction(w, r, seg[1], seg[3], seg[5])
	case seg[0] == "groups" && len(seg) == 1 && get:
		s.listGroups(w, r)
	case seg[0] == "groups" && len(seg) == 2 && get:
		s.getGroup(w, seg[1])
	case seg[0] == "groups" && len(seg) == 3 && seg[2] == "users" && get:
		s.groupUsers(w, r, seg[1])
	case seg[0] == "groups" && len(seg) == 4 && seg[2] == "users" && (r.Method == http.MethodPut || r.Method == http.MethodDelete):
		s.membership(w, seg[1], seg[3], r.Method == http.MethodPut)
	case seg[0] == "logs" && len(seg) == 1 && get:
		s.getLogs(w, r)
	case seg[0] == "users" || seg[0] == "groups" || seg[0] == "logs":
		s.writeError(w, http.StatusMethodNotAllowed, "E0000022", "The endpoint does not support the provided HTTP method")
	default:
		s.writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+p+" (Resource)")
	}
}

func (s *Server) getUser(w http.ResponseWriter, idOrLogin string) {
	u := s.findUser(idOrLogin)
	if u == nil {
		s.notFound(w, idOrLogin, "User")
		return
	}
	s.writeJSON(w, http.StatusOK, s.userJSON(u))
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filter, search, prefix := q.Get("filter"), q.Get("search"), q.Get("q")
	var fe, se expr
	var err error
	if filter != "" {
		if fe, err = parseExpr(filter); err != nil {
			s.writeError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.", err.Error())
			return
		}
	}
	if search != "" {
		if se, err = parseExpr(search); err != nil {
			s.writeError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.", err.Error())
			return
		}
	}
	var all []*user
	for _, u := range s.sortedUsers() {
		get := userAttr(u)
		switch {
		case fe != nil && !fe.match(get, false):
		case se != nil && !se.match(get, true):
		case prefix != "" && !userHasPrefix(u, prefix):
		case fe == nil && se == nil && u.status == "DEPROVISIONED":
			// Okta API: without filter or search, DEPROVISIONED users are omitted.
		default:
			all = append(all, u)
		}
	}
	def := 200
	if prefix != "" {
		def = 10
	}
	limit, ok := s.limit(w, q.Get("limit"), def)
	if !ok {
		return
	}
	pageItems, next := page(all, func(u *user) string { return u.id }, q.Get("after"), limit)
	out := make([]any, 0, len(pageItems))
	for _, u := range pageItems {
		out = append(out, s.userJSON(u))
	}
	s.writeLinks(w, r, next)
	s.writeJSON(w, http.StatusOK, out)
}

func userHasPrefix(u *user, prefix string) bool {
	prefix = strings.ToLower(prefix)
	for _, k := range []string{"firstName", "lastName", "email", "login"} {
		if v, _ := u.profile[k].(string); strings.HasPrefix(strings.ToLower(v), prefix) {
			return true
		}
	}
	return false
}

// userAttr reads the attributes filter and search expressions may name.
func userAttr(u *user) func(string) (string, bool) {
	return func(attr string) (string, bool) {
		switch attr {
		case "id":
			return u.id, true
		case "status":
			return u.status, true
		case "created":
			return u.created.Format(okTime), true
		case "lastUpdated":
			return u.lastUpdated.Format(okTime), true
		case "statusChanged":
			return u.statusChanged.Format(okTime), true
		}
		if k, ok := strings.CutPrefix(attr, "profile."); ok {
			v, present := u.profile[k]
			if !present || v == nil {
				return "", false
			}
			return fmt.Sprint(v), true
		}
		return "", false
	}
}

func (s *Server) userGroups(w http.ResponseWriter, r *http.Request, idOrLogin string) {
	u := s.findUser(idOrLogin)
	if u == nil {
		s.notFound(w, idOrLogin, "User")
		return
	}
	var all []*group
	for _, g := range s.sortedGroups() {
		if g.members[u.id] {
			all = append(all, g)
		}
	}
	limit, ok := s.limit(w, r.URL.Query().Get("limit"), 200)
	if !ok {
		return
	}
	items, next := page(all, func(g *group) string { return g.id }, r.URL.Query().Get("after"), limit)
	s.writeLinks(w, r, next)
	s.writeJSON(w, http.StatusOK, s.groupsJSON(items))
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var fe, se expr
	var err error
	for _, x := range []struct {
		raw string
		to  *expr
	}{{q.Get("filter"), &fe}, {q.Get("search"), &se}} {
		if x.raw == "" {
			continue
		}
		if *x.to, err = parseExpr(x.raw); err != nil {
			s.writeError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.", err.Error())
			return
		}
	}
	prefix := strings.ToLower(q.Get("q"))
	var all []*group
	for _, g := range s.sortedGroups() {
		get := groupAttr(g)
		switch {
		case fe != nil && !fe.match(get, false):
		case se != nil && !se.match(get, true):
		case prefix != "" && !strings.HasPrefix(strings.ToLower(g.name), prefix):
		default:
			all = append(all, g)
		}
	}
	def := 10000
	if prefix != "" {
		def = 300
	}
	limit, ok := s.limit(w, q.Get("limit"), def)
	if !ok {
		return
	}
	items, next := page(all, func(g *group) string { return g.id }, q.Get("after"), limit)
	s.writeLinks(w, r, next)
	s.writeJSON(w, http.StatusOK, s.groupsJSON(items))
}

func groupAttr(g *group) func(string) (string, bool) {
	return func(attr string) (string, bool) {
		switch attr {
		case "id":
			return g.id, true
		case "type":
			return g.typ, true
		case "profile.name":
			return g.name, true
		case "created":
			return g.created.Format(okTime), true
		case "lastMembershipUpdated":
			return g.lastMember.Format(okTime), true
		}
		return "", false
	}
}

func (s *Server) getGroup(w http.ResponseWriter, id string) {
	g := s.groups[id]
	if g == nil {
		s.notFound(w, id, "UserGroup")
		return
	}
	s.writeJSON(w, http.StatusOK, s.groupJSON(g))
}

func (s *Server) groupUsers(w http.ResponseWriter, r *http.Request, id string) {
	g := s.groups[id]
	if g == nil {
		s.notFound(w, id, "UserGroup")
		return
	}
	var all []*user
	for _, u := range s.sortedUsers() {
		if g.members[u.id] {
			all = append(all, u)
		}
	}
	// Okta API: /groups/{id}/users defaults to limit 1000.
	limit, ok := s.limit(w, r.URL.Query().Get("limit"), 1000)
	if !ok {
		return
	}
	items, next := page(all, func(u *user) string { return u.id }, r.URL.Query().Get("after"), limit)
	out := make([]any, 0, len(items))
	for _, u := range items {
		out = append(out, s.userJSON(u))
	}
	s.writeLinks(w, r, next)
	s.writeJSON(w, http.StatusOK, out)
}

// membership serves PUT/DELETE /groups/{gid}/users/{uid}: 204 whether or not
// the state changed (the response cannot say "already a member"), 404
// E0000007 for unknown ids, 403 E0000006 for groups Okta does not let the API
// edit (APP_GROUP imports, BUILT_IN Everyone).
func (s *Server) membership(w http.ResponseWriter, gid, uid string, add bool) {
	g := s.groups[gid]
	if g == nil {
		s.notFound(w, gid, "UserGroup")
		return
	}
	u := s.users[uid]
	if u == nil {
		s.notFound(w, uid, "User")
		return
	}
	if g.typ != "OKTA_GROUP" {
		s.writeError(w, http.StatusForbidden, "E0000006", "You do not have permission to perform the requested action")
		return
	}
	s.applyMember(g, u, add, ActorID)
	w.WriteHeader(http.StatusNoContent)
}

// getLogs serves the System Log. A query without `until` is a polling query:
// it always returns a next link, even on an empty page (Okta System Log API),
// whose `after` resumes exactly after what this query scanned.
func (s *Server) getLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since, until time.Time
	var err error
	if v := q.Get("since"); v != "" {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			s.writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: since", "since: "+err.Error())
			return
		}
	}
	if v := q.Get("until"); v != "" {
		if until, err = time.Parse(time.RFC3339Nano, v); err != nil {
			s.writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: until", "until: "+err.Error())
			return
		}
	}
	var fe expr
	if v := q.Get("filter"); v != "" {
		if fe, err = parseExpr(v); err != nil {
			s.writeError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.", err.Error())
			return
		}
	}
	limit, ok := s.limit(w, q.Get("limit"), 100)
	if !ok {
		return
	}
	if limit > 1000 {
		limit = 1000
	}
	after := 0
	if v := q.Get("after"); v != "" {
		if after, err = strconv.Atoi(v); err != nil {
			s.writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: after", "after: not a cursor")
			return
		}
	}
	desc := strings.EqualFold(q.Get("sortOrder"), "DESCENDING")
	keep := func(e *LogEvent) bool {
		switch {
		case !since.IsZero() && e.published.Before(since):
		case !until.IsZero() && !e.published.Before(until):
		case fe != nil && !fe.match(logAttr(e), false):
		default:
			return true
		}
		return false
	}
	var out []*LogEvent
	cursor := after
	more := false
	if desc {
		for i := len(s.logs) - 1; i >= 0; i-- {
			e := s.logs[i]
			if after > 0 && e.seq >= after || !keep(e) {
				continue
			}
			if len(out) == limit {
				more = true
				break
			}
			out = append(out, e)
			cursor = e.seq
		}
	} else {
		for _, e := range s.logs {
			if e.seq <= after {
				continue
			}
			if !keep(e) {
				cursor = e.seq
				continue
			}
			if len(out) == limit {
				more = true
				break
			}
			out = append(out, e)
			cursor = e.seq
		}
	}
	next := ""
	if more || (until.IsZero() && !desc) {
		next = strconv.Itoa(cursor)
	}
	s.writeLinks(w, r, next)
	if out == nil {
		out = []*LogEvent{}
	}
	s.writeJSON(w, http.StatusOK, out)
}

func logAttr(e *LogEvent) func(string) (string, bool) {
	return func(attr string) (string, bool) {
		switch attr {
		case "eventType":
			return e.EventType, true
		case "uuid":
			return e.UUID, true
		case "actor.id":
			return e.Actor.ID, true
		case "outcome.result":
			return e.Outcome.Result, true
		case "published":
			return e.Published, true
		case "target.id":
			// A SCIM filter on a multi-valued attribute matches any value; the
			// emulator answers with the first target (the User for lifecycle
			// and membership events).
			if len(e.Target) > 0 {
				return e.Target[0].ID, true
			}
		}
		return "", false
	}
}

func (s *Server) limit(w http.ResponseWriter, raw string, def int) (int, bool) {
	if raw == "" {
		return def, true
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		s.writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: limit", "limit: must be a positive integer")
		return 0, false
	}
	return n, true
}

// page returns up to limit items after the item whose key is after (items
// are sorted by key), and the key to resume from when more remain.
func page[T any](items []T, key func(T) string, after string, limit int) ([]T, string) {
	start := 0
	if after != "" {
		start = sort.Search(len(items), func(i int) bool { return key(items[i]) > after })
	}
	end := start + limit
	if end >= len(items) {
		return items[start:], ""
	}
	return items[start:end], key(items[end-1])
}

// writeLinks writes one Link header per relation, as Okta does: the v2 SDK
// reads r.Header["Link"] entry by entry, and a single comma-joined header
// would make Self and Next the same URL (an endless loop over page 1).
func (s *Server) writeLinks(w http.ResponseWriter, r *http.Request, nextAfter string) {
	base := "http://" + r.Host + path.Clean("/"+r.URL.Path)
	self := base
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.Query().Encode()
	}
	w.Header().Add("Link", "<"+self+">; rel=\"self\"")
	if nextAfter != "" {
		q := r.URL.Query()
		q.Set("after", nextAfter)
		w.Header().Add("Link", "<"+base+"?"+q.Encode()+">; rel=\"next\"")
	}
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errorCode":"E0000009","errorSummary":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) notFound(w http.ResponseWriter, id, kind string) {
	s.writeError(w, http.StatusNotFound, "E0000007", fmt.Sprintf("Not found: Resource not found: %s (%s)", id, kind))
}

// writeError writes Okta's error shape.
func (s *Server) writeError(w http.ResponseWriter, status int, code, summary string, causes ...string) {
	s.seq++
	cs := make([]map[string]string, 0, len(causes))
	for _, c := range causes {
		cs = append(cs, map[string]string{"errorSummary": c})
	}
	s.writeJSON(w, status, map[string]any{
		"errorCode":    code,
		"errorSummary": summary,
		"errorLink":    code,
		"errorId":      fmt.Sprintf("oae%019d", s.seq),
		"errorCauses":  cs,
	})
}

func (s *Server) userJSON(u *user) map[string]any {
	activated := any(nil)
	if u.status != "STAGED" {
		activated = u.created.Format(okTime)
	}
	return map[string]any{
		"id":              u.id,
		"status":          u.status,
		"created":         u.created.Format(okTime),
		"activated":       activated,
		"statusChanged":   u.statusChanged.Format(okTime),
		"lastLogin":       nil,
		"lastUpdated":     u.lastUpdated.Format(okTime),
		"passwordChanged": nil,
		"type":            map[string]string{"id": "oty1162QAr8hJjTaq0g4"},
		"profile":         u.profile,
		"credentials":     map[string]any{"provider": map[string]string{"type": "OKTA", "name": "OKTA"}},
		"_links":          map[string]any{"self": map[string]string{"href": s.URL + "/api/v1/users/" + u.id}},
	}
}

func (s *Server) groupJSON(g *group) map[string]any {
	return map[string]any{
		"id":                    g.id,
		"created":               g.created.Format(okTime),
		"lastUpdated":           g.created.Format(okTime),
		"lastMembershipUpdated": g.lastMember.Format(okTime),
		"objectClass":           []string{"okta:user_group"},
		"type":                  g.typ,
		"profile":               map[string]string{"name": g.name, "description": ""},
		"_links":                map[string]any{"users": map[string]string{"href": s.URL + "/api/v1/groups/" + g.id + "/users"}},
	}
}

func (s *Server) groupsJSON(gs []*group) []any {
	out := make([]any, 0, len(gs))
	for _, g := range gs {
		out = append(out, s.groupJSON(g))
	}
	return out
}
