package shardowner

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of a Runner.
const (
	// DefaultNodesBucket is the KV bucket of node heartbeats.
	DefaultNodesBucket = "shardtop_nodes"
	// DefaultTTL is how long a node stays live without a heartbeat. Use the
	// leases' TTL.
	DefaultTTL = 15 * time.Second
	// DefaultHandoffInterval is the least time between two hand-offs.
	DefaultHandoffInterval = 100 * time.Millisecond
)

type config struct {
	bucket   string
	ttl      time.Duration
	handoff  time.Duration
	replicas int
	logger   *slog.Logger
	hooks    *Hooks
}

func defaultConfig() config {
	return config{bucket: DefaultNodesBucket, ttl: DefaultTTL, handoff: DefaultHandoffInterval, replicas: 1,
		logger: slog.New(slog.DiscardHandler)}
}

func (c *config) validate() error {
	switch {
	case c.bucket == "":
		return fmt.Errorf("%w: WithNodesBucket: empty name", ErrInvalidOption)
	case c.ttl <= 0:
		return fmt.Errorf("%w: WithTTL: %v, must be positive", ErrInvalidOption, c.ttl)
	case c.handoff < 0:
		return fmt.Errorf("%w: WithHandoffInterval: %v, must not be negative", ErrInvalidOption, c.handoff)
	case c.replicas < 1:
		return fmt.Errorf("%w: WithReplicas: %d, must be at least 1", ErrInvalidOption, c.replicas)
	}
	return nil
}

// Option changes a Runner's configuration.
type Option func(*config)

// WithNodesBucket names the KV bucket of node heartbeats (default
// DefaultNodesBucket). Every process of one bot must use the same.
func WithNodesBucket(name string) Option { return func(c *config) { c.bucket = name } }

// WithTTL sets how long a node stays live without a heartbeat (default
// DefaultTTL); give it the leases' TTL.
func WithTTL(d time.Duration) Option { return func(c *config) { c.ttl = d } }

// WithHandoffInterval sets the least time between two hand-offs (default
// DefaultHandoffInterval; 0 hands over without pause).
func WithHandoffInterval(d time.Duration) Option { return func(c *config) { c.handoff = d } }

// WithReplicas sets the nodes bucket's replica count (default 1).
func WithReplicas(n int) Option { return func(c *config) { c.replicas = n } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithHooks connects the Runner to the Hooks its manager was made with
// (see NewHooks), so that splits of its shards lease their new shards and
// retire the shard split. Without it a split's new shards have no lease.
func WithHooks(h *Hooks) Option { return func(c *config) { c.hooks = h } }
