package oktafake

// The Factors API for step-up MFA: a user's enrolled factors
// (GET /api/v1/users/{id}/factors), an Okta Verify push
// (POST .../factors/{fid}/verify answers factorResult WAITING with
// _links.poll) and its transaction (GET .../factors/{fid}/transactions/{tid}),
// whose outcome the test decides with AnswerPush, or which times out when
// the clock passes its expiresAt (Okta's push lasts five minutes).

import (
	"fmt"
	"net/http"
	"sort"
	"time"
)

// PushLifetime is how long a push waits before Okta reports TIMEOUT.
const PushLifetime = 5 * time.Minute

// Push outcomes for AnswerPush (Okta's factorResult values).
const (
	PushSuccess  = "SUCCESS"
	PushRejected = "REJECTED"
	PushTimeout  = "TIMEOUT"
)

type factorRec struct {
	id, user, typ, provider, status string
	created                         time.Time
}

type pushTx struct {
	id, user, factor string
	result           string // WAITING, SUCCESS, REJECTED, TIMEOUT
	expires          time.Time
	seq              int
}

// EnrollFactor gives a user a factor (factorType "push", "sms",
// "token:software:totp", ...; provider OKTA, GOOGLE, ...; status ACTIVE,
// PENDING_ACTIVATION, ...) and returns its id.
func (s *Server) EnrollFactor(userID, factorType, provider, status string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.factors == nil {
		s.factors = map[string][]*factorRec{}
	}
	f := &factorRec{id: s.nextID("opf"), user: userID, typ: factorType, provider: provider, status: status, created: s.now()}
	s.factors[userID] = append(s.factors[userID], f)
	return f.id
}

// EnrollPush gives a user an active Okta Verify push factor.
func (s *Server) EnrollPush(userID string) string {
	return s.EnrollFactor(userID, "push", "OKTA", "ACTIVE")
}

// Pushes returns the transaction ids of pushes sent to a user, oldest first.
func (s *Server) Pushes(userID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var txs []*pushTx
	for _, t := range s.txs {
		if t.user == userID {
			txs = append(txs, t)
		}
	}
	sort.Slice(txs, func(i, j int) bool { return txs[i].seq < txs[j].seq })
	out := make([]string, len(txs))
	for i, t := range txs {
		out[i] = t.id
	}
	return out
}

// AnswerPush decides every waiting push of a user: PushSuccess (the user
// approved on the phone), PushRejected or PushTimeout. It returns how many
// pushes it decided.
func (s *Server) AnswerPush(userID, result string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.txs {
		if t.user == userID && s.txResult(t) == "WAITING" {
			t.result = result
			n++
		}
	}
	return n
}

// txResult is a transaction's factorResult now: WAITING turns TIMEOUT once
// the clock passes expiresAt.
func (s *Server) txResult(t *pushTx) string {
	if t.result == "WAITING" && !s.now().Before(t.expires) {
		t.result = "TIMEOUT"
	}
	return t.result
}

func (s *Server) factorJSON(base string, f *factorRec) map[string]any {
	self := fmt.Sprintf("%s/api/v1/users/%s/factors/%s", base, f.user, f.id)
	return map[string]any{
		"id":          f.id,
		"factorType":  f.typ,
		"provider":    f.provider,
		"vendorName":  f.provider,
		"status":      f.status,
		"created":     f.created.Format(time.RFC3339Nano),
		"lastUpdated": f.created.Format(time.RFC3339Nano),
		"profile":     map[string]any{"name": "Pixel 8", "platform": "ANDROID", "version": "14"},
		"_links": map[string]any{
			"self":   map[string]any{"href": self, "hints": map[string]any{"allow": []string{"GET", "DELETE"}}},
			"verify": map[string]any{"href": self + "/verify", "hints": map[string]any{"allow": []string{"POST"}}},
			"user":   map[string]any{"href": base + "/api/v1/users/" + f.user, "hints": map[string]any{"allow": []string{"GET"}}},
		},
	}
}

func (s *Server) listFactors(w http.ResponseWriter, r *http.Request, userID string) {
	if s.users[userID] == nil {
		s.notFound(w, userID, "User")
		return
	}
	base := "http://" + r.Host
	out := make([]map[string]any, 0, len(s.factors[userID]))
	for _, f := range s.factors[userID] {
		out = append(out, s.factorJSON(base, f))
	}
	s.writeJSON(w, http.StatusOK, out)
}

func (s *Server) findFactor(userID, factorID string) *factorRec {
	for _, f := range s.factors[userID] {
		if f.id == factorID {
			return f
		}
	}
	return nil
}

func (s *Server) txJSON(base string, t *pushTx) map[string]any {
	poll := fmt.Sprintf("%s/api/v1/users/%s/factors/%s/transactions/%s", base, t.user, t.factor, t.id)
	out := map[string]any{
		"factorResult": s.txResult(t),
		"_links": map[string]any{
			"poll":   map[string]any{"href": poll, "hints": map[string]any{"allow": []string{"GET"}}},
			"cancel": map[string]any{"href": poll, "hints": map[string]any{"allow": []string{"DELETE"}}},
		},
	}
	if t.result == "WAITING" {
		out["expiresAt"] = t.expires.Format(time.RFC3339)
		out["profile"] = map[string]any{"credentialId": t.user}
	} else {
		delete(out["_links"].(map[string]any), "cancel")
		delete(out["_links"].(map[string]any), "poll")
	}
	return out
}

func (s *Server) verifyFactor(w http.ResponseWriter, r *http.Request, userID, factorID string) {
	if s.users[userID] == nil {
		s.notFound(w, userID, "User")
		return
	}
	f := s.findFactor(userID, factorID)
	if f == nil {
		s.notFound(w, factorID, "UserFactor")
		return
	}
	if f.typ != "push" {
		s.writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: factor", "keycard's emulator verifies push factors only")
		return
	}
	if f.status != "ACTIVE" {
		s.writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: factor", "the factor is not active")
		return
	}
	if s.txs == nil {
		s.txs = map[string]*pushTx{}
	}
	s.txSeq++
	t := &pushTx{id: s.nextID("v2mst."), user: userID, factor: factorID, result: "WAITING", expires: s.now().Add(PushLifetime), seq: s.txSeq}
	s.txs[t.id] = t
	s.writeJSON(w, http.StatusCreated, s.txJSON("http://"+r.Host, t))
}

func (s *Server) transaction(w http.ResponseWriter, r *http.Request, userID, factorID, txID string) {
	t := s.txs[txID]
	if t == nil || t.user != userID || t.factor != factorID {
		s.notFound(w, txID, "Transaction")
		return
	}
	s.writeJSON(w, http.StatusOK, s.txJSON("http://"+r.Host, t))
}
