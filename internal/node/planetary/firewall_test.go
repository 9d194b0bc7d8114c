package planetary

import (
	"slices"
	"strings"
	"testing"
)

func TestRulesetLetsInOnlyAnswersICMPv6AndTenantPorts(t *testing.T) {
	got := Ruleset("zl1-ygg0", []uint16{9900, 443})
	for _, want := range []string{
		`iifname "zl1-ygg0" jump overlay`,
		"ct state established,related accept",
		"tcp dport { 9900, 443 } accept",
		"\t\tdrop\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, got)
		}
	}
	if none := Ruleset("ygg0", nil); strings.Contains(none, "tcp dport") {
		t.Errorf("no ports: got a tcp accept:\n%s", none)
	}
	// the first two lines make loading it again replace, not add
	if lines := strings.SplitN(got, "\n", 3); lines[0] != "table inet "+Table || lines[1] != "delete table inet "+Table {
		t.Errorf("got first lines %q, want the table declared then deleted", lines[:2])
	}
}

func TestArgsRoundTripThroughMainsFlags(t *testing.T) {
	cfg := Config{DataDir: "/d", Peers: []string{"tcp://a:1", "tls://b:2"}, Listen: []string{"tcp://[::]:3"}, AllowPorts: []uint16{9900}}
	got := cfg.Args("t0")
	want := []string{"--data", "/d", "--tun", "t0", "--peer", "tcp://a:1", "--peer", "tls://b:2", "--listen", "tcp://[::]:3", "--allow-port", "9900"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
