package okta

import (
	"context"
	"sort"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"
)

// Groups lists the name of every group in the org, all pages of 200, sorted
// and without duplicates: the policy/IdP sync check compares it with the
// policies' groups (a group inside the scope that no policy covers, a policy
// whose group is missing).
func (c *Connector) Groups(ctx context.Context) ([]string, error) {
	groups, err := collect(c, ctx, "list groups", func(ctx context.Context) ([]*sdk.Group, *sdk.Response, error) {
		return c.client.Group.ListGroups(ctx, query.NewQueryParams(query.WithLimit(pageLimit)))
	})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		if g == nil || g.Profile == nil || g.Profile.Name == "" || seen[g.Profile.Name] {
			continue
		}
		seen[g.Profile.Name] = true
		out = append(out, g.Profile.Name)
	}
	sort.Strings(out)
	return out, nil
}
