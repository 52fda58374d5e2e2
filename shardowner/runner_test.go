package shardowner

import (
	"errors"
	"fmt"
	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/shardlease"
	"slices"
	"testing"
	"time"
)

func TestNewRejectsBadModes(t *testing.T) {
	for _, m := range []Mode{Fixed(nil, 4), Fixed([]int{4}, 4), Fixed([]int{-1}, 4), Balanced(0)} {
		if _, err := New(nil, nil, nil, m); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("New(%v) = %v, want ErrInvalidOption", m, err)
		}
	}
}

func TestModeString(t *testing.T) {
	if s := Fixed([]int{2, 0, 2}, 4).String(); s != "fixed 0,2/4" {
		t.Errorf("Fixed: %q", s)
	}
	if s := Balanced(8).String(); s != "balanced/8" {
		t.Errorf("Balanced: %q", s)
	}
}

// Overlapping fixed ranges: each shard runs once; the loser of a shard takes
// it over, by resume, when its owner leaves.
func TestFixedOverlap(t *testing.T) {
	c := newCluster(t, 4)
	a := c.start("a", Fixed([]int{0, 1, 2}, 4))
	b := c.start("b", Fixed([]int{1, 2, 3}, 4))
	// Who wins 1 and 2 is a race; each runs once.
	poll.UntilState(t, 20*time.Second, "4 shards once", func() (bool, string) {
		ia, alla := readyIDs(a)
		ib, allb := readyIDs(b)
		u := append(slices.Clone(ia), ib...)
		slices.Sort(u)
		return alla && allb && fmt.Sprint(u) == "[0 1 2 3]" && a.runner.Leases()+b.runner.Leases() == 4, fmt.Sprint(ia, ib)
	})
	st := c.sim.Stats()
	if st.Identifies != 4 || st.ActiveSessions != 4 {
		t.Fatalf("sim identifies %d sessions %d, want 4 each", st.Identifies, st.ActiveSessions)
	}
	a.leave(t)
	waitRun(t, 20*time.Second, "map[b:[1 2 3]]", b) // 0 is not b's
	if st2 := c.sim.Stats(); st2.Identifies != 4 {
		t.Fatalf("identifies %d after a left, want still 4 (b resumes)", st2.Identifies)
	}
}

func TestBalancedJoinLeave(t *testing.T) {
	c := newCluster(t, 6)
	a := c.start("a", Balanced(6))
	waitRun(t, 20*time.Second, "map[a:[0 1 2 3 4 5]]", a)
	b := c.start("b", Balanced(6))
	waitRun(t, 20*time.Second, "map[a:[0 1 2] b:[3 4 5]]", a, b)
	st := c.sim.Stats()
	if st.Identifies != 6 || st.Resumes < 3 {
		t.Fatalf("after b joined: identifies %d resumes %d, want 6 and at least 3 (hand-off by resume)", st.Identifies, st.Resumes)
	}
	cc := c.start("c", Balanced(6))
	waitRun(t, 20*time.Second, "map[a:[0 1] b:[2 3] c:[4 5]]", a, b, cc)
	if st := c.sim.Stats(); st.Identifies != 6 {
		t.Fatalf("after c joined: identifies %d, want still 6", st.Identifies)
	}
	b.leave(t)
	waitRun(t, 20*time.Second, "map[a:[0 1 2] c:[3 4 5]]", a, cc)
	if st := c.sim.Stats(); st.Identifies != 6 || st.ActiveSessions != 6 {
		t.Fatalf("after b left: identifies %d sessions %d, want 6 each", st.Identifies, st.ActiveSessions)
	}
}

// A node that dies keeps its leases until they expire; then the others adopt
// its shards by resume within TTL + 2 s.
func TestBalancedDeath(t *testing.T) {
	c := newCluster(t, 4)
	a := c.start("a", Balanced(4))
	b := c.start("b", Balanced(4))
	waitRun(t, 20*time.Second, "map[a:[0 1] b:[2 3]]", a, b)
	waitSaved(t, a, "b", 2, 3)
	before := c.sim.Stats()
	start := time.Now() // the deadline counts the crash's own teardown too
	b.stop()
	waitRun(t, testTTL+2*time.Second-time.Since(start), "map[a:[0 1 2 3]]", a)
	t.Logf("adopted in %v", time.Since(start))
	if st := c.sim.Stats(); st.Identifies != before.Identifies || st.Resumes < before.Resumes+2 {
		t.Fatalf("after b died: identifies %d resumes %d, want %d and at least %d (a resumes b's sessions)",
			st.Identifies, st.Resumes, before.Identifies, before.Resumes+2)
	}
}

// A lease lost to another writer stops its shard at once, without a write:
// the intruder's record stays as it wrote it until it expires, and only then
// is the shard run here again.
func TestLeaseLost(t *testing.T) {
	c := newCluster(t, 2)
	a := c.start("a", Balanced(2))
	waitRun(t, 20*time.Second, "map[a:[0 1]]", a)
	js := natstest.JetStream(t, c.ns.ClientURL())
	ctx := ctxT(t, 20*time.Second)
	kv, err := js.KeyValue(ctx, shardlease.DefaultBucket)
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	intruder := []byte(`{"v":1,"owner":"intruder","epoch":99}`)
	rev, err := kv.Put(ctx, "0.2", intruder)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	put := time.Now()
	waitRun(t, testTTL, "map[a:[1]]", a)
	// Until the intruder's record expires (a TTL after a saw it, so no
	// sooner than a TTL after the put), nothing of a's touches it.
	e, err := kv.Get(ctx, "0.2")
	if time.Since(put) >= testTTL {
		t.Logf("the loss took %v to see; the record may have expired: not checking it", time.Since(put))
	} else if err != nil || e.Revision() != rev || string(e.Value()) != string(intruder) {
		t.Fatalf("record 0.2 after the loss: %v, %v; want the intruder's revision %d untouched", e, err, rev)
	}
	waitRun(t, testTTL+5*time.Second, "map[a:[0 1]]", a)
}

