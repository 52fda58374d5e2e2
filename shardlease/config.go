package shardlease

import (
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Defaults of a [Table].
const (
	// DefaultBucket is the KV bucket's name when [WithBucket] is not given.
	DefaultBucket = "shardtop_shards"
	// DefaultTTL is how long a lease lives without a renewal.
	DefaultTTL = 15 * time.Second
	// DefaultFlushInterval is how long the [Store] adapter coalesces a
	// shard's session puts before writing them.
	DefaultFlushInterval = time.Second
)

// config is a Table's settings; see the options for what each means.
type config struct {
	bucket        string
	replicas      int
	ttl           time.Duration
	renewInterval time.Duration // 0: ttl/3
	margin        time.Duration // 0: ttl/5
	flushInterval time.Duration
	log           *slog.Logger

	// holdRenewals, when set, makes the renewer skip its rounds while it
	// returns true: a test's stand-in for a paused process.
	holdRenewals func() bool
}

// Option changes a Table's configuration.
type Option func(*config)

// WithBucket names the KV bucket holding the records (default
// [DefaultBucket]). Every process of one bot must use the same bucket.
func WithBucket(name string) Option { return func(c *config) { c.bucket = name } }

// WithReplicas sets the bucket's replica count when Open creates or updates
// it (default 1; 3 on a three-server cluster).
func WithReplicas(n int) Option { return func(c *config) { c.replicas = n } }

// WithTTL sets how long a lease lives without a renewal (default
// [DefaultTTL]). Every process of one bot must use the same TTL.
func WithTTL(d time.Duration) Option { return func(c *config) { c.ttl = d } }

// WithRenewInterval sets how often held leases are renewed (default a third
// of the TTL). It must leave room for at least one retry before the local
// deadline (TTL minus the safety margin).
func WithRenewInterval(d time.Duration) Option { return func(c *config) { c.renewInterval = d } }

// WithSafetyMargin sets how long before the others may consider a lease
// expired its owner gives it up (default a fifth of the TTL): the margin
// covers clock-rate drift between machines and the time a shard takes to
// stop. See the package documentation.
func WithSafetyMargin(d time.Duration) Option { return func(c *config) { c.margin = d } }

// WithFlushInterval sets how long the [Store] adapter coalesces puts before
// writing them (default [DefaultFlushInterval]; 0 writes at once).
func WithFlushInterval(d time.Duration) Option { return func(c *config) { c.flushInterval = d } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// withHoldRenewals freezes the renewer while hold returns true (tests).
func withHoldRenewals(hold func() bool) Option { return func(c *config) { c.holdRenewals = hold } }

// newConfig applies opts over the defaults and checks the result.
func newConfig(opts []Option) (config, error) {
	c := config{bucket: DefaultBucket, replicas: 1, ttl: DefaultTTL, flushInterval: DefaultFlushInterval}
	for _, o := range opts {
		o(&c)
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.renewInterval == 0 {
		c.renewInterval = c.ttl / 3
	}
	if c.margin == 0 {
		c.margin = c.ttl / 5
	}
	switch {
	case c.bucket == "":
		return c, fmt.Errorf("shardlease: bucket name must not be empty")
	case c.replicas < 1 || c.replicas > 5:
		return c, fmt.Errorf("shardlease: replicas must be in [1, 5], got %d", c.replicas)
	case c.ttl <= 0:
		return c, fmt.Errorf("shardlease: TTL must be positive, got %v", c.ttl)
	case c.margin <= 0 || c.margin >= c.ttl:
		return c, fmt.Errorf("shardlease: safety margin must be in (0, TTL=%v), got %v", c.ttl, c.margin)
	case c.renewInterval <= 0 || c.renewInterval >= c.ttl-c.margin:
		return c, fmt.Errorf("shardlease: renew interval must be in (0, TTL - safety margin = %v), got %v", c.ttl-c.margin, c.renewInterval)
	case c.flushInterval < 0:
		return c, fmt.Errorf("shardlease: flush interval must not be negative, got %v", c.flushInterval)
	}
	return c, nil
}
