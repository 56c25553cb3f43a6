package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"keycard/access"
	"keycard/policy"
)

// Options tune the service; zero values take the documented defaults.
type Options struct {
	// MaxAddAttempts bounds IdP add attempts before a grant fails (default 8).
	MaxAddAttempts int
	// AlertRemoveAfter raises an alert when a removal has failed this many
	// times (default 5). Removals never give up.
	AlertRemoveAfter int
	// BackoffBase and BackoffMax shape the exponential backoff of IdP retries
	// (defaults 2s and 5m); each wait gets up to 50% random jitter.
	BackoffBase, BackoffMax time.Duration
	// MaxRemoveWait caps how long an IdP rate-limit reset may postpone a
	// removal (default 15m); a removal capped so raises an alert.
	MaxRemoveWait time.Duration
	// GroupCacheTTL bounds how long admin/auditor group membership is cached
	// (default 1m).
	GroupCacheTTL time.Duration
	// Rand supplies jitter; tests seed it. Default: a fixed-seed PCG mixed
	// with the clock at construction.
	Rand *rand.Rand
	// Logger receives operational logs (never tokens). Default: discard.
	Logger *slog.Logger
	// SubmitLimit and SubmitWindow bound how many requests one person may
	// submit in a sliding window (default 10 per minute): a stuck client or
	// a script cannot flood approvers with DMs.
	SubmitLimit  int
	SubmitWindow time.Duration
	// Verify walks the audit chain for export manifests (main wires the
	// store's verifier); nil leaves manifests saying it was not checked.
	Verify ChainVerifier
	// Instance describes this keycard in manifests.
	Instance Instance
	// Reconnect, when set, is called with each policy set about to take
	// effect after start (a reload, an approved or emergency change): main
	// rebuilds the scoped connectors from it, so a connector the reload adds
	// is built and a narrowed scope holds at once. An error refuses the
	// change and the policy in force stays.
	Reconnect func(*policy.Set) error
	// Leadership says whether this replica runs the singleton work and
	// fences its commits (default SoleReplica: bbolt, one process).
	Leadership Leadership
	// Poll, when positive, is how often the leader re-reads the store for
	// work that another replica committed (an approval handled on a standby
	// enqueues an outbox op; a grant it made sets a new due time): the
	// standby's commit wakes only its own loops. Zero with one replica,
	// where every commit wakes the loops directly.
	Poll time.Duration
}

// Service runs keycard's lifecycle.
type Service struct {
	store    Store
	refusals refusalLimiter // per-person limit on audited refusals
	conns    Connectors
	clock    access.Clock
	opt      Options
	log      *slog.Logger
	lead     Leadership

	pol atomic.Pointer[policy.Set]
	// policyMu orders the changes of the policy in force on this replica
	// (a reload or an approved change here, a sync from another replica),
	// so a sync that read an older version cannot swap it in after a newer
	// one took effect.
	policyMu sync.Mutex

	// mismatches limits identity.mismatch events (alerts) per Slack id.
	mismatches refusalLimiter

	randMu sync.Mutex
	rand   *rand.Rand

	wake   chan struct{} // nudges the worker and the scheduler after a write
	notify chan struct{} // nudges the notifier (Wake) after a write
	stream chan struct{} // nudges the audit stream (StreamWake) after a write
	lag    streamLag     // the audit stream's lag, for /metrics

	groupMu    sync.Mutex
	groupCache map[string]groupEntry

	metrics   *Metrics
	slackTeam atomic.Value // string: the Slack team id, once the bot knows it

	limitMu sync.Mutex
	recent  map[string][]time.Time // submissions per person in the window
}

type groupEntry struct {
	members map[string]bool // lower-case email and IdP id
	at      time.Time
}

