package limiter

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestStartupPacing is the start-up of 256 shards at concurrency 16 with a
// 50 ms window, each READY coming back rtt after its identify: in every
// bucket the identifies follow Enqueue order, each goes exactly a window
// after the previous one's READY (never sooner, never later), each shard
// approaches exactly lead before its slot, and the whole start-up takes
// (ceil(N/C) - 1) x (window + rtt).
func TestStartupPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			n, conc     = 256, 16
			window, rtt = 50 * time.Millisecond, 3 * time.Millisecond
			lead        = 15 * time.Millisecond
			slots       = (n+conc-1)/conc - 1
		)
		l := New(conc, WithWindow(window), WithMargin(7*time.Millisecond))
		g := recordGrants(l)
		rng := rand.New(rand.NewPCG(1, 2))
		order := rng.Perm(n)
		tickets := enqueue(t, l, order...)
		start := time.Now()
		results := make([]result, n)
		ready := make([]time.Time, n)
		var wg sync.WaitGroup
		for i, id := range order { // goroutines start in an order unrelated to the queue
			wg.Go(func() {
				r := <-run(t.Context(), l, tickets[i], lead)
				results[id] = r
				if r.err == nil {
					time.Sleep(rtt)
					ready[id] = time.Now()
					l.Release(tickets[i], true)
				}
			})
		}
		wg.Wait()
		for id, r := range results {
			if r.err != nil {
				t.Fatalf("shard %d: %v", id, r.err)
			}
		}
		for b := range conc {
			var want []int
			for _, id := range order {
				if id%conc == b {
					want = append(want, id)
				}
			}
			var got []int
			for _, id := range g.list() {
				if id%conc == b {
					got = append(got, id)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("bucket %d granted %v, want Enqueue order %v", b, got, want)
			}
			for i := 1; i < len(got); i++ {
				prev, cur := got[i-1], got[i]
				if slot := ready[prev].Add(window); !g.of(t, cur).Equal(slot) {
					t.Errorf("bucket %d: shard %d granted %v after shard %d's READY, want exactly the window %v",
						b, cur, g.of(t, cur).Sub(ready[prev]), prev, window)
				}
				// READY came (rtt) before the earliest approach (window -
				// lead after the grant): the slot is known, lead before it.
				if want := ready[prev].Add(window - lead); !results[cur].approached.Equal(want) {
					t.Errorf("bucket %d: shard %d approached %v after shard %d's READY, want window - lead = %v",
						b, cur, results[cur].approached.Sub(ready[prev]), prev, window-lead)
				}
			}
		}
		last := g.list()[n-1]
		if took, want := g.of(t, last).Sub(start), slots*(window+rtt); took != want {
			t.Errorf("all granted %v after the start, want %d x (window + rtt) = %v", took, slots, want)
		}
		if s := l.Snapshot(); s.Grants != n || s.Ready != n || s.Waiting != 0 || s.Failed != 0 || s.Expired != 0 {
			t.Errorf("snapshot totals grants=%d ready=%d failed=%d expired=%d waiting=%d, want %d %d 0 0 0",
				s.Grants, s.Ready, s.Failed, s.Expired, s.Waiting, n, n)
		}
	})
}

// The rule of the next identify: none while the previous one awaits its
// outcome; a window after READY; a window and the margin after a failure.
func TestNextIdentifyWaitsForTheOutcome(t *testing.T) {
	const window, margin, inFlight = 100 * time.Millisecond, 20 * time.Millisecond, 700 * time.Millisecond
	for _, ready := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			l := New(1, WithWindow(window), WithMargin(margin))
			tk := enqueue(t, l, 0, 1)
			if err := l.Acquire(t.Context(), tk[0]); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			second := run(t.Context(), l, tk[1], 0)
			time.Sleep(inFlight) // READY is slow to come: far beyond the window
			synctest.Wait()
			if len(second) != 0 {
				t.Fatal("the next identify went while the previous one awaited its outcome")
			}
			if s := l.Snapshot(); !s.Buckets[0].Holding {
				t.Error("the snapshot does not say the bucket awaits an outcome")
			}
			l.Release(tk[0], ready)
			want := inFlight + window
			if !ready {
				want += margin
			}
			time.Sleep(want - inFlight)
			synctest.Wait()
			r := done(t, second)
			if r.err != nil || r.acquired.Sub(start) != want {
				t.Fatalf("ready=%v: next identify %v after the first (%v), want %v", ready, r.acquired.Sub(start), r.err, want)
			}
		})
	}
}

