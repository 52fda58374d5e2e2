package shardlease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardtop/shardtop/store"
)

// maxAcquireAttempts bounds the compare-and-set rounds of one Acquire
// when its view of the record is behind the bucket.
const maxAcquireAttempts = 3

// Lease is this process's right to run one shard, and the way to save that
// shard's session: every write is a compare-and-set on the revision of the
// lease's last write, so a write after the lease moved fails with ErrLost.
// Its methods are safe for concurrent use.
type Lease struct {
	t    *Table
	key  Key
	name string // the bucket key

	// wmu serialises the writes of this lease's record (renewals, Save,
	// Release, Delete): each needs the revision the previous one made. It
	// is held across the write, and only ever by this lease's writers.
	wmu sync.Mutex

	// mu guards the fields below; never held across I/O.
	mu       sync.Mutex
	rev      uint64
	epoch    uint64
	session  store.ShardState
	data     []byte    // the value last written, which a renewal rewrites
	lastSent time.Time // when the last successful write was sent
	deadline time.Time // lastSent + TTL - safety margin
	timer    *time.Timer
	ended    error // ErrLost or ErrReleased once over
	lost     chan struct{}
}

// Key returns the lease's shard.
func (l *Lease) Key() Key { return l.key }

// Session returns the shard's session as last saved (as found at Acquire,
// then as Saved). SessionID is "" when there is none.
func (l *Lease) Session() store.ShardState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.session
}

// Revision returns the revision of the lease's last successful write.
func (l *Lease) Revision() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev
}

// Epoch returns the lease's epoch: the acquisition count of the record.
func (l *Lease) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// Deadline returns the local time by which the shard must have stopped
// unless a renewal or save succeeds first.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// Lost returns a channel closed when the lease is lost: a write found the
// revision moved, the local deadline passed without a successful renewal,
// or the Table was closed. The shard must stop at once. It is not closed by
// a successful Release or Delete.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err returns nil while the lease is held, then ErrLost or ErrReleased.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ended
}

// Save writes st as the shard's session (an empty SessionID clears it).
// It is a compare-and-set on the lease's revision and renews the lease; it
// returns an error wrapping ErrLost when the revision moved.
func (l *Lease) Save(ctx context.Context, st store.ShardState) error {
	if keyOf(st) != l.key {
		return fmt.Errorf("shardlease: save shard %d/%d through the lease of shard %s: %w", st.ShardID, st.ShardCount, l.key, store.ErrInvalidState)
	}
	if err := checkState(st); err != nil {
		return fmt.Errorf("shardlease: save shard %s: %w: %w", l.key, store.ErrInvalidState, err)
	}
	return l.write(ctx, &st, false)
}

// Release hands the lease over: it writes the record with no owner and the
// shard's final session (st; when nil, the one Put into the Table's
// [Store] and not yet written, else the last saved one), so the
// next owner resumes it at once instead of waiting for expiry. Stop the
// shard before releasing.
func (l *Lease) Release(ctx context.Context, st *store.ShardState) (err error) {
	if st != nil {
		if keyOf(*st) != l.key {
			return fmt.Errorf("shardlease: release shard %s with the session of shard %d/%d: %w", l.key, st.ShardID, st.ShardCount, store.ErrInvalidState)
		}
		if err := checkState(*st); err != nil {
			return fmt.Errorf("shardlease: release shard %s: %w: %w", l.key, store.ErrInvalidState, err)
		}
	}
	// A put the Store has not written yet is superseded by the release
	// (st), or is the latest session itself (st nil); either way it must
	// not be written after the release, when the lease is no longer ours.
	if p, ok := l.t.st.take(l.key); ok {
		if st == nil {
			st = &p
		}
		defer func() {
			if err != nil && !errors.Is(err, ErrLost) {
				l.t.st.requeue(l.key, p)
			}
		}()
	}
	return l.write(ctx, st, true)
}

// renew rewrites the lease's last value, which moves its revision.
func (l *Lease) renew(ctx context.Context) error { return l.write(ctx, nil, false) }