// New builds a Service over the store, connectors, policy and clock.
func New(st Store, conns Connectors, set *policy.Set, clock access.Clock, opt Options) *Service {
	opt.MaxAddAttempts = positiveOr(opt.MaxAddAttempts, 8)
	opt.AlertRemoveAfter = positiveOr(opt.AlertRemoveAfter, 5)
	opt.BackoffBase = positiveOr(opt.BackoffBase, 2*time.Second)
	opt.BackoffMax = positiveOr(opt.BackoffMax, 5*time.Minute)
	opt.MaxRemoveWait = max(positiveOr(opt.MaxRemoveWait, 15*time.Minute), opt.BackoffMax)
	opt.GroupCacheTTL = positiveOr(opt.GroupCacheTTL, time.Minute)
	opt.SubmitLimit = positiveOr(opt.SubmitLimit, 10)
	opt.SubmitWindow = positiveOr(opt.SubmitWindow, time.Minute)
	if opt.Rand == nil {
		opt.Rand = rand.New(rand.NewPCG(uint64(clock.Now().UnixNano()), 0x6b657963617264))
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Leadership == nil {
		opt.Leadership = SoleReplica{}
	}
	s := &Service{lead: opt.Leadership, store: attestingStore{st}, conns: conns, clock: clock, opt: opt, log: opt.Logger,
		rand: opt.Rand, wake: make(chan struct{}, 1), notify: make(chan struct{}, 1), stream: make(chan struct{}, 1), groupCache: map[string]groupEntry{}, recent: map[string][]time.Time{}, metrics: newMetrics()}
	s.mismatches.burst, s.mismatches.window, s.mismatches.keyName = MismatchBurst, MismatchWindow, "slack_id"
	s.pol.Store(set)
	return s
}

// positiveOr is an option's value, or def when the option is left unset
// (zero, or negative, which means nothing useful for a count or a period).
func positiveOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// swapPolicy makes next the policy in force once its change is recorded:
// the group cache is dropped and every pending request next no longer
// holds (its policy gone, its group out of scope) is cancelled.
func (s *Service) swapPolicy(next *policy.Set) {
	s.pol.Store(next)
	s.groupMu.Lock()
	s.groupCache = map[string]groupEntry{}
	s.groupMu.Unlock()
	s.cancelOrphans()
}

// reconnect rebuilds the connectors for next (Options.Reconnect).
func (s *Service) reconnect(next *policy.Set) error {
	if s.opt.Reconnect == nil {
		return nil
	}
	if err := s.opt.Reconnect(next); err != nil {
		return access.Wrap(access.CodeInvalid, err, "The connectors of the new policy could not be built: %v", err)
	}
	return nil
}

// Policy returns the policy set in force.
func (s *Service) Policy() *policy.Set { return s.pol.Load() }

// Clock returns the service's clock.
func (s *Service) Clock() access.Clock { return s.clock }

// Wake returns the notifier's channel: it receives after every committed
// change (a pending signal is kept, so a change between reading and waiting
// is not lost). It has one consumer, the Slack notifier; the worker and the
// scheduler have their own channel.
func (s *Service) Wake() <-chan struct{} { return s.notify }

// StreamWake is Wake for the audit stream to a SIEM, its one consumer.
func (s *Service) StreamWake() <-chan struct{} { return s.stream }

func (s *Service) nudge() {
	for _, ch := range []chan struct{}{s.wake, s.notify, s.stream} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// update runs fn in a store transaction at the clock's now and nudges the
// background loops after a commit.
func (s *Service) update(fn func(Tx) error) error {
	err := s.store.Update(s.clock.Now(), fn)
	if err == nil {
		s.nudge()
	}
	return err
}

// event is the audit event builder used by every transition.
func event(t access.EventType, actor string, r *access.Request, detail any) access.Event {
	e := access.Event{Type: t, Actor: actor}
	if r != nil {
		e.Subject = r.Requester.Email
		e.Policy = r.Policy
		e.RequestID = r.ID
	}
	e.Detail = encodeDetail(detail)
	return e
}

// encodeDetail renders detail as compact JSON with sorted keys (maps) so the
// audit log is deterministic.
func encodeDetail(detail any) string {
	if detail == nil {
		return ""
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return `{"error":"unencodable detail"}`
	}
	return string(b)
}

// directory returns the directory connector named by the policy.
func (s *Service) directory() (access.Directory, error) {
	set := s.Policy()
	d, ok := s.conns.Directory(set.Directory)
	if !ok {
		return nil, access.Errorf(access.CodeInternal, "directory connector %q is not configured", set.Directory)
	}
	return d, nil
}

// userOf reads p from the directory: by IdP id when keycard has it, else by
// email.
func userOf(ctx context.Context, dir access.Directory, p access.Person) (access.User, error) {
	if p.IdPID != "" {
		return dir.UserByID(ctx, p.IdPID)
	}
	return dir.UserByEmail(ctx, p.Email)
}

// Identify maps a Slack user (id and profile email) to the IdP user, pinning
// the pair the first time and refusing a later mismatch (SPEC "Identity is
// pinned"). A mismatch is audited and alerted.
func (s *Service) Identify(ctx context.Context, slackID, email string) (access.User, error) {
	if strings.TrimSpace(email) == "" {
		return access.User{}, access.Errorf(access.CodeNoEmail, "Your Slack profile has no email address, so keycard cannot find you in the identity provider. Ask an admin to add one.")
	}
	dir, err := s.directory()
	if err != nil {
		return access.User{}, err
	}
	u, err := dir.UserByEmail(ctx, email)
	if access.CodeOf(err) == access.CodeNotFound {
		return access.User{}, access.Wrap(access.CodeUnknownUser, err, "The identity provider has no user with the email %s.", email)
	}
	if err != nil {
		return access.User{}, access.Wrap(access.CodeOf(err), err, "The identity provider did not answer; try again in a minute.")
	}
	if slackID == "" {
		return u, nil
	}
	var mismatch *access.Pin
	var ticket refusalTicket // the mismatch event's admission, decided once
	err = s.updateTicketed(&ticket, func(tx Tx) error {
		mismatch = nil // a retried attempt (PostgreSQL serialization failure) decides afresh
		pin, ok, err := tx.Pin(slackID)
		if err != nil {
			return err
		}
		// The pin holds both ways: one Slack user to one IdP user, and that IdP
		// user to that one Slack user, so a second Slack account that shows the
		// same email (a guest, another workspace) cannot become its owner.
		var owner string
		if _, err := tx.Doc(docPinByIdP, u.ID, &owner); err != nil {
			return err
		}
		switch {
		case !ok && owner != "" && owner != slackID:
			mismatch = &access.Pin{SlackID: owner, IdPID: u.ID, Email: u.Email}
			err := s.appendLimited(tx, &s.mismatches, slackID, &ticket, access.Event{Type: access.EvIdentityMismatch, Actor: access.ActorKeycard, Subject: email,
				Detail: encodeDetail(map[string]string{"slack_id": slackID, "idp_id": u.ID, "pinned_slack_id": owner,
					"message": "A second Slack account presents the email of an identity-provider user already linked to another Slack account."})})
			return err
		case !ok:
			if err := tx.PutPin(access.Pin{SlackID: slackID, IdPID: u.ID, Email: u.Email, PinnedAt: tx.Now()}); err != nil {
				return err
			}
			if err := tx.PutDoc(docPinByIdP, u.ID, slackID); err != nil {
				return err
			}
			_, err := tx.Append(access.Event{Type: access.EvIdentityPinned, Actor: access.ActorKeycard, Subject: u.Email,
				Detail: encodeDetail(map[string]string{"slack_id": slackID, "idp_id": u.ID})})
			return err
		case ok && pin.IdPID == u.ID && owner != "" && owner != slackID:
			// Two Slack accounts pinned to one IdP user before the reverse
			// index existed: the reverse pin names the owner.
			mismatch = &access.Pin{SlackID: owner, IdPID: u.ID, Email: u.Email}
			err := s.appendLimited(tx, &s.mismatches, slackID, &ticket, access.Event{Type: access.EvIdentityMismatch, Actor: access.ActorKeycard, Subject: email,
				Detail: encodeDetail(map[string]string{"slack_id": slackID, "idp_id": u.ID, "pinned_slack_id": owner,
					"message": "A second Slack account is pinned to an identity-provider user already linked to another Slack account."})})
			return err
		case pin.IdPID == u.ID && owner == "":
			return tx.PutDoc(docPinByIdP, u.ID, slackID) // pins made before the reverse index existed
		case pin.IdPID != u.ID:
			mismatch = &pin
			err := s.appendLimited(tx, &s.mismatches, slackID, &ticket, access.Event{Type: access.EvIdentityMismatch, Actor: access.ActorKeycard, Subject: email,
				Detail: encodeDetail(map[string]string{"slack_id": slackID, "pinned_idp_id": pin.IdPID, "pinned_email": pin.Email,
					"found_idp_id": u.ID, "message": "The Slack user's email now points to a different identity-provider account than the one pinned."})})
			return err
		}
		return nil
	})
	if err != nil {
		return access.User{}, err
	}
	if mismatch != nil && mismatch.SlackID != slackID {
		return access.User{}, access.Errorf(access.CodeIdentityMismatch,
			"The identity-provider account for %s is already linked to another Slack account. The security team has been told; keycard will not act for this Slack account until they sort it out.", email)
	}
	if mismatch != nil {
		return access.User{}, access.Errorf(access.CodeIdentityMismatch,
			"Your Slack account is linked to a different identity-provider account than the one %s now belongs to. The security team has been told; keycard will not act on this until they sort it out.", email)
	}
	return u, nil
}

// Recheck re-checks a pinned Slack user's identity after Slack said their
// profile changed (user_change): a Slack user keycard has pinned whose email
// now leads to another IdP user is refused and the mismatch audited and
// alerted at once, not at their next click. A Slack user keycard has never
// pinned is left alone (their first use pins them).
func (s *Service) Recheck(ctx context.Context, slackID, email string) error {
	var pinned bool
	if err := s.store.View(func(tx Tx) error {
		_, ok, err := tx.Pin(slackID)
		pinned = ok
		return err
	}); err != nil || !pinned {
		return err
	}
	_, err := s.Identify(ctx, slackID, email)
	return err
}

// identifyActor is Identify for someone about to decide, revoke, review or
// approve: their IdP account must be in use now. A suspended or deactivated
// person whose Slack session lives on (Slack deprovisioning often lags the
// IdP) is refused and the attempt audited.
func (s *Service) identifyActor(ctx context.Context, slackID, email string) (access.User, error) {
	u, err := s.Identify(ctx, slackID, email)
	if err != nil {
		return u, err
	}
	if !u.Status.CanRequest() {
		_ = s.audit(access.Event{Type: access.EvDecisionRefused, Actor: u.Email, Subject: u.Email,
			Detail: encodeDetail(map[string]string{"why": "identity-provider account is " + string(u.Status)})})
		return u, access.Errorf(access.CodeUserInactive, "Your identity-provider account is %s, so keycard will not act on your clicks.", strings.ToLower(string(u.Status)))
	}
	return u, nil
}

// docPinByIdP is the reverse pin: IdP user id -> the Slack user it is pinned to.
const docPinByIdP = "pin_by_idp"

// inGroup reports whether u is a member of the named directory group, with a
// short cache (admin and auditor checks happen on every click).
func (s *Service) inGroup(ctx context.Context, group string, u access.User) (bool, error) {
	if group == "" {
		return false, nil
	}
	now := s.clock.Now()
	s.groupMu.Lock()
	e, ok := s.groupCache[group]
	s.groupMu.Unlock()
	if !ok || now.Sub(e.at) > s.opt.GroupCacheTTL || now.Before(e.at) {
		dir, err := s.directory()
		if err != nil {
			return false, err
		}
		members, err := dir.GroupMembers(ctx, group)
		if err != nil {
			return false, err
		}
		e = groupEntry{members: map[string]bool{}, at: now}
		for _, m := range members {
			if !m.Status.CanRequest() {
				continue
			}
			e.members[strings.ToLower(m.Email)] = true
			if m.ID != "" {
				e.members["id:"+m.ID] = true
			}
		}
		s.groupMu.Lock()
		s.groupCache[group] = e
		s.groupMu.Unlock()
	}
	if u.ID != "" {
		return e.members["id:"+u.ID], nil
	}
	return e.members[strings.ToLower(u.Email)], nil
}

// IsAdmin reports whether u belongs to the policy's admins group.
func (s *Service) IsAdmin(ctx context.Context, u access.User) (bool, error) {
	return s.inGroup(ctx, s.Policy().Admins.Group, u)
}

// IsAuditor reports whether u belongs to the policy's auditors group.
func (s *Service) IsAuditor(ctx context.Context, u access.User) (bool, error) {
	return s.inGroup(ctx, s.Policy().Auditors.Group, u)
}

// audit appends one standalone event (no state change), e.g. a refusal.
func (s *Service) audit(e access.Event) error {
	if isRefusal(e.Type) && e.Actor != "" {
		return s.auditRefusal(e)
	}
	return s.update(func(tx Tx) error {
		_, err := tx.Append(e)
		return err
	})
}

// Alert records an alert for the security channel.
func (s *Service) Alert(kind, subject, message string, r *access.Request) error {
	e := event(access.EvAlert, access.ActorKeycard, r, access.Alert{Kind: kind, Message: message})
	if r == nil {
		e.Subject = subject
	}
	return s.audit(e)
}

// errStale marks a transition that found the request no longer in the state
// it expected; callers turn it into a person-facing conflict.
var errStale = errors.New("stale")

// jitter returns d plus up to 50% random extra.
func (s *Service) jitter(d time.Duration) time.Duration {
	s.randMu.Lock()
	defer s.randMu.Unlock()
	return d + time.Duration(s.rand.Int64N(int64(d)/2+1))
}

// allowSubmit applies the per-person submission rate limit.
func (s *Service) allowSubmit(email string) error {
	now := s.clock.Now()
	key := strings.ToLower(email)
	s.limitMu.Lock()
	defer s.limitMu.Unlock()
	kept := s.recent[key][:0]
	for _, t := range s.recent[key] {
		if now.Sub(t) < s.opt.SubmitWindow && !t.After(now) {
			kept = append(kept, t)
		}
	}
	if len(kept) >= s.opt.SubmitLimit {
		s.recent[key] = kept
		wait := s.opt.SubmitWindow - now.Sub(kept[0])
		return &access.Error{Code: access.CodeRateLimitedUser, RetryAt: now.Add(wait),
			Msg: fmt.Sprintf("You have sent %d requests in the last %s; wait %s before the next one.", len(kept), s.opt.SubmitWindow, wait.Round(time.Second))}
	}
	s.recent[key] = append(kept, now)
	if len(s.recent) > 10000 { // bound memory: forget idle people
		for k, ts := range s.recent {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= s.opt.SubmitWindow {
				delete(s.recent, k)
			}
		}
	}
	return nil
}
