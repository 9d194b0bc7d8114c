package cli

import (
	"strings"
	"testing"
)

// TestNodeLocationBadInput: malformed arguments are refused before
// anything is sent (no grid runs here), with the reason.
func TestNodeLocationBadInput(t *testing.T) {
	home := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "location", "1"}, "want ID COUNTRY[,CITY]"},
		{[]string{"node", "location", "1", "Belgium", "extra"}, "want ID COUNTRY[,CITY]"},
		{[]string{"node", "location", "--clear", "1", "Belgium"}, "want ID COUNTRY[,CITY]"},
		{[]string{"node", "location", "x", "Belgium"}, "node id"},
		{[]string{"node", "location", "1", ",Ghent"}, "no country"},
		{[]string{"node", "location", "1", strings.Repeat("x", 65)}, "limit 64"},
		{[]string{"node", "facts"}, "want one node id"},
	} {
		_, errs, code := run(t, home, tt.args...)
		if code == 0 || !strings.Contains(errs, tt.want) {
			t.Errorf("zosctl %s: got exit %d, %q; want an error containing %q", strings.Join(tt.args, " "), code, errs, tt.want)
		}
	}
}
