package limiter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Errors returned by Approach and Acquire, besides ctx.Err().
var (
	// ErrReleased is returned by a blocked Approach or Acquire when
	// Release is called for the same shard meanwhile.
	ErrReleased = errors.New("limiter: shard released while waiting")
	// ErrInvalidShard is returned for a negative shard ID.
	ErrInvalidShard = errors.New("limiter: invalid shard ID")
	// ErrBusy is returned when a shard already has an Approach or Acquire
	// blocked and another call for it arrives.
	ErrBusy = errors.New("limiter: shard already has a call waiting")
)

// Limiter paces identifies per bucket and spends the daily session-start
// budget. It satisfies gateway.IdentifyGate. It owns no goroutines: a
// blocked call waits on its own timer (only a bucket's head has one) or for
// a wake-up from whoever changed the queue. A Limiter is safe for concurrent
// use; make one with New.
type Limiter struct {
	window, margin time.Duration
	gap            time.Duration // window + margin
	reserve        int
	log            *slog.Logger

	mu      sync.Mutex
	buckets []bucket
	shards  map[int]*entry
	budget  budget
	pending int // approached, not yet granted shards: budget units held

	grants, ready, failed uint64
	waiting               int // queued shards, all buckets

	// onGrant, if set (tests only, before first use), is called under the
	// lock at each grant with the grant instant and the anchor the next
	// slot of the bucket counts from.
	onGrant func(shardID int, at, anchor time.Time)
	// onConfirm, likewise, when shardID's READY moves its anchor up.
	onConfirm func(shardID int, anchor time.Time)
}

// budget is the daily session-start budget.
type budget struct {
	known            bool
	total, remaining int
	resetAt          time.Time
	warned           bool // a budget wait was logged since the last change
}

// New returns a Limiter for maxConcurrency buckets (Discord's
// session_start_limit.max_concurrency). A maxConcurrency below 1 counts as 1,
// Discord's minimum, and is logged.
func New(maxConcurrency int, opts ...Option) *Limiter {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if maxConcurrency < 1 {
		cfg.logger.Warn("limiter: max_concurrency below 1, using 1", "max_concurrency", maxConcurrency)
		maxConcurrency = 1
	}
	l := &Limiter{
		window:  cfg.window,
		margin:  cfg.margin,
		gap:     cfg.window + cfg.margin,
		reserve: cfg.reserve,
		log:     cfg.logger,
		buckets: make([]bucket, maxConcurrency),
		shards:  make(map[int]*entry),
	}
	for i := range l.buckets {
		l.buckets[i].index = i
	}
	if s := cfg.budget; s != nil {
		l.setBudgetLocked(s.total, s.remaining, s.resetAfter, time.Now())
	}
	return l
}

// Approach queues shardID in its bucket (a queued shard keeps its place) and
// blocks until it is the head of the bucket and its slot is at most lead
// away. It returns ctx.Err() if ctx ends first, ErrReleased if Release is
// called meanwhile, and the shard then leaves the queue. Approach of a shard
// that already approached returns at once.
func (l *Limiter) Approach(ctx context.Context, shardID int, lead time.Duration) error {
	return l.wait(ctx, shardID, true, max(lead, 0))
}

// Acquire queues shardID if it is not queued, blocks until it is the head of
// its bucket and its slot has come (never before), then spends one session
// start and records the grant. It returns ctx.Err() if ctx ends first,
// ErrReleased if Release is called meanwhile; the shard then leaves the queue
// and spends nothing.
func (l *Limiter) Acquire(ctx context.Context, shardID int) error {
	return l.wait(ctx, shardID, false, 0)
}

// Release ends shardID's turn. After Acquire it records the outcome: ready
// reports whether READY arrived. A shard that is still queued (approached or
// not) leaves its queue and the next shard moves up; a call of its blocked in
// Approach or Acquire returns ErrReleased. Release of an unknown shard is a
// no-op.
func (l *Limiter) Release(shardID int, ready bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.shards[shardID]
	if e == nil {
		return
	}
	switch e.state {
	case stateGranted:
		if ready {
			l.ready++
		} else {
			l.failed++
		}
		if b := e.b; b.last == e {
			b.last = nil
			if ready {
				l.confirmedLocked(b, e, time.Now())
			}
		}
		e.state = stateGone
		delete(l.shards, shardID)
	case stateQueued:
		l.leaveLocked(e)
		e.signal()
	}
}

// Enqueue appends shards to their buckets' queues in the given order without
// blocking. Shards already queued keep their place. Negative IDs are
// skipped and logged.
func (l *Limiter) Enqueue(ids ...int) {
	var bad []int
	l.mu.Lock()
	for _, id := range ids {
		if id < 0 {
			bad = append(bad, id)
			continue
		}
		if e := l.shards[id]; e == nil || e.state != stateQueued {
			l.enqueueLocked(id)
		}
	}
	l.mu.Unlock()
	if bad != nil {
		l.log.Warn("limiter: skipped invalid shard IDs", "ids", bad)
	}
}

