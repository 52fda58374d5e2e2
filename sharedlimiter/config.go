package sharedlimiter

import (
	"log/slog"
	"time"

	"github.com/shardtop/shardtop/limiter"
)

// DefaultBucket is the KV bucket's name unless WithBucket says otherwise.
const DefaultBucket = "shardtop_identify"

// config holds a Limiter's settings. All defaults live in defaultConfig.
type config struct {
	bucket    string
	replicas  int
	window    time.Duration
	margin    time.Duration
	reserve   int
	holdLimit time.Duration
	node      string
	logger    *slog.Logger
}

func defaultConfig() config {
	return config{
		bucket:    DefaultBucket,
		replicas:  1,
		window:    limiter.DefaultWindow,
		margin:    limiter.DefaultMargin,
		reserve:   limiter.DefaultReserve,
		holdLimit: limiter.DefaultHoldLimit,
		logger:    slog.New(slog.DiscardHandler),
	}
}

// Option configures a Limiter made by New.
type Option func(*config)

// WithBucket sets the JetStream KV bucket's name (default DefaultBucket).
// Every process of one bot must use the same one.
func WithBucket(name string) Option {
	return func(c *config) {
		if name != "" {
			c.bucket = name
		}
	}
}

// WithReplicas sets the KV bucket's replicas when New creates it (default
// 1; 3 in a 3-server cluster). Values below 1 count as 1.
func WithReplicas(n int) Option {
	return func(c *config) { c.replicas = max(n, 1) }
}

// WithWindow sets the identify window of a bucket (default
// limiter.DefaultWindow, Discord's 5 s). Negative counts as zero.
func WithWindow(d time.Duration) Option {
	return func(c *config) { c.window = max(d, 0) }
}

// WithMargin sets the margin added to the window after an identify whose
// arrival READY did not prove (default limiter.DefaultMargin).
func WithMargin(d time.Duration) Option {
	return func(c *config) { c.margin = max(d, 0) }
}

// WithReserve sets how many session starts grants leave untouched (default
// limiter.DefaultReserve), capped at total-1.
func WithReserve(n int) Option {
	return func(c *config) { c.reserve = max(n, 0) }
}

// WithHoldLimit sets how long a granted identify whose outcome is never
// released (its holder is stuck or crashed) holds its bucket: it is the
// TTL of the bucket key's claim (default limiter.DefaultHoldLimit). NATS
// counts per-key TTLs in whole seconds: it is rounded up to a second, and
// is never below the window.
func WithHoldLimit(d time.Duration) Option {
	return func(c *config) { c.holdLimit = d }
}

// WithNode names this process in the KV values it writes (who holds a
// bucket, who waits), for display and debugging (default: "pid-<pid>").
func WithNode(name string) Option {
	return func(c *config) { c.node = name }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}
