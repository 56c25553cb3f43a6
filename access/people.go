package access

import (
	"context"
	"strings"
)

// Person names one human across systems. Email is the join key (SPEC:
// "People are joined across systems by email"); SlackID and IdPID are filled
// in as they become known.
type Person struct {
	Email   string `json:"email"`
	Name    string `json:"name,omitempty"`
	SlackID string `json:"slack_id,omitempty"`
	IdPID   string `json:"idp_id,omitempty"`
}

// Same reports whether p and q are the same person: equal IdP ids when both
// are known, else equal emails ignoring case.
func (p Person) Same(q Person) bool {
	if p.IdPID != "" && q.IdPID != "" {
		return p.IdPID == q.IdPID
	}
	return p.Email != "" && strings.EqualFold(p.Email, q.Email)
}

// Label is a short human label: the name, or the email.
func (p Person) Label() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Email
}

// UserStatus is an IdP account status, spelled as Okta spells it.
type UserStatus string

// Okta's user statuses (Okta API UserStatus).
const (
	StatusActive          UserStatus = "ACTIVE"
	StatusStaged          UserStatus = "STAGED"
	StatusProvisioned     UserStatus = "PROVISIONED"
	StatusRecovery        UserStatus = "RECOVERY"
	StatusPasswordExpired UserStatus = "PASSWORD_EXPIRED"
	StatusLockedOut       UserStatus = "LOCKED_OUT"
	StatusSuspended       UserStatus = "SUSPENDED"
	StatusDeprovisioned   UserStatus = "DEPROVISIONED"
)

// Offboarded reports whether the status means the person has left or been
// cut off: all their keycard grants must end (reason offboarded).
func (s UserStatus) Offboarded() bool {
	return s == StatusSuspended || s == StatusDeprovisioned
}

// CanRequest reports whether an account in this status may ask for access or
// decide on a request. Locked-out or password-expired users are still people
// with a working identity; staged/provisioned accounts are not yet in use.
func (s UserStatus) CanRequest() bool {
	switch s {
	case StatusActive, StatusRecovery, StatusPasswordExpired, StatusLockedOut:
		return true
	}
	return false
}

// User is a person as the directory (IdP) knows them.
type User struct {
	ID         string            `json:"id"`
	Login      string            `json:"login"`
	Email      string            `json:"email"`
	Name       string            `json:"name"`
	Status     UserStatus        `json:"status"`
	ManagerRef string            `json:"manager_ref,omitempty"` // raw value of the manager attribute
	Attributes map[string]string `json:"attributes,omitempty"`  // profile attributes, as strings
}

// Person returns u as a Person (without a Slack id).
func (u User) Person() Person {
	return Person{Email: u.Email, Name: u.Name, IdPID: u.ID}
}

// Attr returns the attribute key, matched case-insensitively.
func (u User) Attr(key string) (string, bool) {
	if v, ok := u.Attributes[key]; ok {
		return v, true
	}
	for k, v := range u.Attributes {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// Directory is the source of truth for people: the policy's `directory`
// connector. Implementations return *Error with CodeNotFound for unknown users
// and CodeUnavailable / CodeRateLimited for transient failures.
type Directory interface {
	// UserByEmail finds the user whose login or email is email (case-insensitive).
	UserByEmail(ctx context.Context, email string) (User, error)
	// UserByID reads a user by the directory's id.
	UserByID(ctx context.Context, id string) (User, error)
	// Manager resolves u's manager (from the connector's manager attribute).
	// CodeNotFound when u has none or it cannot be resolved.
	Manager(ctx context.Context, u User) (User, error)
	// GroupMembers lists every member of the named group, all pages.
	GroupMembers(ctx context.Context, group string) ([]User, error)
}

// Provisioner changes group membership in one IdP. Add and Remove are
// idempotent: adding a member or removing a non-member succeeds. Callers
// never hold a raw Provisioner: they get one wrapped by the connector's scope
// ceiling (connectors.Scoped), which refuses groups outside the scope.
type Provisioner interface {
	AddMember(ctx context.Context, group, userID string) (Change, error)
	RemoveMember(ctx context.Context, group, userID string) (Change, error)
	IsMember(ctx context.Context, group, userID string) (bool, error)
}

// Change describes a confirmed membership change, for traceability.
type Change struct {
	// IdPEventID is the IdP's own id for the change when it offers one (Okta
	// System Log uuid); empty otherwise.
	IdPEventID string `json:"idp_event_id,omitempty"`
}
