package handlers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"keycard/access"
	"keycard/policy"
)

// Limits on text a person types (Slack's plain_text_input caps at 3000).
const (
	MaxJustification = 2000
	MaxComment       = 1000
)

// SubmitInput is a request as a person made it.
type SubmitInput struct {
	SlackID       string // who asked (Slack-asserted id), pinned to the IdP user
	Email         string // their Slack profile email
	Policy        string
	Duration      time.Duration // 0: the policy's default
	Justification string
	BreakGlass    bool
	Extends       string // grant id when this is an extension
	// StartAt is a scheduled start (the modal's date and time); zero: as
	// soon as approved. Bounded by the policy's schedule_ahead.
	StartAt time.Time
}

// Submit validates a request and records it. Every refusal names its reason
// with an *access.Error code and is audited (a person acted).
func (s *Service) Submit(ctx context.Context, in SubmitInput) (access.Request, error) {
	if err := s.allowSubmit(in.Email); err != nil {
		s.metrics.outcome(string(access.CodeRateLimitedUser))
		return access.Request{}, err
	}
	u, err := s.Identify(ctx, in.SlackID, in.Email)
	if err != nil {
		return access.Request{}, err
	}
	r, err := s.submit(ctx, u, in)
	if err == nil {
		s.metrics.outcome("submitted")
	} else {
		s.metrics.outcome(string(access.CodeOf(err)))
	}
	if err != nil {
		switch access.CodeOf(err) {
		case access.CodeUnavailable, access.CodeRateLimited, access.CodeInternal:
		default:
			_ = s.audit(access.Event{Type: access.EvRequestRefused, Actor: u.Email, Subject: u.Email, Policy: in.Policy,
				Detail: encodeDetail(map[string]string{"code": string(access.CodeOf(err)), "why": access.MessageOf(err)})})
		}
	}
	return r, err
}

