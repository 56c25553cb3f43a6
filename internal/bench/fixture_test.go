package bench

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/policy"
	"keycard/store"
)

// base is when the fixtures' history starts; history spans a year.
var base = time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)

// history is the span over which fixture requests and events are spread.
const history = 360 * 24 * time.Hour

// fixtureNow is "now" for every fixture: just after the history ends.
var fixtureNow = base.Add(history + time.Hour)

// perTx is how many records one fixture transaction writes: large NoSync
// transactions are what make a million-record fixture take seconds.
const perTx = 20_000

func email(i int) string { return fmt.Sprintf("user%05d@example.com", i) }

// policyFile is a valid policy file with n policies over n groups, as a
// 1,000-policy company would write it.
func policyFile(n int) []byte {
	var b strings.Builder
	b.WriteString(`version: 1
directory: okta
connectors:
  okta:
    type: okta
    scope:
      groups: ["app-*"]
profiles:
  everyone: {}
policies:
`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `  - name: pol-%04d
    app: Application %d
    role: Admin
    group: app-%04d-admins
    eligible: [everyone]
    approval:
      - manager
      - group: security-team
    duration: {default: 4h, max: 8h}
    justification: required
`, i, i, i)
	}
	b.WriteString("auditors: {group: auditors}\nadmins: {group: keycard-admins}\n")
	return []byte(b.String())
}

var (
	policyMu   sync.Mutex
	policySets = map[string]*policy.Set{}
)

// policies parses the scale's policy file once per scale.
func policies(tb testing.TB) *policy.Set {
	tb.Helper()
	policyMu.Lock()
	defer policyMu.Unlock()
	if set, ok := policySets[cur.name]; ok {
		return set
	}
	set, err := policy.Parse("policy.yaml", policyFile(cur.policies))
	if err != nil {
		tb.Fatal(err)
	}
	policySets[cur.name] = set
	return set
}

// fixtureRequest is request i of n: a two-step approval chain decided by a
// manager and a security engineer, in a state spread like a real year (10%
// active, most expired, some revoked, denied, cancelled, timed out, failed).
// Active grants end after fixtureNow, so nothing is due at fixtureNow.
func fixtureRequest(i, n int) *access.Request {
	created := base.Add(time.Duration(int64(history) / int64(n) * int64(i)))
	pol := i % cur.policies
	who := i % cur.people
	mgr := (who/10)*10 + 1
	sec1, sec2 := email(cur.people+1), email(cur.people+2)
	r := &access.Request{
		Policy:        fmt.Sprintf("pol-%04d", pol),
		PolicyVersion: "9f2c1e4b7a6d5c3e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70",
		App:           fmt.Sprintf("Application %d", pol),
		Role:          "Admin",
		Connector:     "okta",
		Group:         fmt.Sprintf("app-%04d-admins", pol),
		Requester:     access.Person{Email: email(who), Name: fmt.Sprintf("Person %d", who), SlackID: fmt.Sprintf("U%08d", who), IdPID: fmt.Sprintf("00u%017d", who)},
		Duration:      4 * time.Hour,
		Justification: fmt.Sprintf("Investigating INC-%d: database latency in eu-west-1, need to read the slow query log", 4000+i%5000),
		CreatedAt:     created,
		Steps: []access.Step{
			{Rule: "manager", Candidates: []access.Person{{Email: email(mgr), Name: fmt.Sprintf("Person %d", mgr)}}},
			{Rule: "group:security-team", Candidates: []access.Person{{Email: sec1, Name: "Sec One"}, {Email: sec2, Name: "Sec Two"}}},
		},
	}
	approve := func(upTo int, last access.Decision) {
		for s := 0; s <= upTo && s < len(r.Steps); s++ {
			st := &r.Steps[s]
			st.Decision = access.DecisionApproved
			if s == upTo {
				st.Decision = last
			}
			st.DecidedBy = st.Candidates[0]
			st.DecidedAt = created.Add(time.Duration(s+1) * 5 * time.Minute)
			r.Current = s + 1
		}
	}
	switch k := i % 100; {
	case k < 10: // active
		approve(1, access.DecisionApproved)
		r.State = access.StateActive
		r.DecidedAt = created.Add(10 * time.Minute)
		r.ProvisionedAt = r.DecidedAt.Add(2 * time.Second)
		r.EndsAt = fixtureNow.Add(time.Hour + time.Duration(i%1000)*time.Minute)
		r.AddEventID = fmt.Sprintf("okta-evt-%d", i)
	case k < 88: // expired or revoked
		approve(1, access.DecisionApproved)
		r.DecidedAt = created.Add(10 * time.Minute)
		r.ProvisionedAt = r.DecidedAt.Add(2 * time.Second)
		r.EndsAt = r.ProvisionedAt.Add(r.Duration)
		r.State, r.EndReason = access.StateExpired, access.ReasonExpired
		r.EndedAt = r.EndsAt
		if k >= 80 {
			r.State, r.EndReason = access.StateRevoked, access.ReasonRevoked
			r.EndedAt = r.ProvisionedAt.Add(time.Hour)
			r.EndsAt = r.EndedAt
			r.EndedBy = access.Person{Email: sec1, Name: "Sec One"}
		}
		r.DeprovisionedAt = r.EndedAt.Add(3 * time.Second)
		r.AddEventID, r.RemoveEventID = fmt.Sprintf("okta-evt-%d", i), fmt.Sprintf("okta-evt-%d-r", i)
	case k < 93:
		approve(1, access.DecisionDenied)
		r.Steps[1].Comment = "=not without a ticket"
		r.State = access.StateDenied
		r.DecidedAt = created.Add(10 * time.Minute)
	case k < 97:
		r.State = access.StateCancelled
		r.DecidedAt = created.Add(2 * time.Minute)
	case k < 99:
		r.State = access.StateTimedOut
		r.DecidedAt = created.Add(24 * time.Hour)
	default:
		approve(1, access.DecisionApproved)
		r.State = access.StateFailed
		r.DecidedAt = created.Add(10 * time.Minute)
		r.FailReason = "okta: 403 Forbidden: the API token may not manage this group"
	}
	return r
}

