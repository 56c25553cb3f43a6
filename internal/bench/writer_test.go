package bench

import (
	"bytes"
	"encoding/csv"
	"math/rand/v2"
	"testing"

	"keycard/csvw"
)

// TestWriterMatchesEncodingCSV pins the export's hand-written CSV writer to
// encoding/csv byte for byte: the faster writer must not change one byte of an
// auditor's file (the handlers golden files pin the export rows too).
func TestWriterMatchesEncodingCSV(t *testing.T) {
	tests := []struct {
		name string
		rec  []string
	}{
		{"plain", []string{"REQ-1001", "Ann Lee", "ann@example.com"}},
		{"empty cells", []string{"", "", ""}},
		{"formula cells", []string{"=1+1", "+1", "-2", "@SUM(A1)", "\t=1", "\r\n=x"}},
		{"quotes commas and newlines", []string{`say "hi"`, "a,b", "line\nbreak", "cr\ronly", "crlf\r\n"}},
		{"leading spaces", []string{" lead", "\u00a0nbsp", "\u2003em", "trail "}},
		{"backslash dot", []string{`\.`, `\.x`}},
		{"formula that needs quotes", []string{`=HYPERLINK("http://evil","click")`, "-a,b", "@\n"}},
		{"unicode", []string{"Zoë Ørsted", "✓", "日本語"}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("ab =+-@\t\r\n\",'\\. \u00a0é✓")
	for i := 0; i < 200; i++ {
		rec := make([]string, 1+r.IntN(4))
		for j := range rec {
			cell := make([]rune, r.IntN(8))
			for k := range cell {
				cell[k] = alphabet[r.IntN(len(alphabet))]
			}
			rec[j] = string(cell)
		}
		tests = append(tests, struct {
			name string
			rec  []string
		}{"random", rec})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want, got bytes.Buffer
			cw := csv.NewWriter(&want)
			neutral := make([]string, len(tt.rec))
			for i, c := range tt.rec {
				neutral[i] = csvw.Neutralise(c)
			}
			if err := cw.Write(neutral); err != nil {
				t.Fatal(err)
			}
			cw.Flush()
			w := csvw.NewWriter(&got)
			if err := w.Write(tt.rec); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("record %q:\n got %q\nwant %q", tt.rec, got.Bytes(), want.Bytes())
			}
		})
	}
}
