package manager

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardtop/shardtop/gateway"
)

// turns hands out one identify turn per shard ID. The limiter knows shards
// by ID alone, but during a split the old shard s/c and its successor s/c·k
// share an ID; if both needed an identify at once, the second would disturb
// the first's place in the limiter. With turns, it waits for the first
// one's turn to end instead.
type turns struct {
	mu sync.Mutex
	by map[int]chan struct{} // capacity 1: full while an entry holds the turn
}

func (t *turns) of(id int) chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.by == nil {
		t.by = make(map[int]chan struct{})
	}
	ch := t.by[id]
	if ch == nil {
		ch = make(chan struct{}, 1)
		t.by[id] = ch
	}
	return ch
}

// turnGate is one entry's view of the identify gate: Approach first takes
// the turn for the entry's shard ID, Release gives it back.
type turnGate struct {
	inner gateway.IdentifyGate
	turn  chan struct{}
	held  atomic.Bool
}

func (g *turnGate) Approach(ctx context.Context, shardID int, lead time.Duration) error {
	if !g.held.Load() {
		select {
		case g.turn <- struct{}{}:
			g.held.Store(true)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := g.inner.Approach(ctx, shardID, lead); err != nil {
		g.giveBack()
		return err
	}
	return nil
}

func (g *turnGate) Acquire(ctx context.Context, shardID int) error {
	return g.inner.Acquire(ctx, shardID)
}

func (g *turnGate) Release(shardID int, ready bool) {
	g.inner.Release(shardID, ready)
	g.giveBack()
}

func (g *turnGate) giveBack() {
	if g.held.CompareAndSwap(true, false) {
		<-g.turn
	}
}
