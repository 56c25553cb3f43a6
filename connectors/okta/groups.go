package okta

import (
	"context"
	"net/url"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"

	"keycard/access"
)

// groupID maps a group name to its Okta id with search=profile.name eq
// "name", keeping exact (case-sensitive) name matches and preferring type
// OKTA_GROUP, the only type the API may edit. Ids are stable, so the mapping
// is cached for the TTL.
func (c *Connector) groupID(ctx context.Context, name string) (string, error) {
	now := c.clock.Now()
	if id, ok := c.groups.Get(name, now); ok {
		return id, nil
	}
	groups, err := collect(c, ctx, "find group "+name, func(ctx context.Context) ([]*sdk.Group, *sdk.Response, error) {
		return c.client.Group.ListGroups(ctx, query.NewQueryParams(
			query.WithSearch("profile.name eq "+quoteFilter(name)), query.WithLimit(pageLimit)))
	})
	if err != nil {
		return "", err
	}
	id := ""
	for _, g := range groups {
		if g == nil || g.Profile == nil || g.Profile.Name != name {
			continue
		}
		if g.Type == "OKTA_GROUP" {
			id = g.Id
			break
		}
		if id == "" {
			id = g.Id
		}
	}
	if id == "" {
		return "", access.Errorf(access.CodeNotFound, "Okta has no group named %s", name)
	}
	c.groups.Put(name, id, now)
	return id, nil
}

// forgetGroupOn drops a cached group id when Okta says it no longer exists.
func (c *Connector) forgetGroupOn(name string, err error) {
	c.groups.ForgetOn(name, err)
}

// AddMember puts userID (an Okta user id) in the named group. Okta answers
// 204 whether or not the user was already a member, so a retry is safe.
func (c *Connector) AddMember(ctx context.Context, group, userID string) (access.Change, error) {
	return c.change(ctx, group, userID, true)
}

// RemoveMember takes userID out of the named group; 204 also when the user
// was not a member.
func (c *Connector) RemoveMember(ctx context.Context, group, userID string) (access.Change, error) {
	return c.change(ctx, group, userID, false)
}

func (c *Connector) change(ctx context.Context, group, userID string, add bool) (access.Change, error) {
	verb := "remove " + userID + " from " + group
	if add {
		verb = "add " + userID + " to " + group
	}
	if !pathSafe(userID) {
		return access.Change{}, access.Errorf(access.CodeNotFound, "Okta has no user %q (%s)", userID, verb)
	}
	gid, err := c.groupID(ctx, group)
	if err != nil {
		return access.Change{}, err
	}
	started := c.clock.Now()
	cl := c.begin(ctx)
	defer cl.cancel()
	var resp *sdk.Response
	if add {
		resp, err = c.client.Group.AddUserToGroup(cl.ctx, gid, url.PathEscape(userID))
	} else {
		resp, err = c.client.Group.RemoveUserFromGroup(cl.ctx, gid, url.PathEscape(userID))
	}
	if err != nil {
		err = c.classify(cl, resp, err, verb)
		c.forgetGroupOn(group, err)
		return access.Change{}, err
	}
	return access.Change{IdPEventID: c.membershipEvent(ctx, add, gid, url.PathEscape(userID), started)}, nil
}

// IsMember reports whether userID is in the named group, reading the user's
// groups (GET /users/{id}/groups, all pages) rather than the group's members,
// which may be far more.
func (c *Connector) IsMember(ctx context.Context, group, userID string) (bool, error) {
	if !pathSafe(userID) {
		return false, access.Errorf(access.CodeNotFound, "Okta has no user %q", userID)
	}
	gid, err := c.groupID(ctx, group)
	if err != nil {
		return false, err
	}
	groups, err := collect(c, ctx, "list groups of "+userID, func(ctx context.Context) ([]*sdk.Group, *sdk.Response, error) {
		return c.client.User.ListUserGroups(ctx, url.PathEscape(userID))
	})
	if err != nil {
		return false, err
	}
	for _, g := range groups {
		if g != nil && g.Id == gid {
			return true, nil
		}
	}
	return false, nil
}
