package static

import (
	"context"
	"sort"
)

// Groups lists the names of the groups the policy file describes, sorted,
// for the policy/IdP sync check.
func (c *Connector) Groups(context.Context) ([]string, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.groups))
	for name := range c.groups {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}
