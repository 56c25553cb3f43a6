package jumpcloudfake

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"keycard/internal/fakewire"
)

// rateLimitPerMinute is the X-RateLimit-Limit the emulator reports.
const rateLimitPerMinute = 600

// statusWriter remembers the status written, for Requests.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// serve is the single entry point: bookkeeping, latency, auth, faults, then
// routing.
func (s *Server) serve(rw http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	s.mu.Lock()
	idx := len(s.requests)
	s.requests = append(s.requests, Request{Method: r.Method, Path: p, Query: r.URL.Query(), At: s.now()})
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

	w := &statusWriter{ResponseWriter: rw}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if idx < len(s.requests) {
			s.requests[idx].Status = w.status
		}
	}()
	s.stampHeaders(w)
	v2 := strings.HasPrefix(p, "/api/v2/")

	if r.Header.Get("x-api-key") != s.key || (s.org != "" && r.Header.Get("x-org-id") != s.org) {
		s.writeError(w, v2, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if s.limited > 0 && (s.limitPattern == "" || fakewire.Match(s.limitMethod, s.limitPattern, r.Method, p)) {
		s.limited--
		secs := int64(math.Ceil(s.limitFor.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		w.Header().Set("X-RateLimit-Remaining", "0")
		s.writeError(w, v2, http.StatusTooManyRequests, "Too Many Requests")
		return
	}
	for _, f := range s.faults {
		if f.n <= 0 || !fakewire.Match(f.method, f.pattern, r.Method, p) {
			continue
		}
		f.n--
		switch {
		case f.html:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(f.status)
			_, _ = fmt.Fprintf(w, "<html>%d %s (nginx)</html>", f.status, http.StatusText(f.status))
		case f.malform == HTMLPage:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "<!DOCTYPE html><html><head><title>Maintenance</title></head><body><h1>We'll be right back</h1></body></html>")
		case f.malform == TruncatedJSON:
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"totalCount": 3, "results": [{"_id": "6000`)
		default:
			s.writeError(w, v2, f.status, http.StatusText(f.status))
		}
		return
	}
	s.route(w, r, p)
}

// stampHeaders writes the per-response rate-limit headers.
func (s *Server) stampHeaders(w http.ResponseWriter) {
	now := s.now()
	if now.Sub(s.window) >= time.Minute || now.Before(s.window) {
		s.window, s.windowUsed = now.Truncate(time.Minute), 0
	}
	s.windowUsed++
	remaining := max(rateLimitPerMinute-s.windowUsed, 0)
	h := w.Header()
	h.Set("Date", now.Format(http.TimeFormat))
	h.Set("X-RateLimit-Limit", strconv.Itoa(rateLimitPerMinute))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, p string) {
	seg := strings.Split(strings.TrimPrefix(p, "/"), "/")
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	switch {
	case len(seg) == 2 && seg[0] == "api" && seg[1] == "systemusers" && get:
		s.listUsers(w, r)
	case len(seg) == 3 && seg[0] == "api" && seg[1] == "systemusers" && get:
		s.getUser(w, r, seg[2])
	case len(seg) == 3 && seg[0] == "api" && seg[1] == "search" && seg[2] == "systemusers" && post:
		s.searchUsers(w, r)
	case len(seg) == 3 && seg[0] == "api" && seg[1] == "v2" && seg[2] == "usergroups" && get:
		s.listGroups(w, r)
	case len(seg) == 4 && seg[0] == "api" && seg[1] == "v2" && seg[2] == "usergroups" && get:
		s.getGroup(w, seg[3])
	case len(seg) == 5 && seg[0] == "api" && seg[1] == "v2" && seg[2] == "usergroups" && seg[4] == "members" && get:
		s.listMembers(w, r, seg[3])
	case len(seg) == 5 && seg[0] == "api" && seg[1] == "v2" && seg[2] == "usergroups" && seg[4] == "members" && post:
		s.changeMember(w, r, seg[3])
	default:
		s.writeError(w, strings.HasPrefix(p, "/api/v2/"), http.StatusNotFound, "Not Found")
	}
}

// paging reads limit and skip as JumpCloud does: limit 1..100, default 10;
// skip ≥ 0.
func (s *Server) paging(w http.ResponseWriter, r *http.Request, v2 bool, p string) (limit, skip int, ok bool) {
	q := r.URL.Query()
	limit, skip = defaultLimit, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxLimit {
			s.writeError(w, v2, http.StatusBadRequest, "limit must be an integer between 0 and 100")
			return 0, 0, false
		}
		if n > 0 {
			limit = n
		}
	}
	if v := q.Get("skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.writeError(w, v2, http.StatusBadRequest, "skip must be a non-negative integer")
			return 0, 0, false
		}
		skip = n
	}
	if s.pageLoop != "" && fakewire.Match("", s.pageLoop, r.Method, p) {
		skip = 0
	}
	return limit, skip, true
}

func window[T any](items []T, limit, skip int) []T {
	if skip >= len(items) {
		return []T{}
	}
	end := min(skip+limit, len(items))
	return items[skip:end]
}

// v1filter is one `field:$op:value` term of a v1 filter.
type v1filter struct{ field, op, value string }

func parseV1Filters(raw []string) ([]v1filter, error) {
	var out []v1filter
	for _, f := range raw {
		parts := strings.SplitN(f, ":", 3)
		if len(parts) != 3 || parts[0] == "" {
			return nil, fmt.Errorf("filter %q is not field:operator:value", f)
		}
		switch parts[1] {
		case "$eq", "$ne", "$in":
		default:
			return nil, fmt.Errorf("filter operator %q is not supported", parts[1])
		}
		out = append(out, v1filter{field: parts[0], op: parts[1], value: parts[2]})
	}
	return out, nil
}

func (f v1filter) match(u *user) bool {
	got := fmt.Sprint(s1Field(u, f.field))
	switch f.op {
	case "$eq":
		return got == f.value
	case "$ne":
		return got != f.value
	case "$in":
		for _, v := range strings.Split(f.value, "|") {
			if got == v {
				return true
			}
		}
	}
	return false
}

func s1Field(u *user, field string) any {
	m := userJSON(u)
	if field == "id" {
		field = "_id"
	}
	if v, ok := m[field]; ok && v != nil {
		return v
	}
	return ""
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	filters, err := parseV1Filters(r.URL.Query()["filter"])
	if err != nil {
		s.writeError(w, false, http.StatusBadRequest, err.Error())
		return
	}
	limit, skip, ok := s.paging(w, r, false, "/api/systemusers")
	if !ok {
		return
	}
	var all []*user
	for _, u := range s.sortedUsers() {
		keep := true
		for _, f := range filters {
			keep = keep && f.match(u)
		}
		if keep {
			all = append(all, u)
		}
	}
	s.writeUserList(w, all, limit, skip, strings.Fields(r.URL.Query().Get("fields")))
}

func (s *Server) writeUserList(w http.ResponseWriter, all []*user, limit, skip int, fields []string) {
	results := make([]map[string]any, 0, limit)
	for _, u := range window(all, limit, skip) {
		results = append(results, project(userJSON(u), fields))
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(all), "results": results})
}

// searchUsers serves POST /api/search/systemusers: searchFilter's
// searchTerm matched case-insensitively as a substring of any of its
// fields; limit and skip come in the body (or the query).
func (s *Server) searchUsers(w http.ResponseWriter, r *http.Request) {
	var body struct {
		SearchFilter struct {
			SearchTerm string   `json:"searchTerm"`
			Fields     []string `json:"fields"`
		} `json:"searchFilter"`
		Fields string `json:"fields"`
		Limit  *int   `json:"limit"`
		Skip   *int   `json:"skip"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		s.writeError(w, false, http.StatusBadRequest, "body is not JSON: "+err.Error())
		return
	}
	limit, skip, ok := s.paging(w, r, false, "/api/search/systemusers")
	if !ok {
		return
	}
	if body.Limit != nil {
		if *body.Limit < 0 || *body.Limit > maxLimit {
			s.writeError(w, false, http.StatusBadRequest, "limit must be an integer between 0 and 100")
			return
		}
		if *body.Limit > 0 {
			limit = *body.Limit
		}
	}
	if body.Skip != nil && *body.Skip > 0 && (s.pageLoop == "" || !fakewire.Match("", s.pageLoop, r.Method, "/api/search/systemusers")) {
		skip = *body.Skip
	}
	term := strings.ToLower(body.SearchFilter.SearchTerm)
	var all []*user
	for _, u := range s.sortedUsers() {
		for _, f := range body.SearchFilter.Fields {
			if v, _ := s1Field(u, f).(string); term != "" && strings.Contains(strings.ToLower(v), term) {
				all = append(all, u)
				break
			}
		}
	}
	s.writeUserList(w, all, limit, skip, strings.Fields(body.Fields))
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, id string) {
	u := s.users[id]
	if u == nil {
		s.writeError(w, false, http.StatusNotFound, "Not Found")
		return
	}
	s.writeJSON(w, http.StatusOK, project(userJSON(u), strings.Fields(r.URL.Query().Get("fields"))))
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	var name *string
	for _, f := range r.URL.Query()["filter"] {
		parts := strings.SplitN(f, ":", 3)
		if len(parts) != 3 || parts[0] != "name" || parts[1] != "eq" {
			s.writeError(w, true, http.StatusBadRequest, fmt.Sprintf("filter %q is not supported", f))
			return
		}
		v := parts[2]
		name = &v
	}
	limit, skip, ok := s.paging(w, r, true, "/api/v2/usergroups")
	if !ok {
		return
	}
	var all []*group
	for _, g := range s.sortedGroups() {
		if name == nil || g.name == *name {
			all = append(all, g)
		}
	}
	out := make([]map[string]any, 0, limit)
	for _, g := range window(all, limit, skip) {
		out = append(out, groupJSON(g))
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(all)))
	s.writeJSON(w, http.StatusOK, out)
}

func (s *Server) getGroup(w http.ResponseWriter, id string) {
	g := s.groups[id]
	if g == nil {
		s.writeError(w, true, http.StatusNotFound, "Not Found")
		return
	}
	s.writeJSON(w, http.StatusOK, groupJSON(g))
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, gid string) {
	g := s.groups[gid]
	if g == nil {
		s.writeError(w, true, http.StatusNotFound, "Not Found")
		return
	}
	limit, skip, ok := s.paging(w, r, true, "/api/v2/usergroups/"+gid+"/members")
	if !ok {
		return
	}
	ids := make([]string, 0, len(g.members))
	for _, u := range s.sortedUsers() {
		if g.members[u.id] {
			ids = append(ids, u.id)
		}
	}
	out := make([]map[string]any, 0, limit)
	for _, id := range window(ids, limit, skip) {
		out = append(out, map[string]any{
			"attributes": map[string]any{},
			"from":       map[string]any{"attributes": nil, "id": g.id, "type": "user_group"},
			"to":         map[string]any{"attributes": nil, "id": id, "type": "user"},
		})
	}
	s.writeJSON(w, http.StatusOK, out)
}

// changeMember serves POST /api/v2/usergroups/{id}/members.
func (s *Server) changeMember(w http.ResponseWriter, r *http.Request, gid string) {
	var body struct {
		Op   string `json:"op"`
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		s.writeError(w, true, http.StatusBadRequest, "body is not JSON: "+err.Error())
		return
	}
	if body.Type != "user" || (body.Op != "add" && body.Op != "remove") || body.ID == "" {
		s.writeError(w, true, http.StatusBadRequest, `op must be "add" or "remove", type "user", and id set`)
		return
	}
	g, u := s.groups[gid], s.users[body.ID]
	if g == nil || u == nil {
		s.writeError(w, true, http.StatusNotFound, "Not Found")
		return
	}
	switch {
	case body.Op == "add" && g.members[u.id]:
		s.writeError(w, true, http.StatusConflict, "Already Exists")
	case body.Op == "remove" && !g.members[u.id]:
		s.writeError(w, true, http.StatusNotFound, "Not Found")
	default:
		if body.Op == "add" {
			g.members[u.id] = true
		} else {
			delete(g.members, u.id)
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// project keeps only fields (and _id), as JumpCloud's `fields` does.
func project(m map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return m
	}
	out := map[string]any{"_id": m["_id"]}
	for _, f := range fields {
		if v, ok := m[f]; ok {
			out[f] = v
		}
	}
	return out
}

func userJSON(u *user) map[string]any {
	attrs := make([]map[string]string, 0, len(u.Attributes))
	names := make([]string, 0, len(u.Attributes))
	for k := range u.Attributes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		attrs = append(attrs, map[string]string{"name": k, "value": u.Attributes[k]})
	}
	username := u.Username
	if username == "" {
		username = strings.ToLower(strings.SplitN(u.Email, "@", 2)[0])
	}
	var manager any
	if u.Manager != "" {
		manager = u.Manager
	}
	return map[string]any{
		"_id":                u.id,
		"email":              u.Email,
		"username":           username,
		"firstname":          u.Firstname,
		"lastname":           u.Lastname,
		"displayname":        u.Displayname,
		"state":              u.State,
		"suspended":          u.State == "SUSPENDED",
		"activated":          u.State != "STAGED",
		"account_locked":     false,
		"manager":            manager,
		"department":         u.Department,
		"jobTitle":           u.JobTitle,
		"employeeType":       u.EmployeeType,
		"company":            u.Company,
		"location":           u.Location,
		"costCenter":         u.CostCenter,
		"employeeIdentifier": u.EmployeeIdentifier,
		"attributes":         attrs,
		"created":            u.created.Format("2006-01-02T15:04:05.000Z"),
		"organization":       "5a0000000000000000000001",
	}
}

func groupJSON(g *group) map[string]any {
	return map[string]any{
		"id":               g.id,
		"name":             g.name,
		"type":             "user_group",
		"attributes":       map[string]any{},
		"description":      "",
		"email":            "",
		"membershipMethod": "STATIC",
	}
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"message":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError writes JumpCloud's error shapes: v1 {"message"}, v2 {"code",
// "message", "status"}.
func (s *Server) writeError(w http.ResponseWriter, v2 bool, status int, msg string) {
	if !v2 {
		s.writeJSON(w, status, map[string]any{"message": msg})
		return
	}
	st := strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	if status == http.StatusConflict {
		st = "ALREADY_EXISTS"
	}
	s.writeJSON(w, status, map[string]any{"code": status, "message": msg, "status": st})
}
