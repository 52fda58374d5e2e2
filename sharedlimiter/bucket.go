package sharedlimiter

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// bucketEntry is a bucket key as last seen (by the watcher or a read).
type bucketEntry struct {
	present bool // false: the key has no message (never written, or its marker aged out)
	rev     uint64
	created time.Time // server time of the write
	op      jetstream.KeyValueOp
	val     bucketVal
	seen    time.Time // local time the entry was seen
}

// release is an outcome the bucket's worker must write.
type release struct {
	rev   uint64
	ready bool
	shard int
}

// bucket is one identify bucket as this process sees it. Fields are
// guarded by Limiter.mu; only the bucket's worker goroutine does KV I/O
// for it.
type bucket struct {
	index int
	key   string
	kick  chan struct{} // cap 1: wakes the worker
	q     []*ticket

	cur     bucketEntry
	curErr  error // the bucket key's value is malformed
	waiters map[string]waiterVal

	held      *ticket // granted here, outcome not yet told
	heldRev   uint64
	release   *release
	notBefore time.Time // local: SeedLastIdentify
	lastGrant time.Time
	readAt    time.Time // local time the worker last read the key itself
	// releasedRev is the last claim of ours whose outcome was written.
	releasedRev uint64

	advertised bool      // this process's waiters key is written
	advEnq     time.Time // ... with this enqueue time
	advAt      time.Time // local time it was written
	deferSince time.Time // when the head began deferring to an older waiter
}

func (b *bucket) head() *ticket {
	if len(b.q) == 0 {
		return nil
	}
	return b.q[0]
}

func (b *bucket) kickWorker() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// work is the bucket's worker: the one goroutine of this process that
// talks to KV about bucket b. It writes outcomes, advertises the head,
// claims the bucket for the head when Acquire waits, waits out the gap and
// spends the budget.
func (l *Limiter) work(b *bucket) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		at := l.step(b)
		if at < 0 {
			if l.ctx.Err() != nil {
				return
			}
			continue
		}
		if at > 0 {
			timer.Reset(at)
		}
		var fire <-chan time.Time
		if at > 0 {
			fire = timer.C
		}
		select {
		case <-l.ctx.Done():
			return
		case <-b.kick:
		case <-fire:
		}
		if at > 0 && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// step does what b needs now and returns when to look again (0: on a
