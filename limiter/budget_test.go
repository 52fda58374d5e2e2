package limiter

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// Grants stop when remaining reaches the reserve and resume at the reset
// with remaining = total.
func TestBudgetStopsAtReserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const resetAfter = 150 * time.Millisecond
		start := time.Now()
		l := New(2, WithWindow(0), WithMargin(0), WithReserve(2), WithSessionStartLimit(5, 4, resetAfter))
		g := recordGrants(l)
		resetAt := l.Snapshot().Budget.ResetAt
		if !resetAt.Equal(start.Add(resetAfter)) {
			t.Fatalf("reset at %v after start, want %v", resetAt.Sub(start), resetAfter)
		}
		tk := enqueue(t, l, 0, 1, 2)
		for _, x := range tk[:2] { // 4 -> 3 -> 2
			if err := l.Acquire(t.Context(), x); err != nil {
				t.Fatal(err)
			}
			l.Release(x, true)
		}
		third := run(t.Context(), l, tk[2], 0)
		synctest.Wait()
		if s := l.Snapshot(); len(third) != 0 || s.Budget.Remaining != 2 || s.Grants != 2 || !s.Buckets[0].NextSlot.Equal(resetAt) {
			t.Fatalf("at the reserve: remaining=%d grants=%d next slot %v, want 2, 2, the reset %v",
				s.Budget.Remaining, s.Grants, s.Buckets[0].NextSlot, resetAt)
		}
		time.Sleep(time.Until(resetAt))
		synctest.Wait()
		if r := done(t, third); r.err != nil {
			t.Fatal(r.err)
		}
		if g2 := g.of(t, 2); !g2.Equal(resetAt) {
			t.Errorf("granted %v after the reset, want at it", g2.Sub(resetAt))
		}
		s := l.Snapshot()
		if s.Budget.Remaining != 4 || !s.Budget.ResetAt.Equal(resetAt.Add(24*time.Hour)) {
			t.Errorf("after the reset: remaining=%d reset at %v, want 4 and a day after the last reset", s.Budget.Remaining, s.Budget.ResetAt)
		}
		l.Release(tk[2], true)
	})
}

// A fresh budget releases a shard waiting for the reset at once; the
// snapshot shows it; nonsense from the network is clamped.
func TestSetSessionStartLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(1, WithWindow(0), WithMargin(0), WithReserve(10), WithSessionStartLimit(1000, 10, time.Hour))
		tk := enqueue(t, l, 0)[0]
		waiter := run(t.Context(), l, tk, time.Second)
		synctest.Wait()
		if _, _, ok := l.Position(tk); !ok || len(waiter) != 0 {
			t.Fatal("the shard held by the budget is not queued")
		}
		l.SetSessionStartLimit(1000, 999, 2*time.Hour)
		synctest.Wait()
		if r := done(t, waiter); r.err != nil {
			t.Fatal(r.err)
		}
		b := l.Snapshot().Budget
		if !b.Known || b.Total != 1000 || b.Remaining != 998 || b.Reserve != 10 || time.Until(b.ResetAt) != 2*time.Hour {
			t.Errorf("budget = %+v, want known, 1000, 998, reserve 10, reset in 2h", b)
		}
		l.Release(tk, true)
		l.SetSessionStartLimit(-3, 7, -time.Second)
		if b := l.Snapshot().Budget; b.Total != 0 || b.Remaining != 0 || b.Reserve != 0 {
			t.Errorf("clamped budget = %+v, want zeros", b)
		}
	})
}

// Without a session_start_limit nothing waits for the budget.
func TestBudgetUnknownIsUnlimited(t *testing.T) {
	l := New(4, WithWindow(0), WithMargin(0), WithReserve(10))
	for id := range 200 {
		tk := enqueue(t, l, id)[0]
		if err := l.Acquire(t.Context(), tk); err != nil {
			t.Fatal(err)
		}
		l.Release(tk, true)
	}
	if s := l.Snapshot(); s.Budget.Known || s.Grants != 200 {
		t.Errorf("known=%v grants=%d, want false, 200", s.Budget.Known, s.Grants)
	}
}

// A shard let through Approach holds a budget unit, so another bucket
// cannot spend the last start under it; releasing it frees the unit.
func TestApproachHoldsBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(2, WithWindow(0), WithMargin(0), WithReserve(0), WithSessionStartLimit(10, 1, time.Hour))
		tk := enqueue(t, l, 0, 1, 0)
		if err := l.Approach(t.Context(), tk[0], 0); err != nil {
			t.Fatal(err)
		}
		other := run(t.Context(), l, tk[1], 0)
		synctest.Wait()
		if len(other) != 0 {
			t.Fatal("shard 1 spent the start shard 0 holds")
		}
		l.Release(tk[0], false) // shard 0's dial failed: its unit is free
		synctest.Wait()
		if r := done(t, other); r.err != nil {
			t.Fatal(r.err)
		}
		if b := l.Snapshot().Budget; b.Remaining != 0 {
			t.Errorf("remaining = %d, want 0", b.Remaining)
		}
		// Remaining 0: nothing more until the reset, whatever the reserve.
		again := run(t.Context(), l, tk[2], 0)
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if len(again) != 0 {
			t.Fatal("granted at remaining 0")
		}
		l.Release(tk[2], false)
		synctest.Wait()
		l.Release(tk[1], true)
	})
}