// write makes one compare-and-set write of the record: the session st with
// this node as owner (the last value when st is nil), or, when release is
// set, st (the last session when nil) with no owner.
func (l *Lease) write(ctx context.Context, st *store.ShardState, release bool) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	if l.ended != nil {
		err := l.ended
		l.mu.Unlock()
		return fmt.Errorf("shardlease: shard %s: %w", l.key, err)
	}
	rev, deadline, data := l.rev, l.deadline, l.data
	v := value{owner: l.t.node, epoch: l.epoch}
	if release {
		v.owner = ""
		if st == nil {
			last := l.session
			st = &last
		}
	}
	l.mu.Unlock()
	if st != nil {
		v.session = *st
		var err error
		if data, err = encode(v); err != nil {
			return fmt.Errorf("shardlease: encode shard %s: %w", l.key, err)
		}
	}
	// Past the local deadline the lease is lost whatever the answer.
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	sent := time.Now()
	newRev, err := l.t.kv.Update(ctx, l.name, data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// If the record still carries this lease's owner and epoch, it
		// moved by a write of ours whose answer was lost (a timeout): only
		// this lease writes with this epoch, since every acquisition bumps
		// it. Retry on that revision; the deadline stays that of the last
		// write known to be sent.
		if own, ok := l.ownRevision(ctx, v.owner, v.epoch); ok {
			newRev, err = l.t.kv.Update(ctx, l.name, data, own)
		}
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			l.end(ErrLost, "revision moved")
			return fmt.Errorf("shardlease: shard %s: %w: revision %d is no longer the record's: %w", l.key, ErrLost, rev, err)
		}
		return fmt.Errorf("shardlease: write shard %s: %w", l.key, err)
	}
	l.mu.Lock()
	if l.ended != nil { // the deadline passed during the write
		err := l.ended
		l.mu.Unlock()
		return fmt.Errorf("shardlease: shard %s: %w", l.key, err)
	}
	l.rev, l.data, l.lastSent = newRev, data, sent
	if st != nil {
		l.session = *st
	}
	if release {
		l.mu.Unlock()
		l.end(ErrReleased, "")
		return nil
	}
	l.deadline = sent.Add(l.t.cfg.ttl - l.t.cfg.margin)
	l.timer.Reset(time.Until(l.deadline))
	l.mu.Unlock()
	return nil
}

// ownRevision reads the record and returns its revision if it is still
// owner's (this node, or "" for a release) at epoch.
func (l *Lease) ownRevision(ctx context.Context, owner string, epoch uint64) (uint64, bool) {
	e, err := l.t.kv.Get(ctx, l.name)
	if err != nil {
		return 0, false
	}
	v, err := decode(l.key, e.Value())
	if err != nil || v.owner != owner || v.epoch != epoch {
		return 0, false
	}
	return e.Revision(), true
}

