package rmb

import (
	"log/slog"

	"github.com/nats-io/nats.go"
)

// ConnLogging returns the NATS options that log a connection's
// transitions, once each: grid_disconnected (with the error that ended
// the connection), grid_reconnected (with the server reached) and
// grid_connection_closed (no more reconnecting: at shutdown, or when the
// reconnect attempts ran out). Failed reconnect attempts are not logged
// one by one: an outage is one disconnected line and one reconnected line.
func ConnLogging(log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // closing: ClosedHandler says so
			}
			if err == nil {
				err = nc.LastError()
			}
			log.Warn("grid_disconnected", "url", nc.ConnectedUrlRedacted(), "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("grid_reconnected", "url", nc.ConnectedUrlRedacted(), "reconnects", nc.Stats().Reconnects)
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			log.Info("grid_connection_closed", "err", nc.LastError())
		}),
	}
}
