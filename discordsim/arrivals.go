package discordsim

import "time"

// arrivals holds when a bucket's latest accepted identifies arrived. Each
// connection stamps a payload when it reads it but judges it a little later,
// so under load identifies can be judged out of arrival order: the window
// is checked against the nearest arrivals on both sides, not against the
// last one judged (which could be a later arrival and make a punctual
// identify look early).
type arrivals struct {
	at [4]time.Time // ring of the latest accepted arrivals; zero = unused
	n  int          // next slot to overwrite
}

// within returns an accepted arrival less than window away from at, if any.
func (a *arrivals) within(at time.Time, window time.Duration) (time.Time, bool) {
	for _, t := range a.at {
		if !t.IsZero() && at.Sub(t).Abs() < window {
			return t, true
		}
	}
	return time.Time{}, false
}

// add records an accepted arrival.
func (a *arrivals) add(at time.Time) {
	a.at[a.n] = at
	a.n = (a.n + 1) % len(a.at)
}
