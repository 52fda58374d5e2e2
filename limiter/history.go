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
	if bucket < 0 || bucket >= len(l.buckets) || !at.Add(l.gap()).After(now) {
		return
	}
	b := &l.buckets[bucket]
	// No READY came back to this process to prove when Discord read that
	// identify, so the margin applies, as after a failed attempt.
	if next := at.Add(l.gap()); next.After(b.next) {
		b.next = next
		if at.After(b.lastGrant) {
			b.lastGrant = at
		}
		if h := b.head(); h != nil {
			h.signal()
		}
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
		dst = append(dst, l.buckets[i].lastGrant)
	}
	return dst
}

// gap is the wait after an identify whose arrival nothing proves.
func (l *Limiter) gap() time.Duration { return l.window + l.margin }
