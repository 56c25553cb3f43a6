package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"keycard/access"
	"keycard/policy"
)

// DocContractorAsk is the document kind of contractor expiry questions
// (id: the grant id: a grant is asked about once).
const DocContractorAsk = "contractor_ask"

// Contractor review decisions.
const (
	AskExtended  = "extended"
	AskLetExpire = "let_expire"
	// AskExtensionRequested: for a privileged policy the manager's Extend
	// is an extension request through the policy's approval chain; the
	// question shows it pending until that chain decides (ExtensionState).
	AskExtensionRequested = "extension_requested"
)

// ContractorAsk is one question to a contractor's manager: extend this
// grant, or let it expire?
type ContractorAsk struct {
	GrantID     string        `json:"grant_id"`
	Holder      access.Person `json:"holder"`
	Manager     access.Person `json:"manager,omitzero"` // zero: no manager; asked in the security channel
	Policy      string        `json:"policy"`
	App         string        `json:"app"`
	Role        string        `json:"role"`
	EndsAt      time.Time     `json:"ends_at"`
	MaxDuration time.Duration `json:"max_duration"`
	AskedAt     time.Time     `json:"asked_at"`
	Slot        time.Time     `json:"slot"`
	Decision    string        `json:"decision,omitempty"` // extended | let_expire
	DecidedBy   access.Person `json:"decided_by,omitzero"`
	DecidedAt   time.Time     `json:"decided_at,omitzero"`
	Extension   string        `json:"extension,omitempty"` // the extension request id
	Duration    time.Duration `json:"duration,omitempty"`
	// ExtensionState is the state of the Extension request now (read by
	// ContractorAskOf, not stored): pending while its approval chain runs.
	ExtensionState access.State `json:"-"`
}

// ContractorAskOf reads the question about a grant.
func (s *Service) ContractorAskOf(grantID string) (ContractorAsk, error) {
	var a ContractorAsk
	err := s.store.View(func(tx Tx) error {
		ok, err := tx.Doc(DocContractorAsk, grantID, &a)
		if err == nil && !ok {
			err = access.Errorf(access.CodeNotFound, "keycard asked nobody about %s.", grantID)
		}
		if err != nil || a.Extension == "" {
			return err
		}
		ext, err := tx.Request(a.Extension)
		a.ExtensionState = ext.State
		return err
	})
	return a, err
}

func (s *Service) runContractorExpiry(ctx context.Context, _ Publisher, slot time.Time) (JobRun, error) {
	job := s.Policy().Reviews.ContractorExpiry
	now := s.clock.Now()
	run := JobRun{PeriodFrom: now.UTC(), PeriodTo: now.Add(job.Within).UTC()}
	dir, err := s.directory()
	if err != nil {
		return run, err
	}
	active, err := s.Active(false)
	if err != nil {
		return run, err
	}
	asked, skipped := 0, 0
	for _, g := range active {
		if g.State != access.StateActive || g.ExtendedBy != "" || g.EndsAt.After(now.Add(job.Within)) || !g.EndsAt.After(now) {
			continue
		}
		if _, err := s.ContractorAskOf(g.ID); err == nil {
			continue // already asked
		}
		u, err := dir.UserByID(ctx, g.Requester.IdPID)
		if err != nil {
			u, err = dir.UserByEmail(ctx, g.Requester.Email)
		}
		if err != nil {
			skipped++
			continue
		}
		if !s.Policy().Matches(job.Contractors, u) {
			continue
		}
		a := ContractorAsk{GrantID: g.ID, Holder: g.Requester, Policy: g.Policy, App: g.App, Role: g.Role, EndsAt: g.EndsAt, Slot: slot.UTC()}
		if p, ok := s.Policy().Policy(g.Policy); ok {
			a.MaxDuration = p.MaxDuration
		}
		if m, err := dir.Manager(ctx, u); err == nil && !m.Person().Same(g.Requester) {
			a.Manager = m.Person()
		}
		gg := g
		err = s.updateLead(func(tx Tx) error {
			if ok, err := tx.Doc(DocContractorAsk, g.ID, &ContractorAsk{}); err != nil || ok {
				return err
			}
			a.AskedAt = tx.Now()
			if err := tx.PutDoc(DocContractorAsk, g.ID, a); err != nil {
				return err
			}
			detail := map[string]any{"grant": g.ID, "ends_at": ts(g.EndsAt), "manager": a.Manager.Email, "slot": ts(slot)}
			if a.Manager.Email == "" {
				detail["to"] = "security channel: the contractor has no manager in the directory"
			}
			_, err := tx.Append(event(access.EvContractorAsked, access.ActorScheduler, &gg, detail))
			return err
		})
		if err != nil {
			return run, err
		}
		asked++
	}
	run.Detail = fmt.Sprintf("asked about %d contractor grants ending before %s", asked, ts(now.Add(job.Within)))
	if skipped > 0 {
		run.Detail += fmt.Sprintf("; %d holders could not be read from the directory", skipped)
	}
	return run, nil
}

