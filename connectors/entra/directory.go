package entra

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"keycard/access"
)

// userSelect names every property keycard reads. accountEnabled,
// department, employeeType, companyName and userType are not in Graph's
// default set, so they must be selected.
const userSelect = "id,displayName,givenName,surname,mail,userPrincipalName,accountEnabled," +
	"department,jobTitle,employeeType,companyName,officeLocation,userType"

// memberPage is the $top for member and group lists (Graph's maximum).
const memberPage = 999

// graphUser is a user as Graph returns it with userSelect.
type graphUser struct {
	ODataType         string  `json:"@odata.type"`
	ID                string  `json:"id"`
	DisplayName       *string `json:"displayName"`
	GivenName         *string `json:"givenName"`
	Surname           *string `json:"surname"`
	Mail              *string `json:"mail"`
	UserPrincipalName *string `json:"userPrincipalName"`
	AccountEnabled    *bool   `json:"accountEnabled"`
	Department        *string `json:"department"`
	JobTitle          *string `json:"jobTitle"`
	EmployeeType      *string `json:"employeeType"`
	CompanyName       *string `json:"companyName"`
	OfficeLocation    *string `json:"officeLocation"`
	UserType          *string `json:"userType"`
	Removed           *struct {
		Reason string `json:"reason"`
	} `json:"@removed"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// toUser maps a Graph user. accountEnabled false is StatusSuspended (the
// offboarded status); an absent accountEnabled is read as enabled, because
// userSelect always asks for it and Graph omits it only for objects that
// are not users.
func toUser(g graphUser) access.User {
	attrs := map[string]string{}
	for k, v := range map[string]*string{
		"displayName": g.DisplayName, "givenName": g.GivenName, "surname": g.Surname,
		"mail": g.Mail, "userPrincipalName": g.UserPrincipalName, "department": g.Department,
		"jobTitle": g.JobTitle, "employeeType": g.EmployeeType, "companyName": g.CompanyName,
		"officeLocation": g.OfficeLocation, "userType": g.UserType,
	} {
		if v != nil && *v != "" {
			attrs[k] = *v
		}
	}
	status := access.StatusActive
	if g.AccountEnabled != nil {
		attrs["accountEnabled"] = strconv.FormatBool(*g.AccountEnabled)
		if !*g.AccountEnabled {
			status = access.StatusSuspended
		}
	}
	email := str(g.Mail)
	if email == "" {
		email = str(g.UserPrincipalName)
	}
	name := str(g.DisplayName)
	if name == "" {
		name = strings.TrimSpace(str(g.GivenName) + " " + str(g.Surname))
	}
	if name == "" {
		name = email
	}
	return access.User{ID: g.ID, Login: str(g.UserPrincipalName), Email: email, Name: name, Status: status, Attributes: attrs}
}

// quote makes an OData string literal: single quotes doubled.
func quote(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// query encodes q with %20 for spaces: a '+' in an email is sent as %2B,
// so nothing in a filter value can be read as a space.
func query(q url.Values) string { return strings.ReplaceAll(q.Encode(), "+", "%20") }

// idSafe reports whether v can be one path segment of a Graph URL.
func idSafe(v string) bool {
	return v != "" && v != "." && v != ".." && !strings.ContainsAny(v, "/?#\\")
}

// UserByEmail finds the user whose mail or userPrincipalName is email.
// Graph compares both ignoring case. Two different accounts matching is a
// conflict, not a guess.
func (c *Connector) UserByEmail(ctx context.Context, email string) (access.User, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return access.User{}, access.Errorf(access.CodeNotFound, "no email to look up in Entra ID")
	}
	q := url.Values{
		"$filter": {"mail eq " + quote(email) + " or userPrincipalName eq " + quote(email)},
		"$select": {userSelect},
		"$top":    {"2"},
	}
	var p page[graphUser]
	if err := c.do(ctx, call{method: http.MethodGet, url: c.graph + "/users?" + query(q), what: "find user by email"}, &p); err != nil {
		return access.User{}, err
	}
	if err := p.check("find user by email"); err != nil {
		return access.User{}, err
	}
	switch len(p.Value) {
	case 0:
		return access.User{}, access.Errorf(access.CodeNotFound, "Entra ID has no user with mail or userPrincipalName %s", email)
	case 1:
		return toUser(p.Value[0]), nil
	}
	return access.User{}, access.Errorf(access.CodeConflict,
		"more than one Entra ID user has mail or userPrincipalName %s; keycard will not guess which one is the person", email)
}

// UserByID reads a user by object id (GET /users/{id}). A deleted user is
// CodeNotFound.
func (c *Connector) UserByID(ctx context.Context, id string) (access.User, error) {
	if !idSafe(id) {
		return access.User{}, access.Errorf(access.CodeNotFound, "Entra ID has no user %q", id)
	}
	var g graphUser
	u := c.graph + "/users/" + url.PathEscape(id) + "?" + query(url.Values{"$select": {userSelect}})
	if err := c.do(ctx, call{method: http.MethodGet, url: u, what: "read user " + id}, &g); err != nil {
		return access.User{}, err
	}
	if g.ID == "" {
		return access.User{}, access.Errorf(access.CodeUnavailable, "Microsoft Graph answered read user %s without an id", id)
	}
	return toUser(g), nil
}

// Manager follows u's manager relationship (GET /users/{id}/manager).
// CodeNotFound when u has none, or the manager is not a user (an org
// contact).
func (c *Connector) Manager(ctx context.Context, u access.User) (access.User, error) {
	if !idSafe(u.ID) {
		return access.User{}, access.Errorf(access.CodeNotFound, "%s has no Entra ID object id", u.Email)
	}
	var g graphUser
	mu := c.graph + "/users/" + url.PathEscape(u.ID) + "/manager?" + query(url.Values{"$select": {userSelect}})
	if err := c.do(ctx, call{method: http.MethodGet, url: mu, what: "read the manager of " + u.ID}, &g); err != nil {
		if access.CodeOf(err) == access.CodeNotFound {
			return access.User{}, access.Wrap(access.CodeNotFound, err, "%s has no manager in Entra ID", u.Email)
		}
		return access.User{}, err
	}
	if g.ID == "" {
		return access.User{}, access.Errorf(access.CodeUnavailable, "Microsoft Graph answered read the manager of %s without an id", u.ID)
	}
	if g.ODataType != "" && g.ODataType != "#microsoft.graph.user" {
		return access.User{}, access.Errorf(access.CodeNotFound, "the manager of %s in Entra ID is a %s, not a user", u.Email, g.ODataType)
	}
	return toUser(g), nil
}

type graphGroup struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// groupID resolves a group's displayName to its id, cached for ttl.
func (c *Connector) groupID(ctx context.Context, name string) (string, error) {
	now := c.clock.Now()
	if id, ok := c.groups.Get(name, now); ok {
		return id, nil
	}
	q := url.Values{"$filter": {"displayName eq " + quote(name)}, "$select": {"id,displayName"}, "$top": {"2"}}
	var p page[graphGroup]
	if err := c.do(ctx, call{method: http.MethodGet, url: c.graph + "/groups?" + query(q), what: "find group " + name}, &p); err != nil {
		return "", err
	}
	if err := p.check("find group " + name); err != nil {
		return "", err
	}
	var ids []string
	for _, g := range p.Value {
		if g.DisplayName == name { // Graph matched ignoring case; the policy names one group exactly
			ids = append(ids, g.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", access.Errorf(access.CodeNotFound, "Entra ID has no group named %s", name)
	case 1:
	default:
		return "", access.Errorf(access.CodeConflict, "more than one Entra ID group is named %s; keycard will not guess which one", name)
	}
	c.groups.Put(name, ids[0], now)
	return ids[0], nil
}

func (c *Connector) forgetGroupOn(name string, err error) {
	c.groups.ForgetOn(name, err)
}

// members lists a group's user members (not devices or nested groups).
func (c *Connector) members(ctx context.Context, group string) ([]graphUser, error) {
	gid, err := c.groupID(ctx, group)
	if err != nil {
		return nil, err
	}
	first := c.graph + "/groups/" + url.PathEscape(gid) + "/members?" + query(url.Values{"$select": {userSelect}, "$top": {strconv.Itoa(memberPage)}})
	all, err := collect[graphUser](c, ctx, first, "list members of "+group)
	if err != nil {
		c.forgetGroupOn(group, err)
		return nil, err
	}
	out := all[:0]
	for _, u := range all {
		if u.ODataType == "" || u.ODataType == "#microsoft.graph.user" {
			out = append(out, u)
		}
	}
	return out, nil
}

// GroupMembers lists every user member of the named group, all pages.
func (c *Connector) GroupMembers(ctx context.Context, group string) ([]access.User, error) {
	ms, err := c.members(ctx, group)
	if err != nil {
		return nil, err
	}
	out := make([]access.User, 0, len(ms))
	for _, m := range ms {
		out = append(out, toUser(m))
	}
	return out, nil
}

// Groups lists every group's displayName, all pages, sorted, without
// duplicates (the GroupLister power for the policy/IdP sync check).
func (c *Connector) Groups(ctx context.Context) ([]string, error) {
	first := c.graph + "/groups?" + query(url.Values{"$select": {"id,displayName"}, "$top": {strconv.Itoa(memberPage)}})
	gs, err := collect[graphGroup](c, ctx, first, "list groups")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		if g.DisplayName != "" && !seen[g.DisplayName] {
			seen[g.DisplayName] = true
			out = append(out, g.DisplayName)
		}
	}
	sort.Strings(out)
	return out, nil
}

// AddMember adds userID to the group (POST /groups/{id}/members/$ref).
// Graph's 400 "One or more added object references already exist" means
// the user is a member already: success, so the call is idempotent.
func (c *Connector) AddMember(ctx context.Context, group, userID string) (access.Change, error) {
	if !idSafe(userID) {
		return access.Change{}, access.Errorf(access.CodeNotFound, "Entra ID has no user %q", userID)
	}
	gid, err := c.groupID(ctx, group)
	if err != nil {
		return access.Change{}, err
	}
	body := map[string]string{"@odata.id": c.graph + "/directoryObjects/" + url.PathEscape(userID)}
	err = c.do(ctx, call{method: http.MethodPost, url: c.graph + "/groups/" + url.PathEscape(gid) + "/members/$ref", body: body, what: "add " + userID + " to " + group}, nil)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest && strings.Contains(ae.Message, "added object references already exist") {
		return access.Change{}, nil
	}
	if err != nil {
		c.forgetGroupOn(group, err)
		return access.Change{}, err
	}
	return access.Change{}, nil
}

// RemoveMember removes userID from the group (DELETE
// /groups/{id}/members/{id}/$ref). The group was just resolved, so a 404
// means the user is not a member: success, so the call is idempotent.
func (c *Connector) RemoveMember(ctx context.Context, group, userID string) (access.Change, error) {
	if !idSafe(userID) {
		// Nothing is sent, so nothing may be recorded as revoked.
		return access.Change{}, access.Errorf(access.CodeInvalid, "%q is not an Entra ID object id; keycard sent no removal", userID)
	}
	gid, err := c.groupID(ctx, group)
	if err != nil {
		return access.Change{}, err
	}
	u := c.graph + "/groups/" + url.PathEscape(gid) + "/members/" + url.PathEscape(userID) + "/$ref"
	err = c.do(ctx, call{method: http.MethodDelete, url: u, what: "remove " + userID + " from " + group}, nil)
	if access.CodeOf(err) == access.CodeNotFound {
		return access.Change{}, nil
	}
	return access.Change{}, err
}

// IsMember reports whether userID is a direct member of the group.
func (c *Connector) IsMember(ctx context.Context, group, userID string) (bool, error) {
	ms, err := c.members(ctx, group)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.ID == userID {
			return true, nil
		}
	}
	return false, nil
}
