package sharedlimiter

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardtop/shardtop/limiter"
)

// Snapshot returns what this process knows: every bucket with this
// process's waiting shards (head first), whether an identify is in flight
// in the bucket (by any process), the earliest next slot as seen here,
// the shared budget as last read from KV, and this process's counters.
func (l *Limiter) Snapshot() limiter.Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	s := limiter.Snapshot{
		At: now, Window: l.window, Margin: l.margin, MaxConcurrency: len(l.buckets),
		Buckets: make([]limiter.BucketSnapshot, len(l.buckets)),
		Grants:  l.grants, Ready: l.ready, Failed: l.failed, Expired: l.expired,
		Waiting: l.waiting,
		Budget:  limiter.BudgetSnapshot{Known: l.budget.known, Reserve: l.reserve},
	}
	if l.budget.known {
		v := refilled(l.budget.val, l.serverNowLocked())
		s.Budget.Total, s.Budget.Remaining = v.Total, v.Remaining
		s.Budget.Reserve = l.effectiveReserve(v.Total)
		s.Budget.ResetAt = l.localTimeLocked(v.ResetAt)
	}
	ids := make([]int, l.waiting)
	off := 0
	for i, b := range l.buckets {
		n := len(b.q)
		w := ids[off : off+n : off+n]
		off += n
		for j, t := range b.q {
			w[j] = t.shardID
		}
		h := b.head()
		holding := b.held != nil || (b.cur.present && b.cur.op == jetstream.KeyValuePut && b.cur.val.State == stateHeld)
		slot := b.notBefore
		if b.cur.present {
			g := l.gapAfter(b.cur)
			if b.cur.val.State == stateHeld {
				g = l.window
			}
			slot = later(slot, b.cur.seen.Add(g))
		}
		s.Buckets[i] = limiter.BucketSnapshot{
			Index: i, Waiting: w, HeadApproaching: h != nil && h.approached, Holding: holding,
			NextSlot: later(slot, now), LastGrant: later(b.lastGrant, l.kvGrantLocked(b)),
		}
	}
	return s
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// kvGrantLocked is the local time of the bucket's claim in KV (by any
// process), if the key holds one; zero otherwise.
func (l *Limiter) kvGrantLocked(b *bucket) time.Time {
	if b.cur.present && b.cur.op == jetstream.KeyValuePut && b.cur.val.State == stateHeld {
		return l.localTimeLocked(b.cur.created)
	}
	return time.Time{}
}

// LastIdentifies appends, for every bucket in order, the last identify
// this process knows of (granted here, or a claim seen in KV; zero if
// none) to dst and returns it.
func (l *Limiter) LastIdentifies(dst []time.Time) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.buckets {
		dst = append(dst, later(b.lastGrant, l.kvGrantLocked(b)))
	}
	return dst
}

// SeedLastIdentify tells this process that bucket identified at at in a
// previous run: its worker claims nothing before at + window + margin
// (local). Other processes do not learn of it; the KV key's own history
// covers them. A future at counts as now; out-of-range buckets are ignored.
func (l *Limiter) SeedLastIdentify(bucket int, at time.Time) {
	if at.IsZero() {
		return
	}
	now := time.Now()
	if at.After(now) {
		at = now
	}
	at = at.Round(0)
	l.mu.Lock()
	defer l.mu.Unlock()
	if bucket < 0 || bucket >= len(l.buckets) {
		return
	}
	b := l.buckets[bucket]
	next := now.Add(at.Add(l.window + l.margin).Sub(now)) // keep now's monotonic reading
	if next.After(b.notBefore) {
		b.notBefore = next
		if at.After(b.lastGrant) {
			b.lastGrant = at
		}
		b.kickWorker()
	}
}