// mayAnswer checks that actor may answer the question: the contractor's
// manager, or (when there is none) a keycard admin.
func (s *Service) mayAnswer(ctx context.Context, a ContractorAsk, u access.User, actor access.Person) error {
	if a.Manager.Email != "" {
		if !a.Manager.Same(actor) {
			return access.Errorf(access.CodeForbidden, "Only %s, the manager of %s, can decide on this access.", a.Manager.Label(), a.Holder.Label())
		}
		// The manager was read when the question was asked; the IdP must
		// still say so now (a manager who moved on cannot extend).
		dir, err := s.directory()
		if err != nil {
			return err
		}
		holder, err := dir.UserByID(ctx, a.Holder.IdPID)
		if err != nil {
			return access.Wrap(access.CodeOf(err), err, "Could not check %s's manager in the identity provider; try again in a minute.", a.Holder.Label())
		}
		m, err := dir.Manager(ctx, holder)
		if err != nil || !m.Person().Same(actor) {
			return access.Errorf(access.CodeForbidden, "The identity provider no longer lists you as %s's manager, so you cannot decide on this access.", a.Holder.Label())
		}
		return nil
	}
	admin, err := s.IsAdmin(ctx, u)
	if err != nil {
		return access.Wrap(access.CodeOf(err), err, "Could not check whether you are a keycard admin; try again in a minute.")
	}
	if !admin || actor.Same(a.Holder) {
		return access.Errorf(access.CodeForbidden, "Only a keycard admin other than %s can decide on this access.", a.Holder.Label())
	}
	return nil
}

// ContractorExtend extends a contractor's grant on their manager's word:
// an extension request recorded as approved by that manager, which the
// provisioning worker carries out like any extension. d is at most the
// policy's max (and the extension total, extend.max_total).
func (s *Service) ContractorExtend(ctx context.Context, grantID, slackID, email string, d time.Duration) (access.Request, error) {
	u, err := s.identifyActor(ctx, slackID, email)
	if err != nil {
		return access.Request{}, err
	}
	actor := personOf(u, slackID)
	a, err := s.ContractorAskOf(grantID)
	if err != nil {
		return access.Request{}, err
	}
	if err := s.mayAnswer(ctx, a, u, actor); err != nil {
		_ = s.audit(access.Event{Type: access.EvDecisionRefused, Actor: u.Email, Subject: a.Holder.Email, Policy: a.Policy, RequestID: grantID,
			Detail: encodeDetail(map[string]string{"why": access.MessageOf(err), "review": "contractor_expiry"})})
		return access.Request{}, err
	}
	set := s.Policy()
	p, ok := set.Policy(a.Policy)
	if !ok {
		return access.Request{}, s.refuseExtend(a, u.Email, access.Errorf(access.CodeUnknownPolicy, "Policy %s no longer exists, so %s cannot be extended.", a.Policy, grantID))
	}
	if err := p.CheckDuration(d); err != nil {
		return access.Request{}, s.refuseExtend(a, u.Email, err)
	}
	// The holder must still be able to hold this access: in use in the IdP
	// and eligible under the policy in force, as any extension request is.
	holder, err := s.contractorHolder(ctx, a, set, p)
	if err != nil {
		return access.Request{}, s.refuseExtend(a, u.Email, err)
	}
	if p.Privileged {
		return s.contractorExtendByChain(ctx, a, holder, actor, slackID, email, d)
	}
	var ext access.Request
	err = s.update(func(tx Tx) error {
		var cur ContractorAsk
		if _, err := tx.Doc(DocContractorAsk, grantID, &cur); err != nil {
			return err
		}
		if cur.Decision != "" {
			return access.Errorf(access.CodeConflict, "This was already decided (%s by %s).", strings.ReplaceAll(cur.Decision, "_", " "), cur.DecidedBy.Label())
		}
		g, err := tx.Request(grantID)
		if err != nil {
			return err
		}
		if g.State != access.StateActive || g.ExtendedBy != "" {
			return access.Errorf(access.CodeConflict, "%s is %s, so it cannot be extended.", g.ID, g.ExportStatus())
		}
		root := g.RootStart
		if root.IsZero() {
			root = g.ProvisionedAt
		}
		if p.ExtendMaxTotal > 0 && g.EndsAt.Add(d).Sub(root) > p.ExtendMaxTotal {
			return access.Errorf(access.CodeOverTotal, "Extending by %s would make this access last %s in total; policy %s allows at most %s.",
				policy.FormatDuration(d), policy.FormatDuration(g.EndsAt.Add(d).Sub(root)), p.Name, policy.FormatDuration(p.ExtendMaxTotal))
		}
		now := tx.Now()
		ext = access.Request{Policy: p.Name, PolicyVersion: set.Hash, App: p.App, Role: p.Role, Connector: g.Connector, Group: g.Group,
			Privileged: p.Privileged, Requester: g.Requester, Duration: d, Extends: g.ID, RootStart: root, State: access.StatePending,
			Justification: "Contractor expiry review: extended by their manager " + actor.Email,
			Steps: []access.Step{{Rule: "manager (contractor review)", Candidates: []access.Person{actor},
				Decision: access.DecisionApproved, DecidedBy: actor, DecidedAt: now, Comment: "contractor expiry review"}}}
		if err := tx.PutRequest(&ext); err != nil {
			return err
		}
		if _, err := tx.Append(event(access.EvRequestSubmitted, actor.Email, &ext, map[string]any{"duration": policy.FormatDuration(d),
			"extends": g.ID, "via": "contractor_expiry review"})); err != nil {
			return err
		}
		if err := approve(tx, &ext, actor.Email, "contractor expiry review by the manager"); err != nil {
			return err
		}
		cur.Decision, cur.DecidedBy, cur.DecidedAt, cur.Extension, cur.Duration = AskExtended, actor, now, ext.ID, d
		if err := tx.PutDoc(DocContractorAsk, grantID, cur); err != nil {
			return err
		}
		_, err = tx.Append(event(access.EvContractorExtended, actor.Email, &g, map[string]string{"grant": g.ID, "extension": ext.ID, "duration": policy.FormatDuration(d)}))
		return err
	})
	if err != nil {
		return ext, s.refuseExtend(a, u.Email, err)
	}
	return ext, nil
}

