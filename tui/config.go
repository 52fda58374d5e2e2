package tui

import (
	"context"
	"errors"
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/manager"
)

// Defaults. Every option's default lives here and only here.
const (
	// DefaultRefresh is how often the UI pulls the manager's snapshot.
	DefaultRefresh = 250 * time.Millisecond
	// DefaultLogSize is how many lifecycle events the log pane keeps.
	DefaultLogSize = 500
	// DefaultEventBuffer is the buffer of the lifecycle event subscription;
	// events beyond it between two ticks are dropped by the manager (and
	// counted in Snapshot().Totals.DroppedEvents), never blocking a shard.
	DefaultEventBuffer = 4096
	// DefaultSplitCount is how many shards the `s` key splits one into.
	DefaultSplitCount = manager.DefaultSplitCount
)

// ErrInvalidOption: an option given to New is invalid (the error names it).
var ErrInvalidOption = errors.New("tui: invalid option")

// Option configures a Model made by New (and Run).
type Option func(*config)

type config struct {
	refresh     time.Duration
	logSize     int
	eventBuffer int
	splitCount  int
	onQuit      func()
	now         func() time.Time
	loc         *time.Location
	ctx         context.Context
	keys        *KeyMap
	bus         Bus // nil: no event bus
	programOpts []tea.ProgramOption
}

func defaultConfig() config {
	return config{
		refresh:     DefaultRefresh,
		logSize:     DefaultLogSize,
		eventBuffer: DefaultEventBuffer,
		splitCount:  DefaultSplitCount,
		now:         time.Now,
		loc:         time.Local,
		ctx:         context.Background(),
	}
}

func (c *config) validate() error {
	switch {
	case c.refresh <= 0:
		return fmt.Errorf("%w: refresh interval %v must be positive", ErrInvalidOption, c.refresh)
	case c.logSize < 1:
		return fmt.Errorf("%w: log size %d must be at least 1", ErrInvalidOption, c.logSize)
	case c.eventBuffer < 0:
		return fmt.Errorf("%w: event buffer %d must not be negative", ErrInvalidOption, c.eventBuffer)
	case c.splitCount < 2:
		return fmt.Errorf("%w: split count %d must be at least 2", ErrInvalidOption, c.splitCount)
	case c.now == nil:
		return fmt.Errorf("%w: clock is nil", ErrInvalidOption)
	case c.loc == nil:
		return fmt.Errorf("%w: location is nil", ErrInvalidOption)
	case c.ctx == nil:
		return fmt.Errorf("%w: context is nil", ErrInvalidOption)
	}
	return nil
}

// WithRefresh sets how often the snapshot is pulled (default DefaultRefresh).
func WithRefresh(d time.Duration) Option { return func(c *config) { c.refresh = d } }

// WithLogSize sets how many lifecycle events the log keeps (default DefaultLogSize).
func WithLogSize(n int) Option { return func(c *config) { c.logSize = n } }

// WithEventBuffer sets the buffer of the lifecycle event subscription
// (default DefaultEventBuffer).
func WithEventBuffer(n int) Option { return func(c *config) { c.eventBuffer = n } }

// WithSplitCount sets how many shards `s` splits the selected one into
// (default DefaultSplitCount, 2; at least 2). Use the manager's split count.
func WithSplitCount(k int) Option { return func(c *config) { c.splitCount = k } }

// WithQuitHandler sets a function called once, from Update, when the user
// quits (q or ctrl+c). It must not block: it should start the program's
// shutdown path (e.g. cancel a context), which closes every shard resumable.
func WithQuitHandler(f func()) Option { return func(c *config) { c.onQuit = f } }

// WithClock sets the clock used for countdowns and relative times
// (default time.Now). Tests fix it.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithLocation sets the time zone of log timestamps (default time.Local).
func WithLocation(loc *time.Location) Option { return func(c *config) { c.loc = loc } }

// WithContext sets the parent context of the actions the UI runs (default
// context.Background()). Model.Close cancels the actions still running.
func WithContext(ctx context.Context) Option { return func(c *config) { c.ctx = ctx } }

// Bus is what the UI needs from the event bus; *bus.Bus satisfies it. It
// is asked for its figures once per refresh.
type Bus interface {
	Stats() bus.Stats
}

var _ Bus = (*bus.Bus)(nil)

// WithBus shows the event bus panel, and each shard's backlog on the bus
// in its detail, from b's figures. A nil b (a nil *bus.Bus included: the
// bus is off) shows no panel, as without the option.
func WithBus(b Bus) Option {
	return func(c *config) {
		if bb, ok := b.(*bus.Bus); ok && bb == nil {
			b = nil
		}
		c.bus = b
	}
}

// WithKeyMap replaces the default key bindings (see DefaultKeyMap).
func WithKeyMap(k KeyMap) Option { return func(c *config) { c.keys = &k } }

// WithProgramOptions adds Bubble Tea program options used by Run (e.g.
// tea.WithoutSignalHandler, tea.WithInput/WithOutput). Run always adds
// tea.WithAltScreen and tea.WithContext before these.
func WithProgramOptions(opts ...tea.ProgramOption) Option {
	return func(c *config) { c.programOpts = append(c.programOpts, opts...) }
}
