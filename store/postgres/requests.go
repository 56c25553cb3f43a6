package pgstore

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"keycard/access"
	"keycard/store"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// firstRequestNumber: ids start at REQ-1001, as in the bbolt store.
const firstRequestNumber = 1000

const requestCols = "body"

// The reads the scheduler and handlers make on every tick or click; each is
// an index range read (pgstore_test TestReadsUseIndexes checks the plans).
const (
	sqlDue = `SELECT ` + requestCols + ` FROM keycard_requests
		WHERE due_ns IS NOT NULL AND due_ns <= $1 ORDER BY due_ns, id LIMIT $2`
	sqlNextDue = `SELECT due_ns FROM keycard_requests WHERE due_ns IS NOT NULL ORDER BY due_ns, id LIMIT 1`
	sqlOfUser  = `SELECT ` + requestCols + ` FROM keycard_requests
		WHERE requester = $1 AND requester <> '' ORDER BY created_ns, id`
	sqlHolders = `SELECT ` + requestCols + ` FROM keycard_requests
		WHERE connector = $1 AND grp = $2 AND holds ORDER BY created_ns, id`
	sqlWaitingOn = `SELECT r.body FROM keycard_waiting w JOIN keycard_requests r ON r.id = w.id
		WHERE w.email = $1 ORDER BY w.created_ns, w.id`
	sqlInState = `SELECT ` + requestCols + ` FROM keycard_requests
		WHERE state = ANY($1::text[]) ORDER BY created_ns, id`
	// sqlRequestPage is ForEachRequest's page: the creation index read
	// from just after ($2, $3) up to $1, one index range.
	sqlRequestPage = `SELECT ` + requestCols + ` FROM keycard_requests
		WHERE created_ns < $1 AND (created_ns, id) > ($2, $3::text COLLATE "C")
		ORDER BY created_ns, id LIMIT $4`
)

func decodeRow(rows pgx.Rows) (access.Request, error) {
	var body []byte
	if err := rows.Scan(&body); err != nil {
		return access.Request{}, err
	}
	return store.DecodeRequest(body)
}

// Request reads one request. CodeNotFound when absent.
func (tx *Tx) Request(id string) (access.Request, error) {
	var body []byte
	ok, err := tx.one("SELECT body FROM keycard_requests WHERE id = $1", []any{id}, &body)
	if err != nil {
		return access.Request{}, fmt.Errorf("store: request %s: %w", id, err)
	}
	if !ok {
		return access.Request{}, access.Errorf(access.CodeNotFound, "Request %s was not found.", id)
	}
	r, err := store.DecodeRequest(body)
	if err != nil {
		return r, fmt.Errorf("store: request %s: %w", id, err)
	}
	tx.remember(r.ID, r.Rev)
	return r, nil
}

// remember notes the stored Rev of a request this transaction read or
// wrote, so PutRequest's compare-and-swap needs no second read. It is sound
// under SERIALIZABLE: a concurrent change to the row after this snapshot
// makes the UPDATE fail with 40001, and Update runs fn again.
func (tx *Tx) remember(id string, rev uint64) {
	if !tx.write {
		return
	}
	if tx.revs == nil {
		tx.revs = map[string]uint64{}
	}
	tx.revs[id] = rev
}