// refuseExtend audits a refused contractor extension as the decision
// refused (the manager or admin acted, as with every refused click) and
// returns err. A transient or internal failure is not a refusal: nothing
// was decided, and the person is asked to try again.
func (s *Service) refuseExtend(a ContractorAsk, by string, err error) error {
	switch access.CodeOf(err) {
	case access.CodeUnavailable, access.CodeRateLimited, access.CodeInternal:
		return err
	}
	_ = s.audit(access.Event{Type: access.EvDecisionRefused, Actor: by, Subject: a.Holder.Email, Policy: a.Policy, RequestID: a.GrantID,
		Detail: encodeDetail(map[string]string{"code": string(access.CodeOf(err)), "why": access.MessageOf(err), "review": "contractor_expiry"})})
	return err
}

// contractorHolder reads the contractor now and checks they may still
// hold p: their IdP account in use, eligible under the policy in force.
func (s *Service) contractorHolder(ctx context.Context, a ContractorAsk, set *policy.Set, p *policy.Policy) (access.User, error) {
	dir, err := s.directory()
	if err != nil {
		return access.User{}, err
	}
	holder, err := dir.UserByID(ctx, a.Holder.IdPID)
	if access.CodeOf(err) == access.CodeNotFound {
		return access.User{}, access.Errorf(access.CodeUnknownUser, "%s is no longer in the identity provider, so their access cannot be extended.", a.Holder.Label())
	}
	if err != nil {
		return access.User{}, access.Wrap(access.CodeUnavailable, err, "Could not check %s in the identity provider; nothing was recorded. Try again in a minute.", a.Holder.Label())
	}
	if !holder.Status.CanRequest() {
		return access.User{}, access.Errorf(access.CodeUserInactive, "%s's identity-provider account is %s, so their access cannot be extended.", a.Holder.Label(), strings.ToLower(string(holder.Status)))
	}
	if !set.Eligible(p, holder) {
		return access.User{}, access.Errorf(access.CodeNotEligible, "%s is no longer eligible for %s %s (policy %s), so their access cannot be extended.", a.Holder.Label(), p.App, p.Role, p.Name)
	}
	return holder, nil
}

