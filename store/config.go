package store

import (
	"io/fs"
	"log/slog"
	"time"
)

// Defaults for [OpenFile].
const (
	// DefaultFlushInterval is the minimum time between two background
	// writes. A second of lost sequence numbers costs at most a slightly
	// longer replay on resume, while one write per event would cost an
	// fsync per dispatch.
	DefaultFlushInterval = time.Second

	// DefaultFileMode is the permission of the state file: session IDs let
	// anyone holding the token resume the bot's sessions, so keep them
	// private.
	DefaultFileMode fs.FileMode = 0o600
)

// retryDelay is the shortest wait before the background writer retries a
// failed write, so a zero flush interval cannot spin on a broken disk.
const retryDelay = 100 * time.Millisecond

// config holds everything an [Option] can set. Defaults live in
// defaultConfig, in this file only.
type config struct {
	flushInterval time.Duration
	startFresh    bool
	logger        *slog.Logger
	fileMode      fs.FileMode

	// afterWrite, when set, is called after every write attempt (tests
	// count writes with it). It runs on the writing goroutine without
	// holding the store's mutex.
	afterWrite func(writeEvent)
}

// writeEvent describes one write attempt, for the afterWrite hook.
type writeEvent struct {
	shards int
	bytes  int
	err    error
}

func defaultConfig() config {
	return config{
		flushInterval: DefaultFlushInterval,
		logger:        slog.Default(),
		fileMode:      DefaultFileMode,
	}
}

// Option configures [OpenFile].
type Option func(*config)

// WithFlushInterval sets the minimum time between two background writes
// (default [DefaultFlushInterval]). Puts arriving within one interval are
// coalesced into a single write; a Put after a quiet period is written at
// once. A failed write is retried after the interval (at least 100 ms). Zero (or negative) writes as soon as the
// previous write has finished, still coalescing Puts that arrive meanwhile.
// Flush and Close always write at once.
func WithFlushInterval(d time.Duration) Option {
	return func(c *config) {
		c.flushInterval = max(d, 0)
	}
}

// WithStartFresh makes [OpenFile] move an unreadable or invalid state file
// aside, to path+".corrupt-<UTC timestamp>" (never overwriting an existing
// file), and start with no sessions instead of failing. [File.MovedAside]
// reports the new name. Without this option such a file is an error and is
// left untouched. A path that is not a regular file (a device, named pipe,
// directory) is never moved: it stays an error matching [ErrNotRegular].
func WithStartFresh() Option {
	return func(c *config) { c.startFresh = true }
}

// WithLogger sets the logger (default slog.Default()). The store adds
// "component"="store" and the state file's path to it.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithFileMode sets the permission bits of the state file and its lock file
// (default [DefaultFileMode], 0600). Only permission bits are used.
func WithFileMode(m fs.FileMode) Option {
	return func(c *config) { c.fileMode = m.Perm() }
}

// withAfterWrite installs a hook called after each write attempt; tests use
// it to count writes.
func withAfterWrite(fn func(writeEvent)) Option {
	return func(c *config) { c.afterWrite = fn }
}
