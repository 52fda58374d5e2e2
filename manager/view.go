package manager

import (
	"context"
	"iter"
	"sync/atomic"
	"time"

	"github.com/shardtop/shardtop/gateway"
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

	lastEvents uint64     // the loop's sampler's
	fromHold   *heldShard // the loop's: resumed after a hold (see checkHeldResume)

	// sessionID is the session the shard's dispatches belong to, for the
	// event sink: set before the shard starts, then only on the shard's
	// own goroutine (the dispatch handler, at READY).
	sessionID string
	holdAsked atomic.Bool // a hold was asked for since the entry started
	// muted stops delivery at once: RemoveShard without save (another
	// process owns the shard now and delivers its events).
	muted atomic.Bool
	// dropped (the loop's): nothing of this entry is written to the store
	// any more (RemoveShard without save).
	dropped bool

	// track is the key's past (ShardDetail), handed on to the instance
	// that replaces this one with the same key.
	track *track
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
	held      bool  // closed until the event sink takes events again
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
	if e.muted.Load() {
		return false
	}
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

	lim         IdentifyLimiter
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
//
// It looks at each shard about once: a cursor moves past the shards that
// are ready, and the whole set is checked again only when a shard failed,
// the registry changed, or the cursor reached the end (a start-up of 10,000
// shards makes some 40,000 changes).
func (m *Manager) WaitReady(ctx context.Context) error {
	var (
		v        *view
		cursor   int
		failures = ^uint64(0)
	)
	for {
		ch := m.changedCh()
		if nv := m.view.Load(); nv != v {
			v, cursor, failures = nv, 0, ^uint64(0) // look at everything again
		}
		switch v.life {
		case stateNew, stateOpening:
			return ErrNotOpen
		case stateClosing, stateClosed:
			return ErrClosed
		}
		if f := m.failures.Load(); f != failures {
			failures = f
			for _, e := range v.entries {
				if err := v.failure(e); err != nil {
					return err
				}
			}
		}
		for cursor < len(v.entries) && v.settled(v.entries[cursor]) {
			cursor++
		}
		if cursor == len(v.entries) {
			// One more look at all: a shard passed may have left Ready.
			for i, e := range v.entries {
				if !v.settled(e) {
					cursor = i
					break
				}
			}
			if cursor == len(v.entries) {
				return nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// settled reports whether WaitReady need not wait for e: not active, or
// Ready, or closed. A failed shard is waited for while a split is on the
// way (failure says when it is final).
func (v *view) settled(e *entry) bool {
	info := e.infoOf()
	return info.role != RoleActive || info.handled == gateway.StateReady || info.handled == gateway.StateClosed
}

// failure is the error WaitReady ends with for e, or nil.
func (v *view) failure(e *entry) error {
	info := e.infoOf()
	if info.role == RoleActive && info.handled == gateway.StateFailed && !info.autoSplit && !info.busy && !v.resharding {
		return &ShardError{Key: e.key, Err: info.failErr}
	}
	return nil
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
