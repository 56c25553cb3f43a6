package bench

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// scale is the size of every fixture. full is the design size of the issue;
// small is for a quick look (CI could run it) and keeps every ratio meaningful.
type scale struct {
	name       string
	people     int // directory size
	policies   int
	requests   int // requests in the export/start store (each carries its grant)
	active     int // of which active grants
	events     int // audit events in the export/start store
	expiryLow  int // active grants of the expiry baseline store
	expiryHigh int // active grants of the expiry store under test
	clicks     int // concurrent button clicks
}

var scales = map[string]scale{
	"full":  {name: "full", people: 20_000, policies: 1_000, requests: 1_000_000, active: 100_000, events: 1_000_000, expiryLow: 10_000, expiryHigh: 100_000, clicks: 200},
	"small": {name: "small", people: 2_000, policies: 100, requests: 50_000, active: 10_000, events: 100_000, expiryLow: 1_000, expiryHigh: 10_000, clicks: 200},
	// tiny is what the smoke tests build: enough to exercise every builder.
	"tiny": {name: "tiny", people: 50, policies: 5, requests: 300, active: 40, events: 500, expiryLow: 20, expiryHigh: 60, clicks: 8},
}

// cur is the scale of this process, from KEYCARD_BENCH_SCALE (default full).
var cur = scales["full"]

// fixtureDir holds the cached fixture files of this process.
var fixtureDir string

func TestMain(m *testing.M) {
	if s := os.Getenv("KEYCARD_BENCH_SCALE"); s != "" {
		sc, ok := scales[s]
		if !ok {
			fmt.Fprintf(os.Stderr, "KEYCARD_BENCH_SCALE=%q: want full, small or tiny\n", s)
			os.Exit(2)
		}
		cur = sc
	}
	dir, err := os.MkdirTemp("", "keycard-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = dir
	code := m.Run()
	closeFixtures()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// verdict is one row of the BENCHMARKS.md table.
type verdict struct {
	Budget   string  // the budget in words
	Figure   float64 // what keycard does
	Baseline float64 // the floor or reference measured in the same run
	Unit     string  // unit of Figure and Baseline
	Ratio    float64 // the compared quantity (figure/baseline unless said)
	Met      bool
	Note     string // how the ratio is read, extra figures
}

var reportMu sync.Mutex

// report publishes v as benchmark metrics and, when KEYCARD_BENCH_REPORT names
// a file, appends it there as one tab-separated line for scripts/bench. A
// benchmark function runs several times while the framework sizes b.N; the
// script keeps the last line of each name.
func report(b *testing.B, v verdict) {
	b.Helper()
	b.ReportMetric(v.Figure, v.Unit)
	b.ReportMetric(v.Baseline, "baseline-"+v.Unit)
	b.ReportMetric(v.Ratio, "ratio")
	met := 0.0
	if v.Met {
		met = 1
	}
	b.ReportMetric(met, "met")
	path := os.Getenv("KEYCARD_BENCH_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	yes := "no"
	if v.Met {
		yes = "yes"
	}
	clean := func(s string) string { return strings.NewReplacer("\t", " ", "\n", " ").Replace(s) }
	if _, err := fmt.Fprintf(f, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name(), cur.name,
		fmtNum(v.Figure)+" "+v.Unit, fmtNum(v.Baseline)+" "+v.Unit, fmtNum(v.Ratio), clean(v.Budget), yes, clean(v.Note)); err != nil {
		b.Fatal(err)
	}
}

// fmtNum prints a figure with three significant digits and thousands
// separators where they help.
func fmtNum(x float64) string {
	switch {
	case x >= 1000:
		s := fmt.Sprintf("%.0f", x)
		var out []byte
		for i := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[i])
		}
		return string(out)
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	case x >= 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}
