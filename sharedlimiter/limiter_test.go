package sharedlimiter

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/limiter"
)

// The gateway's interface, and the methods of *limiter.Limiter the manager uses.
var (
	_ gateway.IdentifyGate = (*Limiter)(nil)
	_ interface {
		SetSessionStartLimit(total, remaining int, resetAfter time.Duration)
		SeedLastIdentify(bucket int, at time.Time)
		LastIdentifies(dst []time.Time) []time.Time
		Snapshot() limiter.Snapshot
		Position(ticket uint64) (bucket, pos int, ok bool)
	} = (*Limiter)(nil)
)

const testWindow = 250 * time.Millisecond

// proc is one Limiter as one process would have it: its own connection.
func proc(t *testing.T, s *server.Server, maxConc int, opts ...Option) (*Limiter, jetstream.JetStream) {
	t.Helper()
	return procAt(t, s.ClientURL(), maxConc, opts...)
}

// procAt is proc connected to url.
func procAt(t *testing.T, url string, maxConc int, opts ...Option) (*Limiter, jetstream.JetStream) {
	t.Helper()
	js := natstest.JetStream(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	opts = append([]Option{WithWindow(testWindow), WithMargin(50 * time.Millisecond), WithReserve(0)}, opts...)
	l, err := New(ctx, js, maxConc, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(l.Close)
	return l, js
}

// grant is one identify as a test shard saw it.
type grant struct {
	shard int
	at    time.Time // when Acquire returned
}

// identify runs one shard's turn: enqueue, approach, acquire, release
// with READY; it records when Acquire returned.
func identify(ctx context.Context, l *Limiter, shard int, record func(grant)) error {
	tk, err := l.Enqueue(shard)
	if err != nil {
		return err
	}
	if err := l.Approach(ctx, tk, 20*time.Millisecond); err != nil {
		return err
	}
	if err := l.Acquire(ctx, tk); err != nil {
		return err
	}
	record(grant{shard: shard, at: time.Now()})
	l.Release(tk, true)
	return nil
}

// checkSpacing fails t if two grants of one bucket are closer than the
// window. All processes of the test share this machine's clock, which also
// stamps the KV entries, so no tolerance is needed: a grant's record is
// taken before its Release, whose outcome write is stamped later, and the
// next grant of the bucket returns at least a window after that stamp.
func checkSpacing(t *testing.T, grants []grant, maxConc int, window time.Duration) {
	t.Helper()
	by := map[int][]time.Time{}
	for _, g := range grants {
		by[g.shard%maxConc] = append(by[g.shard%maxConc], g.at)
	}
	for b, ts := range by {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		for i := 1; i < len(ts); i++ {
			if d := ts[i].Sub(ts[i-1]); d < window {
				t.Errorf("bucket %d: grants %d and %d only %v apart (window %v)", b, i-1, i, d, window)
			}
		}
	}
}

// runShards runs shards over the limiters (round robin) concurrently.
func runShards(t *testing.T, ls []*Limiter, shards int) []grant {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var grants []grant
	record := func(g grant) { mu.Lock(); grants = append(grants, g); mu.Unlock() }
	var wg sync.WaitGroup
	errs := make(chan error, shards)
	for s := range shards {
		wg.Go(func() {
			if err := identify(ctx, ls[s%len(ls)], s, record); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("identify: %v", err)
	}
	return grants
}

func TestBucketsSharedAcrossProcesses(t *testing.T) {
	s := natstest.Start(t)
	const maxConc, shards = 2, 18 // 9 per bucket, 3 per bucket per process
	ls := make([]*Limiter, 3)
	for i := range ls {
		ls[i], _ = proc(t, s, maxConc, WithNode("p"+string(rune('a'+i))))
	}
	grants := runShards(t, ls, shards)
	if len(grants) != shards {
		t.Fatalf("%d grants, want %d", len(grants), shards)
	}
	checkSpacing(t, grants, maxConc, testWindow)
}

func TestCrashedHolderBlocksAtMostTheBound(t *testing.T) {
	s := natstest.Start(t)
	const hold = time.Second
	crashed, _ := proc(t, s, 2, WithHoldLimit(hold))
	other, _ := proc(t, s, 2, WithHoldLimit(hold))
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	tk, _ := crashed.Enqueue(0)
	if err := crashed.Acquire(ctx, tk); err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	crashed.Close() // never releases: its claim stays until its TTL

	tk2, _ := other.Enqueue(2) // bucket 0 too
	if err := other.Acquire(ctx, tk2); err != nil {
		t.Fatal(err)
	}
	blocked := time.Since(granted)
	// The bound (doc.go): the TTL (1 s) + window + margin, plus the
	// server's expiry latency, which we allow 500 ms on a loaded machine.
	bound := hold + testWindow + 50*time.Millisecond
	if blocked < bound {
		t.Errorf("granted %v after a crashed holder's grant, before the bound %v", blocked, bound)
	}
	if blocked > bound+500*time.Millisecond {
		t.Errorf("a crashed holder blocked its bucket %v, bound %v (+500ms expiry latency)", blocked, bound)
	}
	t.Logf("crashed holder blocked the bucket %v (bound %v)", blocked, bound)
}

func TestBudgetSpentOncePerGrantAndReserveKept(t *testing.T) {
	s := natstest.Start(t)
	const maxConc = 4
	a, js := proc(t, s, maxConc, WithReserve(10), WithWindow(50*time.Millisecond))
	b, _ := proc(t, s, maxConc, WithReserve(10), WithWindow(50*time.Millisecond))
	a.SetSessionStartLimit(100, 16, time.Hour) // 6 starts above the reserve
	poll.Until(t, poll.Timeout, "both see the budget", func() bool {
		return a.Snapshot().Budget.Remaining == 16 && b.Snapshot().Budget.Remaining == 16
	})
	var mu sync.Mutex
	var grants []grant
	record := func(g grant) { mu.Lock(); grants = append(grants, g); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for sh := range 10 {
		l := []*Limiter{a, b}[sh%2]
		wg.Go(func() { _ = identify(ctx, l, sh, record) })
	}
	poll.Until(t, poll.Timeout, "6 grants", func() bool { mu.Lock(); defer mu.Unlock(); return len(grants) >= 6 })
	kv := kvOf(t, js)
	// The other 4 wait for the reset: each process with one queued says so.
	poll.Until(t, poll.Timeout, "both processes waiting for the budget reset", func() bool {
		for _, l := range []*Limiter{a, b} {
			if l.Snapshot().Waiting > 0 && !budgetWaiting(l) {
				return false
			}
		}
		return true
	})
	cancel()
	wg.Wait()
	if len(grants) != 6 {
		t.Errorf("%d grants, want 6 (16 remaining, reserve 10)", len(grants))
	}
	if got := budgetIn(t, kv); got.Remaining != 10 {
		t.Errorf("KV budget remaining %d, want 10", got.Remaining)
	}
	// A reading of the same period never raises what KV says...
	b.SetSessionStartLimit(100, 16, time.Hour)
	if got := budgetIn(t, kv); got.Remaining != 10 {
		t.Errorf("after a same-period reading remaining %d, want 10", got.Remaining)
	}
	// ...one of a new period replaces it.
	b.SetSessionStartLimit(100, 90, 3*time.Hour)
	if got := budgetIn(t, kv); got.Remaining != 90 {
		t.Errorf("after a new-period reading remaining %d, want 90", got.Remaining)
	}
	if sn := a.Snapshot(); sn.Grants+b.Snapshot().Grants != 6 {
		t.Errorf("snapshots count %d+%d grants, want 6", sn.Grants, b.Snapshot().Grants)
	}
}

// budgetWaiting reports whether l logged a budget wait (a head of it waits
// for the reset) since the budget last changed.
func budgetWaiting(l *Limiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.budgetWarned
}

func kvOf(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func budgetIn(t *testing.T, kv jetstream.KeyValue) budgetVal {
	t.Helper()
	e, err := kv.Get(context.Background(), budgetKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := parseBudget(budgetKey, e.Value())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOlderWaiterOfAnotherProcessGoesFirst(t *testing.T) {
	s := natstest.Start(t)
	// A window of 1 s: the young defers for up to two, ample on a loaded
	// machine for the old one's worker to claim first.
	holder, _ := proc(t, s, 1, WithWindow(time.Second))
	old, _ := proc(t, s, 1, WithWindow(time.Second))
	young, _ := proc(t, s, 1, WithWindow(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	hk, _ := holder.Enqueue(0)
	if err := holder.Acquire(ctx, hk); err != nil {
		t.Fatal(err)
	}
	ok, _ := old.Enqueue(1)
	yk, _ := young.Enqueue(2)
	poll.Until(t, poll.Timeout, "each sees the other's waiter, and only it", func() bool {
		return onlyWaiter(old, young.id) && onlyWaiter(young, old.id)
	})
	order := make(chan string, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := young.Acquire(ctx, yk); err == nil {
			order <- "young"
			young.Release(yk, true)
		}
	})
	wg.Go(func() {
		if err := old.Acquire(ctx, ok); err == nil {
			order <- "old"
			old.Release(ok, true)
		}
	})
	holder.Release(hk, true)
	wg.Wait()
	close(order)
	var got []string
	for o := range order {
		got = append(got, o)
	}
	if !slices.Equal(got, []string{"old", "young"}) {
		t.Errorf("grant order %v, want [old young]", got)
	}
}

// onlyWaiter reports whether l sees exactly one other waiter in bucket 0: id.
func onlyWaiter(l *Limiter, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.buckets[0].waiters[id]
	return ok && len(l.buckets[0].waiters) == 1
}

func TestMalformedValueGivesAClearError(t *testing.T) {
	s := natstest.Start(t)
	l, js := proc(t, s, 2)
	kv := kvOf(t, js)
	if _, err := kv.Put(context.Background(), "b.1", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, poll.Timeout, "the watcher sees b.1", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.buckets[1].curErr != nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	tk, _ := l.Enqueue(1)
	err := l.Acquire(ctx, tk)
	var me *MalformedError
	if !errors.Is(err, ErrMalformed) || !errors.As(err, &me) || me.Key != "b.1" || !strings.Contains(err.Error(), "b.1") {
		t.Fatalf("Acquire with a malformed b.1: %v, want a MalformedError naming b.1", err)
	}
	// The other bucket is unaffected.
	tk0, _ := l.Enqueue(0)
	if err := l.Acquire(ctx, tk0); err != nil {
		t.Fatalf("bucket 0: %v", err)
	}
	l.Release(tk0, true)

	if _, err := kv.Put(context.Background(), budgetKey, []byte(`{"total":5,"remaining":9}`)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, poll.Timeout, "the watcher sees the budget", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.budget.err != nil
	})
	tk2, _ := l.Enqueue(2)
	err = l.Acquire(ctx, tk2)
	if !errors.As(err, &me) || me.Key != budgetKey {
		t.Fatalf("Acquire with a malformed budget: %v, want a MalformedError naming %s", err, budgetKey)
	}
}

func TestIdempotentStepsAndRelease(t *testing.T) {
	s := natstest.Start(t)
	l, _ := proc(t, s, 1)
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	a, _ := l.Enqueue(0)
	b, _ := l.Enqueue(1)
	if bk, pos, ok := l.Position(b); !ok || bk != 0 || pos != 1 {
		t.Errorf("Position(b) = %d, %d, %v; want 0, 1, true", bk, pos, ok)
	}
	for range 2 {
		if err := l.Approach(ctx, a, 0); err != nil {
			t.Fatal(err)
		}
		if err := l.Acquire(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	l.Release(a, true)
	l.Release(a, true)
	l.Release(b, false) // queued: leaves
	if err := l.Acquire(ctx, b); !errors.Is(err, ErrReleased) {
		t.Errorf("Acquire of a released ticket: %v, want ErrReleased", err)
	}
	if sn := l.Snapshot(); sn.Grants != 1 || sn.Ready != 1 || sn.Waiting != 0 {
		t.Errorf("snapshot grants %d ready %d waiting %d, want 1 1 0", sn.Grants, sn.Ready, sn.Waiting)
	}
}

func TestCancelledWaiterLeavesAndSeedDelays(t *testing.T) {
	s := natstest.Start(t)
	l, _ := proc(t, s, 2)
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	a, _ := l.Enqueue(0)
	if err := l.Acquire(ctx, a); err != nil {
		t.Fatal(err)
	}
	// b waits behind a's identify in flight; its ctx ends: it leaves.
	b, _ := l.Enqueue(2)
	bctx, bcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Acquire(bctx, b) }()
	poll.Until(t, poll.Timeout, "b blocked in Acquire", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.tickets[b] != nil && l.tickets[b].acquiring
	})
	bcancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v", err)
	}
	if _, _, ok := l.Position(b); ok {
		t.Error("a cancelled ticket is still queued")
	}
	l.Release(a, true)

	// A seeded identify of bucket 1 a moment ago delays its next grant
	// by window + margin from it.
	seeded := time.Now()
	l.SeedLastIdentify(1, seeded)
	c, _ := l.Enqueue(1)
	if err := l.Acquire(ctx, c); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(seeded); d < testWindow+50*time.Millisecond {
		t.Errorf("granted %v after a seeded identify, want >= window + margin", d)
	}
	last := l.LastIdentifies(nil)
	if len(last) != 2 || last[1].Before(seeded) || last[0].IsZero() {
		t.Errorf("LastIdentifies = %v", last)
	}
	l.Release(c, false)
}
