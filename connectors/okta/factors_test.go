package okta

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/oktafake"
)

func TestChallengePush(t *testing.T) {
	cases := []struct {
		name    string
		answer  string        // "" leaves the push waiting
		advance time.Duration // clock moves before the poll
		want    access.ChallengeResult
	}{
		{"approved on the phone", oktafake.PushSuccess, 0, access.ChallengeSuccess},
		{"rejected on the phone", oktafake.PushRejected, 0, access.ChallengeRejected},
		{"Okta reports timeout", oktafake.PushTimeout, 0, access.ChallengeTimeout},
		{"still waiting", "", time.Minute, access.ChallengeWaiting},
		{"expired unanswered", "", oktafake.PushLifetime, access.ChallengeTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.user("ann@example.com", "ann@example.com", nil)
			e.fake.EnrollFactor(id, "sms", "OKTA", "ACTIVE")
			e.fake.EnrollFactor(id, "push", "OKTA", "PENDING_ACTIVATION")
			fid := e.fake.EnrollPush(id)
			factor, ref, err := e.conn.StartChallenge(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			txs := e.fake.Pushes(id)
			if factor != FactorPush || len(txs) != 1 || ref != fid+"/"+txs[0] {
				t.Fatalf("StartChallenge = %q, %q; pushes %v (factor %s)", factor, ref, txs, fid)
			}
			if c.answer != "" && e.fake.AnswerPush(id, c.answer) != 1 {
				t.Fatal("no waiting push to answer")
			}
			e.clock.Advance(c.advance)
			got, err := e.conn.PollChallenge(context.Background(), id, ref)
			if err != nil || got != c.want {
				t.Fatalf("PollChallenge = %q, %v; want %q", got, err, c.want)
			}
			// The wire: list factors, verify the push factor, poll its transaction.
			var paths []string
			for _, r := range e.fake.Requests() {
				paths = append(paths, r.Method+" "+r.Path)
			}
			want := []string{
				"GET /api/v1/users/" + id + "/factors",
				"POST /api/v1/users/" + id + "/factors/" + fid + "/verify",
				"GET /api/v1/users/" + id + "/factors/" + fid + "/transactions/" + txs[0],
			}
			if strings.Join(paths, "\n") != strings.Join(want, "\n") {
				t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestChallengeRefusals(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(e *env, id string)
		code   access.Code
		msg    string
		pushes int
	}{
		{"no push factor", func(e *env, id string) { e.fake.EnrollFactor(id, "sms", "OKTA", "ACTIVE") }, access.CodeInvalid, "no active Okta Verify push factor", 0},
		{"push not activated", func(e *env, id string) { e.fake.EnrollFactor(id, "push", "OKTA", "PENDING_ACTIVATION") }, access.CodeInvalid, "no active Okta Verify push factor", 0},
		{"factors outage", func(e *env, id string) {
			e.fake.EnrollPush(id)
			e.fake.FailNext("GET /api/v1/users/*/factors", 1, http.StatusServiceUnavailable)
		}, access.CodeUnavailable, "Okta is unavailable", 0},
		{"verify outage", func(e *env, id string) {
			e.fake.EnrollPush(id)
			e.fake.FailNext("POST /api/v1/users/*/factors/*/verify", 1, http.StatusInternalServerError)
		}, access.CodeUnavailable, "Okta is unavailable", 0},
		{"rate limited", func(e *env, id string) {
			e.fake.EnrollPush(id)
			e.fake.RateLimitNext(1, 30*time.Second)
		}, access.CodeRateLimited, "rate limiting", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.user("ann@example.com", "ann@example.com", nil)
			c.setup(e, id)
			_, _, err := e.conn.StartChallenge(context.Background(), id)
			noToken(t, err)
			if access.CodeOf(err) != c.code || err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v (code %s), want %s %q", err, access.CodeOf(err), c.code, c.msg)
			}
			if n := len(e.fake.Pushes(id)); n != c.pushes {
				t.Errorf("%d pushes sent, want %d", n, c.pushes)
			}
		})
	}
	t.Run("poll outage is retryable, not an outcome", func(t *testing.T) {
		e := newEnv(t)
		id := e.user("ann@example.com", "ann@example.com", nil)
		e.fake.EnrollPush(id)
		_, ref, err := e.conn.StartChallenge(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		e.fake.FailNextHTML("GET /api/v1/users/*/factors/*/transactions/*", 1, http.StatusBadGateway)
		if _, err := e.conn.PollChallenge(context.Background(), id, ref); access.CodeOf(err) != access.CodeUnavailable {
			t.Fatalf("err = %v, want unavailable", err)
		}
		if _, err := e.conn.PollChallenge(context.Background(), id, "nonsense"); access.CodeOf(err) != access.CodeInvalid {
			t.Fatalf("bad ref: err = %v, want invalid", err)
		}
	})
}

// FuzzTransactionOf: Okta's _links.poll is outside input; whatever it says,
// the transaction id is either refused or a single path segment of the
// user's and factor's transaction.
func FuzzTransactionOf(f *testing.F) {
	f.Add("https://acme.okta.com/api/v1/users/00u1/factors/opf1/transactions/v2mst.abc", "00u1", "opf1")
	f.Add("https://acme.okta.com/api/v1/users/00u2/factors/opf1/transactions/v2mst.abc", "00u1", "opf1")
	f.Add("/api/v1/users/00u1/factors/opf1/transactions/..", "00u1", "opf1")
	f.Add("%zz", "00u1", "opf1")
	f.Fuzz(func(t *testing.T, href, user, factor string) {
		tx, err := transactionOf(href, user, factor)
		if err != nil {
			if access.CodeOf(err) != access.CodeUnavailable {
				t.Fatalf("code %s", access.CodeOf(err))
			}
			return
		}
		if !pathSafe(tx) || !pathSafe(user) || !pathSafe(factor) {
			t.Fatalf("unsafe %q %q %q from %q", tx, user, factor, href)
		}
	})
}
