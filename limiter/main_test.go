package limiter

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Most tests here run in a synctest bubble: the Limiter's logic is time and
// channels only, so in virtual time every wait is exact and a test can wait
// for "every goroutine is blocked" (synctest.Wait) instead of polling.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// enqueue gives each shard ID a ticket, in order.
func enqueue(t *testing.T, l *Limiter, ids ...int) []uint64 {
	t.Helper()
	out := make([]uint64, len(ids))
	for i, id := range ids {
		tk, err := l.Enqueue(id)
		if err != nil {
			t.Fatalf("Enqueue(%d): %v", id, err)
		}
		out[i] = tk
	}
	return out
}

// blocked reports whether ticket tk has a call blocked in the limiter.
func blocked(l *Limiter, tk uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.tickets[tk]
	return e != nil && e.waiting
}

// grants records every grant in order through the limiter's test hook
// (called under its lock, so the order is the real one).
type grants struct {
	mu    sync.Mutex
	order []int
	at    []time.Time
}

func recordGrants(l *Limiter) *grants {
	g := &grants{}
	l.onGrant = func(id int, at time.Time) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.order = append(g.order, id)
		g.at = append(g.at, at)
	}
	return g
}

// of returns when shard id was granted (its first grant).
func (g *grants) of(t *testing.T, id int) time.Time {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, x := range g.order {
		if x == id {
			return g.at[i]
		}
	}
	t.Fatalf("shard %d was not granted", id)
	return time.Time{}
}

func (g *grants) list() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.order...)
}

// result is what a shard goroutine observed.
type result struct {
	approached, acquired time.Time
	err                  error
}

// run runs Approach (if lead >= 0) then Acquire for ticket tk in a
// goroutine and reports on the returned channel.
func run(ctx context.Context, l *Limiter, tk uint64, lead time.Duration) <-chan result {
	ch := make(chan result, 1)
	go func() {
		var r result
		if lead >= 0 {
			if r.err = l.Approach(ctx, tk, lead); r.err != nil {
				ch <- r
				return
			}
			r.approached = time.Now()
		}
		if r.err = l.Acquire(ctx, tk); r.err == nil {
			r.acquired = time.Now()
		}
		ch <- r
	}()
	return ch
}

// done returns the result of a finished goroutine; in a bubble, call it
// after synctest.Wait.
func done(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	default:
		t.Fatal("the shard's call has not returned")
		return result{}
	}
}

// pendingUnits is how many budget units approached tickets hold.
func pendingUnits(l *Limiter) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending
}
