package metrics

import "sync"

// Switches counts mitigation and rule switches (a rule or a mitigation
// turned on or off at run time), by name and the state switched to. Its
// methods are safe for concurrent use; switches are rare, so a mutex is
// enough.
type Switches struct {
	mu sync.Mutex
	n  map[switchKey]uint64
}

type switchKey struct{ kind, name, state string }

// Switched counts one switch of the rule or mitigation name (kind "rule"
// or "mitigation") to state ("on" or "off").
func (s *Switches) Switched(kind, name, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[switchKey]uint64{}
	}
	s.n[switchKey{kind, name, state}]++
}

// each calls f for every (kind, name, state) counted so far.
func (s *Switches) each(f func(kind, name, state string, n uint64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, n := range s.n {
		f(k.kind, k.name, k.state, n)
	}
}