// A holder that never tells the outcome blocks its bucket for the hold
// limit, then the bucket goes on as after a failure, counted as expired.
func TestHoldLimitEndsAnUntoldIdentify(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window, margin, hold = time.Second, 50 * time.Millisecond, 10 * time.Second
		l := New(1, WithWindow(window), WithMargin(margin), WithHoldLimit(hold))
		tk := enqueue(t, l, 0, 1)
		if err := l.Acquire(t.Context(), tk[0]); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := l.Acquire(t.Context(), tk[1]); err != nil {
			t.Fatal(err)
		}
		if got, want := time.Since(start), hold+window+margin; got != want {
			t.Errorf("next identify %v after the untold one, want hold limit + window + margin = %v", got, want)
		}
		l.Release(tk[0], true) // told too late: counted, changes nothing
		if s := l.Snapshot(); s.Expired != 1 || s.Ready != 1 || !s.Buckets[0].Holding {
			t.Errorf("expired=%d ready=%d holding=%v, want 1, 1 and the second identify held", s.Expired, s.Ready, s.Buckets[0].Holding)
		}
		l.Release(tk[1], true)
	})
}

// Two shards with the same ID (an old shard and its successor in a split)
// hold two tickets: they queue one after the other and neither disturbs
// the other's place.
func TestSameShardIDTwoTickets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = time.Second
		l := New(2, WithWindow(window))
		tk := enqueue(t, l, 4, 4, 2)
		first, second, other := run(t.Context(), l, tk[0], 0), run(t.Context(), l, tk[1], 0), run(t.Context(), l, tk[2], 0)
		synctest.Wait()
		if len(first) != 1 || len(second) != 0 || len(other) != 0 {
			t.Fatalf("first %d second %d other %d returned, want only the first", len(first), len(second), len(other))
		}
		if _, pos, ok := l.Position(tk[1]); !ok || pos != 0 {
			t.Fatalf("second ticket of shard 4 at %d (%v), want the head, behind the first's grant", pos, ok)
		}
		if _, pos, ok := l.Position(tk[2]); !ok || pos != 1 {
			t.Fatalf("shard 2's ticket (same bucket) at %d (%v), want behind shard 4's second", pos, ok)
		}
		l.Release(tk[0], true)
		time.Sleep(window)
		synctest.Wait()
		if len(second) != 1 || len(other) != 0 {
			t.Fatalf("after the first's READY and a window: second %d other %d, want the second only", len(second), len(other))
		}
		l.Release(tk[1], true)
		time.Sleep(window)
		synctest.Wait()
		if r := done(t, other); r.err != nil {
			t.Fatal(r.err)
		}
		l.Release(tk[2], true)
	})
}

// Grants follow Enqueue order within a bucket, whatever order the calls
// come in; a ticket enqueued later joins the tail.
func TestFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(2, WithWindow(0), WithMargin(0))
		g := recordGrants(l)
		tk := enqueue(t, l, 6, 2, 4, 1)
		late := enqueue(t, l, 8)[0]
		var chans []<-chan result
		chans = append(chans, run(t.Context(), l, late, 0))
		for _, i := range []int{2, 1, 0, 3} {
			chans = append(chans, run(t.Context(), l, tk[i], 0))
		}
		// Each READY comes back once the grant is made.
		for range 5 {
			synctest.Wait()
			for _, x := range append(tk, late) {
				l.mu.Lock()
				granted := l.tickets[x] != nil && l.tickets[x].state == stateGranted
				l.mu.Unlock()
				if granted {
					l.Release(x, true)
				}
			}
		}
		synctest.Wait()
		for _, ch := range chans {
			if r := done(t, ch); r.err != nil {
				t.Fatal(r.err)
			}
		}
		var bucket0 []int
		for _, id := range g.list() {
			if id%2 == 0 {
				bucket0 = append(bucket0, id)
			}
		}
		if want := []int{6, 2, 4, 8}; !slices.Equal(bucket0, want) {
			t.Errorf("bucket 0 granted %v, want %v", bucket0, want)
		}
	})
}

