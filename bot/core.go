package bot

import (
	"context"
	"io"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

// Core is what the bot needs from keycard's use cases; *handlers.Service
// satisfies it. Declared here, beside its consumer, so tests and the demo
// can see exactly which calls the Slack edge makes.
type Core interface {
	Submit(ctx context.Context, in handlers.SubmitInput) (access.Request, error)
	Decide(ctx context.Context, in handlers.DecideInput) (access.Request, error)
	Cancel(ctx context.Context, id, slackID, email string) (access.Request, error)
	Revoke(ctx context.Context, id, slackID, email string) (access.Request, error)
	Extend(ctx context.Context, grantID string, in handlers.SubmitInput) (access.Request, error)
	// MayExtend is Extend's authorization, at the click before the modal.
	MayExtend(ctx context.Context, grantID, slackID, email string) (access.Request, error)

	// Delegation (handlers/delegate.go): create, end, and list those in force.
	Delegate(ctx context.Context, in handlers.DelegateInput) (access.Delegation, error)
	EndDelegation(ctx context.Context, slackID, email string) (access.Delegation, error)
	DelegationsInForce() ([]access.Delegation, error)

	Get(id string) (access.Request, error)
	Mine(email string) ([]access.Request, error)
	WaitingOn(email string) ([]access.Request, error)
	Active(privilegedOnly bool) ([]access.Request, error)
	Requestable(u access.User) []*policy.Policy

	Identify(ctx context.Context, slackID, email string) (access.User, error)
	// Recheck re-checks a pinned Slack user against a changed email
	// (user_change); a mismatch is audited and alerted.
	Recheck(ctx context.Context, slackID, email string) error
	Profile(ctx context.Context, email string) (user, manager access.User, err error)
	Admins(ctx context.Context) ([]access.User, error)
	IsAdmin(ctx context.Context, u access.User) (bool, error)
	IsAuditor(ctx context.Context, u access.User) (bool, error)

	Events(after uint64, fn func(access.Event) error) error
	Cursor(name string) (string, error)
	SetCursor(name, value string) error
	FirstTime(key string, ttl time.Duration) (bool, error)
	RecordMessage(ref access.MessageRef) error
	Messages(requestID string) ([]access.MessageRef, error)

	Export(ctx context.Context, out io.Writer, req handlers.ExportRequest) (handlers.Manifest, error)
	RecordExportRefused(actorEmail, args, why string) error

	Policy() *policy.Set
	Wake() <-chan struct{}
}

var _ Core = (*handlers.Service)(nil)
