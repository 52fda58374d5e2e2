package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
			Cluster:  s.serverCluster(),
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
	s.bus, err = s.makeEventBus(ctx)
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

// clusterAttempt bounds one try at a JetStream asset (the stream, a
// key-value bucket) of a cluster: a request sent while the cluster has no
// JetStream leader waits out its whole context, and a new replicated asset
// waits for its own leader election, slow when several processes create
// theirs at once.
const clusterAttempt = 5 * time.Second

// makeEventBus makes the bus on the connection within busSetupTimeout. In
// a cluster it tries again while JetStream is not up yet (see
// retryJetStream): an embedded server of [bus.cluster] has none until a
// quorum of its machines is up, so the first machine of three waits for a
// second however long that takes.
func (s *supervisor) makeEventBus(ctx context.Context) (eventBus, error) {
	b := s.cfg.Bus
	build := func(ctx context.Context) (eventBus, error) {
		return newEventBus(ctx, s.busConn, s.cfg, b.Mode, s.busURL, s.internal)
	}
	if !s.cfg.Cluster.Enabled && !b.Cluster.Clustered() {
		setupCtx, cancel := context.WithTimeout(ctx, busSetupTimeout)
		defer cancel()
		return build(setupCtx)
	}
	total := clusterSetupTimeout
	if b.Mode == config.BusEmbedded && b.Cluster.Clustered() {
		total = 0 // until the quorum comes, or a signal
	}
	var eb eventBus
	err := s.retryJetStream(ctx, total, "the stream "+b.Stream, func(ctx context.Context) (err error) {
		eb, err = build(ctx)
		return err
	})
	return eb, err
}

// retryJetStream runs f, each try bounded by clusterAttempt, until it
// succeeds, fails with an error that is not JetStream being unavailable,
// ctx ends, or total has passed (0: no bound). It says once that it waits.
func (s *supervisor) retryJetStream(ctx context.Context, total time.Duration, what string, f func(context.Context) error) error {
	if total > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, total)
		defer cancel()
	}
	for said := false; ; said = true {
		attempt, cancel := context.WithTimeout(ctx, clusterAttempt)
		err := f(attempt)
		cancel()
		if err == nil || ctx.Err() != nil || !jetStreamNotYet(err) {
			return err
		}
		if !said {
			s.logger.Warn("waiting for the NATS cluster's JetStream", "for", what, "url", s.busURL, "err", err)
		}
	}
}

// jetStreamNotYet reports an error of a cluster whose JetStream is not up
// yet (no meta leader, no quorum), as opposed to a refusal.
func jetStreamNotYet(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		(errors.As(err, &apiErr) && apiErr.Code == 503)
}

// serverCluster is the embedded server's [bus.cluster]: the routes to
// the bot's other machines. Its server name defaults to the node's.
func (s *supervisor) serverCluster() bus.ClusterConfig {
	bc := s.cfg.Bus.Cluster
	if !bc.Clustered() {
		return bus.ClusterConfig{}
	}
	name := bc.ServerName
	if name == "" && s.cfg.Cluster.Enabled {
		name = s.cfg.Cluster.NodeName()
	}
	return bus.ClusterConfig{Name: bc.Name, Listen: bc.Listen, Routes: bc.Routes, ServerName: name,
		User: s.routeCreds.User, Password: s.routeCreds.Password.Reveal()}
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
