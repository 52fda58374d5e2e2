package bus

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults. Every option's default lives here and only here.
const (
	// DefaultPrefix is the first token of every subject.
	DefaultPrefix = "shardtop"
	// DefaultStreamName is the stream that holds the events.
	DefaultStreamName = "SHARDTOP"
	// DefaultMaxAge is how long the stream keeps an event.
	DefaultMaxAge = 24 * time.Hour
	// DefaultMaxBytes is the most the stream holds; past it the oldest go.
	DefaultMaxBytes = 1 << 30
	// DefaultDuplicates is the de-duplication window: it must outlast the
	// replay of a resume after a crash (Discord keeps a dropped session a
	// few minutes), so that what Discord sends again is dropped.
	DefaultDuplicates = 10 * time.Minute
	// DefaultMaxPending is the buffer: events published and not yet
	// acknowledged by the stream, all shards together. A shard whose event
	// would go past it is closed resumable and held until the bus catches
	// up; Discord's replay fills the gap.
	DefaultMaxPending = 1 << 16
	// DefaultMaxPendingBytes bounds the same buffer in bytes (bodies plus
	// an estimate of each message's overhead): Discord's events range from
	// a few hundred bytes to megabytes for a big guild's GUILD_CREATE.
	DefaultMaxPendingBytes = 64 << 20
	// DefaultBufferWait is how long a shard waits for room in a full
	// buffer before it is held: long enough to ride out a burst, short
	// enough that Discord does not drop the connection of a client that
	// stopped reading.
	DefaultBufferWait = 2 * time.Second
	// DefaultAckTimeout is how long an event may wait for the stream's
	// acknowledgement before its shard is held as if it had failed.
	DefaultAckTimeout = 30 * time.Second
)

// Option configures a Bus made by New.
type Option func(*config)

type config struct {
	prefix          string
	stream          StreamConfig
	maxPending      int
	maxPendingBytes int64
	bufferWait      time.Duration
	ackTimeout      time.Duration
	logger          *slog.Logger
	mode, url       string
	// clustered: several processes serve one prefix (WithClustered).
	clustered bool
	// checkEvery is how often a bus that refused events looks whether it
	// takes them again (and how often stream stats are refreshed).
	checkEvery time.Duration
}

// StreamConfig is the stream's name and limits.
type StreamConfig struct {
	Name       string        // default DefaultStreamName
	MaxAge     time.Duration // default DefaultMaxAge
	MaxBytes   int64         // default DefaultMaxBytes
	Duplicates time.Duration // default DefaultDuplicates
	Replicas   int           // default 1
	Storage    string        // "file" (default) or "memory"
}

func defaultConfig() config {
	return config{
		prefix: DefaultPrefix,
		stream: StreamConfig{Name: DefaultStreamName, MaxAge: DefaultMaxAge, MaxBytes: DefaultMaxBytes,
			Duplicates: DefaultDuplicates, Replicas: 1, Storage: "file"},
		maxPending:      DefaultMaxPending,
		maxPendingBytes: DefaultMaxPendingBytes,
		bufferWait:      DefaultBufferWait,
		ackTimeout:      DefaultAckTimeout,
		logger:          slog.New(slog.DiscardHandler),
		checkEvery:      200 * time.Millisecond,
	}
}

// WithPrefix sets the subjects' first token (default DefaultPrefix).
func WithPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithStream sets the stream's name and limits; zero fields keep their
// defaults.
func WithStream(s StreamConfig) Option {
	return func(c *config) {
		d := c.stream
		if s.Name != "" {
			d.Name = s.Name
		}
		if s.MaxAge != 0 {
			d.MaxAge = s.MaxAge
		}
		if s.MaxBytes != 0 {
			d.MaxBytes = s.MaxBytes
		}
		if s.Duplicates != 0 {
			d.Duplicates = s.Duplicates
		}
		if s.Replicas != 0 {
			d.Replicas = s.Replicas
		}
		if s.Storage != "" {
			d.Storage = s.Storage
		}
		c.stream = d
	}
}

// WithMaxPending sets the buffer (default DefaultMaxPending).
func WithMaxPending(n int) Option { return func(c *config) { c.maxPending = n } }

// WithMaxPendingBytes bounds the buffer in bytes (default
// DefaultMaxPendingBytes).
func WithMaxPendingBytes(n int64) Option { return func(c *config) { c.maxPendingBytes = n } }

// WithBufferWait sets how long a shard waits for room in a full buffer
// before it is held (default DefaultBufferWait; 0 holds it at once).
func WithBufferWait(d time.Duration) Option { return func(c *config) { c.bufferWait = d } }

// WithAckTimeout sets how long an event may wait for its acknowledgement
// (default DefaultAckTimeout).
func WithAckTimeout(d time.Duration) Option { return func(c *config) { c.ackTimeout = d } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithMode sets what Stats reports as the mode ("embedded", "external")
// and URL of the bus.
func WithMode(mode, url string) Option { return func(c *config) { c.mode, c.url = mode, url } }

// WithClustered tells the bus that several shardtop processes of one bot
// serve its prefix: a command for a shard or guild this process does not
// run gets no reply from it (its owner answers), instead of
// unknown_shard, which would race the owner's answer. A command for a
// shard nobody runs (during a hand-off) then times out at the worker.
func WithClustered() Option { return func(c *config) { c.clustered = true } }

// withCheckEvery shortens the bus's own clock in tests.
func withCheckEvery(d time.Duration) Option { return func(c *config) { c.checkEvery = d } }

func (c *config) validate() error {
	switch {
	case c.prefix == "" || strings.ContainsAny(c.prefix, ".*> \t\r\n"):
		return fmt.Errorf("bus: prefix %q: must be one subject token (no dots, spaces or wildcards)", c.prefix)
	case c.stream.Name == "" || strings.ContainsAny(c.stream.Name, ".*> \t\r\n/\\"):
		return fmt.Errorf("bus: stream name %q is not a valid JetStream name", c.stream.Name)
	case c.stream.MaxAge < 0 || c.stream.MaxBytes < 0 || c.stream.Duplicates < 0:
		return fmt.Errorf("bus: stream limits must not be negative")
	case c.stream.Duplicates > c.stream.MaxAge && c.stream.MaxAge > 0:
		return fmt.Errorf("bus: duplicate window %v is longer than the stream's max age %v", c.stream.Duplicates, c.stream.MaxAge)
	case c.stream.Replicas < 1 || c.stream.Replicas > 5:
		return fmt.Errorf("bus: replicas %d: must be 1 to 5", c.stream.Replicas)
	case c.stream.Storage != "file" && c.stream.Storage != "memory":
		return fmt.Errorf("bus: storage %q: must be file or memory", c.stream.Storage)
	case c.maxPending < 1:
		return fmt.Errorf("bus: max pending %d: must be at least 1", c.maxPending)
	case c.maxPendingBytes < 1<<20:
		return fmt.Errorf("bus: max pending bytes %d: must be at least 1 MiB", c.maxPendingBytes)
	case c.bufferWait < 0 || c.bufferWait > time.Minute:
		return fmt.Errorf("bus: buffer wait %v: must be from 0 to 1m", c.bufferWait)
	case c.ackTimeout <= 0:
		return fmt.Errorf("bus: ack timeout %v: must be positive", c.ackTimeout)
	}
	return nil
}
