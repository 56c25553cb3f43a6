package handlers

import (
	"strings"
	"testing"
	"time"

	"keycard/access"
)

func TestRecordDigestInDetail(t *testing.T) {
	d := RecordDigest(&access.Request{ID: "REQ-1001", Justification: "x", CreatedAt: time.Unix(1, 0)})
	fake := strings.Repeat("a", 64)
	cases := []struct {
		name, detail string
	}{
		{"empty", ""},
		{"map", `{"how":"auto"}`},
		{"earlier record", `{"record":"` + fake + `","z":1}`},
		// A value that ends like the member must not be read as it.
		{"lookalike value", `{"comment":"\",\"record\":\"` + fake + `\"}"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := encodeWithRecord(c.detail, d)
			if r, ok := recordOf(got); !ok || r != d {
				t.Fatalf("recordOf(%s) = %q %v, want %s", got, r, ok, d)
			}
		})
	}
	if _, ok := recordOf(`{"comment":"\",\"record\":\"` + fake + `\"}"}`); ok {
		t.Fatal("a lookalike string value was read as the record digest")
	}
	a := access.Request{ID: "REQ-1", Justification: "ab", Steps: []access.Step{{Rule: "c"}}}
	b := access.Request{ID: "REQ-1", Justification: "a", Steps: []access.Step{{Rule: "bc"}}}
	if RecordDigest(&a) == RecordDigest(&b) {
		t.Fatal("record encoding is ambiguous")
	}
}

// SetUnreachedBatch makes complete judge the requests the export's walk did
// not reach n at a time (one extra walk of the chain each), for the
// external tests; the tests of this package do not run in parallel.
func SetUnreachedBatch(t testing.TB, n int) {
	old := unreachedBatch
	unreachedBatch = n
	t.Cleanup(func() { unreachedBatch = old })
}

// Only a request id's canonical spelling names its number: a forged
// "REQ-01005" must not mark request 1005 as reached by the export's walk.
func TestRequestNumberCanonical(t *testing.T) {
	for _, c := range []struct {
		id string
		n  uint64
		ok bool
	}{
		{"REQ-1005", 1005, true},
		{"REQ-0", 0, true},
		{"REQ-01005", 0, false},
		{"REQ-+1005", 0, false},
		{"REQ-", 0, false},
		{"req-1005", 0, false},
	} {
		n, ok := requestNumber(c.id)
		if ok != c.ok || (ok && n != c.n) {
			t.Errorf("requestNumber(%q) = %d, %v; want %d, %v", c.id, n, ok, c.n, c.ok)
		}
	}
}