// PutRequest creates (r.ID == "": REQ-<n> from a transactional counter,
// CreatedAt = Now when zero, Rev = 1) or updates with a compare-and-swap on
// Rev (CodeConflict when another writer won; CodeNotFound for an unknown id),
// moving every index row with it. Same contract as the bbolt store.
func (tx *Tx) PutRequest(r *access.Request) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if r == nil {
		return access.Errorf(access.CodeInvalid, "store: nil request")
	}
	origID, origRev, origCreated := r.ID, r.Rev, r.CreatedAt
	var num int64
	create := r.ID == ""
	if create {
		if _, err := tx.one("UPDATE keycard_counters SET n = n + 1 WHERE name = 'requests' RETURNING n", nil, &num); err != nil {
			return fmt.Errorf("store: request sequence: %w", err)
		}
		num += firstRequestNumber
		r.ID = "REQ-" + strconv.FormatInt(num, 10)
		if r.CreatedAt.IsZero() {
			r.CreatedAt = tx.now
		}
		r.Rev = 1
	} else {
		stored, ok := tx.revs[r.ID]
		if !ok {
			if _, err := tx.Request(r.ID); err != nil {
				return err
			}
			stored = tx.revs[r.ID]
		}
		if stored != r.Rev {
			return access.Wrap(access.CodeConflict,
				fmt.Errorf("stored rev %d, caller has rev %d", stored, r.Rev),
				"Request %s was changed by someone else; look again and retry.", r.ID)
		}
		r.Rev++
	}
	tx.undo.Add(func() { r.ID, r.Rev, r.CreatedAt = origID, origRev, origCreated })

	body, err := store.EncodeRequest(r)
	if err != nil {
		return fmt.Errorf("store: encode request %s: %w", r.ID, err)
	}
	var due *int64
	if d := r.NextDue(); !d.IsZero() {
		n := ns(d)
		due = &n
	}
	args := []any{r.ID, ns(r.CreatedAt), string(r.State), r.Policy, lowerEmail(r.Requester.Email),
		r.Connector, r.Group, r.State.HoldsMembership(), due, body}
	// The writes travel with the next statement or the COMMIT (Tx.later):
	// the row is known to exist (read in this transaction or just numbered),
	// and an error still fails this transaction before it commits.
	if create {
		tx.later(`INSERT INTO keycard_requests
			(num, id, created_ns, state, policy, requester, connector, grp, holds, due_ns, body)
			VALUES ($11, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, append(args, num)...)
	} else {
		// The waiting rows are rebuilt from the new version.
		tx.later(`WITH w AS (DELETE FROM keycard_waiting WHERE id = $1)
			UPDATE keycard_requests SET created_ns = $2, state = $3, policy = $4, requester = $5,
			connector = $6, grp = $7, holds = $8, due_ns = $9, body = $10 WHERE id = $1`, args...)
	}
	tx.remember(r.ID, r.Rev)
	if emails := store.WaitingEmails(r); len(emails) > 0 {
		tx.later(`INSERT INTO keycard_waiting (email, created_ns, id)
			SELECT unnest($1::text[]), $2, $3`, emails, ns(r.CreatedAt), r.ID)
	}
	return nil
}

func (tx *Tx) requests(sql string, args ...any) ([]access.Request, error) {
	return collect(tx, sql, args, func(rows pgx.Rows) (access.Request, error) {
		r, err := decodeRow(rows)
		if err != nil {
			return r, fmt.Errorf("store: request: %w", err)
		}
		tx.remember(r.ID, r.Rev)
		return r, nil
	})
}

// Due returns up to limit requests (all when limit <= 0) whose NextDue is at
// or before now, earliest first: an index range read, O(due).
func (tx *Tx) Due(now time.Time, limit int) ([]access.Request, error) {
	lim := int64(math.MaxInt64)
	if limit > 0 {
		lim = int64(limit)
	}
	return tx.requests(sqlDue, ns(now), lim)
}

// NextDue is the earliest NextDue of any request; false when none.
func (tx *Tx) NextDue() (time.Time, bool) {
	var n int64
	ok, err := tx.one(sqlNextDue, nil, &n)
	if err != nil || !ok {
		return time.Time{}, false
	}
	return nsTime(n), true
}

// RequestsOfUser returns every request of email (case-insensitive), in
// creation order.
func (tx *Tx) RequestsOfUser(email string) ([]access.Request, error) {
	email = lowerEmail(email)
	if email == "" {
		return nil, nil
	}
	return tx.requests(sqlOfUser, email)
}

// Holders returns the requests on connector/group whose state holds (or may
// hold) the membership, in creation order.
func (tx *Tx) Holders(connector, group string) ([]access.Request, error) {
	return tx.requests(sqlHolders, connector, group)
}

// WaitingOn returns the pending requests whose current step lists email as a
// candidate, in creation order.
func (tx *Tx) WaitingOn(email string) ([]access.Request, error) {
	email = lowerEmail(email)
	if email == "" {
		return nil, nil
	}
	return tx.requests(sqlWaitingOn, email)
}

// InState returns the requests in any of states, in creation order.
func (tx *Tx) InState(states ...access.State) ([]access.Request, error) {
	names := make([]string, 0, len(states))
	for _, s := range states {
		names = append(names, string(s))
	}
	return tx.requests(sqlInState, names)
}

// CountInState counts the requests in state by policy.
func (tx *Tx) CountInState(state access.State) (map[string]int, error) {
	out := map[string]int{}
	err := tx.each(`SELECT policy, count(*) FROM keycard_requests WHERE state = $1 GROUP BY policy`,
		[]any{string(state)}, func(rows pgx.Rows) error {
			var p string
			var n int64
			if err := rows.Scan(&p, &n); err != nil {
				return err
			}
			out[p] = int(n)
			return nil
		})
	return out, err
}

// ForEachRequest streams every request created before createdBefore in
// (CreatedAt, ID) order, reading keyset pages of the creation index, so an
// export runs in bounded memory. ErrStop from fn ends the walk. The request
// passed to fn is valid only during the call, as with bbolt.
//
// Every page, the first included, is the same range read "after the last
// key": (MinInt64, "") sorts before every row (ids are never empty). An
// "is this the first page" parameter OR-ed into the condition would keep
// the row comparison out of the index condition in a generic plan, which
// PostgreSQL may choose for a prepared statement after five executions:
// every page would then scan the index from the start, quadratic in the
// rows (pgstore_test TestForEachRequestPagesUseTheIndex).
func (tx *Tx) ForEachRequest(createdBefore time.Time, fn func(*access.Request) error) error {
	end := ns(createdBefore)
	afterNs, afterID := int64(math.MinInt64), ""
	var page rawPage
	var dec store.RequestDecoder
	for {
		page.reset()
		err := tx.each(sqlRequestPage, []any{end, afterNs, afterID, chunk}, func(rows pgx.Rows) error {
			var body pgtype.DriverBytes
			if err := rows.Scan(&body); err != nil {
				return err
			}
			page.add(0, body)
			return nil
		})
		if err != nil {
			return err
		}
		for i := range page.len() {
			_, body := page.row(i)
			r, err := dec.Decode(body)
			if err != nil {
				return fmt.Errorf("store: request: %w", err)
			}
			tx.remember(r.ID, r.Rev)
			afterNs, afterID = ns(r.CreatedAt), r.ID
			if err := fn(r); err != nil {
				return stopped(err)
			}
		}
		if page.len() < chunk {
			return nil
		}
	}
}

// rawPage holds one keyset page of a long walk as raw values in one reused
// buffer (a number and a byte value a row), so the walk allocates nothing
// per row; the values are only valid until the next reset.
type rawPage struct {
	nums []int64
	ends []int
	data []byte
}

func (p *rawPage) reset() { p.nums, p.ends, p.data = p.nums[:0], p.ends[:0], p.data[:0] }

func (p *rawPage) add(n int64, v []byte) {
	p.data = append(p.data, v...)
	p.nums = append(p.nums, n)
	p.ends = append(p.ends, len(p.data))
}

func (p *rawPage) len() int { return len(p.ends) }

func (p *rawPage) row(i int) (int64, []byte) {
	start := 0
	if i > 0 {
		start = p.ends[i-1]
	}
	return p.nums[i], p.data[start:p.ends[i]:p.ends[i]]
}
