package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/internal/config"
	"github.com/shardtop/shardtop/manager"
)

// eventBus is the run's event bus as the supervisor drives it: made on the
// NATS connection by newEventBus, fed by the manager, serving commands
// once the manager is open, closed after the manager.
type eventBus interface {
	// managerOptions hand the shards' events to the bus.
	managerOptions() []manager.Option
	// serve answers the workers' gateway commands through m.
	serve(m *manager.Manager) error
	// Close stops publishing and serving; it leaves the connection open.
	Close() error
	// Stats is what the bus says about itself, for the TUI and the metrics.
	Stats() bus.Stats
}

// newEventBus makes the bus of the run on nc, with the stream, prefix and
// buffer of cfg.Bus; mode and url are what it reports of itself.
func newEventBus(ctx context.Context, nc *nats.Conn, cfg config.Config, mode, url string, logger *slog.Logger) (eventBus, error) {
	opts := []bus.Option{
		bus.WithPrefix(cfg.Bus.Prefix),
		bus.WithStream(bus.StreamConfig{Name: cfg.Bus.Stream, MaxAge: time.Duration(cfg.Bus.MaxAge), MaxBytes: cfg.Bus.MaxBytes,
			Duplicates: time.Duration(cfg.Bus.DuplicateWindow), Replicas: cfg.Bus.Replicas}),
		bus.WithMaxPending(cfg.Bus.Buffer), bus.WithMaxPendingBytes(cfg.Bus.BufferBytes),
		bus.WithBufferWait(time.Duration(cfg.Bus.BufferWait)),
		bus.WithMode(mode, url), bus.WithLogger(logger),
	}
	if cfg.Cluster.Enabled {
		opts = append(opts, bus.WithClustered())
	}
	b, err := bus.New(ctx, nc, opts...)
	if err != nil {
		return nil, err
	}
	return natsBus{b}, nil
}

// natsBus is the bus on NATS JetStream.
type natsBus struct{ *bus.Bus }

func (b natsBus) managerOptions() []manager.Option {
	return []manager.Option{manager.WithEventSink(b.Bus)}
}
func (b natsBus) serve(m *manager.Manager) error { return b.ServeCommands(m) }
