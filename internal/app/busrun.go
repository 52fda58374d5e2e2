package app

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/internal/config"
)

// busConnectTimeout bounds each dial of a NATS server at start-up: a
// server that does not answer (a firewall dropping packets) is reported
// within seconds rather than hanging the start.
const busConnectTimeout = 5 * time.Second

// busSetupTimeout bounds the creation (or update) of the stream.
const busSetupTimeout = 15 * time.Second

// startBus starts the event bus of cfg.Bus: with mode embedded the NATS
// server in this process and a connection to it; with external a
// connection to the URLs, which reconnects forever once made; then the
// bus on the connection. Mode off starts nothing. A failure names the
// address or URL and is a runtime failure (exit 1).
func (s *supervisor) startBus(ctx context.Context) (status int, ok bool) {
	b := s.cfg.Bus
	var err error
	switch b.Mode {
	case config.BusOff:
		return exitOK, true
	case config.BusEmbedded:
		s.busServer, err = bus.StartServer(bus.ServerConfig{
			Listen:   b.Listen,
			StoreDir: s.cfg.BusStoreDir(),
			User:     s.busCreds.User,
			Password: s.busCreds.Password.Reveal(),
			Token:    s.busCreds.Token.Reveal(),
			Logger:   s.internal,
		})
		if err != nil {
			fmt.Fprintln(s.stderr, "shardtop: bus:", err)
			return exitFailure, false
		}
		s.busURL = s.busServer.ClientURL()
		s.busConn, err = s.busServer.Connect(s.busConnOptions()...)
	default: // external
		s.busURL = b.URL.String()
		opts := append(s.busConnOptions(), nats.SetCustomDialer(busDialer{ctx}))
		s.busConn, err = nats.Connect(s.busURL, append(opts, busAuth(s.busCreds)...)...)
		if err != nil {
			err = fmt.Errorf("cannot connect to %s: %w", s.busURL, err)
		}
	}
	if err != nil && ctx.Err() != nil {
		return exitOK, false // a signal during start-up: a normal stop
	}
	if err != nil {
		fmt.Fprintln(s.stderr, "shardtop: bus:", err)
		return exitFailure, false
	}
	setupCtx, cancel := context.WithTimeout(ctx, busSetupTimeout)
	defer cancel()
	s.bus, err = newEventBus(setupCtx, s.busConn, s.cfg, b.Mode, s.busURL, s.internal)
	if err != nil && ctx.Err() != nil {
		return exitOK, false
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "shardtop: bus: the stream on %s: %v\n", s.busURL, err)
		return exitFailure, false
	}
	s.logger.Info("bus ready", "mode", b.Mode, "url", s.busURL)
	return exitOK, true
}

// busConnOptions are the options of the bus connection: it never gives up
// reconnecting once made (the bus holds shards meanwhile and resumes them
// after), and says when it drops and comes back.
func (s *supervisor) busConnOptions() []nats.Option {
	log := s.internal
	return append(bus.ConnectOptions(),
		nats.Name("shardtop"),
		nats.Timeout(busConnectTimeout), // also bounds the handshake after the dial
		nats.MaxReconnects(-1),
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Warn("bus disconnected: reconnecting", "url", nc.ConnectedUrlRedacted(), "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Warn("bus reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("bus error", "err", err)
		}),
	)
}

// busDialer dials NATS servers within ctx, the run's: a signal during a
// dial at start-up ends it at once. Each dial takes at most
// busConnectTimeout.
type busDialer struct{ ctx context.Context }

// Dial dials address on network.
func (d busDialer) Dial(network, address string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(d.ctx, busConnectTimeout)
	defer cancel()
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

// busAuth presents creds to an external server: a .creds file (read by
// nats.go at each connect), a token, or a user and password.
func busAuth(creds config.BusCredentials) []nats.Option {
	switch {
	case creds.CredsFile != "":
		return []nats.Option{nats.UserCredentials(creds.CredsFile)}
	case creds.Token.Reveal() != "":
		return []nats.Option{nats.Token(creds.Token.Reveal())}
	case creds.User != "":
		return []nats.Option{nats.UserInfo(creds.User, creds.Password.Reveal())}
	}
	return nil
}

// releaseBus frees the bus in the reverse order of startBus: the bus, the
// connection (what it still has buffered is sent first), the embedded
// server. The manager is closed before, so the bus has flushed.
func (s *supervisor) releaseBus() {
	if s.bus != nil {
		if err := s.bus.Close(); err != nil {
			s.internal.Warn("closing the bus", "err", err)
		}
	}
	if s.busConn != nil {
		_ = s.busConn.FlushTimeout(time.Second)
		s.busConn.Close()
	}
	if s.busServer != nil {
		s.busServer.Shutdown()
	}
}
