package graphfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"keycard/internal/fakewire"
)

// defaultUserProps are the properties Graph v1.0 returns for a user without
// $select. accountEnabled, department, employeeType, companyName and
// userType are NOT among them: a client must $select them.
var defaultUserProps = []string{"businessPhones", "displayName", "givenName", "jobTitle", "mail",
	"mobilePhone", "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}

func (u *user) prop(name string) (any, bool) {
	switch strings.ToLower(name) {
	case "id":
		return u.ID, true
	case "displayname":
		return nullable(u.DisplayName), true
	case "givenname":
		return nullable(u.GivenName), true
	case "surname":
		return nullable(u.Surname), true
	case "mail":
		return nullable(u.Mail), true
	case "userprincipalname":
		return u.UserPrincipalName, true
	case "accountenabled":
		return !u.Disabled, true
	case "department":
		return nullable(u.Department), true
	case "jobtitle":
		return nullable(u.JobTitle), true
	case "employeetype":
		return nullable(u.EmployeeType), true
	case "companyname":
		return nullable(u.CompanyName), true
	case "officelocation":
		return nullable(u.OfficeLocation), true
	case "usertype":
		return u.UserType, true
	case "businessphones":
		return []string{}, true
	case "mobilephone", "preferredlanguage":
		return nil, true
	}
	return nil, false
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// canonical spelling of the properties a $select may name.
var userPropNames = map[string]string{}

func init() {
	for _, p := range append(defaultUserProps, "accountEnabled", "department", "employeeType", "companyName", "userType") {
		userPropNames[strings.ToLower(p)] = p
	}
}

// selected parses $select (none: Graph's default properties). An unknown
// property gives Graph's 400 message instead.
func selected(r *http.Request) ([]string, string) {
	raw := r.URL.Query().Get("$select")
	if raw == "" {
		return defaultUserProps, ""
	}
	var out []string
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		name, ok := userPropNames[strings.ToLower(p)]
		if !ok {
			return nil, fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.user'.", p)
		}
		out = append(out, name)
	}
	return out, ""
}

func (s *Server) userJSON(u *user, props []string, typed bool) map[string]any {
	m := map[string]any{}
	if typed {
		m["@odata.type"] = "#microsoft.graph.user"
	}
	for _, p := range props {
		if v, ok := u.prop(p); ok {
			m[p] = v
		}
	}
	return m
}

func (s *Server) liveUser(id string) *user {
	u := s.users[id]
	if u == nil || u.deleted {
		return nil
	}
	return u
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, id string) {
	s.graphError(w, r, http.StatusNotFound, "Request_ResourceNotFound",
		"Resource '"+id+"' does not exist or one of its queried reference-property objects are not present.")
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, id string) {
	props, msg := selected(r)
	if msg != "" {
		s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest", msg)
		return
	}
	u := s.liveUser(id)
	if u == nil {
		// Graph also resolves /users/{userPrincipalName}.
		for _, c := range s.sortedUsers() {
			if strings.EqualFold(c.UserPrincipalName, id) {
				u = c
				break
			}
		}
	}
	if u == nil {
		s.notFound(w, r, id)
		return
	}
	body := s.userJSON(u, props, false)
	body["@odata.context"] = s.GraphURL() + "/$metadata#users/$entity"
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getManager(w http.ResponseWriter, r *http.Request, id string) {
	props, msg := selected(r)
	if msg != "" {
		s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest", msg)
		return
	}
	u := s.liveUser(id)
	if u == nil {
		s.notFound(w, r, id)
		return
	}
	m := s.liveUser(u.ManagerID)
	if m == nil {
		s.notFound(w, r, "manager")
		return
	}
	body := s.userJSON(m, props, true)
	body["@odata.context"] = s.GraphURL() + "/$metadata#directoryObjects/$entity"
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) sortedUsers() []*user {
	out := make([]*user, 0, len(s.users))
	for _, u := range s.users {
		if !u.deleted {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	props, msg := selected(r)
	if msg != "" {
		s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest", msg)
		return
	}
	match := func(*user) bool { return true }
	if f := r.URL.Query().Get("$filter"); f != "" {
		terms, msg := parseFilter(f, "mail", "userPrincipalName", "id", "displayName")
		if msg != "" {
			s.graphError(w, r, http.StatusBadRequest, "Request_UnsupportedQuery", msg)
			return
		}
		match = func(u *user) bool {
			for _, t := range terms {
				if v, _ := u.prop(t.prop); v != nil && strings.EqualFold(fmt.Sprint(v), t.value) {
					return true
				}
			}
			return false
		}
	}
	var items []any
	for _, u := range s.sortedUsers() {
		if match(u) {
			items = append(items, s.userJSON(u, props, false))
		}
	}
	s.writePage(w, r, "users", items)
}

type term struct{ prop, value string }

// parseFilter reads `prop eq 'value' [or prop eq 'value' ...]`, the subset
// keycard sends. Quotes inside a value are doubled (OData). Anything else
// gives Graph's 400 message instead.
func parseFilter(f string, allowed ...string) ([]term, string) {
	var out []term
	rest := strings.TrimSpace(f)
	for {
		sp := strings.IndexByte(rest, ' ')
		if sp < 0 {
			return nil, fmt.Sprintf("Invalid filter clause: syntax error at position %d in '%s'.", len(f), f)
		}
		prop := rest[:sp]
		ok := false
		for _, a := range allowed {
			if strings.EqualFold(a, prop) {
				prop, ok = a, true
			}
		}
		if !ok {
			return nil, fmt.Sprintf("Unsupported or invalid query filter clause specified for property '%s' of resource.", prop)
		}
		rest = strings.TrimSpace(rest[sp+1:])
		if !strings.HasPrefix(rest, "eq ") {
			return nil, fmt.Sprintf("Unsupported query: only 'eq' is emulated in '%s'.", f)
		}
		rest = strings.TrimSpace(rest[3:])
		if !strings.HasPrefix(rest, "'") {
			return nil, fmt.Sprintf("Invalid filter clause: a string literal is expected in '%s'.", f)
		}
		var val strings.Builder
		i, closed := 1, false
		for i < len(rest) {
			if rest[i] == '\'' {
				if i+1 < len(rest) && rest[i+1] == '\'' {
					val.WriteByte('\'')
					i += 2
					continue
				}
				closed = true
				i++
				break
			}
			val.WriteByte(rest[i])
			i++
		}
		if !closed {
			return nil, fmt.Sprintf("Invalid filter clause: unterminated string literal in '%s'.", f)
		}
		out = append(out, term{prop: prop, value: val.String()})
		rest = strings.TrimSpace(rest[i:])
		if rest == "" {
			return out, ""
		}
		if !strings.HasPrefix(rest, "or ") {
			return nil, fmt.Sprintf("Invalid filter clause: syntax error in '%s'.", f)
		}
		rest = strings.TrimSpace(rest[3:])
	}
}

func (s *Server) sortedGroups() []*group {
	out := make([]*group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func groupJSON(g *group) map[string]any {
	return map[string]any{
		"id": g.id, "displayName": g.name, "securityEnabled": true, "mailEnabled": false,
		"groupTypes": []string{}, "isAssignableToRole": nil, "mailNickname": strings.ReplaceAll(g.name, " ", ""),
	}
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	match := func(*group) bool { return true }
	if f := r.URL.Query().Get("$filter"); f != "" {
		terms, msg := parseFilter(f, "displayName", "id")
		if msg != "" {
			s.graphError(w, r, http.StatusBadRequest, "Request_UnsupportedQuery", msg)
			return
		}
		match = func(g *group) bool {
			for _, t := range terms {
				if (t.prop == "displayName" && strings.EqualFold(g.name, t.value)) || (t.prop == "id" && g.id == t.value) {
					return true
				}
			}
			return false
		}
	}
	var items []any
	for _, g := range s.sortedGroups() {
		if match(g) {
			items = append(items, groupJSON(g))
		}
	}
	s.writePage(w, r, "groups", items)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request, id string) {
	g := s.groups[id]
	if g == nil {
		s.notFound(w, r, id)
		return
	}
	writeJSON(w, http.StatusOK, groupJSON(g))
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, gid string) {
	props, msg := selected(r)
	if msg != "" {
		s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest", msg)
		return
	}
	g := s.groups[gid]
	if g == nil {
		s.notFound(w, r, gid)
		return
	}
	var items []any
	for _, u := range s.sortedUsers() {
		if g.members[u.ID] {
			items = append(items, s.userJSON(u, props, true))
		}
	}
	s.writePage(w, r, "directoryObjects", items)
}

// writePage answers one page of items: $top (≤ 999) or the default page,
// $skiptoken an opaque offset, @odata.nextLink absolute.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, ctx string, items []any) {
	q := r.URL.Query()
	size := min(s.opts.PageSize, s.opts.MaxPageSize)
	if t := q.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > maxPageSize {
			s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid page size specified: '"+t+"'. Must be between 1 and 999 inclusive.")
			return
		}
		size = min(n, s.opts.MaxPageSize)
	}
	off := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err == nil {
			off, err = strconv.Atoi(strings.TrimPrefix(string(b), "X'"))
		}
		if err != nil || off < 0 {
			s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid $skiptoken.")
			return
		}
	}
	if off > len(items) {
		off = len(items)
	}
	end := min(off+size, len(items))
	page := items[off:end]
	if page == nil {
		page = []any{}
	}
	body := map[string]any{"@odata.context": s.GraphURL() + "/$metadata#" + ctx, "value": page}
	if s.loopsLocked(r) {
		body["@odata.nextLink"] = s.URL + r.URL.RequestURI()
	} else if end < len(items) {
		nq := url.Values{}
		for k, v := range q {
			if k != "$skiptoken" {
				nq[k] = v
			}
		}
		nq.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte("X'"+strconv.Itoa(end))))
		body["@odata.nextLink"] = s.URL + r.URL.Path + "?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) loopsLocked(r *http.Request) bool {
	for _, l := range s.loops {
		m, p := fakewire.Split(l)
		if fakewire.Match(m, p, r.Method, r.URL.Path) {
			return true
		}
	}
	return false
}

// addMember is POST /groups/{id}/members/$ref.
func (s *Server) addMember(w http.ResponseWriter, r *http.Request, gid string) {
	var body map[string]any
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err := json.Unmarshal(raw, &body); err != nil {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
		return
	}
	ref, _ := body["@odata.id"].(string)
	u, err := url.Parse(ref)
	i := strings.LastIndex(ref, "/")
	if ref == "" || err != nil || u.Scheme != "https" || i < 0 ||
		!(strings.Contains(u.Path, "/directoryObjects/") || strings.Contains(u.Path, "/users/")) {
		s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid object identifier '"+ref+"'.")
		return
	}
	uid := ref[i+1:]
	g := s.groups[gid]
	if g == nil {
		s.notFound(w, r, gid)
		return
	}
	if s.liveUser(uid) == nil {
		s.notFound(w, r, uid)
		return
	}
	if g.members[uid] {
		s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest",
			"One or more added object references already exist for the following modified properties: 'members'.")
		return
	}
	g.members[uid] = true
	w.WriteHeader(http.StatusNoContent)
}

// removeMember is DELETE /groups/{id}/members/{id}/$ref.
func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, gid, uid string) {
	g := s.groups[gid]
	if g == nil {
		s.notFound(w, r, gid)
		return
	}
	if !g.members[uid] {
		s.notFound(w, r, uid)
		return
	}
	delete(g.members, uid)
	w.WriteHeader(http.StatusNoContent)
}

