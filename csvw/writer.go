package csvw

import (
	"bytes"
	"encoding/binary"
	"io"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// Writer is an RFC 4180 CSV writer that neutralises formula cells: a cell
// beginning with =, +, -, @, tab or carriage return gets a leading ' so a
// spreadsheet shows it as text instead of running it (SPEC "Access export";
// OWASP "CSV Injection").
//
// Its bytes are exactly those of encoding/csv.Writer (comma, LF line ends)
// writing Neutralise(cell), but it neutralises and quotes in one pass over
// each cell, straight into its output buffer: the export's budget is half the
// throughput of raw encoding/csv (issue 6), and going through csv.Writer plus
// a neutralised copy of every row cost a third of the export's time
// (internal/bench BenchmarkExportAccess profile).
type Writer struct {
	out   io.Writer
	buf   []byte // output not yet written; the record being built is at its end
	cells int    // cells of the record being built
	err   error  // the first write error: every later call returns it

	scratch []byte // TimeCell's copy of a timestamp that must be neutralised
}

// writerBuffer is when the output buffer is written out: large enough that
// a million-row export makes a few thousand writes, small enough to stay out
// of the heap budget.
const writerBuffer = 64 << 10

// NewWriter wraps w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{out: w, buf: make([]byte, 0, writerBuffer+4<<10)}
}

// Write writes one record, neutralising each cell.
func (w *Writer) Write(rec []string) error {
	for _, c := range rec {
		w.Cell(c)
	}
	return w.EndRecord()
}

// Flush writes what is buffered and reports any write error.
func (w *Writer) Flush() error {
	if w.err == nil && len(w.buf) > 0 {
		_, w.err = w.out.Write(w.buf)
	}
	w.buf = w.buf[:0]
	return w.err
}

// Cell appends one cell to the record being built (a comma first unless it
// is the record's first); EndRecord ends the record. The access export
// builds its rows with these, straight from the request, so a row costs no
// []string and no string per formatted cell.
func (w *Writer) Cell(c string) {
	w.comma()
	w.buf = appendCell(w.buf, bytesOf(c))
}

// CellBytes is Cell for a cell formatted into a scratch buffer.
func (w *Writer) CellBytes(c []byte) {
	w.comma()
	w.buf = appendCell(w.buf, c)
}

// SafeCell appends a cell the caller built and knows needs neither quotes nor
// neutralising (digits, letters and the punctuation of RFC 3339).
func (w *Writer) SafeCell(c string) {
	w.comma()
	w.buf = append(w.buf, c...)
}

// TimeCell appends AppendTS(t) as a cell. RFC 3339 in UTC holds no comma,
// quote or line break and starts with a digit from year 1 to 9999: written
// straight to the output. Other years (a leading '-' is a formula start) go
// through the neutralising path.
func (w *Writer) TimeCell(t time.Time) {
	w.comma()
	start := len(w.buf)
	w.buf = AppendTS(w.buf, t)
	if len(w.buf) > start && (w.buf[start] < '0' || w.buf[start] > '9') {
		w.scratch = append(w.scratch[:0], w.buf[start:]...)
		w.buf = appendCell(w.buf[:start], w.scratch)
	}
}

func (w *Writer) comma() {
	if w.cells++; w.cells > 1 {
		w.buf = append(w.buf, ',')
	}
}

// EndRecord ends the record being built and writes out the buffer once it
// holds writerBuffer bytes.
func (w *Writer) EndRecord() error {
	w.buf = append(w.buf, '\n')
	w.cells = 0
	if len(w.buf) >= writerBuffer {
		return w.Flush()
	}
	return w.err
}

// bytesOf views s as bytes without copying; the bytes are only read.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// formulaStart reports whether a cell starting with c must be neutralised.
func formulaStart(c byte) bool {
	switch c {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// SWAR constants: one byte repeated in each of a word's eight bytes.
const (
	lows  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasByte reports whether any byte of x is c (the "has zero byte" test of
// x XOR c repeated: exact as a yes/no answer).
func hasByte(x uint64, c byte) bool {
	y := x ^ (lows * uint64(c))
	return (y-lows)&^y&highs != 0
}

// needsQuotes reports whether c holds a comma, quote, CR or LF, eight bytes
// at a time: this scan runs over every byte of a million-row export.
func needsQuotes(c []byte) bool {
	i := 0
	for ; i+8 <= len(c); i += 8 {
		x := binary.LittleEndian.Uint64(c[i:])
		if hasByte(x, ',') || hasByte(x, '"') || hasByte(x, '\r') || hasByte(x, '\n') {
			return true
		}
	}
	for ; i < len(c); i++ {
		switch c[i] {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	return false
}

// appendCell appends Neutralise(c) as encoding/csv writes a field: quoted
// when it holds a comma, quote, CR or LF, starts with a space (unicode.IsSpace),
// or is `\.`; inside quotes a quote is doubled and everything else is copied.
func appendCell(b, c []byte) []byte {
	if len(c) == 0 {
		return b
	}
	prefix := formulaStart(c[0])
	quote := (len(c) == 2 && c[0] == '\\' && c[1] == '.') || needsQuotes(c)
	if !quote && !prefix {
		if c[0] < utf8.RuneSelf {
			quote = c[0] == ' ' || c[0] == '\t' || c[0] == '\n' || c[0] == '\v' || c[0] == '\f' || c[0] == '\r'
		} else {
			r, _ := utf8.DecodeRune(c)
			quote = unicode.IsSpace(r)
		}
	}
	if !quote {
		if prefix {
			b = append(b, '\'')
		}
		return append(b, c...)
	}
	b = append(b, '"')
	if prefix {
		b = append(b, '\'')
	}
	for {
		i := bytes.IndexByte(c, '"')
		if i < 0 {
			b = append(b, c...)
			break
		}
		b = append(b, c[:i+1]...)
		b = append(b, '"')
		c = c[i+1:]
	}
	return append(b, '"')
}

// Neutralise prefixes a formula-looking cell with '.
func Neutralise(c string) string {
	if c == "" {
		return c
	}
	switch c[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + c
	}
	return c
}

// AppendTS appends t in RFC 3339, UTC, to b (nothing for the zero time)
// without allocating. Years 1 to 9999 take a direct path from the Unix seconds (civil-from-days, H. Hinnant, "chrono-
// compatible low-level date algorithms"): time.Format's general layout
// interpreter was a tenth of the export's time for its seven timestamps a
// row. Others go through AppendFormat.
func AppendTS(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	const (
		unixToYear1 = 62135596800 // seconds from 0001-01-01 to 1970-01-01
		unixToY10k  = 253402300800
	)
	sec := t.Unix()
	if sec < -unixToYear1 || sec >= unixToY10k {
		return t.UTC().AppendFormat(b, time.RFC3339)
	}
	days, rem := sec/86400, sec%86400
	if rem < 0 {
		days, rem = days-1, rem+86400
	}
	// Days since 0000-03-01, in 400-year eras of 146097 days (non-negative
	// here: year 1 is in era 0).
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	y := yoe + era*400
	if m <= 2 {
		y++
	}
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), 'T')
	h, mi, s := rem/3600, rem/60%60, rem%60
	return append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), 'Z')
}