// busyBucket grants shard 0 in a 1-bucket limiter and releases it with
// READY, so the next slot is a window away, and queues 1 then 2.
func busyBucket(t *testing.T, window time.Duration, opts ...Option) (*Limiter, []uint64, time.Time) {
	t.Helper()
	l := New(1, append([]Option{WithWindow(window), WithMargin(5 * time.Millisecond)}, opts...)...)
	tk := enqueue(t, l, 0, 1, 2)
	if err := l.Acquire(t.Context(), tk[0]); err != nil {
		t.Fatal(err)
	}
	l.Release(tk[0], true)
	return l, tk, time.Now().Add(window)
}

// A cancelled Approach leaves the queue: the next shard takes its slot.
func TestCancelInApproach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, tk, slot := busyBucket(t, 150*time.Millisecond)
		ctx1, cancel1 := context.WithCancel(t.Context())
		defer cancel1()
		first, second := run(ctx1, l, tk[1], 0), run(t.Context(), l, tk[2], 0)
		synctest.Wait()
		cancel1()
		synctest.Wait()
		if r := done(t, first); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled Approach returned %v, want context.Canceled", r.err)
		}
		if _, _, ok := l.Position(tk[1]); ok {
			t.Error("cancelled ticket 1 is still queued")
		}
		if b, pos, ok := l.Position(tk[2]); !ok || b != 0 || pos != 0 {
			t.Errorf("Position of ticket 2 = %d, %d, %v; want 0, 0, true", b, pos, ok)
		}
		time.Sleep(time.Until(slot))
		synctest.Wait()
		if r := done(t, second); r.err != nil || !r.acquired.Equal(slot) {
			t.Errorf("shard 2 granted at %v (%v), want its predecessor's slot %v", r.acquired, r.err, slot)
		}
	})
}

// A cancelled Acquire spends nothing and gives its budget unit back.
func TestCancelInAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, tk, slot := busyBucket(t, 150*time.Millisecond, WithSessionStartLimit(100, 50, time.Hour), WithReserve(0))
		ctx1, cancel1 := context.WithCancel(t.Context())
		defer cancel1()
		if err := l.Approach(ctx1, tk[1], time.Second); err != nil { // a lead longer than the window
			t.Fatal(err)
		}
		first, second := run(ctx1, l, tk[1], -1), run(t.Context(), l, tk[2], 0)
		synctest.Wait()
		cancel1()
		synctest.Wait()
		if r := done(t, first); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled Acquire returned %v, want context.Canceled", r.err)
		}
		if s := l.Snapshot(); s.Grants != 1 || s.Budget.Remaining != 49 || pendingUnits(l) != 0 {
			t.Errorf("after cancel: grants=%d remaining=%d pending=%d, want 1, 49, 0 (nothing spent)", s.Grants, s.Budget.Remaining, pendingUnits(l))
		}
		time.Sleep(time.Until(slot))
		synctest.Wait()
		if r := done(t, second); r.err != nil || !r.acquired.Equal(slot) {
			t.Errorf("shard 2 granted at %v (%v), want %v", r.acquired, r.err, slot)
		}
		if s := l.Snapshot(); s.Budget.Remaining != 48 {
			t.Errorf("remaining=%d, want 48", s.Budget.Remaining)
		}
	})
}

