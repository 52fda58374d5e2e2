package gateway

import (
	"context"
	"sync"
	"time"
)

// NewLocalGate returns an in-process IdentifyGate for every shard sharing
// it as one bucket (max_concurrency 1, one process): one identify at a time,
// the next a window after READY of the previous one, or a window and
// DefaultIdentifyMargin after an attempt that got no READY (its identify
// may still have been on its way). It is the default gate of a Shard
// (private to that shard). A bot with several shards or processes should
// use limiter.Limiter instead.
func NewLocalGate(window time.Duration) IdentifyGate {
	return &localGate{window: window, wake: make(chan struct{})}
}

type localGate struct {
	window time.Duration
	mu     sync.Mutex
	last   uint64        // the last ticket handed out
	held   uint64        // the granted ticket whose outcome is awaited, 0 if none
	next   time.Time     // earliest time the next identify may go out
	wake   chan struct{} // closed and replaced when held or next changes
}

// Enqueue hands out a ticket; the local gate keeps no queue.
func (g *localGate) Enqueue(int) (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.last++
	return g.last, nil
}

// slot returns the next slot, whether an identify is held (the slot is
// then unknown until its outcome), and a channel closed when either changes.
func (g *localGate) slot() (time.Time, bool, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.next, g.held != 0, g.wake
}

// Approach waits until the next slot is at most lead away.
func (g *localGate) Approach(ctx context.Context, _ uint64, lead time.Duration) error {
	for {
		next, held, changed := g.slot()
		if held {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !sleepCtx(ctx, time.Until(next.Add(-lead))) {
			return ctx.Err()
		}
		return nil
	}
}

// Acquire waits until no identify is held and the slot has come, and takes it.
func (g *localGate) Acquire(ctx context.Context, ticket uint64) error {
	for {
		g.mu.Lock()
		if g.held == ticket {
			g.mu.Unlock()
			return nil
		}
		held, wait, changed := g.held != 0, time.Until(g.next), g.wake
		if !held && wait <= 0 {
			g.held = ticket
			g.mu.Unlock()
			return nil
		}
		g.mu.Unlock()
		if !held {
			wait = max(wait, 0)
		} else {
			wait = time.Hour // woken by Release
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// Release ends a held identify: the next may go a window after READY, or a
// window and the margin after a failure.
func (g *localGate) Release(ticket uint64, ready bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held != ticket || ticket == 0 {
		return
	}
	g.held = 0
	g.next = time.Now().Add(g.window)
	if !ready {
		g.next = g.next.Add(DefaultIdentifyMargin)
	}
	close(g.wake)
	g.wake = make(chan struct{})
}
