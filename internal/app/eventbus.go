package app

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"

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
}

// newEventBus makes the bus of the run on nc, with the stream, prefix and
// buffer of cfg.Bus; mode and url are what it reports of itself. This
// build's bus package has the server and no publisher: the connection is
// made and checked, and no event is published.
func newEventBus(_ context.Context, _ *nats.Conn, _ config.Config, _, _ string, _ *slog.Logger) (eventBus, error) {
	return connectionOnly{}, nil
}

// connectionOnly is a bus that publishes nothing and serves no command.
type connectionOnly struct{}

func (connectionOnly) managerOptions() []manager.Option { return nil }
func (connectionOnly) serve(*manager.Manager) error     { return nil }
func (connectionOnly) Close() error                     { return nil }