// Every field of a Snapshot, and Position.
func TestSnapshotAndPosition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window, margin = time.Hour, 70 * time.Millisecond
		l := New(3, WithWindow(window), WithMargin(margin), WithReserve(10), WithSessionStartLimit(5, 5, time.Hour))
		tk := enqueue(t, l, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
		if err := l.Acquire(t.Context(), tk[0]); err != nil {
			t.Fatal(err)
		}
		granted := time.Now()
		if err := l.Approach(t.Context(), tk[3], 2*window); err != nil {
			t.Fatal(err)
		}
		l.Release(tk[4], false) // leaves from the middle of bucket 1
		s := l.Snapshot()
		if s.Window != window || s.Margin != margin || s.MaxConcurrency != 3 {
			t.Errorf("settings %v %v %d", s.Window, s.Margin, s.MaxConcurrency)
		}
		if s.Grants != 1 || s.Waiting != 8 || s.Ready != 0 || s.Failed != 0 {
			t.Errorf("totals grants=%d waiting=%d ready=%d failed=%d, want 1 8 0 0", s.Grants, s.Waiting, s.Ready, s.Failed)
		}
		// The reserve is capped at total-1 so one start stays possible.
		if b := s.Budget; !b.Known || b.Total != 5 || b.Remaining != 4 || b.Reserve != 4 {
			t.Errorf("budget %+v, want known 5 4 reserve 4", b)
		}
		want := [][]int{{3, 6, 9}, {1, 7}, {2, 5, 8}}
		for i, b := range s.Buckets {
			if b.Index != i || !slices.Equal(b.Waiting, want[i]) {
				t.Errorf("bucket %d: index %d waiting %v, want %v", i, b.Index, b.Waiting, want[i])
			}
		}
		// Shard 0's identify awaits READY: the earliest next slot is a window after it.
		b0 := s.Buckets[0]
		if !b0.HeadApproaching || !b0.Holding || !b0.LastGrant.Equal(granted) || !b0.NextSlot.Equal(granted.Add(window)) {
			t.Errorf("bucket 0: approaching=%v holding=%v last=%v next=%v", b0.HeadApproaching, b0.Holding, b0.LastGrant, b0.NextSlot)
		}
		// The budget holds everyone but the approached shard 3 (4 left, reserve 4).
		b1 := s.Buckets[1]
		if b1.HeadApproaching || b1.Holding || !b1.LastGrant.IsZero() || !b1.NextSlot.Equal(s.Budget.ResetAt) {
			t.Errorf("bucket 1: approaching=%v holding=%v last=%v next=%v, want false, false, zero, the reset", b1.HeadApproaching, b1.Holding, b1.LastGrant, b1.NextSlot)
		}
		for i, want := range map[int][3]int{3: {0, 0, 1}, 9: {0, 2, 1}, 7: {1, 1, 1}, 8: {2, 2, 1}, 0: {}, 4: {}} {
			b, pos, ok := l.Position(tk[i])
			if got := [3]int{b, pos, boolInt(ok)}; got != want {
				t.Errorf("Position of shard %d's ticket = %v, want %v (bucket, pos, ok)", i, got, want)
			}
		}
		if _, _, ok := l.Position(12345); ok {
			t.Error("an unknown ticket has a place")
		}
		// Snapshot is a copy.
		s.Buckets[0].Waiting[0] = 42
		if l.Snapshot().Buckets[0].Waiting[0] != 3 {
			t.Error("Snapshot shares its slices with the limiter")
		}
		for _, i := range []int{0, 3, 6, 9, 1, 7, 2, 5, 8} {
			l.Release(tk[i], true)
		}
		if s := l.Snapshot(); s.Waiting != 0 || s.Ready != 1 || pendingUnits(l) != 0 {
			t.Errorf("after releasing all: waiting=%d ready=%d pending=%d, want 0 1 0", s.Waiting, s.Ready, pendingUnits(l))
		}
		for _, b := range l.Snapshot().Buckets {
			if len(b.Waiting) != 0 || b.HeadApproaching || b.Holding {
				t.Errorf("bucket %d not empty: %+v", b.Index, b)
			}
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
