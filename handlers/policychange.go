package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"keycard/access"
	"keycard/policy"
)

// Policy change control (CC8.1): with `change_approval: true` in the policy
// in force, a new policy file does not take effect when it is loaded; it is
// staged, the security channel is shown what changed, and a second admin —
// not the person who staged it — approves it in Slack. The emergency path
// applies at once and is loudly recorded. The rule that governs a change is
// the one in force, so a new file cannot switch its own approval off.

// DocPolicyStaged holds the staged policy version (one at a time; id "staged").
const DocPolicyStaged = "policy_staged"

// StagedPolicy is a policy version waiting for a second admin.
type StagedPolicy struct {
	Hash     string    `json:"hash"`
	Path     string    `json:"path"`
	Changes  []string  `json:"changes"`
	StagedBy string    `json:"staged_by"` // the email given to keycard policy apply (stated, not verified), or "SIGHUP" / "restart"
	StagedAt time.Time `json:"staged_at"`
}

// PolicyChange is how a new policy file arrives.
type PolicyChange struct {
	Load      func() (*policy.Set, error)
	By        string // email of the admin making the change, or "SIGHUP"
	Emergency bool   // apply now without a second admin (loudly recorded)
	Reason    string // required for an emergency
}

// ChangePolicy loads a new policy file and applies it, or stages it when the
// policy in force requires a second admin's approval. It returns the set in
// force afterwards and whether the change was staged.
func (s *Service) ChangePolicy(c PolicyChange) (*policy.Set, bool, error) {
	old := s.Policy()
	if old == nil || !old.ChangeApproval {
		next, err := s.ReloadPolicy(c.Load, c.By)
		return next, false, err
	}
	next, err := c.Load()
	if err != nil {
		_ = s.audit(access.Event{Type: access.EvPolicyRejected, Actor: c.By,
			Detail: encodeDetail(map[string]string{"hash": old.Hash, "error": err.Error()})})
		return old, false, err
	}
	if next.Hash == old.Hash {
		return old, false, nil
	}
	if err := s.refuseStranding(old, next, c.By); err != nil {
		return old, false, err
	}
	changes := policy.Diff(old, next)
	if c.Emergency {
		if c.Reason == "" {
			return old, false, access.Errorf(access.CodeInvalid, "An emergency policy change needs a reason.")
		}
		if err := s.apply(old, next, changes, c.By, map[string]any{"emergency": true, "reason": c.Reason}); err != nil {
			return old, false, err
		}
		_ = s.audit(access.Event{Type: access.EvAlert, Actor: c.By, Subject: c.By, Detail: encodeDetail(access.Alert{
			Kind: "policy_emergency", Message: fmt.Sprintf("%s applied policy %.12s… WITHOUT a second admin's approval (emergency: %s). Changes: %v", c.By, next.Hash, c.Reason, changes)})})
		return next, false, nil
	}
	st := StagedPolicy{Hash: next.Hash, Path: next.Path, Changes: changes, StagedBy: c.By, StagedAt: s.clock.Now().UTC()}
	err = s.update(func(tx Tx) error {
		if err := tx.PutDoc(DocPolicyStaged, "staged", st); err != nil {
			return err
		}
		_, err := tx.Append(access.Event{Type: access.EvPolicyStaged, Actor: c.By, Subject: c.By,
			Detail: encodeDetail(map[string]any{"old": old.Hash, "new": next.Hash, "changes": changes, "path": next.Path})})
		return err
	})
	return old, true, err
}

// Staged returns the policy version waiting for approval, if any.
func (s *Service) Staged() (StagedPolicy, bool, error) {
	var st StagedPolicy
	var ok bool
	err := s.store.View(func(tx Tx) error {
		var err error
		ok, err = tx.Doc(DocPolicyStaged, "staged", &st)
		return err
	})
	return st, ok, err
}

// ApprovePolicy applies the staged version when a second admin approves it.
// The approver must be an admin (checked in the directory now) and not the
// person who staged it; the file must still have the staged hash, so what
// was reviewed is exactly what takes effect.
func (s *Service) ApprovePolicy(ctx context.Context, slackID, email, hash string, load func(path string) (*policy.Set, error)) (*policy.Set, error) {
	u, err := s.identifyActor(ctx, slackID, email)
	if err != nil {
		return nil, err
	}
	admin, err := s.IsAdmin(ctx, u)
	if err != nil {
		return nil, err
	}
	if !admin {
		_ = s.audit(access.Event{Type: access.EvDecisionRefused, Actor: u.Email, Subject: u.Email,
			Detail: encodeDetail(map[string]string{"why": "policy approval by someone who is not a keycard admin", "hash": hash})})
		return nil, access.Errorf(access.CodeForbidden, "Only a keycard admin can approve a policy change.")
	}
	st, ok, err := s.Staged()
	if err != nil {
		return nil, err
	}
	if !ok || st.Hash != hash {
		return nil, access.Errorf(access.CodeConflict, "That policy version is no longer waiting for approval.")
	}
	if strings.EqualFold(st.StagedBy, u.Email) {
		return nil, access.Errorf(access.CodeForbidden, "You staged this change; another admin must approve it.")
	}
	next, err := load(st.Path)
	if err != nil {
		return nil, access.Wrap(access.CodeConflict, err, "The staged policy file no longer loads; stage it again.")
	}
	if next.Hash != st.Hash {
		return nil, access.Errorf(access.CodeConflict, "The policy file changed after it was staged (%.12s… is not the reviewed %.12s…); stage it again.", next.Hash, st.Hash)
	}
	old := s.Policy()
	if err := s.apply(old, next, st.Changes, st.StagedBy, map[string]any{"approved_by": u.Email, "staged_by": st.StagedBy}); err != nil {
		return nil, err
	}
	return next, nil
}

