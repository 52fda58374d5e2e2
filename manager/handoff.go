package manager

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/store"
)

// AddShard starts shard key in this manager, for a cluster that decides
// elsewhere which process runs which shard (see WithNoInitialShards): it
// resumes sess if it is resumable, else the session the store held for key
// at Open, else it identifies through the identify limiter. Open returns
// once the shard is started, not ready (see WaitReady). The shard is then
// one of the manager's like any other: its sessions are saved to the Store,
// it can be split, closed, removed. A resumable sess is Put into the Store
// at once.
//
// Errors: ErrInvalidOption for a key outside 0 <= ID < Count <=
// store.MaxShardCount or a resume URL that is not ws:// or wss://;
// ErrRunning if a shard with that ID runs; ErrShardConflict if a shard of
// another key has that ID, or an active shard or a split in progress
// serves some of its guilds; ErrBusy while an action runs on that ID or a
// re-shard runs; ErrNotOpen, ErrClosed. A stopped shard with the same key
// is replaced, as OpenShard would, from sess.
func (m *Manager) AddShard(ctx context.Context, key ShardKey, sess gateway.Session) error {
	if key.Count < 1 || key.Count > store.MaxShardCount || key.ID < 0 || key.ID >= key.Count {
		return fmt.Errorf("%w: AddShard: shard %s: need 0 <= id < count <= %d", ErrInvalidOption, key, store.MaxShardCount)
	}
	if sess.ResumeURL != "" && !strings.HasPrefix(sess.ResumeURL, "ws://") && !strings.HasPrefix(sess.ResumeURL, "wss://") {
		return fmt.Errorf("%w: AddShard: shard %s: the session's resume URL is not ws:// or wss://", ErrInvalidOption, key)
	}
	return m.ask(ctx, func(l *loop, reply func(error)) { l.addShard(key, sess, reply) }, nil)
}

// RemoveShard hands shard id over to another process: it closes the shard
// keeping its session resumable (close code 4000, as CloseShard; with save,
// a shard whose Identify is out first gets its READY, as at Close), takes it
// out of the manager (it is no longer in Snapshot, routing or any action)
// and returns its session for the next owner to resume (AddShard there).
// With an event sink (WithEventSink) the session's sequence is the last
// event the sink has made durable, never later, so the next owner's resume
// has Discord replay every event the sink has not acknowledged: none is
// lost across the hand-off (the sink drops what it already holds, as it
// does after any resume). Before that the sink gets a bounded Flush, so the
// replay stays short.
//
// With save, that session is Put into the Store before RemoveShard
// returns (a store shared by the processes so has it for the next owner). Without save (the lease was lost:
// another process owns the shard now) the shard stops delivering events at
// once, is closed without waiting for the sink, and nothing is written to
// the Store for it from the call on: no Put, no Delete (writes the manager
// had queued for it are dropped, and RemoveShard returns only once a write
// already under way has finished).
//
// Errors: ErrUnknownShard, ErrBusy (another action on id, or a split or
// re-shard running), ErrNotOpen, ErrClosed (Close came first: Close then
// closes the shard, and saves it only with save), or the close's error (ctx
// ended: the shard stays in the manager, closing, and a later RemoveShard
// takes it out).
func (m *Manager) RemoveShard(ctx context.Context, id int, save bool) (gateway.Session, error) {
	var sess gateway.Session
	err := m.ask(ctx, func(l *loop, reply func(error)) {
		l.removeShard(ctx, id, save, func(s gateway.Session, err error) {
			sess = s // read by this call after reply, or never (the loop ended)
			reply(err)
		})
	}, nil)
	if err != nil {
		return gateway.Session{}, err
	}
	return sess, nil
}

// addShard registers and starts shard key (AddShard).
func (l *loop) addShard(key ShardKey, sess gateway.Session, reply func(error)) {
	if l.life != stateOpen {
		reply(ErrClosed)
		return
	}
	if l.busy[key.ID] || l.resh != nil {
		reply(&ShardError{Key: key, Op: "add", Err: ErrBusy})
		return
	}
	old := l.active[key.ID]
	if old != nil {
		switch {
		case !old.shard.State().Terminal(): // Idle too: just started, not yet connecting
			reply(&ShardError{Key: key, Op: "add", Err: ErrRunning})
			return
		case old.key != key:
			reply(&ShardError{Key: key, Op: "add", Err: fmt.Errorf("%w: shard %s is stopped here; RemoveShard it first", ErrShardConflict, old.key)})
			return
		}
	}
	if other, ok := l.overlapping(key, old); ok {
		reply(&ShardError{Key: key, Op: "add", Err: fmt.Errorf("%w: shard %s", ErrShardConflict, other)})
		return
	}
	if !sess.Resumable() {
		sess = l.saved[key] // loaded at Open, if any
	}
	how := "identify"
	if sess.Resumable() {
		how = "resume"
	}
	if old != nil {
		if err := l.restart(old, &sess, false); err != nil {
			reply(err)
			return
		}
	} else {
		if sink := l.m.cfg.sink; sink != nil && sess.Resumable() {
			sink.Resumed(key, sess.ID) // the shard's events come from sess on
		}
		delete(l.held, key)
		n := l.m.newEntry(key, RoleActive, sess, l)
		l.active[key.ID] = n
		l.dirty = true
		if err := n.shard.Start(); err != nil {
			delete(l.active, key.ID)
			reply(&ShardError{Key: key, Op: "add", Err: err})
			return
		}
	}
	if n := l.active[key.ID]; sess.Resumable() {
		l.save(n, sess) // the next run here resumes it too
	}
	l.m.log.Info("shard added", "shard", key.String(), "start", how)
	l.m.subs.publish(Event{Type: EventShardAdded, Key: key, Role: RoleActive, Reason: how, At: time.Now()})
	l.publish() // the caller finds the shard in Snapshot
	reply(nil)
}