// kick only; negative: at once).
func (l *Limiter) step(b *bucket) time.Duration {
	ctx := l.ctx
	l.mu.Lock()
	if r := b.release; r != nil {
		b.release = nil
		b.releasedRev = max(b.releasedRev, r.rev)
		l.mu.Unlock()
		l.writeOutcome(ctx, b, r)
		return -1
	}
	h := b.head()
	now := time.Now()
	// A claim of ours the worker does not hold: one whose publish timed
	// out yet was stored (a server lost mid-request). Adopt it for the
	// head it was made for, else give it up as a failure.
	if cur := b.cur; b.held == nil && cur.present && cur.op == jetstream.KeyValuePut &&
		cur.val.State == stateHeld && cur.val.Holder == l.id && cur.rev > b.releasedRev {
		if h != nil && h.acquiring && cur.val.Ticket == h.id {
			l.mu.Unlock()
			// Its previous entry is unknown here but older than the claim:
			// a whole gap after the claim was seen covers it.
			return l.finish(ctx, b, h, h.shardID, cur.rev, cur.seen.Add(l.window+l.margin))
		}
		l.mu.Unlock()
		l.writeOutcome(ctx, b, &release{rev: cur.rev, shard: cur.val.Shard})
		return -1
	}
	// Advertise the head (refreshed before its TTL runs out), or withdraw.
	waiterTTL := ttlSeconds(max(2*l.window, 2*time.Second))
	if h == nil && b.advertised {
		b.advertised = false
		l.mu.Unlock()
		ctx2, cancel := context.WithTimeout(ctx, kvTimeout)
		if err := l.kv.Purge(ctx2, waiterKey(b.index, l.id), jetstream.PurgeTTL(time.Second)); err != nil && ctx.Err() == nil {
			l.log.Warn("sharedlimiter: withdraw waiter", "bucket", b.index, "err", err)
		}
		cancel()
		return -1
	}
	if h == nil {
		l.mu.Unlock()
		return 0
	}
	if !b.advertised || !b.advEnq.Equal(h.enq) || now.Sub(b.advAt) > waiterTTL/2 {
		v, _ := json.Marshal(waiterVal{Node: l.node, Shard: h.shardID, Enqueued: h.enq})
		b.advertised, b.advEnq, b.advAt = true, h.enq, now
		l.mu.Unlock()
		ctx2, cancel := context.WithTimeout(ctx, kvTimeout)
		if _, err := l.put(ctx2, waiterKey(b.index, l.id), v, waiterTTL); err != nil && ctx.Err() == nil {
			l.log.Warn("sharedlimiter: advertise waiter", "bucket", b.index, "err", err)
		}
		cancel()
		return -1
	}
	refresh := waiterTTL/2 - now.Sub(b.advAt) + time.Millisecond
	if b.held != nil || !h.acquiring {
		l.mu.Unlock()
		return refresh
	}
	if b.curErr != nil {
		h.err = b.curErr
		h.signal()
		l.mu.Unlock()
		return refresh
	}
	if l.budget.err != nil {
		h.err = l.budget.err
		h.signal()
		l.mu.Unlock()
		return refresh
	}
	cur := b.cur
	if cur.present && cur.op == jetstream.KeyValuePut && cur.val.State == stateHeld {
		// Another identify in flight: its outcome or TTL marker wakes us
		// through the watcher. Should the watcher lag (it recovers slowly
		// from a lost server), read the key once per window ourselves.
		poll := max(l.window, 100*time.Millisecond)
		if since := now.Sub(later(cur.seen, b.readAt)); since < poll {
			l.mu.Unlock()
			return min(refresh, poll-since)
		}
		b.readAt = now
		l.mu.Unlock()
		ctx2, cancel := context.WithTimeout(ctx, kvTimeout)
		defer cancel()
		l.refresh(ctx2, b, cur)
		return -1
	}
	// Defer to an older waiter of another process, for at most two
	// windows (a peer that advertises but never claims cannot stall us).
	older := false
	for id, w := range b.waiters {
		if w.Enqueued.Before(h.enq) || (w.Enqueued.Equal(h.enq) && id < l.id) {
			older = true
			break
		}
	}
	if !older {
		b.deferSince = time.Time{}
	} else {
		if b.deferSince.IsZero() {
			b.deferSince = now
		}
		if left := b.deferSince.Add(2 * l.window).Sub(now); left > 0 {
			l.mu.Unlock()
			return min(left, refresh)
		}
	}
	if d := b.notBefore.Sub(now); d > 0 {
		l.mu.Unlock()
		return d
	}
	if ok, resetAt := l.budgetAllowsLocked(h.approached); !ok {
		d := l.localTimeLocked(resetAt).Sub(now)
		warn := !l.budgetWarned
		l.budgetWarned = true
		v := l.budget.val
		l.mu.Unlock()
		if warn {
			l.log.Warn("session start budget at reserve: identifies wait for the reset",
				"shard", h.shardID, "bucket", b.index, "remaining", v.Remaining,
				"reserve", l.effectiveReserve(v.Total), "reset_in", d)
		}
		return max(d, time.Millisecond)
	}
	shard := h.shardID
	l.mu.Unlock()
	return l.claim(ctx, b, h, shard, cur)
}

// claim takes bucket b in KV for head h, based on the bucket key's entry
// prev, waits out the gap, spends the budget and grants.
func (l *Limiter) claim(ctx context.Context, b *bucket, h *ticket, shard int, prev bucketEntry) time.Duration {
	val, _ := json.Marshal(bucketVal{State: stateHeld, Node: l.node, Holder: l.id, Ticket: h.id, Shard: shard})
	ctx2, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	rev, err := l.publish(ctx2, b.key, val, prev.rev, l.holdLimit)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return l.refresh(ctx2, b, prev)
	}
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("sharedlimiter: claim", "bucket", b.index, "err", err)
		}
		return l.window / 4
	}
	ack := time.Now()
	e, err := l.kv.GetRevision(ctx2, b.key, rev)
	if err != nil {
		// Our claim stands; without its timestamp, wait the whole gap. On
		// a replicated bucket the read may reach a replica that has not
		// applied the claim yet (KV reads are direct gets): routine.
		l.log.Debug("sharedlimiter: read back claim", "bucket", b.index, "err", err)
	}
	wait := l.gapAfter(prev)
	if err == nil {
		l.noteClock(e.Created(), ack)
		if prev.present {
			wait = prev.created.Add(l.gapAfter(prev)).Sub(e.Created())
		}
	}
	return l.finish(ctx, b, h, shard, rev, ack.Add(wait))
}

