package limiter

import "time"

// entryState is where a shard stands in the Limiter.
type entryState uint8

const (
	stateQueued  entryState = iota // in its bucket's queue
	stateGranted                   // Acquire returned; the outcome awaits Release
	stateGone                      // left: released, cancelled or replaced
)

// entry is one shard's place in the Limiter. Only the goroutine blocked in
// wait for it (at most one, see waiting) makes it approach or be granted;
// others may only remove it and wake that goroutine.
type entry struct {
	id         int
	b          *bucket
	abs        int // absolute queue position; abs - b.base is the position
	state      entryState
	approached bool          // let through Approach; holds one budget unit
	waiting    bool          // a call is blocked on this entry
	wake       chan struct{} // cap 1; made when a call first blocks
}

// signal wakes the entry's blocked call, if any, to re-evaluate.
func (e *entry) signal() {
	if e.wake == nil {
		return
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// bucket is one identify bucket: a FIFO queue and its last grant.
type bucket struct {
	index     int
	q         []*entry
	base      int       // abs of q[0]
	lastGrant time.Time // when the last Acquire of the bucket returned
	// anchor is what the next slot counts from: the last grant's slot if
	// that grant was late by at most the margin only because timers and
	// scheduling are late, else the last grant itself (see doc.go).
	anchor  time.Time
	granted bool   // lastGrant and anchor are set
	last    *entry // the shard of lastGrant, until its outcome is released
}

func (b *bucket) head() *entry {
	if len(b.q) == 0 {
		return nil
	}
	return b.q[0]
}

func (b *bucket) push(e *entry) {
	e.b = b
	e.abs = b.base + len(b.q)
	b.q = append(b.q, e)
}

// remove takes e out of the queue: O(1) at the head (the common case),
// O(queue length) elsewhere, which keeps Position O(1).
func (b *bucket) remove(e *entry) {
	i := e.abs - b.base
	if i == 0 {
		b.q[0] = nil
		if len(b.q) == 1 {
			b.q = b.q[:0] // keep the whole backing array for the next push
		} else {
			b.q = b.q[1:]
		}
		b.base++
		return
	}
	copy(b.q[i:], b.q[i+1:])
	b.q[len(b.q)-1] = nil
	b.q = b.q[:len(b.q)-1]
	for _, m := range b.q[i:] {
		m.abs--
	}
}
