package jumpcloud

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"keycard/access"
)

// userGroup is the part of a v2 user group keycard reads.
type userGroup struct {
	ID   *string `json:"id"`
	Name string  `json:"name"`
}

// memberEdge is one v2 graph connection of a group's member list.
type memberEdge struct {
	To *struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"to"`
}

// listV2 pages a v2 list endpoint (a bare JSON array) with limit/skip
// until a short page, handing each page to take. key names an item for
// the loop guard: an item seen on an earlier page means the server is
// repeating itself, which is an error, never a silently short list.
func listV2[T any](c *Connector, ctx context.Context, what, path string, q url.Values, key func(T) (string, bool), take func([]T) (stop bool)) error {
	seen := map[string]bool{}
	for skip, pages := 0, 0; ; pages++ {
		if pages >= maxPages {
			return access.Errorf(access.CodeUnavailable, "JumpCloud paging did not end (%s, %d pages)", what, pages)
		}
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		pq.Set("limit", strconv.Itoa(pageLimit))
		pq.Set("skip", strconv.Itoa(skip))
		var page []T
		r, err := c.do(ctx, what, http.MethodGet, path, pq, nil, &page)
		if err != nil {
			return err
		}
		switch {
		case r.status == http.StatusNotFound:
			return access.Errorf(access.CodeNotFound, "JumpCloud: not found (%s)", what)
		case r.status != http.StatusOK:
			return c.unexpected(what, r)
		case page == nil:
			return access.Errorf(access.CodeUnavailable, "JumpCloud answered null instead of a list (%s)", what)
		}
		for _, it := range page {
			k, ok := key(it)
			if !ok {
				return access.Errorf(access.CodeUnavailable, "JumpCloud answered with an item without an id (%s)", what)
			}
			if seen[k] {
				return access.Errorf(access.CodeUnavailable, "JumpCloud paging did not end (%s: %s came back on page %d)", what, k, pages+1)
			}
			seen[k] = true
		}
		if take(page) || len(page) < pageLimit {
			return nil
		}
		skip += len(page)
	}
}

func groupKey(g userGroup) (string, bool) { return deref(g.ID), g.ID != nil && *g.ID != "" }

func edgeKey(e memberEdge) (string, bool) {
	if e.To == nil || e.To.ID == "" {
		return "", false
	}
	return e.To.Type + "/" + e.To.ID, true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// groupID maps a group name to its id with filter=name:eq:NAME, keeping
// exact (case-sensitive) matches; ids are cached for the TTL.
func (c *Connector) groupID(ctx context.Context, name string) (string, error) {
	now := c.clock.Now()
	if id, ok := c.groups.Get(name, now); ok {
		return id, nil
	}
	var ids []string
	err := listV2(c, ctx, "find group "+name, "/api/v2/usergroups", url.Values{"filter": {"name:eq:" + name}}, groupKey,
		func(page []userGroup) bool {
			for _, g := range page {
				if g.Name == name {
					ids = append(ids, *g.ID)
				}
			}
			return false
		})
	if err != nil {
		return "", err
	}
	switch len(ids) {
	case 0:
		return "", access.Errorf(access.CodeNotFound, "JumpCloud has no user group named %s", name)
	case 1:
	default:
		return "", access.Errorf(access.CodeConflict, "JumpCloud has %d user groups named %s; keycard will not guess which one", len(ids), name)
	}
	c.groups.Put(name, ids[0], now)
	return ids[0], nil
}

func (c *Connector) forgetGroup(name string) { c.groups.Forget(name) }

// Groups lists the name of every user group, sorted and without
// duplicates (handlers.GroupLister: the policy/IdP sync check).
func (c *Connector) Groups(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := listV2(c, ctx, "list user groups", "/api/v2/usergroups", nil, groupKey, func(page []userGroup) bool {
		for _, g := range page {
			if g.Name != "" && !seen[g.Name] {
				seen[g.Name] = true
				out = append(out, g.Name)
			}
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// memberIDs lists the user ids of a group's member edges, every page; stop
// (when non-nil) ends early once it returns true.
func (c *Connector) memberIDs(ctx context.Context, group string, stop func(string) bool) ([]string, error) {
	gid, err := c.groupID(ctx, group)
	if err != nil {
		return nil, err
	}
	var ids []string
	err = listV2(c, ctx, "list members of "+group, "/api/v2/usergroups/"+url.PathEscape(gid)+"/members", nil, edgeKey,
		func(page []memberEdge) bool {
			for _, e := range page {
				if e.To.Type != "user" {
					continue
				}
				ids = append(ids, e.To.ID)
				if stop != nil && stop(e.To.ID) {
					return true
				}
			}
			return false
		})
	if err != nil {
		if access.CodeOf(err) == access.CodeNotFound {
			c.forgetGroup(group)
		}
		return nil, err
	}
	return ids, nil
}

// GroupMembers lists every member of the named group: the member edges,
// all pages, then each user by id (a user deleted meanwhile is skipped).
func (c *Connector) GroupMembers(ctx context.Context, group string) ([]access.User, error) {
	ids, err := c.memberIDs(ctx, group, nil)
	if err != nil {
		return nil, err
	}
	out := make([]access.User, 0, len(ids))
	for _, id := range ids {
		u, err := c.UserByID(ctx, id)
		if access.CodeOf(err) == access.CodeNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// IsMember reports whether userID is a direct member of the named group.
func (c *Connector) IsMember(ctx context.Context, group, userID string) (bool, error) {
	if !pathSafe(userID) {
		return false, access.Errorf(access.CodeNotFound, "JumpCloud has no user %q", userID)
	}
	found := false
	_, err := c.memberIDs(ctx, group, func(id string) bool {
		found = id == userID
		return found
	})
	return found, err
}

// AddMember puts userID in the named group. JumpCloud answers 409 "Already
// Exists" to a member added twice: success for this idempotent verb.
func (c *Connector) AddMember(ctx context.Context, group, userID string) (access.Change, error) {
	return access.Change{}, c.change(ctx, group, userID, "add")
}

// RemoveMember takes userID out of the named group. JumpCloud answers 404
// to the removal of a non-member: success, the person is not in the group.
func (c *Connector) RemoveMember(ctx context.Context, group, userID string) (access.Change, error) {
	return access.Change{}, c.change(ctx, group, userID, "remove")
}

func (c *Connector) change(ctx context.Context, group, userID, op string) error {
	what := op + " " + userID + " to " + group
	if op == "remove" {
		what = "remove " + userID + " from " + group
	}
	if !pathSafe(userID) {
		return access.Errorf(access.CodeNotFound, "JumpCloud has no user %q (%s)", userID, what)
	}
	gid, err := c.groupID(ctx, group)
	if err != nil {
		return err
	}
	body := map[string]string{"op": op, "type": "user", "id": userID}
	r, err := c.do(ctx, what, http.MethodPost, "/api/v2/usergroups/"+url.PathEscape(gid)+"/members", nil, body, nil)
	if err != nil {
		return err
	}
	switch {
	case r.status >= 200 && r.status < 300:
		return nil
	case op == "add" && r.status == http.StatusConflict:
		return nil // already a member
	case op == "remove" && r.status == http.StatusNotFound:
		// Not a member (or the user or group is gone): either way the person
		// is not in the group. A stale group id is dropped.
		c.forgetGroup(group)
		return nil
	case r.status == http.StatusNotFound:
		c.forgetGroup(group)
		return access.Wrap(access.CodeNotFound, c.unexpected(what, r), "JumpCloud has no such user or group (%s)", what)
	case r.status == http.StatusForbidden:
		return access.Wrap(access.CodeForbidden, c.unexpected(what, r),
			"JumpCloud refused the change (%s): the API key's administrator may not edit this group", what)
	case r.status == http.StatusBadRequest:
		return access.Wrap(access.CodeNotFound, c.unexpected(what, r), "JumpCloud rejected the ids (%s)", what)
	}
	return c.unexpected(what, r)
}
