package bench

import (
	"bytes"
	"encoding/csv"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/csvw"
	"keycard/handlers"
	"keycard/policy"
	"keycard/store"
)

// referenceRow is the access export row of r as SPEC words it, written the
// plain way (time.Format, strings.Join, one string per cell): the export's
// row builder appends straight into the writer's buffer and formats
// timestamps by hand, and must produce exactly these cells.
func referenceRow(r *access.Request) []string {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	var approvers []string
	for _, p := range r.Approvers() {
		approvers = append(approvers, p.Email)
	}
	chain := "auto (no human step)"
	if len(r.Steps) == 0 && r.State == access.StatePending {
		chain = "auto"
	}
	if len(r.Steps) > 0 {
		var parts []string
		for i, st := range r.Steps {
			var asked []string
			for _, c := range st.Candidates {
				asked = append(asked, c.Email)
			}
			p := strconv.Itoa(i+1) + ". " + st.Rule + "; asked: " + strings.Join(asked, ", ")
			switch {
			case st.Decision == access.DecisionNone && i == r.Current && r.State == access.StatePending:
				p += "; waiting"
			case st.Decision == access.DecisionNone:
				p += "; not decided"
			default:
				p += "; " + string(st.Decision) + " by " + st.DecidedBy.Email + " at " + ts(st.DecidedAt)
				if st.Comment != "" {
					p += " (" + st.Comment + ")"
				}
			}
			if st.Escalated {
				p += "; escalated"
			}
			parts = append(parts, p)
		}
		chain = strings.Join(parts, " | ")
	}
	decision, approvedAt := "approved", ts(r.DecidedAt)
	switch r.State {
	case access.StateDenied:
		decision, approvedAt = "denied", ""
	case access.StatePending, access.StateCancelled, access.StateTimedOut:
		decision, approvedAt = "", ""
	}
	revokedBy := ""
	if r.EndReason == access.ReasonRevoked {
		revokedBy = r.EndedBy.Email
	}
	return []string{r.ID, r.Requester.Name, r.Requester.Email, r.App, r.Role, r.Policy, ts(r.CreatedAt),
		r.Justification, policy.FormatDuration(r.Duration), chain, strings.Join(approvers, ";"), approvedAt, decision,
		ts(r.AccessStart()), ts(r.AccessEnd()), ts(r.ProvisionedAt), ts(r.DeprovisionedAt), r.ExportStatus(),
		string(r.EndReason), revokedBy, r.PolicyVersion}
}

