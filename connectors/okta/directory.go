package okta

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"

	"keycard/access"
)

// quoteFilter quotes a value for an Okta filter/search expression.
func quoteFilter(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// pathSafe reports whether v can go into an SDK path: the v2 SDK inserts
// path parameters with %v, unescaped (notes/okta.md §2), so we escape them
// ourselves, and a value with '/' could never name one resource anyway.
func pathSafe(v string) bool {
	return v != "" && !strings.ContainsAny(v, "/?#") && v != "." && v != ".."
}

// UserByID reads a user by Okta id (GET /api/v1/users/{id}).
func (c *Connector) UserByID(ctx context.Context, id string) (access.User, error) {
	if !pathSafe(id) {
		return access.User{}, access.Errorf(access.CodeNotFound, "Okta has no user %q", id)
	}
	cl := c.begin(ctx)
	defer cl.cancel()
	u, resp, err := c.client.User.GetUser(cl.ctx, url.PathEscape(id))
	if err != nil {
		return access.User{}, c.classify(cl, resp, err, "read user "+id)
	}
	return c.toUser(u), nil
}

// UserByEmail finds the user whose login, else email, is email: filter
// profile.login eq, then profile.email eq (filters are exact and read-after-
// write consistent, unlike search), then GET /users/{login}, which Okta
// matches ignoring case. Two accounts sharing an email are a conflict, not a
// guess: identity must not be silently picked.
func (c *Connector) UserByEmail(ctx context.Context, email string) (access.User, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return access.User{}, access.Errorf(access.CodeNotFound, "no email to look up in Okta")
	}
	for _, attr := range []string{"profile.login", "profile.email"} {
		u, ok, err := c.findOne(ctx, attr, email)
		if err != nil || ok {
			return u, err
		}
	}
	if lower := strings.ToLower(email); lower != email {
		if u, ok, err := c.findOne(ctx, "profile.email", lower); err != nil || ok {
			return u, err
		}
	}
	if pathSafe(email) {
		u, err := c.UserByID(ctx, email)
		if access.CodeOf(err) != access.CodeNotFound {
			return u, err
		}
	}
	return access.User{}, access.Errorf(access.CodeNotFound, "Okta has no user with login or email %s", email)
}

// findOne runs `attr eq "value"` as a filter and expects at most one user.
func (c *Connector) findOne(ctx context.Context, attr, value string) (access.User, bool, error) {
	cl := c.begin(ctx)
	defer cl.cancel()
	qp := query.NewQueryParams(query.WithFilter(attr+" eq "+quoteFilter(value)), query.WithLimit(2))
	users, resp, err := c.client.User.ListUsers(cl.ctx, qp)
	if err != nil {
		return access.User{}, false, c.classify(cl, resp, err, "find user by "+attr)
	}
	switch len(users) {
	case 0:
		return access.User{}, false, nil
	case 1:
		return c.toUser(users[0]), true, nil
	}
	return access.User{}, false, access.Errorf(access.CodeConflict,
		"more than one Okta user has %s %s; keycard will not guess which one is the person", attr, value)
}

// Manager resolves u's manager attribute, which HR feeds often fill with a
// login or email rather than an Okta id (notes/okta.md §2): an id-shaped
// value is read by id; anything else must match a login or an email
// exactly. GET /users/{value} is not used for other values: Okta also
// matches login *shortnames* there, so "bob" could resolve to whichever
// bob@… came first — the wrong approver.
func (c *Connector) Manager(ctx context.Context, u access.User) (access.User, error) {
	ref := strings.TrimSpace(u.ManagerRef)
	if ref == "" {
		return access.User{}, access.Errorf(access.CodeNotFound, "%s has no manager in Okta (profile attribute %s is empty)", u.Login, c.mgrAttr)
	}
	if oktaUserID(ref) {
		m, err := c.UserByID(ctx, ref)
		if access.CodeOf(err) != access.CodeNotFound {
			return m, err
		}
	}
	for _, attr := range []string{"profile.login", "profile.email"} {
		m, ok, err := c.findOne(ctx, attr, ref)
		if err != nil || ok {
			return m, err
		}
	}
	return access.User{}, access.Errorf(access.CodeNotFound, "the manager of %s (%s %q) is not an Okta user", u.Login, c.mgrAttr, ref)
}

// GroupMembers lists every member of the named group, all pages of 200.
func (c *Connector) GroupMembers(ctx context.Context, group string) ([]access.User, error) {
	gid, err := c.groupID(ctx, group)
	if err != nil {
		return nil, err
	}
	users, err := collect(c, ctx, "list members of "+group, func(ctx context.Context) ([]*sdk.User, *sdk.Response, error) {
		return c.client.Group.ListGroupUsers(ctx, gid, query.NewQueryParams(query.WithLimit(pageLimit)))
	})
	if err != nil {
		c.forgetGroupOn(group, err)
		return nil, err
	}
	out := make([]access.User, 0, len(users))
	for _, u := range users {
		out = append(out, c.toUser(u))
	}
	return out, nil
}

// collect runs a list call and follows its next links, one deadline per
// page, refusing a next link it has already followed (a server that
// repeats it would otherwise loop forever, notes/okta.md §2).
func collect[T any](c *Connector, ctx context.Context, what string, first func(context.Context) ([]T, *sdk.Response, error)) ([]T, error) {
	cl := c.begin(ctx)
	items, resp, err := first(cl.ctx)
	cl.cancel()
	if err != nil {
		return nil, c.classify(cl, resp, err, what)
	}
	seen := map[string]bool{}
	for pages := 1; resp != nil && resp.HasNextPage(); pages++ {
		if pages >= maxPages || seen[resp.NextPage] {
			return nil, access.Errorf(access.CodeUnavailable, "Okta paging did not end (%s, %d pages)", what, pages)
		}
		seen[resp.NextPage] = true
		var page []T
		cl := c.begin(ctx)
		resp, err = resp.Next(cl.ctx, &page)
		cl.cancel()
		if err != nil {
			return nil, c.classify(cl, resp, err, what)
		}
		items = append(items, page...)
	}
	return items, nil
}

// toUser maps an Okta user: Name is displayName or first+last; Attributes
// holds every profile attribute as a string.
func (c *Connector) toUser(u *sdk.User) access.User {
	if u == nil {
		return access.User{}
	}
	attrs := map[string]string{}
	if u.Profile != nil {
		for k, v := range *u.Profile {
			if s, ok := stringify(v); ok {
				attrs[k] = s
			}
		}
	}
	name := attrs["displayName"]
	if name == "" {
		name = strings.TrimSpace(attrs["firstName"] + " " + attrs["lastName"])
	}
	email := attrs["email"]
	if email == "" {
		email = attrs["login"]
	}
	if name == "" {
		name = email
	}
	return access.User{
		ID:         u.Id,
		Login:      attrs["login"],
		Email:      email,
		Name:       name,
		Status:     access.UserStatus(u.Status),
		ManagerRef: attrs[c.mgrAttr],
		Attributes: attrs,
	}
}

func stringify(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := stringify(e); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ","), true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v), true
	}
	return string(b), true
}

// oktaUserID reports whether s is shaped like an Okta user id: "00u"
// followed by 17 letters or digits (20 characters in all).
func oktaUserID(s string) bool {
	if len(s) != 20 || !strings.HasPrefix(s, "00u") {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
