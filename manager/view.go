package manager

import (
	"context"
	"iter"
	"sync/atomic"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/limiter"
)

// entry is one gateway.Shard instance and what the manager knows of it. A
// restarted shard gets a new entry, so late callbacks of the old instance
// never touch the new one. The loop owns the plain fields; the atomics are
// what the loop publishes for readers (info) or what the shard's own
// goroutine reads while it delivers dispatches (hold, readyTaken).
type entry struct {
	key     ShardKey
	shard   *gateway.Shard
	started time.Time
	// joined is set for the new shards of a split or re-shard. Their first
	// READY is never delivered: the gateway reports Ready before it hands
	// READY to the dispatch handler, so the swap can come in between, and
	// that READY only repeats guilds the old shards announced.
	joined bool
	// carried is what the instance this entry replaced (restart, open)
	// knew: its final state, so the first event reads "closed →
	// connecting" rather than "idle → connecting", and its last close and
	// error, shown until this instance has its own.
	carried carried

	info       atomic.Pointer[entryInfo]
	hold       atomic.Pointer[holdRef]
	readyTaken atomic.Bool
	rate       atomic.Uint64 // events/s as float64 bits, written by the loop's sampler

	lastEvents uint64 // the loop's sampler's
}

// entryInfo is what readers know of an entry: an immutable record the loop
// replaces whenever it changes.
type entryInfo struct {
	role Role
	// handled is the last state the loop has dealt with: WaitReady and the
	// splits judge by it, not by the shard's live state, so that they never
	// see Failed before the loop has said whether a split will follow.
	handled   gateway.State
	failErr   error // why the shard failed
	autoSplit bool  // failed with 4011: an automatic split follows
	busy      bool  // an action runs on its ID (active entries only)
	resumable bool  // a session is saved for its key
}

// infoOf returns e's published record.
func (e *entry) infoOf() *entryInfo { return e.info.Load() }

// update publishes a changed copy of e's record; only the loop calls it.
func (e *entry) update(change func(*entryInfo)) {
	next := *e.info.Load()
	change(&next)
	e.info.Store(&next)
}

// holdRef decides whether an entry's dispatches are delivered during a split
// or re-shard: old and new shards share flag; flipping it switches delivery
// from the old side to the new side in one atomic step.
type holdRef struct {
	flag    *atomic.Bool
	newSide bool
}

func (e *entry) delivers() bool {
	h := e.hold.Load()
	return h == nil || h.flag.Load() == h.newSide
}

// carried is what an entry takes over from the instance it replaces.
type carried struct {
	state       gateway.State // StateIdle: nothing replaced
	closeCode   int
	closeReason string
	closeAt     time.Time
	err         string
	errAt       time.Time
}

// carry is what the instance whose Stats are st hands its successor.
func (e *entry) carry(st *gateway.Stats) carried {
	c := carried{state: st.State}
	c.closeCode, c.closeReason, c.closeAt = e.lastClose(st)
	c.err, c.errAt = e.lastError(st)
	return c
}

// lastClose is the shard's last close, the replaced instance's while this
// one has none.
func (e *entry) lastClose(st *gateway.Stats) (int, string, time.Time) {
	if st.LastCloseCode != 0 || st.LastCloseReason != "" {
		return st.LastCloseCode, st.LastCloseReason, st.LastCloseAt
	}
	return e.carried.closeCode, e.carried.closeReason, e.carried.closeAt
}

// lastError is the shard's last error, the replaced instance's while this
// one has none.
func (e *entry) lastError(st *gateway.Stats) (string, time.Time) {
	if st.LastError != "" {
		return st.LastError, st.LastErrorAt
	}
	return e.carried.err, e.carried.errAt
}

// view is the registry as readers see it: the loop builds a new one
// whenever the set of shards, their roles or the manager's settings
// change, and never mutates one it has published. What changes per shard
// more often (state, flags) is in each entry's own published record.
type view struct {
	life    lifecycle
	entries []*entry       // every entry, sorted by (ID, count)
	active  map[int]*entry // by shard ID: the active shards partition the guilds
	counts  []int          // distinct counts of the active shards, ascending

	lim         *limiter.Limiter
	gwURL       string
	maxConc     int
	recommended int
	resharding  bool // a whole re-shard runs
	ops         []Operation
	canReshard  bool // false for a manager limited by WithShardIDs
	// retired sums the counters of shard instances that have left the
	// registry, so the Snapshot totals never go down.
	retired struct{ identifies, resumes uint64 }
}

// openErr is the error of an action that needs the manager open.
func (v *view) openErr() error {
	switch v.life {
	case stateOpen:
		return nil
	case stateNew, stateOpening:
		return ErrNotOpen
	}
	return ErrClosed
}

// changedCh is closed by the loop at its next change of anything readers
// see; take it before looking, so that no change between the two is missed.
func (m *Manager) changedCh() <-chan struct{} { return *m.changed.Load() }

// WaitReady waits until every active shard is Ready. A shard that failed
// (and is not being split automatically) ends the wait with a *ShardError;
// shards stopped with CloseShard are not waited for.
func (m *Manager) WaitReady(ctx context.Context) error {
	for {
		ch := m.changedCh()
		v := m.view.Load()
		switch v.life {
		case stateNew, stateOpening:
			return ErrNotOpen
		case stateClosing, stateClosed:
			return ErrClosed
		}
		all := true
		for _, e := range v.entries {
			info := e.infoOf()
			if info.role != RoleActive {
				continue
			}
			switch info.handled {
			case gateway.StateReady, gateway.StateClosed:
			case gateway.StateFailed:
				if !info.autoSplit && !info.busy && !v.resharding {
					return &ShardError{Key: e.key, Err: info.failErr}
				}
				all = false
			default:
				all = false
			}
		}
		if all {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Shard returns what is known of the active shard with this ID.
func (m *Manager) Shard(id int) (ShardInfo, bool) {
	v := m.view.Load()
	e := v.active[id]
	if e == nil {
		return ShardInfo{}, false
	}
	return m.infoFor(v, e, time.Now()), true
}

// Shards returns the active shards, sorted by ID, as disgo's ShardManager
// does. The set is the one at the call; each shard's figures are read as
// the iteration reaches it.
func (m *Manager) Shards() iter.Seq[ShardInfo] {
	v := m.view.Load()
	return func(yield func(ShardInfo) bool) {
		now := time.Now()
		for _, e := range v.entries {
			if e.infoOf().role == RoleActive && !yield(m.infoFor(v, e, now)) {
				return
			}
		}
	}
}

// ShardByGuild returns the active shard serving guildID, or false if none
// does (not open, or that part of the bot runs elsewhere). Shards of
// different counts (after a split) are routed right: shard s of count c
// serves the guilds with (guild_id >> 22) % c == s.
func (m *Manager) ShardByGuild(guildID uint64) (ShardInfo, bool) {
	v := m.view.Load()
	e := v.byGuild(guildID)
	if e == nil {
		return ShardInfo{}, false
	}
	return m.infoFor(v, e, time.Now()), true
}

func (v *view) byGuild(guildID uint64) *entry {
	ts := guildID >> 22
	for _, c := range v.counts {
		if e := v.active[int(ts%uint64(c))]; e != nil && e.key.Count == c {
			return e
		}
	}
	return nil
}
