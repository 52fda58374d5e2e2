package limiter

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// contextWithCancel is context.WithCancel(t.Context()) with the cancel also
// deferred to the test's end.
func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx, cancel
}

// blocked reports whether shard id has a call blocked in the limiter.
func blocked(l *Limiter, id int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.shards[id]
	return e != nil && e.waiting
}

// grants records the instant of every grant and the anchor the next slot
// counts from, in grant order, through the limiter's test hook (called
// under its lock, so the order is the real one).
type grants struct {
	mu     sync.Mutex
	order  []int
	at     map[int]time.Time
	anchor map[int]time.Time
	// confirmed: the shard's READY moved its anchor up (see confirmedLocked).
	confirmed map[int]bool
}

func recordGrants(l *Limiter) *grants {
	g := &grants{at: make(map[int]time.Time), anchor: make(map[int]time.Time), confirmed: make(map[int]bool)}
	l.onGrant = func(id int, at, anchor time.Time) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.order = append(g.order, id)
		g.at[id] = at
		g.anchor[id] = anchor
	}
	l.onConfirm = func(id int, anchor time.Time) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.anchor[id] = anchor
		g.confirmed[id] = true
	}
	return g
}

// anchorOf is the anchor the next slot after shard id's grant counts from:
// recorded at the grant, moved up if its READY confirmed it early.
func (g *grants) anchorOf(t *testing.T, id int) time.Time {
	t.Helper()
	g.of(t, id)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.anchor[id]
}

func (g *grants) of(t *testing.T, id int) time.Time {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	at, ok := g.at[id]
	if !ok {
		t.Fatalf("shard %d was not granted", id)
	}
	return at
}

func (g *grants) wasConfirmed(id int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.confirmed[id]
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

// runShard runs Approach (if lead >= 0) then Acquire for id in a goroutine
// and reports on the returned channel.
func runShard(ctx context.Context, l *Limiter, id int, lead time.Duration) <-chan result {
	ch := make(chan result, 1)
	go func() {
		var r result
		if lead >= 0 {
			if r.err = l.Approach(ctx, id, lead); r.err != nil {
				ch <- r
				return
			}
			r.approached = time.Now()
		}
		if r.err = l.Acquire(ctx, id); r.err == nil {
			r.acquired = time.Now()
		}
		ch <- r
	}()
	return ch
}

// await receives a result with a deadline.
func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("shard goroutine did not finish")
		return result{}
	}
}

// pending reports whether ch has no result yet.
func pending(ch <-chan result) bool { return len(ch) == 0 }
