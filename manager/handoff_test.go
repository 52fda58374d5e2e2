package manager

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/limiter"
	"github.com/shardtop/shardtop/store"
)

// countingLimiter is a real *limiter.Limiter whose calls are counted. It
// forwards by hand (no embedding), so it is not an IdentifyRecorder: the
// manager must work with a limiter that keeps no identify history.
type countingLimiter struct {
	lim               *limiter.Limiter
	enqueues          atomic.Int64
	acquires          atomic.Int64
	releases          atomic.Int64
	budgets           atomic.Int64
	lastTotal, lastRe atomic.Int64
}

func (c *countingLimiter) Enqueue(id int) (uint64, error) {
	c.enqueues.Add(1)
	return c.lim.Enqueue(id)
}

func (c *countingLimiter) Approach(ctx context.Context, t uint64, lead time.Duration) error {
	return c.lim.Approach(ctx, t, lead)
}

func (c *countingLimiter) Acquire(ctx context.Context, t uint64) error {
	err := c.lim.Acquire(ctx, t)
	if err == nil {
		c.acquires.Add(1)
	}
	return err
}

func (c *countingLimiter) Release(t uint64, ready bool) {
	c.releases.Add(1)
	c.lim.Release(t, ready)
}

func (c *countingLimiter) Position(t uint64) (int, int, bool) { return c.lim.Position(t) }
func (c *countingLimiter) Snapshot() limiter.Snapshot         { return c.lim.Snapshot() }

func (c *countingLimiter) SetSessionStartLimit(total, remaining int, resetAfter time.Duration) {
	c.budgets.Add(1)
	c.lastTotal.Store(int64(total))
	c.lastRe.Store(int64(remaining))
	c.lim.SetSessionStartLimit(total, remaining, resetAfter)
}

// recordingStore is a real store.File whose Puts and Deletes are recorded.
type recordingStore struct {
	*store.File
	mu  sync.Mutex
	ops []string // "put 1/2 seq=5", "delete 1/2"
}

func (r *recordingStore) Put(s store.ShardState) error {
	r.mu.Lock()
	r.ops = append(r.ops, fmt.Sprintf("put %d/%d seq=%d", s.ShardID, s.ShardCount, s.Sequence))
	r.mu.Unlock()
	return r.File.Put(s)
}

func (r *recordingStore) Delete(id, count int) error {
	r.mu.Lock()
	r.ops = append(r.ops, fmt.Sprintf("delete %d/%d", id, count))
	r.mu.Unlock()
	return r.File.Delete(id, count)
}

func (r *recordingStore) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

func TestCustomIdentifyLimiter(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 3, 2
	sim := startSim(t, cfg)
	f := openStore(t, filepath.Join(t.TempDir(), "state.toml"))
	defer f.Close()
	var made []int
	var cl *countingLimiter
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f),
		WithIdentifyLimiter(func(conc int) (IdentifyLimiter, error) {
			made = append(made, conc) // Open's goroutine, before the loop runs
			cl = &countingLimiter{lim: limiter.New(conc, limiter.WithWindow(cfg.IdentifyWindow), limiter.WithMargin(testMargin))}
			return cl, nil
		}))
	openReady(t, m)
	if fmt.Sprint(made) != "[2]" {
		t.Fatalf("factory called with %v, want once with max_concurrency 2", made)
	}
	st := sim.Stats()
	if st.Identifies != 3 || cl.acquires.Load() != 3 || cl.enqueues.Load() != 3 {
		t.Fatalf("sim identifies %d, limiter acquires %d enqueues %d; want 3 each", st.Identifies, cl.acquires.Load(), cl.enqueues.Load())
	}
	if cl.budgets.Load() < 1 || cl.lastTotal.Load() != 1000 {
		t.Fatalf("SetSessionStartLimit calls %d (total %d), want /gateway/bot's budget handed over", cl.budgets.Load(), cl.lastTotal.Load())
	}
	if snap := m.Snapshot().Limiter; len(snap.Buckets) != 2 || !snap.Budget.Known {
		t.Fatalf("Snapshot's limiter is not the custom one: %+v", snap)
	}
	// The identify of an opened shard goes through it too.
	if err := m.CloseShard(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	if err := m.OpenShard(ctxT(t, 10*time.Second), 1); err != nil { // resumes: no identify
		t.Fatal(err)
	}
	openErr := errors.New("no shared limiter")
	m2 := newTestManager(t, sim, cfg.IdentifyWindow, WithIdentifyLimiter(func(int) (IdentifyLimiter, error) { return nil, openErr }))
	if err := m2.Open(ctxT(t, 10*time.Second)); !errors.Is(err, openErr) {
		t.Fatalf("Open with a failing limiter factory: %v", err)
	}
	m3 := newTestManager(t, sim, cfg.IdentifyWindow, WithIdentifyLimiter(func(int) (IdentifyLimiter, error) { return nil, nil }))
	if err := m3.Open(ctxT(t, 10*time.Second)); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("Open with a factory returning no limiter: %v", err)
	}
}

