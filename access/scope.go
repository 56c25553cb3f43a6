package access

import "path"

// InScope reports whether group matches one of the scope globs (path.Match
// syntax, as in the policy's `scope.groups`). It is the one security check
// behind both the policy's validation and the connectors' Scoped wrapper, so
// the two can never disagree. A malformed glob matches nothing; an empty
// scope allows nothing.
func InScope(scope []string, group string) bool {
	for _, g := range scope {
		if ok, err := path.Match(g, group); err == nil && ok {
			return true
		}
	}
	return false
}
