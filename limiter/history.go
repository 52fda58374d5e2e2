package limiter

import "time"

// SeedLastIdentify tells the limiter that bucket sent an identify at at,
// before this Limiter existed (a previous run of the program): the bucket's
// next slot is then no sooner than at + window + margin, so a restart within
// one window cannot identify early. A time in the future (the clock was set
// back) counts as now; one older than a window changes nothing; a later
// identify the limiter already granted wins. Out-of-range buckets are
// ignored.
func (l *Limiter) SeedLastIdentify(bucket int, at time.Time) {
	if at.IsZero() {
		return
	}
	now := time.Now()
	if at.After(now) {
		at = now
	}
	at = at.Round(0) // a wall time from a file: no monotonic reading to compare by
	l.mu.Lock()
	defer l.mu.Unlock()
	if bucket < 0 || bucket >= len(l.buckets) || !at.Add(l.gap).After(now) {
		return
	}
	b := &l.buckets[bucket]
	if b.granted && !b.anchor.Before(at) {
		return
	}
	// Anchored on the identify itself: no READY came back to this process
	// to prove when Discord read it, so the full margin applies.
	b.lastGrant, b.anchor, b.granted = at, at, true
	if h := b.head(); h != nil {
		h.signal()
	}
}

// LastIdentifies appends, for every bucket in order, when it last sent an
// identify (granted, or seeded by SeedLastIdentify; zero if never) to dst
// and returns it: what a program saves so that its next run can seed the
// limiter. It takes the lock once and allocates only to grow dst.
func (l *Limiter) LastIdentifies(dst []time.Time) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.buckets {
		var t time.Time
		if b := &l.buckets[i]; b.granted {
			t = b.lastGrant
		}
		dst = append(dst, t)
	}
	return dst
}
