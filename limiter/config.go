package limiter

import (
	"log/slog"
	"time"
)

// Defaults. DefaultWindow is Discord's identify window per bucket.
const (
	// DefaultWindow is how often one bucket may identify (Discord: 5 s).
	DefaultWindow = 5 * time.Second
	// DefaultMargin is added to every window to absorb scheduling and
	// network jitter between a grant and Discord receiving the Identify.
	DefaultMargin = 50 * time.Millisecond
	// DefaultReserve is how many session starts are kept back from the
	// daily budget for manual intervention; grants stop at this level.
	DefaultReserve = 10
	// DefaultHoldLimit bounds how long a granted identify whose outcome is
	// never told (Release) holds its bucket. A shard tells it when READY
	// comes or the connection ends, within a handshake or a heartbeat in
	// practice; the limit is for a holder that is stuck.
	DefaultHoldLimit = 30 * time.Second
	// budgetPeriod is how far the next reset lies after a reset the
	// Limiter performed itself (Discord's budget is daily).
	budgetPeriod = 24 * time.Hour
)

// config holds a Limiter's settings. All defaults live in defaultConfig.
type config struct {
	window    time.Duration
	margin    time.Duration
	holdLimit time.Duration
	reserve   int
	budget    *startLimit // nil: unknown, unlimited
	logger    *slog.Logger
}

// startLimit is a session_start_limit as given to WithSessionStartLimit.
type startLimit struct {
	total, remaining int
	resetAfter       time.Duration
}

func defaultConfig() config {
	return config{
		window:    DefaultWindow,
		margin:    DefaultMargin,
		holdLimit: DefaultHoldLimit,
		reserve:   DefaultReserve,
		logger:    slog.New(slog.DiscardHandler),
	}
}

// Option configures a Limiter made by New.
type Option func(*config)

// WithWindow sets the identify window of a bucket (default DefaultWindow).
// A negative d counts as zero. Tests use windows of a few milliseconds.
func WithWindow(d time.Duration) Option {
	return func(c *config) { c.window = max(d, 0) }
}

// WithMargin sets the safety margin added to the window after an identify
// whose arrival READY did not prove (a failed attempt, or one from a
// previous run), for an identify that may still have been on its way
// (default DefaultMargin). A negative d counts as zero.
func WithMargin(d time.Duration) Option {
	return func(c *config) { c.margin = max(d, 0) }
}

// WithHoldLimit sets how long a granted identify whose outcome is never
// released holds its bucket before the bucket goes on as after a failed
// attempt (default DefaultHoldLimit). It counts from the grant; values
// below the window count as the window.
func WithHoldLimit(d time.Duration) Option {
	return func(c *config) { c.holdLimit = d }
}

// WithReserve sets how many session starts grants leave untouched (default
// DefaultReserve). A negative n counts as zero. The reserve is capped at
// total-1 so that at least one start per period stays possible.
func WithReserve(n int) Option {
	return func(c *config) { c.reserve = max(n, 0) }
}

// WithSessionStartLimit sets the initial daily budget from /gateway/bot's
// session_start_limit; resetAfter counts from New. Without it the budget is
// unknown and unlimited until SetSessionStartLimit.
func WithSessionStartLimit(total, remaining int, resetAfter time.Duration) Option {
	return func(c *config) {
		c.budget = &startLimit{total: total, remaining: remaining, resetAfter: resetAfter}
	}
}

// WithLogger sets the logger (default: discard). The Limiter logs grants at
// debug level and budget waits at warn level.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}
