package access

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error so that the edge (Slack, CLI) can turn it into
// words for a person and the core can decide whether to retry.
type Code string

// Generic codes.
const (
	CodeInternal    Code = "internal"
	CodeInvalid     Code = "invalid"      // malformed input
	CodeNotFound    Code = "not_found"    // unknown id, user, group
	CodeForbidden   Code = "forbidden"    // the actor may not do this
	CodeConflict    Code = "conflict"     // state changed under us (lost a race, already decided)
	CodeUnavailable Code = "unavailable"  // transient outside failure: retry
	CodeRateLimited Code = "rate_limited" // outside system asked us to slow down: retry at RetryAt
	CodeOutOfScope  Code = "out_of_scope" // a connector change outside its scope ceiling
	CodeIntegrity   Code = "integrity"    // stored data differs from what the audit chain attests
)

// Refusal codes of a request submission; each maps to one inline modal error.
const (
	CodeUnknownPolicy    Code = "unknown_policy"
	CodeNotEligible      Code = "not_eligible"
	CodeOverMax          Code = "over_max"
	CodeBadDuration      Code = "bad_duration"
	CodeNeedJustify      Code = "justification_required"
	CodeAlreadyActive    Code = "already_active"
	CodeDuplicate        Code = "duplicate_request"
	CodeStanding         Code = "standing_access"
	CodeNoApprover       Code = "no_approver"
	CodeUnknownUser      Code = "unknown_user"
	CodeUserInactive     Code = "user_inactive"
	CodeNoEmail          Code = "no_email"
	CodeIdentityMismatch Code = "identity_mismatch"
	CodeOverTotal        Code = "over_total" // extension past extend.max_total
	CodeBadStart         Code = "bad_start"  // a scheduled start in the past or beyond schedule_ahead
	CodeRateLimitedUser  Code = "user_rate_limited"
)

// Error is keycard's error: a code, a message safe to show to the person who
// acted, and the wrapped cause (which may hold details only fit for logs).
type Error struct {
	Code    Code
	Msg     string    // safe for end users
	RetryAt time.Time // for CodeRateLimited: when to try again
	Err     error     // cause, for logs
}

func (e *Error) Error() string {
	switch {
	case e.Msg != "" && e.Err != nil:
		return e.Msg + ": " + e.Err.Error()
	case e.Msg != "":
		return e.Msg
	case e.Err != nil:
		return string(e.Code) + ": " + e.Err.Error()
	}
	return string(e.Code)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Wrap attaches a code and safe message to a cause.
func Wrap(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

// CodeOf returns the code of the first *Error in err's chain, CodeInternal for
// any other non-nil error, and "" for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// MessageOf returns the safe message of the first *Error in err's chain with
// one, or a generic sentence: internal details never reach a person.
func MessageOf(err error) string {
	var e *Error
	for err != nil {
		if errors.As(err, &e) && e.Msg != "" {
			return e.Msg
		}
		if e == nil {
			break
		}
		err = e.Err
	}
	return "Something went wrong inside keycard; the security team can find the details in its log."
}

// Retryable reports whether err is a transient failure worth retrying.
func Retryable(err error) bool {
	switch CodeOf(err) {
	case CodeUnavailable, CodeRateLimited, CodeInternal:
		return true
	}
	return false
}

// RetryAtOf returns the earliest retry time an outside system asked for, or
// the zero time.
func RetryAtOf(err error) time.Time {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAt
	}
	return time.Time{}
}