func (s *Service) submit(ctx context.Context, u access.User, in SubmitInput) (access.Request, error) {
	set := s.Policy()
	p, ok := set.Policy(in.Policy)
	if !ok {
		return access.Request{}, access.Errorf(access.CodeUnknownPolicy, "There is no policy named %q.", in.Policy)
	}
	if !u.Status.CanRequest() {
		return access.Request{}, access.Errorf(access.CodeUserInactive, "Your identity-provider account is %s, so it cannot request access.", strings.ToLower(string(u.Status)))
	}
	if !set.Eligible(p, u) {
		return access.Request{}, access.Errorf(access.CodeNotEligible, "You are not eligible for %s %s (policy %s allows: %s).", p.App, p.Role, p.Name, strings.Join(p.Eligible, ", "))
	}
	d := in.Duration
	if d == 0 {
		d = p.DefaultDuration
	}
	if err := p.CheckDuration(d); err != nil {
		return access.Request{}, err
	}
	start, err := s.checkStart(p, in)
	if err != nil {
		return access.Request{}, err
	}
	just := strings.TrimSpace(in.Justification)
	if len(just) > MaxJustification {
		return access.Request{}, access.Errorf(access.CodeInvalid, "The justification is %d characters long; the limit is %d.", len(just), MaxJustification)
	}
	if in.BreakGlass && !p.BreakGlass {
		return access.Request{}, access.Errorf(access.CodeForbidden, "Policy %s does not allow break-glass access.", p.Name)
	}
	if just == "" && (p.JustificationRequired || in.BreakGlass) {
		return access.Request{}, access.Errorf(access.CodeNeedJustify, "%s %s needs a justification.", p.App, p.Role)
	}
	prov, ok := s.conns.Provisioner(p.ConnectorName())
	if !ok {
		return access.Request{}, access.Errorf(access.CodeInternal, "connector %q is not configured", p.ConnectorName())
	}
	dir, err := s.directory()
	if err != nil {
		return access.Request{}, err
	}

	// Look at what the user holds before asking the IdP anything more.
	var extends *access.Request
	heldByKeycard := false // another keycard grant of this person holds the same group
	if err := s.store.View(func(tx Tx) error {
		mine, err := tx.RequestsOfUser(u.Email)
		if err != nil {
			return err
		}
		for i := range mine {
			m := &mine[i]
			if m.Connector == p.ConnectorName() && m.Group == p.Group && m.State.HoldsMembership() {
				heldByKeycard = true
			}
			if m.Policy != p.Name {
				continue
			}
			if err := askedAlready(p, m); err != nil {
				return err
			}
			switch {
			case in.Extends != "" && m.ID == in.Extends:
				if m.State != access.StateActive {
					return access.Errorf(access.CodeConflict, "Grant %s is %s, so it cannot be extended.", m.ID, m.ExportStatus())
				}
				if m.ExtendedBy != "" {
					return access.Errorf(access.CodeDuplicate, "Grant %s has already been extended (%s).", m.ID, m.ExtendedBy)
				}
				extends = m
			case m.State == access.StateProvisioning || m.State == access.StateActive:
				if in.Extends == "" {
					return access.Errorf(access.CodeAlreadyActive, "You already hold %s %s (%s, until %s). Use Extend instead.", p.App, p.Role, m.ID, m.EndsAt.Format(time.RFC3339))
				}
			}
		}
		if in.Extends != "" && extends == nil {
			return access.Errorf(access.CodeNotFound, "You hold no active grant %s of %s.", in.Extends, p.Name)
		}
		return nil
	}); err != nil {
		return access.Request{}, err
	}
	if extends != nil && p.ExtendMaxTotal > 0 {
		root := extends.RootStart
		if root.IsZero() {
			root = extends.ProvisionedAt
		}
		if end := extends.EndsAt.Add(d); end.Sub(root) > p.ExtendMaxTotal {
			return access.Request{}, access.Errorf(access.CodeOverTotal, "Extending by %s would make this access last %s in total; policy %s allows at most %s.",
				policy.FormatDuration(d), policy.FormatDuration(end.Sub(root)), p.Name, policy.FormatDuration(p.ExtendMaxTotal))
		}
	}
	if extends == nil && !heldByKeycard {
		// Standing access: a membership keycard did not grant is never touched.
		member, err := prov.IsMember(ctx, p.Group, u.ID)
		if err != nil {
			return access.Request{}, access.Wrap(access.CodeOf(err), err, "Could not check your current access to %s; try again in a minute.", p.Group)
		}
		if member {
			return access.Request{}, access.Errorf(access.CodeStanding, "You already have %s %s through a standing membership of %s that keycard does not manage.", p.App, p.Role, p.Group)
		}
	}

	sod, err := s.separationOfDuties(ctx, set, p, u, in.BreakGlass, dir) // conflicts.go
	if err != nil {
		return access.Request{}, err
	}

	var steps []access.Step
	var normal []access.Step
	switch {
	case in.BreakGlass:
		// The normal chain is still resolved: its approvers are told at once.
		normal, _ = set.Resolve(ctx, p, u, dir)
		steps = []access.Step{{Rule: "self (break-glass)", Candidates: []access.Person{personOf(u, in.SlackID)}}}
	case p.Auto:
	default:
		steps, err = set.Resolve(ctx, p, u, dir)
		if err != nil {
			return access.Request{}, err
		}
	}

	if sod.step != nil { // conflicts_mode: approve: the admins decide last
		steps = append(steps, *sod.step)
	}

	now := s.clock.Now()
	base := access.Request{
		Policy: p.Name, PolicyVersion: set.Hash, App: p.App, Role: p.Role, Connector: p.ConnectorName(), Group: p.Group,
		Privileged: p.Privileged, Requester: personOf(u, in.SlackID), Duration: d, Justification: just,
		BreakGlass: in.BreakGlass, Steps: steps, State: access.StatePending, StartAt: start,
	}
	if extends != nil {
		base.Extends = extends.ID
		base.RootStart = extends.RootStart
		if base.RootStart.IsZero() {
			base.RootStart = extends.ProvisionedAt
		}
	}
	var r access.Request
	err = s.update(func(tx Tx) error {
		// Each attempt starts from the request as built: one the store
		// retries (PostgreSQL serialization failure) must not find it
		// already approved by the rolled-back attempt (its steps share
		// base's array, hence the copy).
		r = base
		r.Steps = slices.Clone(base.Steps)
		now = tx.Now()
		// Re-check duplicates inside the transaction: two submits may race.
		mine, err := tx.RequestsOfUser(u.Email)
		if err != nil {
			return err
		}
		for _, m := range mine {
			if m.Policy != p.Name {
				continue
			}
			if err := askedAlready(p, &m); err != nil {
				return err
			}
			if extends == nil && (m.State == access.StateProvisioning || m.State == access.StateActive) {
				// Two auto-approved submissions racing: the first is already granted.
				return access.Errorf(access.CodeAlreadyActive, "You already hold %s %s (%s).", p.App, p.Role, m.ID)
			}
		}
		r.CreatedAt = now
		r.ExpiresAt = now.Add(p.RequestTTL)
		if p.RemindAfter > 0 {
			r.RemindAt = now.Add(p.RemindAfter)
		}
		if p.EscalateAfter > 0 && len(p.EscalateTo) > 0 {
			r.EscalateAt = now.Add(p.EscalateAfter)
		}
		if err := tx.PutRequest(&r); err != nil {
			return err
		}
		// The justification is evidence (an export column): it goes into the
		// chain, not only into the request record (issue 10).
		detail := access.Submitted{Duration: policy.FormatDuration(d), Steps: stepRules(r.Steps), Justification: r.Justification, Asked: askedOf(r.Steps),
			Extends: r.Extends}
		if !r.StartAt.IsZero() {
			detail.StartAt = r.StartAt.UTC().Format(time.RFC3339)
		}
		if in.BreakGlass {
			detail.BreakGlassChain = &access.BreakGlassChain{BreakGlass: true, NormalChain: normal}
		}
		if _, err := tx.Append(event(access.EvRequestSubmitted, u.Email, &r, detail)); err != nil {
			return err
		}
		switch {
		case in.BreakGlass:
			if _, err := r.ApproveStep(r.Requester, "break-glass self-approval", now); err != nil {
				return err
			}
			return approve(tx, &r, u.Email, "break-glass")
		case p.Auto && sod.step == nil:
			return approve(tx, &r, access.ActorKeycard, "auto")
		}
		return nil
	})
	if err != nil {
		return access.Request{}, err
	}
	return r, nil
}