// expire is the deadline timer's function.
func (l *Lease) expire() {
	l.mu.Lock()
	if l.ended != nil {
		l.mu.Unlock()
		return
	}
	if left := time.Until(l.deadline); left > 0 { // a write moved it meanwhile
		l.timer.Reset(left)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.end(ErrLost, "not renewed before the local deadline")
}

// end ends the lease with why (ErrLost or ErrReleased), once: it closes
// Lost for ErrLost, stops the timer and forgets the lease in the Table.
func (l *Lease) end(why error, reason string) {
	l.mu.Lock()
	if l.ended != nil {
		l.mu.Unlock()
		return
	}
	l.ended = why
	l.timer.Stop()
	if why == ErrLost {
		close(l.lost)
	}
	l.mu.Unlock()
	t := l.t
	t.mu.Lock()
	if t.leases[l.key] == l {
		delete(t.leases, l.key)
	}
	if why == ErrLost {
		t.notifyLocked()
	}
	t.mu.Unlock()
	if why == ErrLost {
		t.log.Warn("lease lost", "shard", l.key.ID, "shards", l.key.Count, "reason", reason)
	}
}

// Acquire claims the lease of key: at once when the record is absent or
// free, after expiry (see [Record.Expired]) when another process held it.
// The record keeps its session, which the new owner resumes
// ([Lease.Session]). A live holder gives a *[HeldError]; a malformed record
// a *[MalformedError]: it is never overwritten. A record the view shows
// held is refused without I/O, so a release is acquirable once the watch
// has delivered it (Changes signals it); a view behind the bucket the
// other way is caught by the compare-and-set, after which Acquire reads the
// record itself.
func (t *Table) Acquire(ctx context.Context, key Key) (*Lease, error) {
	if err := key.valid(); err != nil {
		return nil, fmt.Errorf("shardlease: acquire shard %s: %w", key, err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := t.leases[key]; ok {
		t.mu.Unlock()
		return nil, &HeldError{Key: key, Owner: t.node}
	}
	var cur *entry
	if e := t.view[key]; e != nil {
		c := *e
		cur = &c
	}
	t.mu.Unlock()
	for attempt := 1; ; attempt++ {
		var prev value
		if cur != nil {
			r := cur.rec
			if r.Err != nil {
				return nil, fmt.Errorf("shardlease: acquire shard %s: %w", key, r.Err)
			}
			if r.Owner != "" && !t.expired(cur, time.Now()) {
				return nil, &HeldError{Key: key, Owner: r.Owner}
			}
			prev = value{owner: r.Owner, epoch: r.Epoch, session: r.Session}
		} else {
			prev.session = store.ShardState{ShardID: key.ID, ShardCount: key.Count}
		}
		next := value{owner: t.node, epoch: prev.epoch + 1, session: prev.session}
		data, err := encode(next)
		if err != nil {
			return nil, fmt.Errorf("shardlease: encode shard %s: %w", key, err)
		}
		sent := time.Now()
		var rev uint64
		if cur == nil {
			rev, err = t.kv.Create(ctx, key.String(), data)
		} else {
			rev, err = t.kv.Update(ctx, key.String(), data, cur.rec.Revision)
		}
		if err == nil {
			return t.adopt(key, next, data, rev, sent)
		}
		if !isConflict(err) {
			return nil, fmt.Errorf("shardlease: acquire shard %s: %w", key, err)
		}
		if attempt == maxAcquireAttempts {
			return nil, fmt.Errorf("shardlease: acquire shard %s: %w: the record kept changing", key, ErrHeld)
		}
		// The view is behind the bucket: read the record itself.
		if cur, err = t.fresh(ctx, key); err != nil {
			return nil, err
		}
	}
}

// fresh reads the record of key from the bucket (nil when absent). Its
// revision counts as seen now, unless the view saw it earlier.
func (t *Table) fresh(ctx context.Context, key Key) (*entry, error) {
	e, err := t.kv.Get(ctx, key.String())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shardlease: acquire shard %s: read the record: %w", key, err)
	}
	out := &entry{rec: t.record(key, e), seen: time.Now()}
	t.mu.Lock()
	if v := t.view[key]; v != nil && v.rec.Revision == out.rec.Revision {
		out.seen = v.seen
	}
	t.mu.Unlock()
	return out, nil
}

// adopt makes the lease of a successful claim and registers it.
func (t *Table) adopt(key Key, v value, data []byte, rev uint64, sent time.Time) (*Lease, error) {
	l := &Lease{t: t, key: key, name: key.String(), rev: rev, epoch: v.epoch, session: v.session,
		data: data, lastSent: sent, deadline: sent.Add(t.cfg.ttl - t.cfg.margin), lost: make(chan struct{})}
	l.mu.Lock()
	l.timer = time.AfterFunc(time.Until(l.deadline), l.expire)
	l.mu.Unlock()
	t.mu.Lock()
	if t.closed { // closed during the claim: nothing will renew it
		t.mu.Unlock()
		l.end(ErrLost, "table closed")
		return nil, ErrClosed
	}
	t.leases[key] = l
	t.mu.Unlock()
	t.log.Debug("lease acquired", "shard", key.ID, "shards", key.Count, "epoch", v.epoch, "revision", rev)
	return l, nil
}

// Delete removes the record of a retired shard (after a split or re-shard),
// a compare-and-set on the revision of l, the lease of key this Table holds.
// It returns an error wrapping ErrLost when the revision moved.
func (t *Table) Delete(ctx context.Context, key Key, l *Lease) error {
	if l == nil || l.t != t || l.key != key {
		return fmt.Errorf("shardlease: delete shard %s: %w: not given its lease", key, ErrNotHeld)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	rev, ended := l.rev, l.ended
	l.mu.Unlock()
	if ended != nil {
		return fmt.Errorf("shardlease: delete shard %s: %w", key, ended)
	}
	err := t.kv.Purge(ctx, l.name, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		l.end(ErrLost, "revision moved")
		return fmt.Errorf("shardlease: delete shard %s: %w: %w", key, ErrLost, err)
	}
	if err != nil {
		return fmt.Errorf("shardlease: delete shard %s: %w", key, err)
	}
	l.end(ErrReleased, "")
	return nil
}

// renewer renews every held lease from one goroutine: a lease whose last
// write is a renew interval old is rewritten as it is.
func (t *Table) renewer() {
	defer t.wg.Done()
	tick := time.NewTicker(max(t.cfg.renewInterval/4, time.Millisecond))
	defer tick.Stop()
	var due []*Lease
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		if t.cfg.holdRenewals != nil && t.cfg.holdRenewals() {
			continue
		}
		now := time.Now()
		due = due[:0]
		t.mu.Lock()
		for _, l := range t.leases {
			l.mu.Lock()
			if now.Sub(l.lastSent) >= t.cfg.renewInterval {
				due = append(due, l)
			}
			l.mu.Unlock()
		}
		t.mu.Unlock()
		for _, l := range due {
			if err := l.renew(t.ctx); err != nil && !errors.Is(err, ErrLost) && !errors.Is(err, ErrReleased) && t.ctx.Err() == nil {
				t.log.Warn("renew lease", "shard", l.key.ID, "shards", l.key.Count, "err", err)
			}
		}
		clear(due)
	}
}