// finish completes claim rev of b for head h: waits until until (local),
// spends one start and grants, or gives the claim up as a failure.
func (l *Limiter) finish(ctx context.Context, b *bucket, h *ticket, shard int, rev uint64, until time.Time) time.Duration {
	if d := time.Until(until); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0
		}
	}
	// Still wanted? Then spend one start and grant.
	ctx3, cancel3 := context.WithTimeout(ctx, kvTimeout)
	defer cancel3()
	l.mu.Lock()
	wanted := h.state == tQueued && h.acquiring && b.head() == h
	approached := h.approached
	l.mu.Unlock()
	if wanted {
		ok, err := l.spend(ctx3, approached)
		if err != nil {
			l.mu.Lock()
			h.err = err
			h.signal()
			l.mu.Unlock()
			wanted = false
		} else if !ok {
			wanted = false
		}
	}
	l.mu.Lock()
	if !wanted || !(h.state == tQueued && b.head() == h) {
		// Nobody identifies on this claim; give it up as a failure (no
		// READY proves anything, so the margin applies).
		l.mu.Unlock()
		l.writeOutcome(ctx, b, &release{rev: rev, ready: false, shard: shard})
		return -1
	}
	b.q = b.q[1:]
	l.waiting--
	if h.approached {
		h.approached = false
		l.pending--
	}
	now := time.Now()
	h.state = tGranted
	b.held, b.heldRev, b.lastGrant = h, rev, now
	b.deferSince = time.Time{}
	l.grants++
	h.signal()
	if n := b.head(); n != nil {
		n.signal()
	}
	l.mu.Unlock()
	l.log.Debug("identify granted", "shard", shard, "bucket", b.index)
	return -1
}

// refresh re-reads the bucket key after a lost compare-and-set, in case
// the watcher's view is stale (a marker that aged out sends no update).
func (l *Limiter) refresh(ctx context.Context, b *bucket, prev bucketEntry) time.Duration {
	e, err := l.kv.Get(ctx, b.key)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if b.cur.rev != prev.rev {
		return -1 // the watcher brought news meanwhile
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyDeleted):
		// A marker the watcher has not brought yet: its revision is
		// unknown here, so wait for the watcher (or the next read).
		return max(l.window/8, 10*time.Millisecond)
	case errors.Is(err, jetstream.ErrKeyNotFound):
		if !prev.present {
			// Not found again, yet the claim lost: a replica that lags.
			return max(l.window/8, 10*time.Millisecond)
		}
		b.cur = bucketEntry{}
		return -1
	case err == nil && e.Revision() > b.cur.rev:
		b.cur = bucketEntry{present: true, rev: e.Revision(), created: e.Created(), op: e.Operation(), seen: now}
		b.cur.val, b.curErr = parseBucket(b.key, e.Value())
		return -1
	}
	return l.window / 8 // the watcher will tell
}

// writeOutcome writes r to b's key: free, with READY or not. A failed
// write (a server lost mid-request) is retried until it lands or the claim
// would have expired anyway. If the claim expired meanwhile (another
// revision), the outcome is lost: counted as expired.
func (l *Limiter) writeOutcome(ctx context.Context, b *bucket, r *release) {
	l.mu.Lock()
	b.releasedRev = max(b.releasedRev, r.rev)
	l.mu.Unlock()
	val, _ := json.Marshal(bucketVal{State: stateFree, Node: l.node, Holder: l.id, Shard: r.shard, Ready: r.ready})
	start := time.Now()
	retried := false
	for {
		ctx2, cancel := context.WithTimeout(ctx, kvTimeout)
		_, err := l.publish(ctx2, b.key, val, r.rev, 0)
		cancel()
		switch {
		case err == nil:
			return
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			if retried {
				return // an earlier attempt may have landed after all
			}
			l.mu.Lock()
			l.expired++
			l.mu.Unlock()
			l.log.Warn("sharedlimiter: an identify's claim expired before its outcome was told",
				"shard", r.shard, "bucket", b.index, "hold_limit", l.holdLimit)
			return
		case ctx.Err() != nil:
			return
		case time.Since(start) > l.holdLimit:
			l.log.Warn("sharedlimiter: could not write an outcome; the claim expires by its TTL",
				"bucket", b.index, "err", err)
			return
		}
		retried = true
		l.log.Warn("sharedlimiter: write outcome, retrying", "bucket", b.index, "err", err)
		t := time.NewTimer(max(l.window/4, 50*time.Millisecond))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
