package clusterview

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults.
const (
	// DefaultPrefix starts every subject: "<prefix>.cluster.snapshot.<node>".
	DefaultPrefix = "shardtop"
	// DefaultInterval is how often a Publisher publishes its snapshot.
	DefaultInterval = time.Second
	// DefaultActionTimeout bounds a remote action whose ctx has no deadline.
	DefaultActionTimeout = 5 * time.Second
)

type settings struct {
	prefix        string
	interval      time.Duration
	goneAfter     time.Duration // 0: 3 × interval
	actionTimeout time.Duration
	leases        func() int
	log           *slog.Logger
}

func newSettings(opts []Option) (settings, error) {
	s := settings{prefix: DefaultPrefix, interval: DefaultInterval, actionTimeout: DefaultActionTimeout, log: slog.Default()}
	for _, o := range opts {
		o(&s)
	}
	switch {
	case s.prefix == "":
		return s, optionError("WithPrefix: empty prefix")
	case s.interval <= 0:
		return s, optionError("WithInterval: interval must be positive")
	case s.goneAfter < 0:
		return s, optionError("WithGoneAfter: negative duration")
	case s.actionTimeout <= 0:
		return s, optionError("WithActionTimeout: timeout must be positive")
	}
	if s.goneAfter == 0 {
		s.goneAfter = 3 * s.interval
	}
	return s, nil
}

// Option configures a Publisher or a View.
type Option func(*settings)

// WithPrefix sets the subjects' prefix (default "shardtop").
func WithPrefix(p string) Option { return func(s *settings) { s.prefix = p } }

// WithInterval sets how often a Publisher publishes (default 1 s); a View
// uses it to derive the gone-after delay when WithGoneAfter is not given.
func WithInterval(d time.Duration) Option { return func(s *settings) { s.interval = d } }

// WithGoneAfter sets how long a View waits for a node's snapshot before it
// marks the node Gone (default 3 × interval; pass the lease TTL in a cluster).
func WithGoneAfter(d time.Duration) Option { return func(s *settings) { s.goneAfter = d } }

// WithActionTimeout bounds a remote action when ctx has no deadline (default 5 s).
func WithActionTimeout(d time.Duration) Option { return func(s *settings) { s.actionTimeout = d } }

// WithLeases gives the count of shard leases this node holds: a Publisher
// publishes it, a View shows it on its own node's row.
func WithLeases(f func() int) Option { return func(s *settings) { s.leases = f } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) {
		if l != nil {
			s.log = l
		}
	}
}

// checkNode refuses a node name that is not one NATS subject token.
func checkNode(fn, node string) error {
	if node == "" || strings.ContainsAny(node, ". \t\r\n*>") {
		return optionError(fmt.Sprintf("%s: node name %q is not one subject token", fn, node))
	}
	return nil
}
