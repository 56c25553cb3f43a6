package chart

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"keycard/access"
)

var update = flag.Bool("update", false, "rewrite the golden PNGs in testdata/")

var (
	weekFrom = time.Date(2026, 2, 23, 0, 0, 0, 0, time.UTC)
	weekTo   = weekFrom.AddDate(0, 0, 7)
)

// sample is a small fixed week: five people, three policies.
func sample() Data {
	return Data{
		Title: "keycard weekly admin access report",
		From:  weekFrom, To: weekTo,
		Hours: []AccessHours{
			{"alice@example.com", "prod-db-admin", 12}, {"alice@example.com", "aws-prod-admin", 4},
			{"bob@example.com", "prod-db-admin", 2.5},
			{"carol@example.com", "aws-prod-admin", 9}, {"carol@example.com", "okta-super-admin", 1},
			{"dave@example.com", "okta-super-admin", 6},
			{"erin@example.com", "prod-db-admin", 0.5}, {"erin@example.com", "aws-prod-admin", 0.75},
		},
		Waits: []Decision{
			{"prod-db-admin", 4 * time.Minute}, {"prod-db-admin", 11 * time.Minute}, {"prod-db-admin", 25 * time.Minute}, {"prod-db-admin", 2 * time.Minute}, {"prod-db-admin", 58 * time.Minute},
			{"aws-prod-admin", 30 * time.Minute}, {"aws-prod-admin", 95 * time.Minute},
			{"okta-super-admin", 3 * time.Minute}, {"okta-super-admin", 7 * time.Minute}, {"okta-super-admin", 9 * time.Minute},
		},
	}
}

// check decodes b and asserts its size and that it is not blank: several
// distinct colours, the palette's among them.
func check(t *testing.T, b []byte, w, h int) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if got := img.Bounds().Size(); got.X != w || got.Y != h {
		t.Fatalf("size %v, want %dx%d", got, w, h)
	}
	colours := map[[3]uint32]int{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 2 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, b >> 8}]++
		}
	}
	if len(colours) < 8 {
		t.Fatalf("only %d distinct colours: a blank image?", len(colours))
	}
	if colours[[3]uint32{0x00, 0x72, 0xB2}] < 100 {
		t.Fatalf("the first policy's blue is (nearly) absent: %d pixels", colours[[3]uint32{0x00, 0x72, 0xB2}])
	}
	return img
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden rendering (%d bytes, golden %d); look at it and run go test -update if the change is intended", name, len(got), len(want))
		os.WriteFile(filepath.Join(t.TempDir(), name), got, 0o644)
	}
}

func TestReportGolden(t *testing.T) {
	b, err := Report(sample())
	if err != nil {
		t.Fatal(err)
	}
	check(t, b, 960, 960)
	golden(t, "report.png", b)
	again, err := Report(sample())
	if err != nil || !bytes.Equal(again, b) {
		t.Fatal("two renderings of the same data differ")
	}
}

func TestPanels(t *testing.T) {
	for _, c := range []struct {
		name string
		draw func(Data) ([]byte, error)
	}{{"hours", AccessHoursPNG}, {"waits", DecisionTimesPNG}} {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.draw(sample())
			if err != nil {
				t.Fatal(err)
			}
			check(t, b, 960, 480)
		})
	}
}

func TestEmptyAndLarge(t *testing.T) {
	b, err := Report(Data{Title: "quiet week", From: weekFrom, To: weekTo})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() != 960 {
		t.Fatalf("empty report: %v", err)
	}
	var d Data
	for i := 0; i < 60; i++ {
		d.Hours = append(d.Hours, AccessHours{Person: fmt.Sprintf("user%02d@example.com", i), Policy: fmt.Sprintf("policy-%d", i%11), Hours: float64(i + 1)})
		d.Waits = append(d.Waits, Decision{Policy: fmt.Sprintf("policy-%d", i%11), Wait: time.Duration(i) * 7 * time.Minute})
	}
	b, err = Report(d)
	if err != nil {
		t.Fatal(err)
	}
	check(t, b, 960, 960)
	if _, err := Report(Data{Waits: []Decision{{"p", -time.Minute}}}); err == nil {
		t.Fatal("a negative wait was drawn")
	}
}

func TestSummarize(t *testing.T) {
	got := Summarize(sample().Waits)
	want := []PolicyWait{
		{Policy: "aws-prod-admin", N: 2, Median: 62*time.Minute + 30*time.Second, P90: 88*time.Minute + 30*time.Second},
		{Policy: "okta-super-admin", N: 3, Median: 7 * time.Minute, P90: 8*time.Minute + 36*time.Second},
		{Policy: "prod-db-admin", N: 5, Median: 11 * time.Minute, P90: 44*time.Minute + 48*time.Second},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

func TestFromRequests(t *testing.T) {
	at := func(d, h int) time.Time { return weekFrom.AddDate(0, 0, d).Add(time.Duration(h) * time.Hour) }
	step := []access.Step{{}}
	alice := access.Person{Email: "alice@example.com"}
	reqs := []access.Request{
		// 3h grant inside the week, approved after 30m.
		{Policy: "db", Privileged: true, Requester: alice, Steps: step, State: access.StateExpired,
			CreatedAt: at(1, 9).Add(-30 * time.Minute), DecidedAt: at(1, 9), ProvisionedAt: at(1, 9), EndsAt: at(1, 12), EndedAt: at(1, 12), DeprovisionedAt: at(1, 12)},
		// Started before the week: only the part inside counts (2h).
		{Policy: "db", Privileged: true, Requester: alice, Steps: step, State: access.StateExpired,
			CreatedAt: at(-1, 20), DecidedAt: at(-1, 21), ProvisionedAt: at(-1, 22), EndsAt: at(0, 2), EndedAt: at(0, 2), DeprovisionedAt: at(0, 2)},
		// Still active at the end of the week: counted to its end (5h).
		{Policy: "aws", Privileged: true, Requester: alice, Steps: step, State: access.StateActive,
			CreatedAt: at(6, 18), DecidedAt: at(6, 19), ProvisionedAt: at(6, 19), EndsAt: at(7, 4)},
		// Not privileged: no hours, but its decision counts.
		{Policy: "wiki", Requester: alice, Steps: step, State: access.StateDenied, CreatedAt: at(2, 10), DecidedAt: at(2, 11)},
		// Auto-approved, cancelled, and a review removal: no decision.
		{Policy: "wiki", Requester: alice, State: access.StateActive, CreatedAt: at(2, 10), DecidedAt: at(2, 10)},
		{Policy: "wiki", Requester: alice, Steps: step, State: access.StateCancelled, CreatedAt: at(2, 10), DecidedAt: at(2, 12)},
		{Policy: "db", Privileged: true, Kind: "review_removal", Requester: alice, ProvisionedAt: at(3, 0), DecidedAt: at(3, 0), Steps: step, State: access.StateRevoked},
	}
	d := FromRequests(reqs, weekFrom, weekTo)
	wantHours := []AccessHours{{"alice@example.com", "aws", 5}, {"alice@example.com", "db", 5}}
	if fmt.Sprint(d.Hours) != fmt.Sprint(wantHours) {
		t.Errorf("hours %v, want %v", d.Hours, wantHours)
	}
	wantWaits := []Decision{{"db", 30 * time.Minute}, {"aws", time.Hour}, {"wiki", time.Hour}}
	if fmt.Sprint(d.Waits) != fmt.Sprint(wantWaits) {
		t.Errorf("waits %v, want %v", d.Waits, wantWaits)
	}
}
