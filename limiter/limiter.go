package limiter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Errors returned by the Limiter's methods, besides ctx.Err().
var (
	// ErrReleased is returned by Approach or Acquire for a ticket that was
	// released (or expired, or never handed out), also while they wait.
	ErrReleased = errors.New("limiter: ticket released")
	// ErrInvalidShard is returned by Enqueue for a negative shard ID.
	ErrInvalidShard = errors.New("limiter: invalid shard ID")
	// ErrBusy is returned when a ticket already has an Approach or Acquire
	// blocked and another call for it arrives.
	ErrBusy = errors.New("limiter: ticket already has a call waiting")
)

// Limiter paces identifies per bucket and spends the daily session-start
// budget. It satisfies gateway.IdentifyGate. It owns no goroutines: a
// blocked call waits on its own timer (only a bucket's head has one) or for
// a wake-up from whoever changed the queue. A Limiter is safe for concurrent
// use; make one with New.
type Limiter struct {
	window, margin time.Duration
	holdLimit      time.Duration
	reserve        int
	log            *slog.Logger

	mu      sync.Mutex
	buckets []bucket
	tickets map[uint64]*ticket // queued and granted tickets
	last    uint64             // the last ticket handed out
	budget  budget
	pending int // approached, not yet granted tickets: budget units held

	grants, ready, failed, expired uint64
	waiting                        int // queued tickets, all buckets

	// onGrant, if set (tests only, before first use), is called under the
	// lock at each grant with the shard and the grant instant.
	onGrant func(shardID int, at time.Time)
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
		window:    cfg.window,
		margin:    cfg.margin,
		holdLimit: max(cfg.holdLimit, cfg.window),
		reserve:   cfg.reserve,
		log:       cfg.logger,
		buckets:   make([]bucket, maxConcurrency),
		tickets:   make(map[uint64]*ticket),
	}
	for i := range l.buckets {
		l.buckets[i].index = i
	}
	if s := cfg.budget; s != nil {
		l.setBudgetLocked(s.total, s.remaining, s.resetAfter, time.Now())
	}
	return l
}

