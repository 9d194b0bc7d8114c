package explorer

import "testing"

// TestSortKeysComplete: every sort key has a sort_by name of its own and a
// value, so a key added without its table row fails here, not in a request.
func TestSortKeysComplete(t *testing.T) {
	seen := map[string]sortKey{}
	for k := range numSortKeys {
		name := k.name()
		if name == "" || sortKeys[k].value == nil {
			t.Errorf("sort key %d: got name %q, value set %v; want both", k, name, sortKeys[k].value != nil)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("sort keys %d and %d: both named %q", other, k, name)
		}
		seen[name] = k
	}
}
