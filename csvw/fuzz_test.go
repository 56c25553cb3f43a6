package csvw_test

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"

	"keycard/csvw"
)

// FuzzWriter: whatever the cell text, the export stays parseable RFC 4180,
// every cell reads back as its neutralised self, and no cell starts with a
// character a spreadsheet would run as a formula.
func FuzzWriter(f *testing.F) {
	f.Add("=cmd|' /C calc'!A0", "plain", "a,b\n\"c\"")
	f.Add("+1", "-2", "@SUM(A1)")
	f.Add("\t=1", "\r\n", "Zoë ✓")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		var buf bytes.Buffer
		w := csvw.NewWriter(&buf)
		in := []string{a, b, c}
		if err := w.Write(in); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		r := csv.NewReader(&buf)
		r.FieldsPerRecord = 3
		rec, err := r.Read()
		if err != nil {
			t.Fatalf("unparseable output for %q: %v", in, err)
		}
		for i, cell := range rec {
			want := csvw.Neutralise(in[i])
			// encoding/csv turns \r\n inside quoted fields into \n on read.
			if cell != strings.ReplaceAll(want, "\r\n", "\n") && cell != want {
				if !(strings.Contains(want, "\r") && strings.ReplaceAll(want, "\r", "") == strings.ReplaceAll(cell, "\r", "")) {
					t.Fatalf("cell %d: read %q, want %q", i, cell, want)
				}
			}
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Fatalf("cell %d starts with a formula character: %q", i, cell)
			}
		}
	})
}
