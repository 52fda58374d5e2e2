package gateway

import (
	"context"
	"sync"
	"time"
)

// NewLocalGate returns an in-process IdentifyGate that lets one identify
// through per window + DefaultIdentifyMargin for every shard sharing it
// (max_concurrency 1, one process). The margin keeps jitter between the
// grant and Discord receiving the Identify from squeezing two identifies
// into one of Discord's windows. It is the default gate of a Shard (private to that shard). A bot
// with several shards or processes should use limiter.Limiter instead.
func NewLocalGate(window time.Duration) IdentifyGate {
	return &localGate{window: window + DefaultIdentifyMargin}
}

type localGate struct {
	window time.Duration // spacing: the caller's window plus DefaultIdentifyMargin
	mu     sync.Mutex
	next   time.Time // earliest time the next identify may go out
}

func (g *localGate) slot() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.next
}

// Approach waits until the next slot is at most lead away.
func (g *localGate) Approach(ctx context.Context, _ int, lead time.Duration) error {
	if !sleepCtx(ctx, time.Until(g.slot().Add(-lead))) {
		return ctx.Err()
	}
	return nil
}

// Acquire waits for the slot and takes it.
func (g *localGate) Acquire(ctx context.Context, _ int) error {
	for {
		g.mu.Lock()
		wait := time.Until(g.next)
		if wait <= 0 {
			g.next = time.Now().Add(g.window)
			g.mu.Unlock()
			return nil
		}
		g.mu.Unlock()
		if !sleepCtx(ctx, wait) {
			return ctx.Err()
		}
	}
}

// Release does nothing: a spent slot stays spent, the window counts from Acquire.
func (g *localGate) Release(int, bool) {}
