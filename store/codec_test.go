package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"keycard/access"

	bolt "go.etcd.io/bbolt"
)

// fillAll sets every field reachable from v to a distinct non-zero value, so
// a field the codec forgets cannot round-trip.
func fillAll(t *testing.T, v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)) + "é" + string(rune('0'+*n%10)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n) * 1_000_003)
	case reflect.Uint64:
		v.SetUint(uint64(*n) * 7)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fillAll(t, s.Index(i), n)
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fillAll(t, p.Elem(), n)
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, *n%60, *n*1001, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			fillAll(t, v.Field(i), n)
		}
	default:
		t.Fatalf("fillAll: add kind %s (%s) to the test and to the request codec", v.Kind(), v.Type())
	}
}

func TestRequestCodecCoversEveryField(t *testing.T) {
	var r access.Request
	n := 0
	fillAll(t, reflect.ValueOf(&r).Elem(), &n)
	v, err := encodeRequest(&r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(v)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip lost a field:\n got %+v\nwant %+v", got, r)
	}
}

func TestRequestCodecRoundTrip(t *testing.T) {
	paris := time.FixedZone("", 2*3600)
	tests := []struct {
		name string
		r    access.Request
	}{
		{"zero request", access.Request{}},
		{"pending with steps", *pendingRequest("ann@x", "db", "carol@x", "dave@x")},
		{"offset times keep their offset", access.Request{ID: "REQ-1", CreatedAt: time.Date(2026, 3, 1, 10, 0, 0, 5, paris)}},
		{"times before 1970 and far ahead", access.Request{RootStart: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC), EndsAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"steps without candidates", access.Request{Steps: []access.Step{{Rule: "auto"}}, Current: -1}},
		{"approval_mfa step with a push in flight", access.Request{ID: "REQ-2", MFAPollAt: time.Date(2026, 3, 1, 10, 0, 5, 0, time.UTC),
			Steps: []access.Step{{Rule: "manager", MFA: true, Challenge: &access.Challenge{Approver: access.Person{Email: "bob@x"}, Factor: "okta:push",
				Ref: "opf1/v2mst.1", UserID: "00ubob", SentAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), Deadline: time.Date(2026, 3, 1, 10, 6, 0, 0, time.UTC)}},
				{Rule: "group:sec", MFA: true, MFANote: "The MFA push to Carol timed out unanswered."}}}},
		{"approval_mfa push by a delegate after a delegated step, scheduled", access.Request{ID: "REQ-3", State: access.StatePending, StartAt: time.Date(2026, 3, 7, 2, 0, 0, 0, time.UTC),
			Steps: []access.Step{{Rule: "manager", Decision: access.DecisionApproved, OnBehalfOf: access.Person{Email: "bob@x"}, Delegation: "DLG-1"},
				{Rule: "group:sec", MFA: true, Challenge: &access.Challenge{Approver: access.Person{Email: "dave@x"}, Factor: "okta:push", Ref: "r", UserID: "00udave",
					OnBehalfOf: access.Person{Email: "carol@x"}, Delegation: "DLG-2"}}}}},
		{"approval_mfa step approved", access.Request{Steps: []access.Step{{Rule: "manager", MFA: true, Decision: access.DecisionApproved, MFAFactor: "okta:push"}}}},
		{"scheduled start", access.Request{ID: "REQ-2", State: access.StateScheduled, StartAt: time.Date(2026, 3, 7, 2, 0, 0, 0, paris), StartRetryAt: time.Date(2026, 3, 7, 1, 1, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := encodeRequest(&tt.r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeRequest(v)
			if err != nil {
				t.Fatal(err)
			}
			// Compare through JSON too: what the store returned before the
			// binary encoding is what it must return now.
			want, _ := json.Marshal(tt.r)
			have, _ := json.Marshal(got)
			if string(want) != string(have) || !got.CreatedAt.Equal(tt.r.CreatedAt) {
				t.Fatalf("round trip:\n got %s\nwant %s", have, want)
			}
		})
	}
}

func TestDecodeRequestRefusesCorruptValues(t *testing.T) {
	r := pendingRequest("ann@x", "db", "carol@x")
	r.ID = "REQ-1001"
	v, err := encodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		v    []byte
	}{
		{"empty", nil},
		{"unknown format", []byte{9, 1, 2}},
		{"trailing bytes", append(append([]byte(nil), v...), 0, 0)}, // an empty delegation section (0), then a stray byte
		{"huge slice count", []byte{requestFormatBinary, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	// A record written before Request.Kind existed ends right after Rev
	// (Kind "" encodes as one length byte), one written before StartedAt
	// right after Kind (a zero time is one byte), one written before
	// StartAt right after StartedAt (StartAt and StartRetryAt are two more
	// zero bytes): those cuts are valid old records.
	for cut := 1; cut < len(v); cut++ {
		if cut == len(v)-2 || cut == len(v)-3 || cut == len(v)-4 {
			continue
		}
		tests = append(tests, struct {
			name string
			v    []byte
		}{"truncated", v[:cut]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeRequest(tt.v); err == nil {
				t.Fatalf("decoded a corrupt value (%d bytes)", len(tt.v))
			}
		})
	}
}

// downgrade turns db back into a file of schema version (1 or 2): the
// requests move to the legacy bucket keyed by id string, as JSON for version
// 1 and in the binary encoding for version 2, and the id sequence moves with
// them.
func downgrade(t *testing.T, db *DB, version uint64, want []access.Request) {
	t.Helper()
	err := db.bolt.Update(func(btx *bolt.Tx) error {
		legacy, err := btx.CreateBucket(bLegacyRequests)
		if err != nil {
			return err
		}
		b := btx.Bucket(bRequests)
		for _, r := range want {
			var v []byte
			if version == 1 {
				v, err = json.Marshal(r)
			} else {
				v, err = encodeRequest(&r)
			}
			if err != nil {
				return err
			}
			if err := legacy.Put([]byte(r.ID), v); err != nil {
				return err
			}
			key, _ := requestKey(r.ID)
			if err := b.Delete(key); err != nil {
				return err
			}
		}
		if err := legacy.SetSequence(b.Sequence()); err != nil {
			return err
		}
		if err := b.SetSequence(0); err != nil {
			return err
		}
		return btx.Bucket(bMeta).Put(keySchema, u64(version))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrationFromOlderSchemas opens files of schema versions 1 (JSON
// requests keyed by id string) and 2 (binary requests keyed by id string):
// Open rewrites them in the binary encoding under 8-byte request numbers,
// deletes the legacy bucket, keeps the id sequence, the requests read back
// unchanged and their indexes still find them.
func TestMigrationFromOlderSchemas(t *testing.T) {
	for _, version := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("from version %d", version), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "old.db")
			db, err := Open(path, Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			var want []access.Request
			update(t, db, t0, func(tx *Tx) error {
				for _, who := range []string{"ann@x", "bob@x", "cid@x"} {
					r := pendingRequest(who, "db", "carol@x")
					if err := tx.PutRequest(r); err != nil {
						return err
					}
					want = append(want, *r)
				}
				return nil
			})
			downgrade(t, db, version, want)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = Open(path, Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.View(func(tx *Tx) error {
				if tx.tx.Bucket(bLegacyRequests) != nil {
					t.Errorf("the legacy requests bucket is still there")
				}
				if v := tx.tx.Bucket(bMeta).Get(keySchema); binary.BigEndian.Uint64(v) != schemaVersion {
					t.Errorf("schema version %d, want %d", binary.BigEndian.Uint64(v), schemaVersion)
				}
				for _, w := range want {
					key, _ := requestKey(w.ID)
					if v := tx.tx.Bucket(bRequests).Get(key); len(v) == 0 || v[0] != requestFormatBinary {
						t.Errorf("%s stored as %q…", w.ID, v[:min(len(v), 8)])
					}
					got, err := tx.Request(w.ID)
					if err != nil {
						return err
					}
					wj, _ := json.Marshal(w)
					gj, _ := json.Marshal(got)
					if string(wj) != string(gj) {
						t.Errorf("%s after migration:\n got %s\nwant %s", w.ID, gj, wj)
					}
				}
				waiting, err := tx.WaitingOn("carol@x")
				if err == nil && len(waiting) != len(want) {
					t.Errorf("WaitingOn after migration: %d requests, want %d", len(waiting), len(want))
				}
				var walked []string
				err = tx.ForEachRequest(t0.Add(time.Hour), func(r *access.Request) error {
					walked = append(walked, r.ID)
					return nil
				})
				if want := []string{"REQ-1001", "REQ-1002", "REQ-1003"}; !reflect.DeepEqual(walked, want) {
					t.Errorf("ForEachRequest after migration: %v, want %v", walked, want)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			next := pendingRequest("dan@x", "db", "carol@x")
			update(t, db, t0, func(tx *Tx) error { return tx.PutRequest(next) })
			if next.ID != "REQ-1004" {
				t.Errorf("the first request after the migration is %s, want REQ-1004", next.ID)
			}
		})
	}
}

// TestMigrationRefusesForeignKeys: a legacy key that is not REQ-<n> cannot
// be given a number, so the migration fails and the file stays as it was.
func TestMigrationRefusesForeignKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r := pendingRequest("ann@x", "db", "carol@x")
	update(t, db, t0, func(tx *Tx) error { return tx.PutRequest(r) })
	downgrade(t, db, 2, []access.Request{*r})
	err = db.bolt.Update(func(btx *bolt.Tx) error {
		return btx.Bucket(bLegacyRequests).Put([]byte("REQ-01001"), []byte{requestFormatBinary})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(path, Options{NoSync: true}); err == nil {
		_ = db.Close()
		t.Fatal("opened a file whose legacy requests cannot be numbered")
	}
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = b.View(func(btx *bolt.Tx) error {
		if v := binary.BigEndian.Uint64(btx.Bucket(bMeta).Get(keySchema)); v != 2 {
			t.Errorf("schema version %d after a failed migration, want 2", v)
		}
		if btx.Bucket(bLegacyRequests).Get([]byte("REQ-1001")) == nil {
			t.Errorf("the failed migration lost REQ-1001")
		}
		return nil
	})
}

func TestRequestKey(t *testing.T) {
	tests := []struct {
		id   string
		want uint64
		ok   bool
	}{
		{"REQ-1001", 1001, true},
		{"REQ-18446744073709551615", 1<<64 - 1, true},
		{"REQ-18446744073709551616", 0, false},
		{"REQ-01001", 0, false},
		{"REQ-+1001", 0, false},
		{"REQ-", 0, false},
		{"REQ-10a1", 0, false},
		{"req-1001", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			k, ok := requestKey(tt.id)
			if ok != tt.ok || (ok && binary.BigEndian.Uint64(k) != tt.want) {
				t.Errorf("requestKey(%q) = %x, %v; want %d, %v", tt.id, k, ok, tt.want, tt.ok)
			}
			if kb, okb := appendRequestKey([]byte("x"), []byte(tt.id)); okb != ok || (ok && !bytes.Equal(kb[1:], k)) {
				t.Errorf("appendRequestKey disagrees: %x, %v", kb, okb)
			}
		})
	}
}

// TestDecodeRecordWithoutKind: a request stored before Request.Kind existed
// decodes with Kind "", and a review removal keeps its Kind.
func TestDecodeRecordWithoutKind(t *testing.T) {
	r := pendingRequest("ann@x", "db", "carol@x")
	r.ID = "REQ-1001"
	v, err := encodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	old, err := decodeRequest(v[:len(v)-4]) // Kind, StartedAt, StartAt, StartRetryAt: one byte each when empty
	if err != nil || old.Kind != "" || old.ID != r.ID {
		t.Fatalf("legacy record: %+v %v", old.ID, err)
	}
	r.Kind = access.KindReviewRemoval
	if v, err = encodeRequest(r); err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(v)
	if err != nil || got.Kind != access.KindReviewRemoval {
		t.Fatalf("kind %q %v", got.Kind, err)
	}
}

// A record in the previous binary format (before steps carried
// EscalatedAt) still decodes.
func TestDecodeFormatV2(t *testing.T) {
	r := access.Request{ID: "REQ-1001", Policy: "p", State: access.StateActive}
	v, err := encodeRequest(&r)
	if err != nil {
		t.Fatal(err)
	}
	v[0] = requestFormatV2 // identical without steps
	got, err := decodeRequest(v)
	if err != nil || got.ID != r.ID || got.State != r.State {
		t.Fatalf("format 2 record: %+v %v", got, err)
	}
}
