package limiter

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// A bucket that identified in the previous run keeps its window in this
// one; a bucket whose identify is older than a window, or that never
// identified, grants at once. Virtual time: the waits are exact.
func TestSeedLastIdentifyCarriesTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window, margin = 5 * time.Second, 50 * time.Millisecond
		l := New(3, WithWindow(window), WithMargin(margin))
		start := time.Now()
		l.SeedLastIdentify(0, start.Add(-time.Second))   // 1 s ago: 4.05 s to wait
		l.SeedLastIdentify(1, start.Add(-6*time.Second)) // older than a window: free
		l.SeedLastIdentify(7, start)                     // no such bucket: ignored
		want := []time.Duration{0: window + margin - time.Second, 1: 0, 2: 0}
		for id, wait := range want {
			tk := enqueue(t, l, id)[0]
			if err := l.Acquire(context.Background(), tk); err != nil {
				t.Fatalf("Acquire(%d): %v", id, err)
			}
			if got := time.Since(start); got != wait {
				t.Errorf("shard %d granted after %v, want %v", id, got, wait)
			}
			l.Release(tk, true)
			start = time.Now()
		}
		last := l.LastIdentifies(nil)
		if len(last) != 3 || last[0].IsZero() || last[2].IsZero() {
			t.Fatalf("LastIdentifies = %v, want a time for each granted bucket", last)
		}
	})
}

// A saved time in the future (the clock was set back) waits at most one
// window, never longer; a seed older than the limiter's own grant is
// ignored.
func TestSeedLastIdentifyClamps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = time.Second
		l := New(1, WithWindow(window), WithMargin(0))
		start := time.Now()
		l.SeedLastIdentify(0, start.Add(time.Hour))
		tk := enqueue(t, l, 0, 1)
		if err := l.Acquire(context.Background(), tk[0]); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != window {
			t.Fatalf("granted after %v, want one window (%v)", got, window)
		}
		l.Release(tk[0], false)
		released := time.Now()
		l.SeedLastIdentify(0, released.Add(-500*time.Millisecond)) // older than this run's own
		if err := l.Acquire(context.Background(), tk[1]); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(released); got != window {
			t.Fatalf("second grant %v after the first's outcome, want %v", got, window)
		}
	})
}
