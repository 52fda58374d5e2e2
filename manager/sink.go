package manager

import (
	"context"
	"time"

	"github.com/shardtop/shardtop/gateway"
)

// EventSink is what the manager needs from an event bus (package bus has
// one): every dispatch the active shards deliver, in order, and what of it
// is durable. With a sink, the sequence the manager saves for a shard's
// resume is never ahead of the sink's durable events, so a restart after a
// crash resumes where the sink stopped and Discord replays the rest.
type EventSink interface {
	// Take is handed every dispatch an active shard delivers, on that
	// shard's goroutine, with the ID of its session. It must not block and
	// must copy what it keeps (d.Data is valid during the call only). It
	// returns false when it cannot take the event (its buffer is full, or
	// it lost the connection): the manager then closes the shard resumable
	// and holds it, saving the session at the last durable event, until
	// Ready says the sink takes events again; the shard then resumes from
	// there and Discord's replay fills the gap.
	Take(sessionID string, d gateway.Dispatch) bool
	// Pending returns the first sequence of the shard's session sessionID
	// that is not durable yet: taken and not acknowledged, refused, or
	// failed. ok is false when everything taken is durable.
	Pending(key ShardKey, sessionID string) (first int64, ok bool)
	// Refused returns the shards with an event refused or failed since the
	// last call (a failure can come after Take returned true).
	Refused() []ShardKey
	// Ready returns a channel closed once the sink takes events again.
	Ready() <-chan struct{}
	// Resumed tells the sink that a held shard resumes sessionID: it takes
	// the shard's events again.
	Resumed(key ShardKey, sessionID string)
	// Lost tells the sink that the events from..to of sessionID will never
	// come (the session could not be resumed): it counts and announces them.
	Lost(key ShardKey, sessionID string, from, to int64)
	// Flush waits until everything taken is durable, or ctx ends.
	Flush(ctx context.Context) error
}

// flushTimeout bounds how long Close waits for the sink to make its events
// durable: what is not by then is replayed by Discord after the restart.
const flushTimeout = 5 * time.Second

// heldShard is a shard closed because the sink could not take its events.
type heldShard struct {
	session  string
	durable  int64 // the last durable sequence: where the resume starts
	received int64 // the last sequence received: past durable, lost if the resume fails
}

// durable is sess with its sequence no later than the sink's durable
// events, so that a resume from it loses nothing.
func (l *loop) durable(key ShardKey, sess gateway.Session) gateway.Session {
	if sink := l.m.cfg.sink; sink != nil && sess.Resumable() {
		if first, ok := sink.Pending(key, sess.ID); ok && first-1 < sess.Sequence {
			sess.Sequence = max(first-1, 0)
		}
	}
	return sess
}

// hold closes the active shard e resumable because the sink refused its
// events; it resumes once the sink is ready (busReady).
func (l *loop) hold(e *entry) {
	if l.life != stateOpen || l.active[e.key.ID] != e || e.infoOf().held || l.busy[e.key.ID] {
		return
	}
	e.update(func(i *entryInfo) { i.held = true })
	l.changed = true
	l.m.log.Warn("the event bus cannot take this shard's events: closing it resumable until it can", "shard", e.key.String())
	l.m.work(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		sess, err := e.shard.Close(ctx)
		l.m.send(func(l *loop) { l.heldClosed(e, sess, err) })
	})
}

// heldClosed saves a held shard's session at its last durable event and
// waits for the sink.
func (l *loop) heldClosed(e *entry, sess gateway.Session, err error) {
	if err != nil {
		l.m.log.Warn("closing a held shard", "shard", e.key.String(), "err", err)
	}
	if !sess.Resumable() || l.active[e.key.ID] != e {
		return // nothing to resume (it will identify when opened), or replaced meanwhile
	}
	h := heldShard{session: sess.ID, received: sess.Sequence}
	sess = l.durable(e.key, sess)
	h.durable = sess.Sequence
	l.save(e, sess)
	l.held[e.key] = h
	if !l.waitingForSink {
		l.waitingForSink = true
		ready := l.m.cfg.sink.Ready()
		l.m.work(func() {
			select {
			case <-ready:
				l.m.send(func(l *loop) { l.busReady() })
			case <-l.m.runCtx.Done():
			}
		})
	}
}

// busReady resumes the held shards from their last durable events.
func (l *loop) busReady() {
	l.waitingForSink = false
	if l.life != stateOpen {
		return
	}
	for key, h := range l.held {
		delete(l.held, key)
		e := l.active[key.ID]
		if e == nil || e.key != key || running(e.shard.State()) {
			continue // replaced or opened by the operator meanwhile
		}
		l.m.cfg.sink.Resumed(key, h.session)
		sess := l.saved[key]
		if err := l.restart(e, &sess, true); err != nil {
			l.m.log.Warn("resuming a held shard", "shard", key.String(), "err", err)
			continue
		}
		n := l.active[key.ID]
		n.fromHold = &h
	}
}

// checkHeldResume is told that e is Ready: if it was resumed after a hold
// but got a new session instead (Discord no longer had the old one), the
// events between the last durable one and the last received are lost.
func (l *loop) checkHeldResume(e *entry) {
	h := e.fromHold
	if h == nil {
		return
	}
	e.fromHold = nil
	if e.shard.Session().ID == h.session || h.received <= h.durable {
		return
	}
	l.m.log.Error("events lost: the session could not be resumed after the bus held the shard",
		"shard", e.key.String(), "from", h.durable+1, "to", h.received, "lost", h.received-h.durable)
	l.m.cfg.sink.Lost(e.key, h.session, h.durable+1, h.received)
}

// checkRefused holds the shards whose events the sink refused or failed.
func (l *loop) checkRefused() {
	sink := l.m.cfg.sink
	if sink == nil {
		return
	}
	for _, key := range sink.Refused() {
		if e := l.active[key.ID]; e != nil && e.key == key {
			l.hold(e)
		}
	}
}
