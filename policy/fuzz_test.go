package policy

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse checks that Parse never panics and always answers either a Set
// or *Errors whose every entry names the file. Seeds: testdata/fuzz/FuzzParse
// plus the example files.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"testdata/example.yaml", "../docs/examples/policy-static.yaml"} {
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(baseYAML))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f.yaml", data)
		if err == nil {
			if s == nil || len(s.Policies) == 0 {
				t.Fatalf("nil error but set %+v", s)
			}
			_ = Summary(s)
			_ = Diff(s, s)
			return
		}
		var es *Errors
		if !errors.As(err, &es) || len(*es) == 0 {
			t.Fatalf("error %T %v is not a non-empty *Errors", err, err)
		}
		for _, e := range *es {
			if e.File != "f.yaml" {
				t.Fatalf("error without the file: %+v", e)
			}
		}
	})
}
