package limiter

import "time"

// ticketState is where a ticket stands in the Limiter.
type ticketState uint8

const (
	stateQueued  ticketState = iota // in its bucket's queue
	stateGranted                    // Acquire returned; the outcome awaits Release
	stateGone                       // left: released, cancelled or expired
)

// ticket is one identify turn: a shard's place in its bucket's queue, then
// its grant. Only the goroutine blocked in wait for it (at most one, see
// waiting) makes it approach or be granted; others may only remove it and
// wake that goroutine.
type ticket struct {
	id         uint64
	shardID    int
	b          *bucket
	abs        int // absolute queue position; abs - b.base is the position
	state      ticketState
	approached bool          // let through Approach; holds one budget unit
	waiting    bool          // a call is blocked on this ticket
	wake       chan struct{} // cap 1; made when a call first blocks
	grantAt    time.Time     // when Acquire granted it
}

// signal wakes the ticket's blocked call, if any, to re-evaluate.
func (t *ticket) signal() {
	if t.wake == nil {
		return
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// bucket is one identify bucket: a FIFO queue of tickets, the identify in
// flight, and when the next may go.
type bucket struct {
	index int
	q     []*ticket
	base  int // abs of q[0]
	// held is the granted ticket whose outcome (READY or not) is not known
	// yet: nothing else of the bucket may identify until it is (or until
	// the hold limit passes).
	held *ticket
	// next is the earliest time the next identify may go: the last
	// outcome plus the window (plus the margin if it was no READY); zero
	// while the bucket never identified.
	next      time.Time
	lastGrant time.Time // when the bucket last identified (zero: never)
}

func (b *bucket) head() *ticket {
	if len(b.q) == 0 {
		return nil
	}
	return b.q[0]
}

func (b *bucket) push(t *ticket) {
	t.b = b
	t.abs = b.base + len(b.q)
	b.q = append(b.q, t)
}

// remove takes t out of the queue: O(1) at the head (the common case),
// O(queue length) elsewhere, which keeps Position O(1).
func (b *bucket) remove(t *ticket) {
	i := t.abs - b.base
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