// apply swaps the policy in force and records the version, in one
// transaction with its audit event and the removal of any staged version.
func (s *Service) apply(old, next *policy.Set, changes []string, by string, extra map[string]any) error {
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	detail := map[string]any{"old": old.Hash, "new": next.Hash, "changes": changes}
	for k, v := range extra {
		detail[k] = v
	}
	t := access.EvPolicyChanged
	if extra["emergency"] == true {
		t = access.EvPolicyEmergency
	} else if extra["approved_by"] != nil {
		t = access.EvPolicyApproved
	}
	// Who made the change is stated, not verified (a signal, a restart or the
	// name given to keycard policy apply); who approved it is a Slack admin
	// checked in the directory. The evidence says which is which.
	loadedBy := by
	switch by {
	case "SIGHUP", "restart", "keycard", "":
	default:
		loadedBy = by + " (stated)"
	}
	if a, ok := extra["approved_by"].(string); ok {
		loadedBy += ", approved by " + a + " (Slack, verified admin)"
	}
	if extra["emergency"] == true {
		loadedBy = by + " (EMERGENCY, not approved)"
	}
	if err := s.refuseStranding(old, next, by); err != nil {
		return err
	}
	if err := s.reconnect(next); err != nil {
		return err
	}
	var stranded []string
	err := s.update(func(tx Tx) error {
		// Checked again in the swap's own transaction: a grant approved
		// since refuseStranding read the store must not be stranded.
		var err error
		if stranded, err = strandedGrants(tx, next); err != nil || len(stranded) > 0 {
			return err
		}
		if err := tx.SetCursor("policy.hash", next.Hash); err != nil {
			return err
		}
		if err := tx.DeleteDoc(DocPolicyStaged, "staged"); err != nil {
			return err
		}
		ev, err := tx.Append(access.Event{Type: t, Actor: by, Detail: encodeDetail(detail)})
		if err != nil {
			return err
		}
		return recordPolicyVersion(tx, PolicyVersion{Hash: next.Hash, Path: next.Path, From: ev.Time, LoadedBy: loadedBy, Changes: changes, EventSeq: ev.Seq, Text: string(next.Raw)})
	})
	if err == nil && len(stranded) > 0 {
		err = s.rejectStranding(old, next, by, stranded)
	}
	if err != nil {
		_ = s.reconnect(old)
		return err
	}
	s.swapPolicy(next)
	return nil
}

// InForce decides, at start, which policy keycard runs with. Normally the
// file on disk. But when the last version keycard ran required a second
// admin's approval for changes (change_approval) and the file now differs,
// restarting must not be a way around that rule: keycard keeps running the
// last approved version (its text is in the store) and the file is staged
// for approval by StageAtStart.
func InForce(st Store, file *policy.Set) (inForce *policy.Set, stage bool, err error) {
	var last PolicyVersion
	err = st.View(func(tx Tx) error {
		var err error
		last, err = lastPolicyVersion(tx)
		return err
	})
	if err != nil || last.Hash == "" || last.Hash == file.Hash || last.Text == "" {
		return file, false, err
	}
	prev, err := policy.Parse(last.Path, []byte(last.Text))
	if err != nil || !prev.ChangeApproval {
		return file, false, nil
	}
	return prev, true, nil
}

// StageAtStart stages the file found on disk at start when InForce kept the
// last approved version, and alerts the security channel.
func (s *Service) StageAtStart(file *policy.Set) error {
	old := s.Policy()
	changes := policy.Diff(old, file)
	st := StagedPolicy{Hash: file.Hash, Path: file.Path, Changes: changes, StagedBy: "restart", StagedAt: s.clock.Now().UTC()}
	return s.update(func(tx Tx) error {
		if err := tx.PutDoc(DocPolicyStaged, "staged", st); err != nil {
			return err
		}
		_, err := tx.Append(access.Event{Type: access.EvPolicyStaged, Actor: access.ActorKeycard, Subject: access.ActorKeycard,
			Detail: encodeDetail(map[string]any{"old": old.Hash, "new": file.Hash, "changes": changes, "path": file.Path,
				"note": "the policy file changed while keycard was stopped; the last approved version stays in force until a second admin approves"})})
		return err
	})
}