func TestNoInitialShardsAddAndRemove(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.EventRate = 2, 20
	sim := startSim(t, cfg)
	dir := t.TempDir()
	f1 := openStore(t, filepath.Join(dir, "a.toml"), store.WithFlushInterval(10*time.Millisecond))
	defer f1.Close()
	f2 := openStore(t, filepath.Join(dir, "b.toml"), store.WithFlushInterval(10*time.Millisecond))
	defer f2.Close()
	s1, s2 := &recordingStore{File: f1}, &recordingStore{File: f2}
	ctx := ctxT(t, 30*time.Second)

	m1 := newTestManager(t, sim, cfg.IdentifyWindow, WithNoInitialShards(), WithStore(s1))
	events, cancel := m1.Subscribe(256)
	defer cancel()
	if err := m1.AddShard(ctx, ShardKey{0, 2}, gateway.Session{}); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("AddShard before Open: %v", err)
	}
	openReady(t, m1)
	if snap := m1.Snapshot(); len(snap.Shards) != 0 || snap.BotUser.ID != wantBotID {
		t.Fatalf("opened with no initial shards: %d shards, bot %+v", len(snap.Shards), snap.BotUser)
	}
	if st := sim.Stats(); st.Identifies != 0 {
		t.Fatalf("%d identifies with no shard", st.Identifies)
	}
	if err := m1.Reshard(ctx, 4); err == nil {
		t.Fatal("Reshard accepted by a manager whose shards another package decides")
	}

	// Bad keys, then shard 0/2 identifies once.
	for _, k := range []ShardKey{{2, 2}, {-1, 2}, {0, 0}, {0, store.MaxShardCount + 1}} {
		if err := m1.AddShard(ctx, k, gateway.Session{}); !errors.Is(err, ErrInvalidOption) {
			t.Fatalf("AddShard(%v): %v", k, err)
		}
	}
	if err := m1.AddShard(ctx, ShardKey{0, 2}, gateway.Session{ID: "x", ResumeURL: "http://x"}); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("AddShard with an http resume URL: %v", err)
	}
	if err := m1.AddShard(ctx, ShardKey{0, 2}, gateway.Session{}); err != nil {
		t.Fatal(err)
	}
	if err := m1.AddShard(ctx, ShardKey{0, 2}, gateway.Session{}); !errors.Is(err, ErrRunning) {
		t.Fatalf("AddShard of a running shard: %v", err)
	}
	if err := m1.AddShard(ctx, ShardKey{2, 4}, gateway.Session{}); !errors.Is(err, ErrShardConflict) {
		t.Fatalf("AddShard of 2/4 beside 0/2: %v", err)
	}
	if err := m1.AddShard(ctx, ShardKey{1, 2}, gateway.Session{}); err != nil {
		t.Fatal(err)
	}
	if err := m1.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if st := sim.Stats(); st.Identifies != 2 || st.IdentifyViolations != 0 {
		t.Fatalf("identifies %d violations %d after two AddShard without a session, want 2, 0", st.Identifies, st.IdentifyViolations)
	}
	checkRouting(t, m1, cfg.Guilds)

	// Hand 1/2 over to m2: it resumes, identifying nothing.
	if _, err := m1.RemoveShard(ctx, 5, true); !errors.Is(err, ErrUnknownShard) {
		t.Fatalf("RemoveShard(5): %v", err)
	}
	sess, err := m1.RemoveShard(ctx, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	if !sess.Resumable() || sess.Sequence == 0 {
		t.Fatalf("RemoveShard returned %+v, want a resumable session", sess)
	}
	if got := activeKeys(m1); fmt.Sprint(got) != "[0/2]" {
		t.Fatalf("m1 after RemoveShard: %v", got)
	}
	if _, ok := m1.Shard(1); ok {
		t.Fatal("a removed shard is still in the registry")
	}
	if want := fmt.Sprintf("put 1/2 seq=%d", sess.Sequence); !slices.Contains(s1.recorded(), want) {
		t.Fatalf("RemoveShard(save) did not put the session handed over: %v", s1.recorded())
	}
	m2 := newTestManager(t, sim, cfg.IdentifyWindow, WithNoInitialShards(), WithStore(s2))
	openReady(t, m2)
	before := sim.Stats()
	if err := m2.AddShard(ctx, ShardKey{1, 2}, sess); err != nil {
		t.Fatal(err)
	}
	if err := m2.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	after := sim.Stats()
	if after.Identifies != before.Identifies || after.Resumes != before.Resumes+1 {
		t.Fatalf("AddShard with the session: %d identifies, %d resumes; want 0, 1",
			after.Identifies-before.Identifies, after.Resumes-before.Resumes)
	}
	poll.Until(t, 5*time.Second, "m2's shard to move on", func() bool {
		si, ok := m2.Shard(1)
		return ok && si.Sequence > sess.Sequence
	})

	// The lease is lost: m2 stops and writes nothing more for 1/2.
	lost, err := m2.RemoveShard(ctx, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	// Writes queued before are dropped, and one under way has finished:
	// from here on nothing is written for 1/2, Close included.
	n := len(s2.recorded())
	if len(m2.Snapshot().Shards) != 0 {
		t.Fatalf("m2 still lists %d shards", len(m2.Snapshot().Shards))
	}
	if err := m2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s2.recorded()[n:]; len(got) != 0 {
		t.Fatalf("store writes after RemoveShard(save=false): %v", got)
	}
	// The file holds what m2 wrote before: its last put of 1/2.
	var lastPut string
	for _, op := range s2.recorded()[:n] {
		if strings.HasPrefix(op, "put 1/2 ") {
			lastPut = op
		}
	}
	var inFile []string
	for _, r := range f2.Load() {
		inFile = append(inFile, fmt.Sprintf("put %d/%d seq=%d", r.ShardID, r.ShardCount, r.Sequence))
	}
	if lastPut == "" || fmt.Sprint(inFile) != "["+lastPut+"]" {
		t.Fatalf("state file holds %v, want only m2's last write before the lease was lost (%q)", inFile, lastPut)
	}

	// m1 takes 1/2 back from what m2 returned: a resume again.
	before = sim.Stats()
	if err := m1.AddShard(ctx, ShardKey{1, 2}, lost); err != nil {
		t.Fatal(err)
	}
	if err := m1.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if after := sim.Stats(); after.Identifies != before.Identifies || after.Resumes != before.Resumes+1 {
		t.Fatalf("taking the shard back: %d identifies, %d resumes; want 0, 1",
			after.Identifies-before.Identifies, after.Resumes-before.Resumes)
	}
	checkRouting(t, m1, cfg.Guilds)
	var added, removed int
	for len(events) > 0 {
		switch (<-events).Type {
		case EventShardAdded:
			added++
		case EventShardRemoved:
			removed++
		}
	}
	if added != 3 || removed != 1 {
		t.Fatalf("events: %d shard-added, %d shard-removed; want 3, 1", added, removed)
	}

	// A restart of m1 with no initial shards keeps its saved sessions:
	// AddShard without a session resumes the one loaded.
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m3 := newTestManager(t, sim, cfg.IdentifyWindow, WithNoInitialShards(), WithStore(f1))
	openReady(t, m3)
	before = sim.Stats()
	if err := m3.AddShard(ctx, ShardKey{0, 2}, gateway.Session{}); err != nil {
		t.Fatal(err)
	}
	if err := m3.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if after := sim.Stats(); after.Identifies != before.Identifies || after.Resumes != before.Resumes+1 {
		t.Fatalf("AddShard with a loaded session: %d identifies, %d resumes; want 0, 1",
			after.Identifies-before.Identifies, after.Resumes-before.Resumes)
	}
}

// ackSink is an event sink that acknowledges the events up to a limit and
// never those past it, as a bus that stopped acknowledging.
type ackSink struct {
	limit int64 // events with Seq <= limit are durable at once; 0: all
	mu    sync.Mutex
	seqs  []int64 // every sequence taken, in order
	ready chan struct{}
}

func newAckSink(limit int64) *ackSink {
	s := &ackSink{limit: limit, ready: make(chan struct{})}
	close(s.ready)
	return s
}

func (s *ackSink) Take(_ string, d gateway.Dispatch) bool {
	s.mu.Lock()
	s.seqs = append(s.seqs, d.Seq)
	s.mu.Unlock()
	return true
}

func (s *ackSink) Pending(ShardKey, string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := int64(0)
	for _, q := range s.seqs {
		if s.limit > 0 && q > s.limit && (first == 0 || q < first) {
			first = q
		}
	}
	return first, first != 0
}

func (s *ackSink) Refused() []ShardKey                 { return nil }
func (s *ackSink) Ready() <-chan struct{}              { return s.ready }
func (s *ackSink) Resumed(ShardKey, string)            {}
func (s *ackSink) Lost(ShardKey, string, int64, int64) {}
func (s *ackSink) Flush(ctx context.Context) error {
	if first, ok := s.Pending(ShardKey{}, ""); ok {
		return fmt.Errorf("ackSink: events from %d are never acknowledged", first)
	}
	return nil
}

func (s *ackSink) taken() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seqs)
}