// SetSessionStartLimit replaces the daily budget with a fresh
// session_start_limit from /gateway/bot: total starts per period, remaining
// now, and the time until the reset. Values out of range (negative, or
// remaining above total) are clamped and logged.
func (l *Limiter) SetSessionStartLimit(total, remaining int, resetAfter time.Duration) {
	l.mu.Lock()
	l.setBudgetLocked(total, remaining, resetAfter, time.Now())
	// The budget may have grown: heads waiting for the reset re-evaluate.
	l.kickHeadsLocked()
	l.mu.Unlock()
}

func (l *Limiter) setBudgetLocked(total, remaining int, resetAfter time.Duration, now time.Time) {
	if total < 0 || remaining < 0 || remaining > total || resetAfter < 0 {
		l.log.Warn("limiter: session_start_limit out of range, clamping",
			"total", total, "remaining", remaining, "reset_after", resetAfter)
	}
	total = max(total, 0)
	l.budget = budget{
		known:     true,
		total:     total,
		remaining: min(max(remaining, 0), total),
		resetAt:   now.Add(max(resetAfter, 0)),
	}
}

// enqueueLocked appends a fresh entry for id, replacing a granted one whose
// outcome was never released.
func (l *Limiter) enqueueLocked(id int) *entry {
	if old := l.shards[id]; old != nil {
		old.state = stateGone
	}
	e := &entry{id: id}
	l.buckets[id%len(l.buckets)].push(e)
	l.shards[id] = e
	l.waiting++
	return e
}

// leaveLocked takes a queued e out of its queue and lets the next shard up.
func (l *Limiter) leaveLocked(e *entry) {
	if e.state != stateQueued {
		return
	}
	b := e.b
	wasHead := b.head() == e
	b.remove(e)
	l.waiting--
	e.state = stateGone
	if l.shards[e.id] == e {
		delete(l.shards, e.id)
	}
	if e.approached {
		e.approached = false
		l.pending--
		// The budget unit it held is free again for any bucket.
		l.kickHeadsLocked()
	} else if wasHead {
		if h := b.head(); h != nil {
			h.signal()
		}
	}
}

// kickHeadsLocked wakes every bucket head so it re-evaluates its slot.
func (l *Limiter) kickHeadsLocked() {
	for i := range l.buckets {
		if h := l.buckets[i].head(); h != nil {
			h.signal()
		}
	}
}