// checkStart checks a requested start (scheduled access) against the
// policy's schedule_ahead at now and returns the start to store: zero for
// "now", including a start a moment ago (policy.StartTolerance: the form
// took that long). An extension continues its grant and break-glass access
// is for now, so neither may be scheduled.
func (s *Service) checkStart(p *policy.Policy, in SubmitInput) (time.Time, error) {
	if in.StartAt.IsZero() {
		return time.Time{}, nil
	}
	now := s.clock.Now()
	if err := p.CheckStart(in.StartAt, now); err != nil {
		return time.Time{}, err
	}
	switch {
	case !in.StartAt.After(now):
		return time.Time{}, nil
	case in.BreakGlass:
		return time.Time{}, access.Errorf(access.CodeBadStart, "Break-glass access starts now; choose Start now, or ask through the usual approval for a later start.")
	case in.Extends != "":
		return time.Time{}, access.Errorf(access.CodeBadStart, "An extension continues where the grant ends; it cannot have a start of its own.")
	}
	return in.StartAt.UTC(), nil
}

// askedAlready refuses a second request for p while m, the person's
// request for the same policy, is still pending or approved and waiting
// for its scheduled start. Submit checks before asking the IdP and again
// inside its transaction, where two submissions may race.
func askedAlready(p *policy.Policy, m *access.Request) error {
	switch m.State {
	case access.StatePending:
		return access.Errorf(access.CodeDuplicate, "You already have a pending request for %s %s (%s).", p.App, p.Role, m.ID)
	case access.StateScheduled:
		return access.Errorf(access.CodeAlreadyActive, "You already have %s %s approved to start at %s (%s). Cancel it first to ask for another time.",
			p.App, p.Role, m.StartAt.UTC().Format("2006-01-02 15:04 MST"), m.ID)
	}
	return nil
}

// approve moves a request whose chain is complete to provisioning and queues
// the IdP add, in the caller's transaction; a request whose start is still
// ahead is scheduled instead, and the scheduler queues the add at the start
// (Service.startScheduled).
func approve(tx Tx, r *access.Request, actor, how string) error {
	now := tx.Now()
	if err := r.Approve(now); err != nil {
		return err
	}
	if err := tx.PutRequest(r); err != nil {
		return err
	}
	detail := map[string]string{"how": how}
	if r.State == access.StateScheduled {
		detail["start_at"] = r.StartAt.UTC().Format(time.RFC3339)
	}
	if _, err := tx.Append(event(access.EvRequestApproved, actor, r, detail)); err != nil {
		return err
	}
	if r.State == access.StateScheduled {
		return nil
	}
	return tx.Enqueue(&access.Op{Kind: access.OpAdd, RequestID: r.ID, Connector: r.Connector, Group: r.Group,
		UserID: r.Requester.IdPID, Email: r.Requester.Email, NextAt: now})
}

func personOf(u access.User, slackID string) access.Person {
	p := u.Person()
	p.SlackID = slackID
	return p
}

// askedOf lists each step's candidates' emails: who was asked is an export
// column (approval_chain), so it is in the chain too.
func askedOf(steps []access.Step) [][]string {
	out := make([][]string, len(steps))
	for i, s := range steps {
		out[i] = make([]string, len(s.Candidates))
		for j, c := range s.Candidates {
			out[i][j] = c.Email
		}
	}
	return out
}

func stepRules(steps []access.Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = fmt.Sprintf("%s (%d candidates)", s.Rule, len(s.Candidates))
	}
	return out
}