// overlapping returns a key of this manager whose guilds key's overlap: an
// active shard other than except, or a new shard of a split or re-shard
// in progress. Shards (a, n) and (b, m) share guilds when a ≡ b mod gcd(n, m).
func (l *loop) overlapping(key ShardKey, except *entry) (ShardKey, bool) {
	for _, e := range l.active {
		if e != except && keysOverlap(e.key, key) {
			return e.key, true
		}
	}
	for _, op := range l.ops {
		if op.phase != PhaseJoining {
			continue
		}
		for _, k := range op.keys {
			if keysOverlap(k, key) {
				return k, true
			}
		}
	}
	return ShardKey{}, false
}

func keysOverlap(a, b ShardKey) bool {
	g := gcd(a.Count, b.Count)
	return (a.ID-b.ID)%g == 0
}

// removeShard claims shard id and closes it on a worker (RemoveShard).
func (l *loop) removeShard(ctx context.Context, id int, save bool, reply func(gateway.Session, error)) {
	e, err := l.claim(id)
	if err != nil {
		reply(gateway.Session{}, err)
		return
	}
	if !save {
		l.drop(e)
	}
	sink := l.m.cfg.sink
	l.m.work(func() {
		if save {
			l.m.awaitIdentify(ctx, e) // an identify under way becomes a session to hand over
		}
		sess, err := e.shard.Close(ctx)
		if err == nil && save && sink != nil {
			// Make what the shard delivered durable, so the next owner's
			// replay is short; what is not by then is replayed anyway.
			fctx, cancel := context.WithTimeout(ctx, flushTimeout)
			if ferr := sink.Flush(fctx); ferr != nil {
				l.m.log.Warn("the event bus did not make every event of the shard handed over durable; the next owner's resume replays the rest",
					"shard", e.key.String(), "err", ferr)
			}
			cancel()
		}
		l.m.send(func(l *loop) { l.removedShard(e, sess, err, save, reply) })
	})
}

// drop makes e write nothing more to the store and deliver nothing more:
// another process owns its shard now.
func (l *loop) drop(e *entry) {
	e.muted.Store(true)
	e.dropped = true
	key := e.key
	l.pendingStore = slices.DeleteFunc(l.pendingStore, func(op storeOp) bool {
		return (op.put != nil && op.put.ShardID == key.ID && op.put.ShardCount == key.Count) ||
			(op.del != nil && *op.del == key)
	})
}

// removedShard takes the closed e out of the registry and replies with its
// session at its last durable event.
func (l *loop) removedShard(e *entry, sess gateway.Session, err error, save bool, reply func(gateway.Session, error)) {
	defer l.unclaim(e.key.ID)
	switch {
	case l.life != stateOpen || l.active[e.key.ID] != e:
		reply(gateway.Session{}, ErrClosed) // Close closes it (and saves it, with save)
		return
	case err != nil:
		reply(gateway.Session{}, &ShardError{Key: e.key, Op: "remove", Err: err})
		return
	}
	sess = l.durable(e.key, sess)
	if save && sess.Resumable() {
		l.save(e, sess)
	}
	delete(l.active, e.key.ID)
	delete(l.saved, e.key)
	delete(l.held, e.key)
	l.retire(e)
	reason := "handed over, session saved"
	if !save {
		reason = "lease lost, nothing saved"
	}
	l.m.log.Info("shard removed", "shard", e.key.String(), "saved", save, "sequence", sess.Sequence)
	l.m.subs.publish(Event{Type: EventShardRemoved, Key: e.key, Role: RoleActive, Reason: reason, At: time.Now()})
	l.publish() // the caller finds the shard gone from Snapshot
	if l.m.cfg.store == nil {
		reply(sess, nil)
		return
	}
	// Answer once the store writer has done every write before: with save
	// the Put of the session handed over (a store shared by the processes
	// has it for the next owner); without, the writes for the shard that
	// were under way before drop, so that nothing of this process reaches
	// the store for the shard after RemoveShard returns.
	l.pendingStore = append(l.pendingStore, storeOp{barrier: func() { reply(sess, nil) }})
}
