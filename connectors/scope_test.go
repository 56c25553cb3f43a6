package connectors

import (
	"context"
	"slices"
	"sync"
	"testing"

	"keycard/access"
)

// recorder is an honest in-memory provisioner that remembers every call.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) note(op, group string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, op+" "+group)
}

func (r *recorder) AddMember(_ context.Context, group, _ string) (access.Change, error) {
	r.note("add", group)
	return access.Change{}, nil
}

func (r *recorder) RemoveMember(_ context.Context, group, _ string) (access.Change, error) {
	r.note("remove", group)
	return access.Change{}, nil
}

func (r *recorder) IsMember(_ context.Context, group, _ string) (bool, error) {
	r.note("is", group)
	return true, nil
}

func TestScoped(t *testing.T) {
	scope := []string{"app-*", "prod-*"}
	tests := []struct {
		name    string
		group   string
		allowed bool
	}{
		{"app glob", "app-grafana-viewers", true},
		{"prod glob", "prod-db-admins", true},
		{"outside", "security-team", false},
		{"prefix is not a match", "xapp-grafana", false},
		{"glob does not cross slash", "app-a/b", false},
		{"empty group", "", false},
	}
	ops := []struct {
		name string
		call func(p access.Provisioner, group string) error
	}{
		{"add", func(p access.Provisioner, g string) error {
			_, err := p.AddMember(context.Background(), g, "u1")
			return err
		}},
		{"remove", func(p access.Provisioner, g string) error {
			_, err := p.RemoveMember(context.Background(), g, "u1")
			return err
		}},
		{"is", func(p access.Provisioner, g string) error {
			_, err := p.IsMember(context.Background(), g, "u1")
			return err
		}},
	}
	for _, tc := range tests {
		for _, op := range ops {
			t.Run(tc.name+"/"+op.name, func(t *testing.T) {
				inner := &recorder{}
				err := op.call(Scoped("okta", scope, inner), tc.group)
				if tc.allowed {
					if err != nil || len(inner.calls) != 1 {
						t.Fatalf("err=%v calls=%v, want one call through", err, inner.calls)
					}
					return
				}
				if access.CodeOf(err) != access.CodeOutOfScope {
					t.Fatalf("err=%v, want out_of_scope", err)
				}
				if len(inner.calls) != 0 {
					t.Fatalf("inner provisioner was called: %v", inner.calls)
				}
				want := "connector okta may not change group " + tc.group + ": outside its scope app-*, prod-*"
				if access.MessageOf(err) != want {
					t.Errorf("message %q, want %q", access.MessageOf(err), want)
				}
			})
		}
	}
	t.Run("empty scope allows nothing", func(t *testing.T) {
		inner := &recorder{}
		if _, err := Scoped("x", nil, inner).AddMember(context.Background(), "app-a", "u"); access.CodeOf(err) != access.CodeOutOfScope || len(inner.calls) != 0 {
			t.Fatalf("err=%v calls=%v", err, inner.calls)
		}
	})
}

func TestSetHandsOutOnlyScoped(t *testing.T) {
	inner := &recorder{}
	s := NewSet()
	s.Add("okta", nil, inner, []string{"app-*"})
	s.Add("lab", nil, &recorder{}, []string{"*"})
	tests := []struct {
		name  string
		conn  string
		group string
		code  access.Code
	}{
		{"inside scope", "okta", "app-a", ""},
		{"outside scope", "okta", "prod-a", access.CodeOutOfScope},
		{"other connector", "lab", "anything", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := s.Provisioner(tc.conn)
			if !ok {
				t.Fatal("missing provisioner")
			}
			if _, err := p.AddMember(context.Background(), tc.group, "u"); access.CodeOf(err) != tc.code {
				t.Fatalf("err=%v, want code %q", err, tc.code)
			}
		})
	}
	if p, _ := s.Provisioner("okta"); p == access.Provisioner(inner) {
		t.Error("Set returned the raw provisioner")
	}
	if _, ok := s.Directory("okta"); ok {
		t.Error("nil directory registered")
	}
	if _, ok := s.Provisioner("nope"); ok {
		t.Error("unknown connector found")
	}
	if got := s.Names(); !slices.Equal(got, []string{"lab", "okta"}) {
		t.Errorf("Names = %v", got)
	}
}