// strandedGrants lists the grants that hold (or may soon hold) a membership
// — provisioning, active, deprovisioning — which next would no longer hold:
// their connector gone or its scope excluding their group (the scope ceiling
// would then refuse their removal, so access would outlive its grant), or,
// for a request someone made, their policy gone or granting another group
// (an approved add would still be carried out under a policy no longer in
// force). A removal already under way, and a review removal, are checked
// against the scope only: they need nothing else of the policy.
func strandedGrants(tx Tx, next *policy.Set) ([]string, error) {
	live, err := tx.InState(access.StateProvisioning, access.StateActive, access.StateDeprovisioning)
	if err != nil {
		return nil, err
	}
	var out []string
	listed := map[string]bool{}
	for i := range live {
		r := &live[i]
		why := ""
		if !next.Connectors[r.Connector].InScope(r.Group) {
			why = OrphanOutOfScope
		} else if r.Kind == "" && r.State != access.StateDeprovisioning {
			why = orphaned(next, r)
		}
		if why != "" {
			listed[r.ID] = true
			out = append(out, fmt.Sprintf("%s (%s, %s %s: %s)", r.ID, r.Requester.Email, r.State, r.Group, orphanMessage(r, why)))
		}
	}
	// A removal still queued in the outbox for a request no longer live (a
	// failed grant whose add may have happened) needs its connector and
	// scope as much as a live grant does.
	err = tx.Ops(func(op access.Op) error {
		if op.Kind != access.OpRemove || listed[op.RequestID] || next.Connectors[op.Connector].InScope(op.Group) {
			return nil
		}
		listed[op.RequestID] = true
		out = append(out, fmt.Sprintf("%s (%s, removal queued from %s: %s)", op.RequestID, op.Email, op.Group,
			"the new policy no longer lets keycard remove it"))
		return nil
	})
	return out, err
}

// refuseStranding refuses a policy change that would strand a live grant
// (strandedGrants) and audits the refusal as policy.rejected; the policy in
// force stays. Revoke those grants, or let them end, then change the policy.
func (s *Service) refuseStranding(old, next *policy.Set, by string) error {
	var stranded []string
	if err := s.store.View(func(tx Tx) error {
		var err error
		stranded, err = strandedGrants(tx, next)
		return err
	}); err != nil {
		return err
	}
	if len(stranded) == 0 {
		return nil
	}
	return s.rejectStranding(old, next, by, stranded)
}

// rejectStranding audits the refusal of next (policy.rejected, naming the
// stranded grants) and returns it with CodeConflict.
func (s *Service) rejectStranding(old, next *policy.Set, by string, stranded []string) error {
	err := access.Errorf(access.CodeConflict, "Policy %.12s… not applied: it no longer holds %d live grant(s), which keycard could then not remove: %s. Revoke them or let them end, then apply the change again; policy %.12s… stays in force.",
		next.Hash, len(stranded), strings.Join(stranded, "; "), old.Hash)
	_ = s.audit(access.Event{Type: access.EvPolicyRejected, Actor: by,
		Detail: encodeDetail(map[string]any{"hash": old.Hash, "new": next.Hash, "error": access.MessageOf(err), "grants": stranded})})
	return err
}

// KeepAtStart checks the policy file found at start the way a reload is
// checked: when it differs from the last version keycard ran and would
// strand a live grant (strandedGrants), that last version (its text is in
// the store) stays in force and the stranded grants are returned; the
// caller audits the refusal with RejectAtStart. A restart is then no way
// around the refusal of a reload. prev is nil when the file may run.
func KeepAtStart(st Store, file *policy.Set) (prev *policy.Set, stranded []string, err error) {
	var last PolicyVersion
	err = st.View(func(tx Tx) error {
		var err error
		if last, err = lastPolicyVersion(tx); err != nil {
			return err
		}
		if last.Hash == "" || last.Hash == file.Hash || last.Text == "" {
			return nil
		}
		stranded, err = strandedGrants(tx, file)
		return err
	})
	if err != nil || len(stranded) == 0 {
		return nil, nil, err
	}
	prev, err = policy.Parse(last.Path, []byte(last.Text))
	if err != nil {
		return nil, nil, fmt.Errorf("the policy file would strand live grants (%s) and the last version keycard ran no longer parses: %w", strings.Join(stranded, "; "), err)
	}
	return prev, stranded, nil
}

// RejectAtStart audits that the policy file found at start was not applied
// (KeepAtStart) and returns the refusal, whose message names the grants.
func (s *Service) RejectAtStart(file *policy.Set, stranded []string) error {
	return s.rejectStranding(s.Policy(), file, "restart", stranded)
}
