package handlers

import "keycard/access"

// Ending a grant, in the caller's transaction: the request's state and its
// queued IdP removal (expiry, revocation, offboarding and reviews all end
// grants here); the outbox worker (provision.go) sends the removal.

// endGrant ends an active or provisioning grant in tx and queues its
// removal; the worker skips the removal while another active grant of the
// same person holds the group. When a person ends access (revoked,
// offboarded) rather than time, endAccess also ends every other grant of the
// holder on that group — extensions included — and cancels pending
// extensions, so the membership really goes.
func endGrant(tx Tx, r *access.Request, reason access.Reason, by access.Person, actor string) error {
	if r.State == access.StateScheduled {
		return withdraw(tx, r, reason, by, actor, "") // scheduled.go: before its start, nothing to remove
	}
	now := tx.Now()
	wasProvisioning := r.State == access.StateProvisioning
	if r.BeginEnding(reason, by, now) != nil {
		return errStale
	}
	others, err := otherHolders(tx, r)
	if err != nil {
		return err
	}
	detail := map[string]string{"reason": string(reason)}
	if by.Email != "" {
		detail["by"] = by.Email
	}
	if len(others) > 0 && !wasProvisioning {
		detail["membership_kept_by"] = others[0].ID
	}
	if err := tx.PutRequest(r); err != nil {
		return err
	}
	if _, err := tx.Append(event(access.EvGrantEnding, actor, r, detail)); err != nil {
		return err
	}
	// Always queue the removal: the worker re-checks other holders when it
	// runs, and an add still in flight is ordered before it.
	return tx.Enqueue(&access.Op{Kind: access.OpRemove, RequestID: r.ID, Connector: r.Connector, Group: r.Group,
		UserID: r.Requester.IdPID, Email: r.Requester.Email, NextAt: now})
}

// endAccess ends r because a person (or offboarding) took the access away:
// r, and every other grant of the holder on the same group, end with the
// same reason, and pending extensions of them are cancelled. Otherwise the
// membership would survive through a sibling grant (say r's extension, after
// r itself expired) while keycard reported it removed. It returns the ids of
// the grants it ended; errStale when there was nothing left to end.
func endAccess(tx Tx, r *access.Request, reason access.Reason, by access.Person, actor string) ([]string, error) {
	var ended []string
	switch err := endGrant(tx, r, reason, by, actor); {
	case err == nil:
		ended = append(ended, r.ID)
	case err != errStale:
		return nil, err
	}
	mine, err := tx.RequestsOfUser(r.Requester.Email)
	if err != nil {
		return nil, err
	}
	now := tx.Now()
	for i := range mine {
		m := &mine[i]
		if m.ID == r.ID || m.Connector != r.Connector || m.Group != r.Group || !m.Requester.Same(r.Requester) {
			continue
		}
		switch {
		case m.State == access.StateActive || m.State == access.StateProvisioning || m.State == access.StateScheduled:
			switch err := endGrant(tx, m, reason, by, actor); {
			case err == nil:
				ended = append(ended, m.ID)
			case err != errStale:
				return nil, err
			}
		case m.State == access.StatePending && m.Extends != "":
			if err := m.Cancel(now); err != nil {
				return nil, err
			}
			if err := tx.PutRequest(m); err != nil {
				return nil, err
			}
			if _, err := tx.Append(event(access.EvRequestCancelled, actor, m, map[string]string{"reason": "the grant it extends was " + string(reason), "grant": r.ID})); err != nil {
				return nil, err
			}
		}
	}
	if len(ended) == 0 {
		return nil, errStale
	}
	return ended, nil
}