// A live node that does not take its share (here a heartbeat with no
// Runner behind it) leaves its shards free; after two TTLs the others run
// them rather than nobody.
func TestBalancedOrphanRescue(t *testing.T) {
	c := newCluster(t, 4)
	a := c.start("a", Balanced(4))
	waitRun(t, 20*time.Second, "map[a:[0 1 2 3]]", a)
	js := natstest.JetStream(t, c.ns.ClientURL())
	ctx := ctxT(t, 30*time.Second)
	kv, err := js.KeyValue(ctx, DefaultNodesBucket)
	if err != nil {
		t.Fatalf("nodes bucket: %v", err)
	}
	// "b" beats like a node, every third of the TTL, until the test ends.
	stop := make(chan struct{})
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		tk := time.NewTicker(testTTL / 3)
		defer tk.Stop()
		for n := 0; ; n++ {
			if _, err := kv.Put(ctx, "b", fmt.Appendf(nil, `{"v":1,"node":"b","beat":%d}`, n)); err != nil && ctx.Err() == nil {
				t.Errorf("beat: %v", err)
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	defer func() { close(stop); <-beats }()
	// a hands b's share over (b is live), nobody takes it...
	waitRun(t, 10*time.Second, "map[a:[0 1]]", a)
	released := time.Now()
	// ...and after two TTLs a runs it again, by resume.
	waitRun(t, 2*testTTL+5*time.Second, "map[a:[0 1 2 3]]", a)
	if d := time.Since(released); d < 2*testTTL-testTTL/5 {
		t.Fatalf("a took the orphans back after %v, before two TTLs (%v)", d, 2*testTTL)
	}
	if st := c.sim.Stats(); st.Identifies != 4 {
		t.Fatalf("identifies %d, want 4 (the orphans resume)", st.Identifies)
	}
}

// Fixed overlapping ranges, and the owner of the shared shards dies: the
// other takes them over after their leases expire, by resume, within
// TTL + 2 s; the dead node's own shard (0) is nobody else's.
func TestFixedDeath(t *testing.T) {
	c := newCluster(t, 4)
	a := c.start("a", Fixed([]int{0, 1, 2}, 4))
	waitRun(t, 20*time.Second, "map[a:[0 1 2]]", a)
	b := c.start("b", Fixed([]int{1, 2, 3}, 4))
	waitRun(t, 20*time.Second, "map[a:[0 1 2] b:[3]]", a, b)
	before := c.sim.Stats()
	waitSaved(t, b, "a", 0, 1, 2) // a crash before the first save would cost identifies
	start := time.Now()
	a.stop()
	waitRun(t, testTTL+2*time.Second-time.Since(start), "map[b:[1 2 3]]", b)
	if st := c.sim.Stats(); st.Identifies != before.Identifies || st.Resumes < before.Resumes+2 {
		t.Fatalf("after a died: identifies %d resumes %d, want %d and at least %d",
			st.Identifies, st.Resumes, before.Identifies, before.Resumes+2)
	}
}

// A node is live while its key's revision moves; one written once expires a
// TTL after it was seen; a malformed value names no node (and is logged).
func TestMembership(t *testing.T) {
	c := newCluster(t, 2)
	a := c.start("a", Balanced(2))
	js := natstest.JetStream(t, c.ns.ClientURL())
	ctx := ctxT(t, 20*time.Second)
	kv, err := js.KeyValue(ctx, DefaultNodesBucket)
	if err != nil {
		t.Fatalf("nodes bucket: %v", err)
	}
	if _, err := kv.Put(ctx, "bad", []byte(`{"v":1,"node":"other"}`)); err != nil {
		t.Fatalf("put: %v", err)
	}
	if _, err := kv.Put(ctx, "once", []byte(`{"v":1,"node":"once","beat":0}`)); err != nil {
		t.Fatalf("put: %v", err)
	}
	seen := time.Now()
	poll.UntilState(t, testTTL, "a sees once", func() (bool, string) {
		return fmt.Sprint(a.runner.Nodes()) == "[a once]", fmt.Sprint(a.runner.Nodes())
	})
	poll.UntilState(t, testTTL+5*time.Second, "once expires", func() (bool, string) {
		return fmt.Sprint(a.runner.Nodes()) == "[a]", fmt.Sprint(a.runner.Nodes())
	})
	if d := time.Since(seen); d < testTTL {
		t.Fatalf("once expired after %v, before the TTL %v", d, testTTL)
	}
	if a.runner.Node() != "a" || a.runner.Mode().String() != "balanced/2" {
		t.Fatalf("Node %q Mode %v", a.runner.Node(), a.runner.Mode())
	}
}
