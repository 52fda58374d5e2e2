package limiter

import (
	"slices"
	"testing"
	"time"
)

// TestBudgetStopsAtReserve: grants stop when remaining reaches the reserve
// and resume at the reset with remaining = total.
func TestBudgetStopsAtReserve(t *testing.T) {
	const resetAfter = 150 * time.Millisecond
	start := time.Now()
	l := New(2, WithWindow(0), WithMargin(0), WithReserve(2), WithSessionStartLimit(5, 4, resetAfter))
	g := recordGrants(l)
	resetAt := l.Snapshot().Budget.ResetAt
	if !resetAt.After(start.Add(resetAfter - time.Millisecond)) {
		t.Fatalf("reset at %v after start, want about %v", resetAt.Sub(start), resetAfter)
	}
	for id := range 2 { // 4 -> 3 -> 2
		if err := l.Acquire(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		l.Release(id, true)
	}
	third := runShard(t.Context(), l, 2, 0)
	waitFor(t, "shard 2 blocked by the budget", func() bool { return blocked(l, 2) })
	if s := l.Snapshot(); s.Budget.Remaining != 2 || s.Grants != 2 || !s.Buckets[0].NextSlot.Equal(resetAt) {
		t.Fatalf("at the reserve: remaining=%d grants=%d next slot %v, want 2, 2, the reset %v",
			s.Budget.Remaining, s.Grants, s.Buckets[0].NextSlot, resetAt)
	}
	if r := await(t, third); r.err != nil {
		t.Fatal(r.err)
	}
	if g2 := g.of(t, 2); g2.Before(resetAt) {
		t.Errorf("granted %v before the reset", resetAt.Sub(g2))
	}
	s := l.Snapshot()
	if s.Budget.Remaining != 4 || !s.Budget.ResetAt.Equal(resetAt.Add(24*time.Hour)) {
		t.Errorf("after the reset: remaining=%d reset at %v, want 4 and a day after the last reset", s.Budget.Remaining, s.Budget.ResetAt)
	}
	l.Release(2, true)
}

// TestSetSessionStartLimit: a fresh budget releases a shard waiting for the
// reset at once; the snapshot shows it.
func TestSetSessionStartLimit(t *testing.T) {
	l := New(1, WithWindow(0), WithMargin(0), WithReserve(10), WithSessionStartLimit(1000, 10, time.Hour))
	waiter := runShard(t.Context(), l, 0, time.Second)
	waitFor(t, "shard 0 blocked by the budget", func() bool { return blocked(l, 0) })
	if _, _, ok := l.Position(0); !ok {
		t.Fatal("blocked shard is not queued")
	}
	l.SetSessionStartLimit(1000, 999, 2*time.Hour)
	if r := await(t, waiter); r.err != nil {
		t.Fatal(r.err)
	}
	b := l.Snapshot().Budget
	if !b.Known || b.Total != 1000 || b.Remaining != 998 || b.Reserve != 10 {
		t.Errorf("budget = %+v, want known, 1000, 998, reserve 10", b)
	}
	if d := time.Until(b.ResetAt); d < 2*time.Hour-time.Minute || d > 2*time.Hour {
		t.Errorf("reset in %v, want about 2h", d)
	}
	l.Release(0, true)
	// Nonsense from the network is clamped, never a panic.
	l.SetSessionStartLimit(-3, 7, -time.Second)
	if b := l.Snapshot().Budget; b.Total != 0 || b.Remaining != 0 || b.Reserve != 0 {
		t.Errorf("clamped budget = %+v, want zeros", b)
	}
}

// TestBudgetUnknownIsUnlimited: without a session_start_limit nothing waits.
func TestBudgetUnknownIsUnlimited(t *testing.T) {
	l := New(4, WithWindow(0), WithMargin(0), WithReserve(10))
	for id := range 200 {
		if err := l.Acquire(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		l.Release(id, true)
	}
	s := l.Snapshot()
	if s.Budget.Known || s.Grants != 200 {
		t.Errorf("known=%v grants=%d, want false, 200", s.Budget.Known, s.Grants)
	}
}

// TestApproachHoldsBudget: a shard let through Approach holds a budget unit,
// so another bucket cannot spend the last start under it; releasing it
// frees the unit at once.
func TestApproachHoldsBudget(t *testing.T) {
	l := New(2, WithWindow(0), WithMargin(0), WithReserve(0), WithSessionStartLimit(10, 1, time.Hour))
	if err := l.Approach(t.Context(), 0, 0); err != nil {
		t.Fatal(err)
	}
	other := runShard(t.Context(), l, 1, 0)
	waitFor(t, "shard 1 blocked by shard 0's unit", func() bool { return blocked(l, 1) })
	l.Release(0, false) // shard 0's dial failed: its unit is free
	if r := await(t, other); r.err != nil {
		t.Fatal(r.err)
	}
	if b := l.Snapshot().Budget; b.Remaining != 0 {
		t.Errorf("remaining = %d, want 0", b.Remaining)
	}
	// Remaining 0: nothing more until the reset, whatever the reserve.
	ctx, cancel := contextWithCancel(t)
	again := runShard(ctx, l, 0, 0)
	waitFor(t, "shard 0 blocked at zero", func() bool { return blocked(l, 0) })
	cancel()
	if r := await(t, again); r.err == nil {
		t.Fatal("granted at remaining 0")
	}
	l.Release(1, true)
}

// TestSnapshotAndPosition checks every field of a Snapshot and Position.
func TestSnapshotAndPosition(t *testing.T) {
	const window, margin = time.Hour, 70 * time.Millisecond
	l := New(3, WithWindow(window), WithMargin(margin), WithReserve(10), WithSessionStartLimit(5, 5, time.Hour))
	g := recordGrants(l)
	l.Enqueue(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	if err := l.Acquire(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Approach(t.Context(), 3, 2*window); err != nil {
		t.Fatal(err)
	}
	l.Release(4, false) // leaves from the middle of bucket 1
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
	b0 := s.Buckets[0]
	if !b0.HeadApproaching || !b0.LastGrant.Equal(g.of(t, 0)) || !b0.NextSlot.Equal(g.of(t, 0).Add(window+margin)) {
		t.Errorf("bucket 0: approaching=%v last=%v next=%v", b0.HeadApproaching, b0.LastGrant, b0.NextSlot)
	}
	// The budget holds everyone but the approached shard 3 (4 left, reserve 4).
	b1 := s.Buckets[1]
	if b1.HeadApproaching || !b1.LastGrant.IsZero() || !b1.NextSlot.Equal(s.Budget.ResetAt) {
		t.Errorf("bucket 1: approaching=%v last=%v next=%v, want false, zero, the reset", b1.HeadApproaching, b1.LastGrant, b1.NextSlot)
	}
	for id, want := range map[int][3]int{3: {0, 0, 1}, 9: {0, 2, 1}, 7: {1, 1, 1}, 8: {2, 2, 1}, 0: {}, 4: {}, 100: {}} {
		b, pos, ok := l.Position(id)
		if got := [3]int{b, pos, boolInt(ok)}; got != want {
			t.Errorf("Position(%d) = %v, want %v (bucket, pos, ok)", id, got, want)
		}
	}
	// Snapshot is a copy.
	s.Buckets[0].Waiting[0] = 42
	if l.Snapshot().Buckets[0].Waiting[0] != 3 {
		t.Error("Snapshot shares its slices with the limiter")
	}
	for _, id := range []int{0, 3, 6, 9, 1, 7, 2, 5, 8} {
		l.Release(id, true)
	}
	if s := l.Snapshot(); s.Waiting != 0 || s.Ready != 1 {
		t.Errorf("after releasing all: waiting=%d ready=%d, want 0 1", s.Waiting, s.Ready)
	}
	// A released, approached shard's budget unit came back.
	if l.pending != 0 {
		t.Errorf("pending = %d, want 0", l.pending)
	}
	for _, b := range l.Snapshot().Buckets {
		if len(b.Waiting) != 0 || b.HeadApproaching {
			t.Errorf("bucket %d not empty: %+v", b.Index, b)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
