package handlers

import (
	"context"

	"keycard/access"
)

// RecordExportRefused audits an export attempt by someone who may not
// export (export.refused): an auditor reading the log sees who tried.
func (s *Service) RecordExportRefused(actorEmail, args, why string) error {
	return s.audit(access.Event{Type: access.EvExportRefused, Actor: actorEmail, Subject: actorEmail,
		Detail: encodeDetail(map[string]string{"args": args, "why": why, "via": "slack"})})
}

// Profile reads a person and their manager from the directory, for the
// context an approver sees (manager, department). A missing manager is
// not an error: manager is then the zero User.
func (s *Service) Profile(ctx context.Context, email string) (user, manager access.User, err error) {
	dir, err := s.directory()
	if err != nil {
		return user, manager, err
	}
	user, err = dir.UserByEmail(ctx, email)
	if err != nil {
		return user, manager, err
	}
	if m, err := dir.Manager(ctx, user); err == nil {
		manager = m
	}
	return user, manager, nil
}

// Admins lists the members of the policy's admins group, who are alerted by
// DM when the policy names no alerts channel (SPEC "alerts ... absent: DM
// each admin").
func (s *Service) Admins(ctx context.Context) ([]access.User, error) {
	g := s.Policy().Admins.Group
	if g == "" {
		return nil, nil
	}
	dir, err := s.directory()
	if err != nil {
		return nil, err
	}
	return dir.GroupMembers(ctx, g)
}