// usersDelta is GET /users/delta. A round without a token lists every live
// user (initial sync); a round from a $deltatoken lists users changed
// since, deleted ones as {"id", "@removed": {"reason": "changed"}}. Pages
// carry @odata.nextLink ($skiptoken = round base, snapshot, offset); the last
// page carries @odata.deltaLink ($deltatoken = snapshot).
func (s *Server) usersDelta(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	props, msg := selected(r)
	if msg != "" {
		s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest", msg)
		return
	}
	base, snap, off := 0, s.changeSeq, 0
	switch {
	case q.Get("$skiptoken") != "":
		b, err := base64.RawURLEncoding.DecodeString(q.Get("$skiptoken"))
		if err != nil {
			s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid $skiptoken.")
			return
		}
		if _, err := fmt.Sscanf(string(b), "d:%d:%d:%d", &base, &snap, &off); err != nil {
			s.graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid $skiptoken.")
			return
		}
	case q.Get("$deltatoken") == "latest":
		// "latest": no objects, only a deltaLink from now on (Graph's way
		// to start tracking changes without reading the whole tenant).
		sel := url.Values{}
		if q.Get("$select") != "" {
			sel.Set("$select", q.Get("$select"))
		}
		sel.Set("$deltatoken", base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "t:%d", s.changeSeq)))
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.GraphURL() + "/$metadata#users",
			"value": []any{}, "@odata.deltaLink": s.GraphURL() + "/users/delta?" + sel.Encode()})
		return
	case q.Get("$deltatoken") != "":
		b, err := base64.RawURLEncoding.DecodeString(q.Get("$deltatoken"))
		n, serr := 0, error(nil)
		if err == nil {
			_, serr = fmt.Sscanf(string(b), "t:%d", &n)
		}
		if err != nil || serr != nil || n > s.changeSeq {
			s.graphError(w, r, http.StatusGone, "SyncStateNotFound", "The sync state generation is not found, invalid or expired.")
			return
		}
		base = n
	}
	var changed []*user
	for _, u := range s.users {
		if u.changed > base && u.changed <= snap && (base > 0 || !u.deleted) {
			changed = append(changed, u)
		}
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i].ID < changed[j].ID })
	if off > len(changed) {
		off = len(changed)
	}
	end := min(off+min(s.opts.PageSize, s.opts.MaxPageSize), len(changed))
	page := []any{}
	for _, u := range changed[off:end] {
		if u.deleted {
			page = append(page, map[string]any{"id": u.ID, "@removed": map[string]any{"reason": "changed"}})
			continue
		}
		page = append(page, s.userJSON(u, props, false))
	}
	body := map[string]any{"@odata.context": s.GraphURL() + "/$metadata#users", "value": page}
	sel := url.Values{}
	if q.Get("$select") != "" {
		sel.Set("$select", q.Get("$select"))
	}
	switch {
	case s.loopsLocked(r):
		body["@odata.nextLink"] = s.URL + r.URL.RequestURI()
	case end < len(changed):
		sel.Set("$skiptoken", base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "d:%d:%d:%d", base, snap, end)))
		body["@odata.nextLink"] = s.GraphURL() + "/users/delta?" + sel.Encode()
	default:
		sel.Set("$deltatoken", base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "t:%d", snap)))
		body["@odata.deltaLink"] = s.GraphURL() + "/users/delta?" + sel.Encode()
	}
	writeJSON(w, http.StatusOK, body)
}