// Enqueue gives shardID a ticket: a place at the end of its bucket's
// (shard_id % max_concurrency) queue. It never blocks. Two shards with the
// same ID (an old shard and its successor during a split) hold two tickets
// and simply queue one after the other. Whoever enqueues must eventually
// acquire or release the ticket: a queued ticket holds its place.
func (l *Limiter) Enqueue(shardID int) (uint64, error) {
	if shardID < 0 {
		return 0, fmt.Errorf("shard %d: %w", shardID, ErrInvalidShard)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last++
	t := &ticket{id: l.last, shardID: shardID}
	l.buckets[shardID%len(l.buckets)].push(t)
	l.tickets[t.id] = t
	l.waiting++
	return t.id, nil
}

// Approach blocks until ticket is the head of its bucket and its identify
// slot is at most lead away (the slot as far as it is known: while the
// bucket's previous identify awaits READY, a window after that identify),
// so the shard can dial and finish the handshake in time. It returns
// ctx.Err() if ctx ends first, and ErrReleased if the ticket is released
// meanwhile (or was); the ticket then leaves the queue. Approach of a
// ticket that already approached, or was granted, returns at once.
func (l *Limiter) Approach(ctx context.Context, ticket uint64, lead time.Duration) error {
	return l.wait(ctx, ticket, true, max(lead, 0))
}

// Acquire blocks until ticket is the head of its bucket and may identify
// now — the bucket's previous identify has its outcome and a window has
// passed since (see doc.go), and the budget allows — then spends one
// session start and records the grant. It returns ctx.Err() if ctx ends
// first, ErrReleased if the ticket is released meanwhile (or was); the
// ticket then leaves the queue and spends nothing. Acquire of a granted
// ticket returns nil at once and spends nothing more.
func (l *Limiter) Acquire(ctx context.Context, ticket uint64) error {
	return l.wait(ctx, ticket, false, 0)
}

// Release ends ticket's turn. After Acquire it records the outcome, and
// when the bucket may identify next: ready reports that READY arrived (a
// window from now), else the attempt failed (a window and the margin from
// now). A ticket still queued (approached or not) leaves its queue; a call
// of its blocked in Approach or Acquire returns ErrReleased. Releasing a
// ticket again, or an unknown one, does nothing.
func (l *Limiter) Release(ticket uint64, ready bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tickets[ticket]
	if t == nil {
		return
	}
	switch t.state {
	case stateGranted:
		if ready {
			l.ready++
		} else {
			l.failed++
		}
		delete(l.tickets, t.id)
		t.state = stateGone
		if b := t.b; b.held == t {
			l.outcomeLocked(b, time.Now(), ready)
		}
	case stateQueued:
		l.leaveLocked(t)
		t.signal()
	}
}

// outcomeLocked ends b's identify in flight, told at now: READY is proof
// that Discord read the identify before now, so a window from now is a
// window after its arrival; without READY (a failed or dropped attempt)
// the margin is added, for an identify that may still have been on its way.
func (l *Limiter) outcomeLocked(b *bucket, now time.Time, ready bool) {
	b.held = nil
	next := now.Add(l.window)
	if !ready {
		next = next.Add(l.margin)
	}
	if next.After(b.next) {
		b.next = next
	}
	if h := b.head(); h != nil {
		h.signal()
	}
}

// expireLocked ends b's identify in flight if its holder has not told the
// outcome within the hold limit: a holder that is stuck (or gone) blocks
// its bucket for the hold limit and one window at most.
func (l *Limiter) expireLocked(b *bucket, now time.Time) {
	t := b.held
	if t == nil {
		return
	}
	deadline := t.grantAt.Add(l.holdLimit)
	if now.Before(deadline) {
		return
	}
	l.expired++
	l.log.Warn("limiter: an identify's outcome was never told: its bucket goes on",
		"shard", t.shardID, "bucket", b.index, "hold_limit", l.holdLimit)
	l.outcomeLocked(b, deadline, false)
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

// leaveLocked takes a queued t out of its queue and lets the next ticket up.
func (l *Limiter) leaveLocked(t *ticket) {
	if t.state != stateQueued {
		return
	}
	b := t.b
	wasHead := b.head() == t
	b.remove(t)
	l.waiting--
	t.state = stateGone
	delete(l.tickets, t.id)
	if t.approached {
		t.approached = false
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
// t to approached or granted, so there is no race between a grant and ctx.
func (l *Limiter) wait(ctx context.Context, id uint64, approach bool, lead time.Duration) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()

	l.mu.Lock()
	t := l.tickets[id]
	switch {
	case t == nil:
		l.mu.Unlock()
		return fmt.Errorf("ticket %d: %w", id, ErrReleased)
	case t.state == stateGranted:
		l.mu.Unlock()
		return nil
	case t.waiting:
		l.mu.Unlock()
		return fmt.Errorf("ticket %d (shard %d): %w", id, t.shardID, ErrBusy)
	}
	t.waiting = true
	var since time.Time // when the wait began; only for the grant log
	for {
		if err := ctx.Err(); err != nil {
			t.waiting = false
			l.leaveLocked(t)
			l.mu.Unlock()
			return err
		}
		if t.state == stateGone {
			t.waiting = false
			l.mu.Unlock()
			return fmt.Errorf("ticket %d (shard %d): %w", id, t.shardID, ErrReleased)
		}
		now := time.Now()
		if since.IsZero() {
			since = now
		}
		at, ok, budgetWait := l.readyLocked(t, approach, lead, now)
		if ok {
			t.waiting = false
			if approach {
				if !t.approached {
					t.approached = true
					l.pending++
				}
				l.mu.Unlock()
				return nil
			}
			shardID, bucket := t.shardID, t.b.index
			l.grantLocked(t, now)
			l.mu.Unlock()
			if l.log.Enabled(ctx, slog.LevelDebug) {
				l.log.DebugContext(ctx, "identify granted", "shard", shardID, "bucket", bucket, "waited", now.Sub(since))
			}
			return nil
		}
		var warn budget
		if budgetWait && !l.budget.warned {
			l.budget.warned = true
			warn = l.budget
		}
		if t.wake == nil {
			t.wake = make(chan struct{}, 1)
		}
		wake := t.wake
		l.mu.Unlock()

		if warn.known {
			l.log.WarnContext(ctx, "session start budget at reserve: identifies wait for the reset",
				"shard", t.shardID, "remaining", warn.remaining, "reserve", l.effectiveReserve(warn.total),
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

// readyLocked reports whether t may approach (or be granted) now. If not,
// at is when that may change by itself (zero: only on a wake-up), and
// budgetWait tells whether the budget is what holds it back.
func (l *Limiter) readyLocked(t *ticket, approach bool, lead time.Duration, now time.Time) (at time.Time, ok, budgetWait bool) {
	b := t.b
	if b.head() != t {
		return time.Time{}, false, false
	}
	if approach && t.approached {
		return time.Time{}, true, false
	}
	l.expireLocked(b, now)
	slot, known, budgetWait := l.slotLocked(b, t.approached, now)
	if approach {
		// While the previous identify awaits READY the slot is not known
		// yet; its earliest (a window after that identify) is when to dial.
		if at := slot.Add(-lead); now.Before(at) {
			return at, false, budgetWait
		}
		return time.Time{}, true, false
	}
	if !known {
		// Woken by the outcome (Release); the timer is the hold limit.
		return b.held.grantAt.Add(l.holdLimit), false, false
	}
	if now.Before(slot) {
		return slot, false, budgetWait
	}
	return time.Time{}, true, false
}

// slotLocked returns the earliest grant time for the head of b (possibly in
// the past; zero if b may identify at once), whether it is known (false
// while b's previous identify awaits its outcome: then slot is the earliest
// it could be, a window after that identify), and whether the budget pushed
// it to the reset.
func (l *Limiter) slotLocked(b *bucket, approached bool, now time.Time) (slot time.Time, known, budgetWait bool) {
	slot, known = b.next, true
	if b.held != nil {
		slot, known = b.held.grantAt.Add(l.window), false
	}
	l.refillLocked(now)
	if !l.budgetAllowsLocked(approached) {
		budgetWait = true
		if l.budget.resetAt.After(slot) {
			slot = l.budget.resetAt
		}
	}
	return slot, known, budgetWait
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
// the budget falling below the reserve. Approached tickets hold a unit
// each; approached tells whether the asker holds one of them.
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

// grantLocked records that t, the head of its bucket, identifies now.
func (l *Limiter) grantLocked(t *ticket, now time.Time) {
	b := t.b
	b.remove(t)
	l.waiting--
	if t.approached {
		t.approached = false
		l.pending--
	}
	t.state, t.grantAt = stateGranted, now
	b.held, b.lastGrant = t, now
	if l.budget.known {
		l.budget.remaining--
	}
	l.grants++
	if l.onGrant != nil {
		l.onGrant(t.shardID, now)
	}
	// The next head may approach now: its slot is a window away at best.
	if h := b.head(); h != nil {
		h.signal()
	}
}

// Position reports where ticket waits: its bucket and its place in the
// queue (0 = head). ok is false if the ticket is not queued. O(1).
func (l *Limiter) Position(ticket uint64) (bucket, pos int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tickets[ticket]
	if t == nil || t.state != stateQueued {
		return 0, 0, false
	}
	return t.b.index, t.abs - t.b.base, true
}
