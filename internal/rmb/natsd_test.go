package rmb_test

import (
	"os"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// TestMain gives the tests of package rmb the grid's NATS server: natsd
// imports rmb, so only this external test package may import natsd.
func TestMain(m *testing.M) {
	rmb.StartNATS = startNATS
	os.Exit(m.Run())
}

func startNATS(t testing.TB, cfg rmb.TestNATS) (*server.Server, string, *server.Account) {
	t.Helper()
	port := cfg.Port
	if port == 0 {
		port = natsd.RandomPort
	}
	auth := natsd.NewAuthenticator(natsd.AuthConfig{Lookup: cfg.Lookup, System: cfg.System}, testutil.Logger(t))
	s, err := natsd.Start(natsd.Config{
		StoreDir:       cfg.Dir,
		Port:           port,
		Authentication: auth,
		TwinServices:   cfg.Services,
		MaxPayload:     rmb.ServerMaxPayload,
	}, nil)
	if err != nil {
		t.Fatalf("starting nats server: %v", err)
	}
	t.Cleanup(s.Shutdown)
	twins, err := s.NATS().LookupAccount(natsd.TwinAccount)
	if err != nil {
		t.Fatalf("looking up the twin account: %v", err)
	}
	return s.NATS(), s.ClientURL(), twins
}