// fixtureEvent is audit event i of n: the grant lifecycle event types with
// the detail keycard writes, about request i*cur.requests/n (so every
// request has an event when there are as many events as requests). Like
// keycard's own events, its detail ends with the record digest of the
// request it names (handlers.RecordDigest), so the access export's chain
// cross-check compares every attested row, as it would on a real store.
func fixtureEvent(i, n int) access.Event {
	types := []access.EventType{access.EvRequestSubmitted, access.EvStepApproved, access.EvRequestApproved, access.EvGrantActive, access.EvGrantExpired}
	req := i * cur.requests / n
	r := fixtureRequest(req, cur.requests)
	r.ID = fmt.Sprintf("REQ-%d", 1001+req)
	return access.Event{Type: types[i%len(types)], Actor: r.Steps[0].Candidates[0].Email, Subject: r.Requester.Email,
		Policy: r.Policy, RequestID: r.ID,
		Detail: `{"group":"` + r.Group + `","idp_event_id":"okta-evt-12345","duration":"4h","record":"` + handlers.RecordDigest(r) + `"}`}
}

// fillRequests writes n fixture requests.
func fillRequests(tb testing.TB, db *store.DB, n int) {
	tb.Helper()
	for done := 0; done < n; done += perTx {
		err := db.Update(fixtureNow, func(tx *store.Tx) error {
			for i := done; i < n && i < done+perTx; i++ {
				if err := tx.PutRequest(fixtureRequest(i, n)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// fillEvents appends n fixture events, spread over the history.
func fillEvents(tb testing.TB, db *store.DB, n int) {
	tb.Helper()
	for done := 0; done < n; done += perTx {
		at := base.Add(time.Duration(int64(history) / int64(n) * int64(done)))
		err := db.Update(at, func(tx *store.Tx) error {
			for i := done; i < n && i < done+perTx; i++ {
				if _, err := tx.Append(fixtureEvent(i, n)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// cachedStore builds a store file once per process and hands out its path.
type cachedStore struct {
	once sync.Once
	path string
	err  error
}

func (c *cachedStore) get(tb testing.TB, name string, fill func(testing.TB, *store.DB)) string {
	tb.Helper()
	c.once.Do(func() {
		path := filepath.Join(fixtureDir, name+".db")
		db, err := store.Open(path, store.Options{NoSync: true})
		if err != nil {
			c.err = err
			return
		}
		// A builder failing calls tb.Fatal, which ends this goroutine:
		// record the failure first so later callers do not see a half file.
		c.err = fmt.Errorf("fixture %s was not built", name)
		fill(tb, db)
		c.err = db.Close()
		c.path = path
	})
	if c.err != nil {
		tb.Fatal(c.err)
	}
	return c.path
}

var worldStore, expiryLow, expiryHigh cachedStore

// world is the enterprise store: cur.requests requests (cur.active of them
// active grants) and cur.events audit events. Export, start and verify read it.
func world(tb testing.TB) string {
	return worldStore.get(tb, "world", func(tb testing.TB, db *store.DB) {
		fillRequests(tb, db, cur.requests)
		fillEvents(tb, db, cur.events)
	})
}

// activeFixture writes n active grants ending after fixtureNow and `due`
// whose end has passed at fixtureNow.
func activeFixture(n, due int) func(testing.TB, *store.DB) {
	return func(tb testing.TB, db *store.DB) {
		for done := 0; done < n; done += perTx {
			err := db.Update(fixtureNow, func(tx *store.Tx) error {
				for i := done; i < n && i < done+perTx; i++ {
					r := fixtureRequest(i*100, n*100) // i*100 % 100 == 0: an active grant
					if err := tx.PutRequest(r); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				tb.Fatal(err)
			}
		}
		err := db.Update(fixtureNow, func(tx *store.Tx) error {
			for i := 0; i < due; i++ {
				r := fixtureRequest(i*100, n*100)
				r.EndsAt = fixtureNow.Add(-time.Duration(i+1) * time.Minute)
				if err := tx.PutRequest(r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// dueCount is how many grants are due in the expiry fixtures (the 10).
const dueCount = 10

func expiryStores(tb testing.TB) (low, high string) {
	low = expiryLow.get(tb, "expiry-low", activeFixture(cur.expiryLow, dueCount))
	high = expiryHigh.get(tb, "expiry-high", activeFixture(cur.expiryHigh, dueCount))
	return low, high
}

func closeFixtures() {}

// noConnectors has no connector: the benchmarks that build a Service never
// reach the IdP (nothing is due, the outbox is empty).
type noConnectors struct{}

func (noConnectors) Directory(string) (access.Directory, bool)     { return nil, false }
func (noConnectors) Provisioner(string) (access.Provisioner, bool) { return nil, false }

// service builds a handlers.Service over db at fixtureNow.
func service(db *store.DB, set *policy.Set) *handlers.Service {
	return handlers.New(adapt.Store(db), noConnectors{}, set, access.ClockFunc(func() time.Time { return fixtureNow }), handlers.Options{})
}
