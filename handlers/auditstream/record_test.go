package auditstream

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keycard/access"
)

var t0 = time.Date(2026, 3, 2, 9, 30, 0, 123456789, time.UTC)

func sampleEvent() access.Event {
	e := access.Event{Seq: 7, ID: "e7", Time: t0, Type: access.EvGrantActive, Actor: "keycard", Subject: "dev@example.com",
		Policy: "prod-db", RequestID: "r1", Detail: `{"group":"prod-db-admins","until":"2026-03-02T13:30:00Z"}`}
	e.Seal(access.GenesisHash)
	return e
}

// The field names are a documented interface for SIEM parsers: this test
// pins them (docs/operations.md "Audit stream" must change with it).
func TestRecordFieldNames(t *testing.T) {
	e := sampleEvent()
	line, err := encode(FormatJSON, NewRecord(e, "keycard-prod", "v1.4.0"), e.Time)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":7,"event_id":"e7","occurred_at":"2026-03-02T09:30:00.123456789Z","type":"grant.active","actor":"keycard",` +
		`"user_email":"dev@example.com","policy":"prod-db","request_id":"r1","detail":{"group":"prod-db-admins","until":"2026-03-02T13:30:00Z"},` +
		`"prev_hash":"` + access.GenesisHash + `","hash":"` + e.Hash + `","instance":"keycard-prod","keycard_version":"v1.4.0"}` + "\n"
	if string(line) != want {
		t.Fatalf("line:\n%s\nwant:\n%s", line, want)
	}
}

func TestRecordDetail(t *testing.T) {
	for _, c := range []struct{ detail, want string }{
		{"", `{}`},
		{`{"a":1}`, `{"a":1}`},
		{`not json`, `{"raw":"not json"}`},
		{`[1,2]`, `{"raw":"[1,2]"}`},
	} {
		e := sampleEvent()
		e.Detail = c.detail
		if got := string(NewRecord(e, "", "").Detail); got != c.want {
			t.Errorf("detail %q: got %s, want %s", c.detail, got, c.want)
		}
	}
}

func TestSplunkHECEnvelope(t *testing.T) {
	e := sampleEvent()
	line, err := encode(FormatSplunkHEC, NewRecord(e, "kc1", ""), e.Time)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(line), `{"time":1772443800.123,"host":"kc1","source":"keycard","sourcetype":"keycard:audit","event":{"seq":7,`) {
		t.Fatalf("envelope: %s", line)
	}
	var env struct {
		Event Record `json:"event"`
	}
	if err := json.Unmarshal(line, &env); err != nil || env.Event.Hash != e.Hash {
		t.Fatalf("event inside the envelope: %+v, %v", env.Event, err)
	}
}

func TestSignVerify(t *testing.T) {
	const secret Secret = "0123456789abcdef0123"
	body := []byte("{\"seq\":1}\n")
	now := time.Unix(1772443800, 0)
	ts := "1772443800"
	sig := Sign(secret, ts, body)
	// The known answer docs/operations.md gives receivers (also what its
	// Python and openssl recipes print).
	if want := "sha256=e077d65c3dabf306bbc644f01d1b3a26189ab389856d94fe3c3ee07bab0e0509"; sig != want {
		t.Fatalf("signature %q, want %q", sig, want)
	}
	cases := []struct {
		name      string
		secret    Secret
		ts, sig   string
		body      []byte
		now       time.Time
		wantError bool
	}{
		{"valid", secret, ts, sig, body, now, false},
		{"valid within tolerance", secret, ts, sig, body, now.Add(4 * time.Minute), false},
		{"tampered body", secret, ts, sig, []byte("{\"seq\":2}\n"), now, true},
		{"wrong key", "another-key-0123456789", ts, sig, body, now, true},
		{"timestamp not signed alike", secret, "1772443801", sig, body, now, true},
		{"replayed later", secret, ts, sig, body, now.Add(10 * time.Minute), true},
		{"bad timestamp", secret, "yesterday", sig, body, now, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.secret, c.ts, c.sig, c.body, c.now, 5*time.Minute)
			if (err != nil) != c.wantError {
				t.Fatalf("Verify = %v, want error %v", err, c.wantError)
			}
		})
	}
}

func TestFileSinkAppendsAndSyncs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	if err := os.WriteFile(path, []byte("earlier line\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	sink, err := Open(Config{Kind: KindFile, Path: path, Format: FormatJSON}, SinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"{\"seq\":1}\n", "{\"seq\":2}\n{\"seq\":3}\n"} {
		if err := sink.Deliver(context.Background(), Batch{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := "earlier line\n{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3}\n"; string(got) != want {
		t.Fatalf("file:\n%s", got)
	}
	if _, err := Open(Config{Kind: KindFile, Path: filepath.Join(t.TempDir(), "missing", "dir", "x")}, SinkOptions{}); err == nil || !strings.Contains(err.Error(), EnvURL) {
		t.Fatalf("bad path: %v", err)
	}
	var out bytes.Buffer
	std, _ := Open(Config{Kind: KindStdout}, SinkOptions{Stdout: &out})
	if err := std.Deliver(context.Background(), Batch{Body: []byte("x\n")}); err != nil || out.String() != "x\n" {
		t.Fatalf("stdout sink: %q %v", out.String(), err)
	}
}
