package manager

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shardtop/shardtop/limiter"
)

// Two entries with the same shard ID (an old shard and its split successor)
// identify at the same time: both get a slot, one window apart, and neither
// is refused or disturbs the other's place in the limiter.
func TestTurnsShareShardID(t *testing.T) {
	const window = 40 * time.Millisecond
	lim := limiter.New(1, limiter.WithWindow(window), limiter.WithMargin(0))
	var tr turns
	ctx := ctxT(t, 5*time.Second)
	var (
		mu     sync.Mutex
		grants []time.Time
		wg     sync.WaitGroup
	)
	errs := make(chan error, 4)
	for range 4 {
		g := &turnGate{inner: lim, turn: tr.of(2)}
		wg.Go(func() {
			if err := g.Approach(ctx, 2, 0); err != nil {
				errs <- err
				return
			}
			if err := g.Acquire(ctx, 2); err != nil {
				g.Release(2, false)
				errs <- err
				return
			}
			mu.Lock()
			grants = append(grants, time.Now())
			mu.Unlock()
			g.Release(2, true)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("identify turn refused: %v", err)
	}
	if len(grants) != 4 {
		t.Fatalf("%d grants, want 4", len(grants))
	}
	for i := 1; i < len(grants); i++ {
		if gap := grants[i].Sub(grants[i-1]); gap < window-2*time.Millisecond {
			t.Errorf("grants %d and %d only %v apart (window %v)", i-1, i, gap, window)
		}
	}
}

// A turn waited for ends with the context, and the turn is not lost.
func TestTurnWaitCancelled(t *testing.T) {
	lim := limiter.New(1, limiter.WithWindow(time.Millisecond))
	var tr turns
	first := &turnGate{inner: lim, turn: tr.of(5)}
	if err := first.Approach(ctxT(t, time.Second), 5, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	second := &turnGate{inner: lim, turn: tr.of(5)}
	if err := second.Approach(ctx, 5, 0); err != context.Canceled {
		t.Fatalf("Approach with a cancelled context: %v", err)
	}
	first.Release(5, false)
	if err := second.Approach(ctxT(t, time.Second), 5, 0); err != nil {
		t.Fatalf("Approach after the first turn ended: %v", err)
	}
	second.Release(5, false)
}