func TestCancelledContextSpendsNothing(t *testing.T) {
	l := New(1, WithWindow(0), WithSessionStartLimit(10, 10, time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tk := enqueue(t, l, 3, 3)
	if err := l.Acquire(ctx, tk[0]); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a cancelled ctx = %v, want context.Canceled", err)
	}
	if err := l.Approach(ctx, tk[1], time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Approach with a cancelled ctx = %v, want context.Canceled", err)
	}
	s := l.Snapshot()
	if s.Grants != 0 || s.Budget.Remaining != 10 || s.Waiting != 0 {
		t.Errorf("grants=%d remaining=%d waiting=%d, want 0 10 0", s.Grants, s.Budget.Remaining, s.Waiting)
	}
}

// Releasing a queued ticket makes its blocked call return ErrReleased; it
// is not an outcome.
func TestReleaseWhileQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, tk, slot := busyBucket(t, 150*time.Millisecond)
		first, second := run(t.Context(), l, tk[1], 0), run(t.Context(), l, tk[2], 0)
		synctest.Wait()
		l.Release(tk[1], false)
		synctest.Wait()
		if r := done(t, first); !errors.Is(r.err, ErrReleased) {
			t.Fatalf("released ticket's Approach returned %v, want ErrReleased", r.err)
		}
		if b, pos, ok := l.Position(tk[2]); !ok || b != 0 || pos != 0 {
			t.Errorf("Position of ticket 2 = %d, %d, %v; want 0, 0, true", b, pos, ok)
		}
		time.Sleep(time.Until(slot))
		synctest.Wait()
		if r := done(t, second); r.err != nil || !r.acquired.Equal(slot) {
			t.Errorf("shard 2 granted at %v (%v), want %v", r.acquired, r.err, slot)
		}
		if s := l.Snapshot(); s.Failed != 0 || s.Ready != 1 {
			t.Errorf("failed=%d ready=%d, want 0 and 1", s.Failed, s.Ready)
		}
	})
}

// A shard let through Approach whose dial fails releases its ticket: the
// next shard moves up.
func TestReleaseApproachedFreesHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, tk, slot := busyBucket(t, 60*time.Millisecond)
		if err := l.Approach(t.Context(), tk[1], time.Hour); err != nil {
			t.Fatal(err)
		}
		second := run(t.Context(), l, tk[2], 0)
		synctest.Wait()
		if s := l.Snapshot(); !s.Buckets[0].HeadApproaching || !slices.Equal(s.Buckets[0].Waiting, []int{1, 2}) {
			t.Fatalf("bucket 0 = %+v, want 1 approaching then 2", s.Buckets[0])
		}
		l.Release(tk[1], false) // the dial failed
		time.Sleep(time.Until(slot))
		synctest.Wait()
		if r := done(t, second); r.err != nil || !r.acquired.Equal(slot) {
			t.Errorf("shard 2 granted at %v (%v), want %v", r.acquired, r.err, slot)
		}
	})
}

func TestReleaseOutcomes(t *testing.T) {
	l := New(4, WithWindow(0), WithMargin(0))
	tk := enqueue(t, l, 0, 1, 2)
	for _, x := range tk {
		if err := l.Acquire(t.Context(), x); err != nil {
			t.Fatal(err)
		}
	}
	l.Release(tk[0], true)
	l.Release(tk[1], false)
	l.Release(tk[2], true)
	l.Release(tk[2], true) // already released: no-op
	l.Release(99, true)    // unknown: no-op
	s := l.Snapshot()
	if s.Grants != 3 || s.Ready != 2 || s.Failed != 1 || s.Waiting != 0 {
		t.Errorf("grants=%d ready=%d failed=%d waiting=%d, want 3 2 1 0", s.Grants, s.Ready, s.Failed, s.Waiting)
	}
}

