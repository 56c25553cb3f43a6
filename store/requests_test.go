package store

import (
	"keycard/access"
)

func pendingRequest(requester, policy string, approvers ...string) *access.Request {
	var cands []access.Person
	for _, a := range approvers {
		cands = append(cands, access.Person{Email: a})
	}
	return &access.Request{
		Policy: policy, Connector: "okta", Group: "app-" + policy,
		Requester: access.Person{Email: requester},
		Steps:     []access.Step{{Rule: "users", Candidates: cands}},
		State:     access.StatePending,
	}
}
