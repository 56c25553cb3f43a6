package connectors

import (
	"context"
	"strings"

	"keycard/access"
)

// Scoped wraps p so that AddMember, RemoveMember and IsMember on a group that
// matches none of the scope globs (path.Match syntax, as in the policy's
// `scope.groups`) fail with access.CodeOutOfScope before any call reaches p.
// An empty scope allows nothing.
func Scoped(name string, scope []string, p access.Provisioner) access.Provisioner {
	globs := make([]string, len(scope))
	copy(globs, scope)
	return &scoped{name: name, scope: globs, inner: p}
}

type scoped struct {
	name  string
	scope []string
	inner access.Provisioner
}

func (s *scoped) check(group string) error {
	if access.InScope(s.scope, group) {
		return nil
	}
	return access.Errorf(access.CodeOutOfScope, "connector %s may not change group %s: outside its scope %s",
		s.name, group, strings.Join(s.scope, ", "))
}

func (s *scoped) AddMember(ctx context.Context, group, userID string) (access.Change, error) {
	if err := s.check(group); err != nil {
		return access.Change{}, err
	}
	return s.inner.AddMember(ctx, group, userID)
}

func (s *scoped) RemoveMember(ctx context.Context, group, userID string) (access.Change, error) {
	if err := s.check(group); err != nil {
		return access.Change{}, err
	}
	return s.inner.RemoveMember(ctx, group, userID)
}

func (s *scoped) IsMember(ctx context.Context, group, userID string) (bool, error) {
	if err := s.check(group); err != nil {
		return false, err
	}
	return s.inner.IsMember(ctx, group, userID)
}