// contractorExtendByChain extends a contractor's privileged grant the way
// the holder's own Extend button does: an extension request through the
// policy's whole approval chain (submit re-checks eligibility, status and
// extend.max_total). The manager's click decides the first step when the
// chain names them there (re-checked like any approval); the other steps go
// to their approvers. The question records the pending extension.
func (s *Service) contractorExtendByChain(ctx context.Context, a ContractorAsk, holder access.User, actor access.Person, slackID, email string, d time.Duration) (access.Request, error) {
	ext, err := s.submit(ctx, holder, SubmitInput{SlackID: a.Holder.SlackID, Email: holder.Email, Policy: a.Policy, Duration: d, Extends: a.GrantID,
		Justification: "Contractor expiry review: extension asked by their manager " + actor.Email})
	if err != nil {
		// Submit's refusals (extend.max_total, eligibility, a pending
		// extension) are the manager's refused decision.
		return access.Request{}, s.refuseExtend(a, actor.Email, err)
	}
	err = s.update(func(tx Tx) error {
		var cur ContractorAsk
		if _, err := tx.Doc(DocContractorAsk, a.GrantID, &cur); err != nil {
			return err
		}
		if cur.Decision != "" {
			return access.Errorf(access.CodeConflict, "This was already decided (%s by %s).", strings.ReplaceAll(cur.Decision, "_", " "), cur.DecidedBy.Label())
		}
		cur.Decision, cur.DecidedBy, cur.DecidedAt, cur.Extension, cur.Duration = AskExtensionRequested, actor, tx.Now(), ext.ID, d
		if err := tx.PutDoc(DocContractorAsk, a.GrantID, cur); err != nil {
			return err
		}
		_, err := tx.Append(access.Event{Type: access.EvContractorExtensionRequested, Actor: actor.Email, Subject: a.Holder.Email, Policy: a.Policy, RequestID: a.GrantID,
			Detail: encodeDetail(map[string]string{"grant": a.GrantID, "extension": ext.ID, "duration": policy.FormatDuration(d),
				"approval": "privileged policy: the extension follows the policy's approval chain"})})
		return err
	})
	if err != nil {
		return ext, err
	}
	if st := ext.Step(); ext.State == access.StatePending && ext.Current == 0 && st != nil && st.IsCandidate(actor) {
		return s.Decide(ctx, DecideInput{RequestID: ext.ID, Step: 0, SlackID: slackID, Email: email, Approve: true, Comment: "contractor expiry review"})
	}
	return ext, nil
}

// ContractorLetExpire records the manager's "let it expire": the grant
// ends on schedule.
func (s *Service) ContractorLetExpire(ctx context.Context, grantID, slackID, email string) (ContractorAsk, error) {
	u, err := s.identifyActor(ctx, slackID, email)
	if err != nil {
		return ContractorAsk{}, err
	}
	actor := personOf(u, slackID)
	a, err := s.ContractorAskOf(grantID)
	if err != nil {
		return a, err
	}
	if err := s.mayAnswer(ctx, a, u, actor); err != nil {
		_ = s.audit(access.Event{Type: access.EvDecisionRefused, Actor: u.Email, Subject: a.Holder.Email, Policy: a.Policy, RequestID: grantID,
			Detail: encodeDetail(map[string]string{"why": access.MessageOf(err), "review": "contractor_expiry"})})
		return a, err
	}
	err = s.update(func(tx Tx) error {
		// Read afresh on each attempt: decoding over a rolled-back attempt's
		// answer would keep its decision (the stored question omits an empty
		// one) and refuse as "already decided".
		a = ContractorAsk{}
		if _, err := tx.Doc(DocContractorAsk, grantID, &a); err != nil {
			return err
		}
		if a.Decision != "" {
			return access.Errorf(access.CodeConflict, "This was already decided (%s by %s).", strings.ReplaceAll(a.Decision, "_", " "), a.DecidedBy.Label())
		}
		a.Decision, a.DecidedBy, a.DecidedAt = AskLetExpire, actor, tx.Now()
		if err := tx.PutDoc(DocContractorAsk, grantID, a); err != nil {
			return err
		}
		_, err := tx.Append(access.Event{Type: access.EvContractorLetExpire, Actor: actor.Email, Subject: a.Holder.Email, Policy: a.Policy,
			RequestID: grantID, Detail: encodeDetail(map[string]string{"grant": grantID, "ends_at": ts(a.EndsAt)})})
		return err
	})
	return a, err
}
