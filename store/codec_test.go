package store

import (
	"encoding/json"
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
		{"trailing bytes", append(append([]byte(nil), v...), 0)},
		{"huge slice count", []byte{requestFormatBinary, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for cut := 1; cut < len(v); cut++ {
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

// TestMigrationRewritesJSONRequests opens a schema-version-1 file whose
// requests are JSON: Open rewrites them in the binary encoding, they read
// back unchanged, and their indexes still find them.
func TestMigrationRewritesJSONRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var want []access.Request
	update(t, db, t0, func(tx *Tx) error {
		for _, who := range []string{"ann@x", "bob@x"} {
			r := pendingRequest(who, "db", "carol@x")
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			want = append(want, *r)
		}
		return nil
	})
	// Turn the file back into version 1 with JSON values.
	err = db.bolt.Update(func(btx *bolt.Tx) error {
		for _, r := range want {
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := btx.Bucket(bRequests).Put([]byte(r.ID), v); err != nil {
				return err
			}
		}
		return btx.Bucket(bMeta).Put(keySchema, u64(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *Tx) error {
		for _, w := range want {
			if v := tx.tx.Bucket(bRequests).Get([]byte(w.ID)); len(v) == 0 || v[0] != requestFormatBinary {
				t.Errorf("%s still stored as %q…", w.ID, v[:min(len(v), 8)])
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
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