// wait is Approach (approach true) and Acquire. Only this goroutine changes
// e to approached or granted, so there is no race between a grant and ctx.
func (l *Limiter) wait(ctx context.Context, id int, approach bool, lead time.Duration) error {
	if id < 0 {
		return fmt.Errorf("shard %d: %w", id, ErrInvalidShard)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()

	l.mu.Lock()
	e := l.shards[id]
	if e == nil || e.state != stateQueued {
		e = l.enqueueLocked(id)
	}
	if e.waiting {
		l.mu.Unlock()
		return fmt.Errorf("shard %d: %w", id, ErrBusy)
	}
	e.waiting = true
	var since time.Time // when the wait began; only for the grant log
	for {
		if err := ctx.Err(); err != nil {
			e.waiting = false
			l.leaveLocked(e)
			l.mu.Unlock()
			return err
		}
		if e.state == stateGone {
			e.waiting = false
			l.mu.Unlock()
			return fmt.Errorf("shard %d: %w", id, ErrReleased)
		}
		now := time.Now()
		if since.IsZero() {
			since = now
		}
		at, slot, ok, budgetWait := l.readyLocked(e, approach, lead, now)
		if ok {
			e.waiting = false
			if approach {
				if !e.approached {
					e.approached = true
					l.pending++
				}
				l.mu.Unlock()
				return nil
			}
			bucket := e.b.index
			l.grantLocked(e, now, l.anchorFor(slot, since, now))
			l.mu.Unlock()
			if l.log.Enabled(ctx, slog.LevelDebug) {
				l.log.DebugContext(ctx, "identify granted", "shard", id, "bucket", bucket, "waited", now.Sub(since))
			}
			return nil
		}
		var warn budget
		if budgetWait && !l.budget.warned {
			l.budget.warned = true
			warn = l.budget
		}
		if e.wake == nil {
			e.wake = make(chan struct{}, 1)
		}
		wake := e.wake
		l.mu.Unlock()

		if warn.known {
			l.log.WarnContext(ctx, "session start budget at reserve: identifies wait for the reset",
				"shard", id, "remaining", warn.remaining, "reserve", l.effectiveReserve(warn.total),
				"reset_at", warn.resetAt)
		}
		var fire <-chan time.Time
		if !at.IsZero() {
			if timer == nil {
				timer = time.NewTimer(at.Sub(now))
			} else {
				timer.Reset(at.Sub(now))
			}
			fire = timer.C
		}
		select {
		case <-wake:
		case <-fire:
		case <-ctx.Done():
		}
		l.mu.Lock()
	}
}

// readyLocked reports whether e may approach (or be granted) now. If not,
// at is when that may change by itself (zero: only on a wake-up), and
// budgetWait tells whether the budget is what holds it back. slot is the
// head's grant slot (zero if it may go at once and has no predecessor).
func (l *Limiter) readyLocked(e *entry, approach bool, lead time.Duration, now time.Time) (at, slot time.Time, ok, budgetWait bool) {
	if e.b.head() != e {
		return time.Time{}, time.Time{}, false, false
	}
	if approach && e.approached {
		return time.Time{}, time.Time{}, true, false
	}
	slot, budgetWait = l.slotLocked(e.b, e.approached, now)
	at = slot
	if approach {
		at = slot.Add(-lead)
	}
	if !now.Before(at) {
		return time.Time{}, slot, true, false
	}
	return at, slot, false, budgetWait
}

// anchorFor returns what the next slot of a bucket counts from after a
// grant at now for the given slot, to a call that began waiting at since.
// A shard that was already waiting at its slot is late only because timers
// and the scheduler are: its grant anchors on the slot, or at most the
// margin before the grant if it was later than that, so lateness does not
// accumulate from slot to slot and grants stay at least a window apart. A
// shard that came after its slot (a slow handshake) or a bucket's first
// grant anchors on the grant itself.
func (l *Limiter) anchorFor(slot, since, now time.Time) time.Time {
	if slot.IsZero() || since.After(slot) {
		return now
	}
	if floor := now.Add(-l.margin); floor.After(slot) {
		return floor
	}
	return slot
}

// confirmedLocked is told at now that e, the last identify of b, was answered
// with READY. Discord sent READY after that identify arrived, so a window
// from now is a window after its arrival, whatever the network's delays:
// proof, where the margin is only an allowance for jitter. When the proof
// comes before the margin runs out, the next slot moves up to it (now +
// window); it never moves later, so a slow READY costs nothing.
func (l *Limiter) confirmedLocked(b *bucket, e *entry, now time.Time) {
	if proven := now.Add(-l.margin); proven.Before(b.anchor) { // next = anchor + window + margin
		b.anchor = proven
		if l.onConfirm != nil {
			l.onConfirm(e.id, proven)
		}
		if h := b.head(); h != nil {
			h.signal()
		}
	}
}

// slotLocked returns the earliest grant time for the head of b (possibly in
// the past; zero time if b never granted and the budget allows), and whether
// the budget pushed it to the reset.
func (l *Limiter) slotLocked(b *bucket, approached bool, now time.Time) (slot time.Time, budgetWait bool) {
	if b.granted {
		slot = b.anchor.Add(l.gap)
	}
	l.refillLocked(now)
	if !l.budgetAllowsLocked(approached) {
		budgetWait = true
		if l.budget.resetAt.After(slot) {
			slot = l.budget.resetAt
		}
	}
	return slot, budgetWait
}

// refillLocked performs the budget reset once its time has come.
func (l *Limiter) refillLocked(now time.Time) {
	bg := &l.budget
	if !bg.known || now.Before(bg.resetAt) {
		return
	}
	bg.remaining = bg.total
	periods := now.Sub(bg.resetAt)/budgetPeriod + 1
	bg.resetAt = bg.resetAt.Add(periods * budgetPeriod)
	bg.warned = false
}

// budgetAllowsLocked reports whether one more start may be granted without
// the budget falling below the reserve. Approached shards hold a unit each;
// approached tells whether the asker holds one of them.
func (l *Limiter) budgetAllowsLocked(approached bool) bool {
	bg := &l.budget
	if !bg.known {
		return true
	}
	avail := bg.remaining - l.pending
	if approached {
		avail++
	}
	return bg.remaining > 0 && avail > l.effectiveReserve(bg.total)
}

// effectiveReserve caps the reserve so one start per period stays possible.
func (l *Limiter) effectiveReserve(total int) int {
	return max(min(l.reserve, total-1), 0)
}

// grantLocked records that e, the head of its bucket, identifies now; the
// next slot of the bucket counts from anchor (see anchorFor).
func (l *Limiter) grantLocked(e *entry, now, anchor time.Time) {
	b := e.b
	b.remove(e)
	l.waiting--
	if e.approached {
		e.approached = false
		l.pending--
	}
	e.state = stateGranted
	b.lastGrant, b.anchor, b.granted, b.last = now, anchor, true, e
	if l.budget.known {
		l.budget.remaining--
	}
	l.grants++
	if l.onGrant != nil {
		l.onGrant(e.id, now, anchor)
	}
	if h := b.head(); h != nil {
		h.signal()
	}
}

// Position reports where shardID waits: its bucket and its place in the
// queue (0 = head). ok is false if the shard is not queued. O(1).
func (l *Limiter) Position(shardID int) (bucket, pos int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.shards[shardID]
	if e == nil || e.state != stateQueued {
		return 0, 0, false
	}
	return e.b.index, e.abs - e.b.base, true
}
