package connectors

import (
	"sort"
	"sync"

	"keycard/access"
)

// Set is the registry of configured connectors, by the name the policy gives
// them. Provisioners are stored already wrapped with Scoped: there is no way
// to get an unscoped one back out. Safe for concurrent use.
type Set struct {
	mu    sync.RWMutex
	dirs  map[string]access.Directory
	provs map[string]access.Provisioner
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{dirs: map[string]access.Directory{}, provs: map[string]access.Provisioner{}}
}

// Add registers a connector under name, replacing any earlier one. dir or
// prov may be nil when the connector lacks that power; prov is wrapped with
// Scoped(name, scope, prov).
func (s *Set) Add(name string, dir access.Directory, prov access.Provisioner, scope []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.dirs, name)
	delete(s.provs, name)
	if dir != nil {
		s.dirs[name] = dir
	}
	if prov != nil {
		s.provs[name] = Scoped(name, scope, prov)
	}
}

// Directory returns the named connector's directory.
func (s *Set) Directory(name string) (access.Directory, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.dirs[name]
	return d, ok
}

// Provisioner returns the named connector's provisioner, scoped.
func (s *Set) Provisioner(name string) (access.Provisioner, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.provs[name]
	return p, ok
}

// Names lists the registered connectors, sorted.
func (s *Set) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[string]bool{}
	for n := range s.dirs {
		seen[n] = true
	}
	for n := range s.provs {
		seen[n] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Merge takes every connector registered in o, replacing this set's
// connector of the same name, in one step (a policy reload rebuilds the
// connectors into a fresh Set and merges it: a connector the reload adds
// appears, a narrowed scope holds at once). Connectors o does not name stay,
// so grants made through a connector a reload dropped can still be removed.
func (s *Set) Merge(o *Set) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	names := map[string]bool{}
	for n := range o.dirs {
		names[n] = true
	}
	for n := range o.provs {
		names[n] = true
	}
	for n := range names {
		delete(s.dirs, n)
		delete(s.provs, n)
		if d, ok := o.dirs[n]; ok {
			s.dirs[n] = d
		}
		if p, ok := o.provs[n]; ok {
			s.provs[n] = p
		}
	}
}