// Every step is idempotent, and a call for a ticket that is gone says so.
func TestBadAndRepeatedCalls(t *testing.T) {
	l := New(0, WithWindow(time.Hour)) // max_concurrency 0 counts as 1
	if s := l.Snapshot(); s.MaxConcurrency != 1 {
		t.Errorf("MaxConcurrency = %d, want 1", s.MaxConcurrency)
	}
	if _, err := l.Enqueue(-1); !errors.Is(err, ErrInvalidShard) {
		t.Errorf("Enqueue(-1) = %v, want ErrInvalidShard", err)
	}
	tk := enqueue(t, l, 0, 3)
	if err := l.Acquire(t.Context(), tk[0]); err != nil { // first grant: immediate
		t.Fatal(err)
	}
	if err := l.Acquire(t.Context(), tk[0]); err != nil {
		t.Errorf("Acquire of a granted ticket = %v, want nil", err)
	}
	if err := l.Approach(t.Context(), tk[0], 0); err != nil {
		t.Errorf("Approach of a granted ticket = %v, want nil", err)
	}
	if s := l.Snapshot(); s.Grants != 1 {
		t.Errorf("grants = %d after repeated calls, want 1", s.Grants)
	}
	l.Release(tk[0], true)
	if err := l.Acquire(t.Context(), tk[0]); !errors.Is(err, ErrReleased) {
		t.Errorf("Acquire of a released ticket = %v, want ErrReleased", err)
	}
	if err := l.Approach(t.Context(), 12345, 0); !errors.Is(err, ErrReleased) {
		t.Errorf("Approach of an unknown ticket = %v, want ErrReleased", err)
	}
	// A second blocked call for the same ticket is refused, not tangled.
	synctest.Test(t, func(t *testing.T) {
		l := New(1, WithWindow(time.Hour))
		tk := enqueue(t, l, 0, 1)
		if err := l.Acquire(t.Context(), tk[0]); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		first := run(ctx, l, tk[1], -1)
		synctest.Wait()
		if !blocked(l, tk[1]) {
			t.Fatal("ticket 1 not blocked")
		}
		if err := l.Approach(t.Context(), tk[1], 0); !errors.Is(err, ErrBusy) {
			t.Errorf("second call = %v, want ErrBusy", err)
		}
		cancel()
		synctest.Wait()
		if r := done(t, first); !errors.Is(r.err, context.Canceled) {
			t.Errorf("first call = %v, want context.Canceled", r.err)
		}
	})
}

// Approach lets the head through exactly lead before its slot: before a
// known slot (after the previous READY), and before the earliest it could
// be while the previous identify awaits its READY; the next in line waits.
func TestApproachLead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window, lead = 80 * time.Millisecond, 30 * time.Millisecond
		l := New(1, WithWindow(window))
		tk := enqueue(t, l, 0, 1, 2)
		if err := l.Acquire(t.Context(), tk[0]); err != nil {
			t.Fatal(err)
		}
		granted := time.Now()
		one, two := run(t.Context(), l, tk[1], lead), run(t.Context(), l, tk[2], lead)
		time.Sleep(window - lead)
		synctest.Wait()
		if !blocked(l, tk[1]) || len(one) != 0 {
			t.Fatal("shard 1 went through Approach before window - lead")
		}
		l.mu.Lock()
		approached := l.tickets[tk[1]].approached
		l.mu.Unlock()
		if !approached {
			t.Fatalf("shard 1 not let through Approach %v after the grant (window - lead)", time.Since(granted))
		}
		time.Sleep(10 * time.Millisecond) // READY after 60 ms
		l.Release(tk[0], true)
		readyAt := time.Now()
		synctest.Wait()
		time.Sleep(window)
		synctest.Wait()
		r1 := done(t, one)
		if r1.err != nil || !r1.acquired.Equal(readyAt.Add(window)) {
			t.Fatalf("shard 1 granted %v after READY (%v), want the window %v", r1.acquired.Sub(readyAt), r1.err, window)
		}
		if len(two) != 0 {
			t.Fatal("shard 2 went with shard 1")
		}
		l.Release(tk[1], true)
		readyAt = time.Now()
		time.Sleep(window)
		synctest.Wait()
		if r2 := done(t, two); r2.err != nil || !r2.approached.Equal(r1.acquired.Add(window-lead)) || !r2.acquired.Equal(readyAt.Add(window)) {
			t.Errorf("shard 2 approached %v and was granted %v after shard 1's grant (%v)", r2.approached.Sub(r1.acquired), r2.acquired.Sub(r1.acquired), r2.err)
		}
	})
}