// TestExportRowsMatchReference exports requests with awkward cells (formula
// starts, quotes, commas and line breaks at every offset of the eight-byte
// scan, leading Unicode spaces, `\.`) and timestamps from year 1 to past
// 9999, before 1970 and on leap days, through the real store and
// handlers.Service.ExportAccess, and compares the file byte for byte with
// encoding/csv writing the neutralised reference rows.
func TestExportRowsMatchReference(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	awkward := []string{"", "=cmd", "+1", "-2", "@x", "\tx", "\rx", " lead", "\u00a0nbsp", "\u2003em", `\.`, `\.x`,
		`say "hi"`, "a,b", "x\ny", "Zoë Ørsted", "plain text well past eight bytes", "日本語のテキスト"}
	cell := func() string {
		if rnd.IntN(3) == 0 {
			return awkward[rnd.IntN(len(awkward))]
		}
		b := []byte(strings.Repeat("abcdefgh", 1+rnd.IntN(3)))
		for k := rnd.IntN(3); k > 0; k-- {
			b[rnd.IntN(len(b))] = ",\"\r\n=' "[rnd.IntN(7)]
		}
		return string(b)
	}
	times := []time.Time{
		{},
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1600, 2, 29, 12, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 2, 29, 23, 0, 1, 5, time.UTC),
		time.Date(2026, 3, 1, 9, 30, 0, 0, time.FixedZone("", -5*3600)),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-3, 6, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 0; i < 500; i++ {
		times = append(times, time.Unix(rnd.Int64N(1<<37)-1<<36, 0))
	}
	pick := func() time.Time { return times[rnd.IntN(len(times))] }
	states := []access.State{access.StatePending, access.StateProvisioning, access.StateActive, access.StateDeprovisioning,
		access.StateExpired, access.StateRevoked, access.StateDenied, access.StateCancelled, access.StateTimedOut, access.StateFailed}
	person := func() access.Person { return access.Person{Email: cell(), Name: cell()} }

	db, err := store.Open(filepath.Join(t.TempDir(), "rows.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	created := base
	var want []*access.Request
	err = db.Update(fixtureNow, func(tx *store.Tx) error {
		for i := 0; i < 400; i++ {
			created = created.Add(time.Minute)
			r := &access.Request{Policy: cell(), PolicyVersion: cell(), App: cell(), Role: cell(), Requester: person(),
				Justification: cell(), Duration: time.Duration(rnd.Int64N(int64(90 * 24 * time.Hour))), State: states[rnd.IntN(len(states))],
				CreatedAt: created, DecidedAt: pick(), ProvisionedAt: pick(), EndsAt: pick(), DeprovisionedAt: pick(),
				EndReason: []access.Reason{"", access.ReasonExpired, access.ReasonRevoked, access.ReasonOffboarded}[rnd.IntN(4)], EndedBy: person()}
			if i%7 == 0 {
				r.CreatedAt = pick() // timestamps the fast path must refuse, in the first column too
				if r.CreatedAt.IsZero() || !r.CreatedAt.Before(fixtureNow) {
					r.CreatedAt = created
				}
			}
			for s := rnd.IntN(4); s > 0; s-- {
				st := access.Step{Rule: cell(), Escalated: rnd.IntN(2) == 0, Comment: cell(), DecidedAt: pick(),
					Decision: []access.Decision{access.DecisionNone, access.DecisionApproved, access.DecisionDenied}[rnd.IntN(3)], DecidedBy: person()}
				for c := rnd.IntN(3); c > 0; c-- {
					st.Candidates = append(st.Candidates, person())
				}
				r.Steps = append(r.Steps, st)
			}
			r.Current = rnd.IntN(len(r.Steps) + 1)
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			want = append(want, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	res, err := service(db, policies(t)).ExportAccess(&got, handlers.ExportParams{From: time.Date(-1000, 1, 1, 0, 0, 0, 0, time.UTC), To: fixtureNow})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != len(want) {
		t.Fatalf("exported %d rows, want %d", res.Rows, len(want))
	}
	// The export's order is (CreatedAt, ID); sort the reference the same way.
	var rows [][]string
	err = db.View(func(tx *store.Tx) error {
		return tx.ForEachRequest(fixtureNow, func(r *access.Request) error {
			if r.ChangedSince(fixtureNow) { // as the export does: the row as it stood at the period's end
				c := r.AsOf(fixtureNow)
				r = &c
			}
			rows = append(rows, referenceRow(r))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	var ref bytes.Buffer
	cw := csv.NewWriter(&ref)
	if err := cw.Write(handlers.AccessHeader); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		for i := range row {
			row[i] = csvw.Neutralise(row[i])
		}
		if err := cw.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	cw.Flush()
	if len(rows) != len(want) {
		t.Fatalf("reference has %d rows, want %d", len(rows), len(want))
	}
	gl, wl := strings.SplitAfter(got.String(), "\n"), strings.SplitAfter(ref.String(), "\n")
	for i := 0; i < len(gl) && i < len(wl); i++ {
		if gl[i] != wl[i] {
			t.Fatalf("line %d:\n got %q\nwant %q", i+1, gl[i], wl[i])
		}
	}
	if !bytes.Equal(got.Bytes(), ref.Bytes()) {
		t.Fatalf("export differs from the reference (%d vs %d bytes)", got.Len(), ref.Len())
	}

}