func TestRemoveShardHandsOverTheDurableSequence(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.EventRate, cfg.Guilds = 1, 50, 10
	sim := startSim(t, cfg)
	ctx := ctxT(t, 30*time.Second)
	const limit = 8
	sink1, sink2 := newAckSink(limit), newAckSink(0)
	m1 := newTestManager(t, sim, cfg.IdentifyWindow, WithNoInitialShards(), WithEventSink(sink1))
	m2 := newTestManager(t, sim, cfg.IdentifyWindow, WithNoInitialShards(), WithEventSink(sink2))
	openReady(t, m1)
	openReady(t, m2)
	if err := m1.AddShard(ctx, ShardKey{0, 1}, gateway.Session{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "m1's sink to take events past the acknowledged ones", func() bool {
		got := sink1.taken()
		return len(got) > 0 && got[len(got)-1] > limit+5
	})
	sess, err := m1.RemoveShard(ctx, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	taken := sink1.taken()
	if sess.Sequence != limit {
		t.Fatalf("handed-over sequence %d, want %d, the last durable (m1's sink took up to %d)", sess.Sequence, limit, taken[len(taken)-1])
	}
	before := sim.Stats()
	if err := m2.AddShard(ctx, ShardKey{0, 1}, sess); err != nil {
		t.Fatal(err)
	}
	if err := m2.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if after := sim.Stats(); after.Identifies != before.Identifies || after.Resumes != before.Resumes+1 {
		t.Fatalf("hand-over: %d identifies, %d resumes; want 0, 1", after.Identifies-before.Identifies, after.Resumes-before.Resumes)
	}
	// m2's events start right after the durable ones: everything m1's sink
	// did not acknowledge is replayed, nothing is skipped.
	last := taken[len(taken)-1]
	poll.Until(t, 10*time.Second, "the replay to reach what m1 had taken", func() bool {
		got := sink2.taken()
		return len(got) > 0 && got[len(got)-1] >= last
	})
	got := sink2.taken()
	first := int64(-1)
	for _, q := range got {
		if q > 0 {
			first = q
			break
		}
	}
	if first != limit+1 {
		t.Fatalf("m2's first event has sequence %d, want %d (right after the durable %d)", first, limit+1, limit)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != 0 && got[i-1] != 0 && got[i] != got[i-1]+1 {
			t.Fatalf("m2's events skip from %d to %d", got[i-1], got[i])
		}
	}
}

func TestSplitOfAnAddedShardTellsTheKeysFirst(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 1, 2
	sim := startSim(t, cfg)
	ctx := ctxT(t, 30*time.Second)
	var (
		mu       sync.Mutex
		told     [][]ShardKey
		refuse   = true
		release  = make(chan struct{})
		blocking atomic.Bool
		m        *Manager
	)
	hookErr := errors.New("no lease for the new shards")
	seenBefore := true // the hook never saw a new shard registered
	m = newTestManager(t, sim, cfg.IdentifyWindow, WithNoInitialShards(),
		WithShardKeysHook(func(hctx context.Context, keys []ShardKey) error {
			for _, s := range m.Snapshot().Shards {
				if s.Key.Count != 1 {
					mu.Lock()
					seenBefore = false
					mu.Unlock()
				}
			}
			mu.Lock()
			told = append(told, keys)
			r := refuse
			mu.Unlock()
			if blocking.Load() {
				select {
				case <-release:
				case <-hctx.Done():
					return hctx.Err()
				}
			}
			if r {
				return hookErr
			}
			return nil
		}))
	openReady(t, m)
	if err := m.AddShard(ctx, ShardKey{0, 1}, gateway.Session{}); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	identifies := sim.Stats().Identifies

	// Refused by the hook: the split fails cleanly, nothing new started.
	if err := m.SplitShard(ctx, 0, 2); !errors.Is(err, hookErr) || !errors.Is(err, ErrAborted) {
		t.Fatalf("split refused by the hook: %v", err)
	}
	if got := activeKeys(m); fmt.Sprint(got) != "[0/1]" || len(m.Snapshot().Shards) != 1 {
		t.Fatalf("after the refused split: %v", m.Snapshot().Shards)
	}
	if sim.Stats().Identifies != identifies {
		t.Fatal("a refused split identified")
	}

	// While the hook runs the split holds the shard: no removal, no
	// overlapping add.
	mu.Lock()
	refuse = false
	mu.Unlock()
	blocking.Store(true)
	splitDone := make(chan error, 1)
	go func() { splitDone <- m.SplitShard(ctx, 0, 2) }()
	poll.Until(t, 5*time.Second, "the hook to be told the split's keys", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(told) == 2
	})
	if _, err := m.RemoveShard(ctx, 0, true); !errors.Is(err, ErrBusy) {
		t.Fatalf("RemoveShard during a split: %v", err)
	}
	if err := m.AddShard(ctx, ShardKey{1, 2}, gateway.Session{}); !errors.Is(err, ErrShardConflict) {
		t.Fatalf("AddShard of a key the split brings: %v", err)
	}
	close(release)
	if err := <-splitDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(told) != "[[0/2 1/2] [0/2 1/2]]" || !seenBefore {
		t.Fatalf("hook told %v (before the new shards were registered: %v)", told, seenBefore)
	}
	if got := activeKeys(m); fmt.Sprint(got) != "[0/2 1/2]" {
		t.Fatalf("after the split: %v", got)
	}
	checkRouting(t, m, cfg.Guilds)

	// The new shards are the manager's like any: one is handed over.
	if _, err := m.RemoveShard(ctx, 1, true); err != nil {
		t.Fatal(err)
	}
	if got := activeKeys(m); fmt.Sprint(got) != "[0/2]" {
		t.Fatalf("after removing 1/2: %v", got)
	}
}

func TestHandOffMeetsClose(t *testing.T) {
	if _, err := New(testToken, WithNoInitialShards(), WithShardIDs(0)); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("WithNoInitialShards with WithShardIDs: %v", err)
	}
	cfg := simConfig()
	cfg.Shards, cfg.EventRate = 2, 20
	sim := startSim(t, cfg)
	ctx := ctxT(t, 30*time.Second)
	f := openStore(t, filepath.Join(t.TempDir(), "state.toml"))
	defer f.Close()
	hookCalled := make(chan struct{})
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithNoInitialShards(), WithStore(f),
		WithShardKeysHook(func(hctx context.Context, _ []ShardKey) error {
			close(hookCalled)
			<-hctx.Done() // a lease service that does not answer: Close ends it
			return hctx.Err()
		}))
	openReady(t, m)
	for _, k := range []ShardKey{{0, 2}, {1, 2}} {
		if err := m.AddShard(ctx, k, gateway.Session{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	splitErr := make(chan error, 1)
	go func() { splitErr <- m.SplitShard(ctx, 1, 2) }()
	<-hookCalled
	type result struct {
		sess gateway.Session
		err  error
	}
	removed := make(chan result, 1)
	go func() {
		s, err := m.RemoveShard(ctx, 0, true)
		removed <- result{s, err}
	}()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-splitErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("split whose hook Close ended: %v", err)
	}
	r := <-removed
	switch {
	case r.err == nil && r.sess.Resumable():
	case errors.Is(r.err, ErrClosed) && !r.sess.Resumable():
	default:
		t.Fatalf("RemoveShard beside Close: %+v, %v", r.sess, r.err)
	}
	// Either way the shard's session is kept: in the store, by RemoveShard or Close.
	var keys []string
	for _, rec := range f.Load() {
		keys = append(keys, ShardKey{rec.ShardID, rec.ShardCount}.String())
	}
	if fmt.Sprint(keys) != "[0/2 1/2]" {
		t.Fatalf("store after Close: %v", keys)
	}
	if err := m.AddShard(ctx, ShardKey{0, 2}, gateway.Session{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddShard after Close: %v", err)
	}
	if _, err := m.RemoveShard(ctx, 1, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("RemoveShard after Close: %v", err)
	}
}
