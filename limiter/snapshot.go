package limiter

import "time"

// Snapshot is a copy of the Limiter's state for display.
type Snapshot struct {
	// At is when the snapshot was taken.
	At time.Time
	// Window, Margin and MaxConcurrency are the Limiter's settings.
	Window, Margin time.Duration
	MaxConcurrency int
	// Buckets holds one entry per bucket, indexed by bucket.
	Buckets []BucketSnapshot
	// Budget is the daily session-start budget.
	Budget BudgetSnapshot
	// Grants counts identifies granted; Ready and Failed count the
	// outcomes released so far, Expired the identifies whose outcome never
	// came within the hold limit.
	Grants, Ready, Failed, Expired uint64
	// Waiting counts queued tickets in all buckets.
	Waiting int
}

// BucketSnapshot is one bucket's queue and timing.
type BucketSnapshot struct {
	// Index is the bucket, shard_id % max_concurrency.
	Index int
	// Waiting lists the queued shard IDs, head first.
	Waiting []int
	// HeadApproaching is true if Waiting[0] was let through Approach and
	// is dialing or about to identify.
	HeadApproaching bool
	// Holding is true while the bucket's last identify awaits its outcome
	// (READY or a failure): nothing else of the bucket identifies meanwhile.
	Holding bool
	// NextSlot is the earliest time the head may identify, never before At
	// (the budget reset if the budget holds the bucket back). While Holding
	// it is the earliest it could be: a window after that identify.
	NextSlot time.Time
	// LastGrant is the last grant in the bucket; zero if none yet.
	LastGrant time.Time
}

// BudgetSnapshot is the daily session-start budget.
type BudgetSnapshot struct {
	// Known is false until a session_start_limit was set; the budget is
	// then unlimited and the other fields are zero, except Reserve.
	Known bool
	// Total and Remaining are session starts per period and left now.
	Total, Remaining int
	// Reserve is the level at which grants stop until the reset.
	Reserve int
	// ResetAt is when Remaining becomes Total again.
	ResetAt time.Time
}

// Snapshot returns a copy of the Limiter's state. It copies the queues (one
// allocation for all their IDs) under the lock; cheap enough for a UI
// refreshing a few times a second with 10,000 queued shards.
func (l *Limiter) Snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.refillLocked(now)
	s := Snapshot{
		At:             now,
		Window:         l.window,
		Margin:         l.margin,
		MaxConcurrency: len(l.buckets),
		Buckets:        make([]BucketSnapshot, len(l.buckets)),
		Grants:         l.grants,
		Ready:          l.ready,
		Failed:         l.failed,
		Expired:        l.expired,
		Waiting:        l.waiting,
		Budget:         BudgetSnapshot{Known: l.budget.known, Reserve: l.reserve},
	}
	if l.budget.known {
		s.Budget.Total = l.budget.total
		s.Budget.Remaining = l.budget.remaining
		s.Budget.Reserve = l.effectiveReserve(l.budget.total)
		s.Budget.ResetAt = l.budget.resetAt
	}
	ids := make([]int, l.waiting)
	off := 0
	for i := range l.buckets {
		b := &l.buckets[i]
		n := len(b.q)
		w := ids[off : off+n : off+n]
		off += n
		for j, e := range b.q {
			w[j] = e.shardID
		}
		h := b.head()
		approaching := h != nil && h.approached
		l.expireLocked(b, now)
		slot, _, _ := l.slotLocked(b, approaching, now)
		if slot.Before(now) {
			slot = now
		}
		s.Buckets[i] = BucketSnapshot{Index: i, Waiting: w, HeadApproaching: approaching, Holding: b.held != nil,
			NextSlot: slot, LastGrant: b.lastGrant}
	}
	return s
}
