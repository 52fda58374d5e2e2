package shardowner

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/shardlease"
)

func TestBaseID(t *testing.T) {
	for _, c := range []struct {
		key  shardlease.Key
		base int
		id   int
		ok   bool
	}{
		{shardlease.Key{ID: 3, Count: 8}, 8, 3, true},
		{shardlease.Key{ID: 11, Count: 16}, 8, 3, true},
		{shardlease.Key{ID: 19, Count: 32}, 8, 3, true},
		{shardlease.Key{ID: 4, Count: 16}, 8, 4, true},
		{shardlease.Key{ID: 1, Count: 4}, 8, 0, false},  // a smaller count
		{shardlease.Key{ID: 5, Count: 12}, 8, 0, false}, // not a multiple
		{shardlease.Key{ID: 16, Count: 16}, 8, 0, false},
	} {
		id, ok := BaseID(c.key, c.base)
		if id != c.id || ok != c.ok {
			t.Errorf("BaseID(%v, %d) = %d, %v; want %d, %v", c.key, c.base, id, ok, c.id, c.ok)
		}
	}
}

// A fixed node given 3 of 8 keeps the shards a split of 3/8 makes, and no
// other; balanced ownership follows the base ID.
func TestDesiredFollowsTheBaseID(t *testing.T) {
	r := &Runner{node: "a", mode: Fixed([]int{3}, 8)}
	for key, want := range map[shardlease.Key]bool{
		{ID: 3, Count: 8}: true, {ID: 3, Count: 16}: true, {ID: 11, Count: 16}: true, {ID: 27, Count: 32}: true,
		{ID: 4, Count: 16}: false, {ID: 2, Count: 8}: false, {ID: 3, Count: 12}: false,
	} {
		if got := r.desired(nil, key); got != want {
			t.Errorf("fixed [3]/8: desired(%v) = %v, want %v", key, got, want)
		}
	}
	rb := &Runner{node: "b", mode: Balanced(4)}
	targets := Targets([]string{"a", "b"}, 4) // a: 0 1, b: 2 3
	for key, want := range map[shardlease.Key]bool{
		{ID: 1, Count: 8}: false, {ID: 5, Count: 8}: false, {ID: 2, Count: 8}: true, {ID: 7, Count: 8}: true,
	} {
		if got := rb.desired(targets, key); got != want {
			t.Errorf("balanced/4 b: desired(%v) = %v, want %v", key, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	k := func(id, count int) shardlease.Key { return shardlease.Key{ID: id, Count: count} }
	recs := func(keys ...shardlease.Key) map[shardlease.Key]shardlease.Record {
		m := map[shardlease.Key]shardlease.Record{}
		for _, key := range keys {
			m[key] = shardlease.Record{Key: key}
		}
		return m
	}
	for _, c := range []struct {
		name string
		key  shardlease.Key
		recs map[shardlease.Key]shardlease.Record
		want standing
	}{
		{"a base key with no record", k(1, 4), recs(), standingShard},
		{"a plain record", k(1, 4), recs(k(1, 4), k(2, 4)), standingShard},
		{"split done, parent deleted", k(1, 4), recs(k(1, 8), k(5, 8)), standingVanished},
		{"a child after the split", k(5, 8), recs(k(1, 8), k(5, 8)), standingShard},
		{"split done, parent not yet deleted", k(1, 4), recs(k(1, 4), k(1, 8), k(5, 8)), standingSuperseded},
		{"a child of a split in progress", k(5, 8), recs(k(1, 4), k(1, 8), k(5, 8)), standingShard},
		{"a split that never completed", k(1, 8), recs(k(1, 4), k(1, 8)), standingStray},
		{"its parent keeps the guilds", k(1, 4), recs(k(1, 4), k(1, 8)), standingShard},
		{"two levels", k(1, 4), recs(k(1, 4), k(5, 8), k(1, 16), k(9, 16)), standingSuperseded},
		{"two levels, a hole", k(1, 4), recs(k(1, 4), k(5, 8), k(1, 16)), standingShard},
		{"two levels, the half split", k(1, 8), recs(k(1, 4), k(1, 8), k(5, 8), k(1, 16), k(9, 16)), standingSuperseded},
	} {
		if got := classify(c.key, c.recs); got != c.want {
			t.Errorf("%s: classify(%v) = %d, want %d", c.name, c.key, got, c.want)
		}
	}
}

// activeKeys returns p's active shard keys ("[0/4 1/8]") and whether every
// one is ready.
func activeKeys(p *proc) (string, bool) {
	var keys []string
	all := true
	for _, s := range p.mgr.Snapshot().Shards {
		if s.Role != manager.RoleActive {
			continue
		}
		keys = append(keys, s.Key.String())
		all = all && s.State == gateway.StateReady
	}
	return fmt.Sprint(keys), all
}

// waitKeys waits until p runs exactly want, every shard ready, holding
// just their leases.
func waitKeys(t *testing.T, p *proc, want string, leases int) {
	t.Helper()
	poll.UntilState(t, 20*time.Second, p.name+" runs "+want, func() (bool, string) {
		got, all := activeKeys(p)
		return all && got == want && p.runner.Leases() == leases, fmt.Sprintf("%s ready=%v leases=%d", got, all, p.runner.Leases())
	})
}

// records describes the records p's table sees: "1.8:a+" is shard 1/8
// held by a with a session saved ("-" without).
func records(p *proc) string {
	var out []string
	for _, r := range p.table.Records() {
		s := "-"
		if r.Session.SessionID != "" {
			s = "+"
		}
		out = append(out, r.Key.String()+":"+r.Owner+s)
	}
	return strings.Join(out, " ")
}

func waitRecords(t *testing.T, p *proc, want string) {
	t.Helper()
	poll.UntilState(t, 10*time.Second, "records "+want, func() (bool, string) {
		got := records(p)
		return got == want, got
	})
}

// addedKeys drains events and returns the keys of the shards added.
func addedKeys(evs <-chan manager.Event) []string {
	var out []string
	for {
		select {
		case ev := <-evs:
			if ev.Type == manager.EventShardAdded {
				out = append(out, ev.Key.String())
			}
		default:
			return out
		}
	}
}

// The owner of a shard splits it: the new shards are leased to it before
// they start and run there, the record of the shard split goes, and the
// other node never runs any of them; when the owner leaves, the other
// adopts them by resume.
func TestSplitByTheOwner(t *testing.T) {
	c := newCluster(t, 4)
	a := c.start("a", Balanced(4))
	waitRun(t, 20*time.Second, "map[a:[0 1 2 3]]", a)
	b := c.start("b", Balanced(4))
	waitRun(t, 20*time.Second, "map[a:[0 1] b:[2 3]]", a, b)
	waitSaved(t, a, "a", 0, 1)
	waitSaved(t, b, "b", 2, 3)
	evs, unsub := b.mgr.Subscribe(1024)
	defer unsub()

	if err := a.mgr.SplitShard(ctxT(t, 20*time.Second), 1, 2); err != nil {
		t.Fatalf("split 1/4 into 2: %v", err)
	}
	waitKeys(t, a, "[0/4 1/8 5/8]", 3)
	waitRecords(t, a, "0.4:a+ 2.4:b+ 3.4:b+ 1.8:a+ 5.8:a+")
	// The sim ends the session of the shard split when it reads its close.
	poll.UntilState(t, 10*time.Second, "6 identifies, 5 sessions after the split", func() (bool, string) {
		st := c.sim.Stats()
		return st.Identifies == 6 && st.ActiveSessions == 5, fmt.Sprintf("identifies %d sessions %d", st.Identifies, st.ActiveSessions)
	})
	// b saw the new records and the vanished one, and took none of them
	// (its view of the records is a's: waitRecords on b).
	waitRecords(t, b, "0.4:a+ 2.4:b+ 3.4:b+ 1.8:a+ 5.8:a+")
	waitKeys(t, b, "[2/4 3/4]", 2)
	if got := addedKeys(evs); len(got) != 0 {
		t.Fatalf("b added %v during a's split, want nothing", got)
	}
	if d := b.mgr.Snapshot().Totals.DroppedEvents; d != 0 {
		t.Fatalf("b's subscription dropped %d events: the check above saw too little", d)
	}

	a.leave(t)
	waitKeys(t, b, "[0/4 1/8 2/4 3/4 5/8]", 5)
	if st := c.sim.Stats(); st.Identifies != 6 {
		t.Fatalf("after a left: identifies %d, want still 6 (b resumed a's shards, the split's too)", st.Identifies)
	}
	added := addedKeys(evs)
	slices.Sort(added)
	if fmt.Sprint(added) != "[0/4 1/8 5/8]" {
		t.Fatalf("b added %v after a left, want [0/4 1/8 5/8]", added)
	}
	waitRecords(t, b, "0.4:b+ 2.4:b+ 3.4:b+ 1.8:b+ 5.8:b+")
}

// A split whose new shard's lease another live node holds is refused with
// an error naming the shard and the node; the shard keeps serving, the
// lease taken meanwhile is deleted, and the split succeeds once the lease
// is free.
func TestSplitRefusedWhenANewShardIsHeld(t *testing.T) {
	c := newCluster(t, 4)
	a := c.start("a", Balanced(4))
	b := c.start("b", Balanced(4))
	waitRun(t, 20*time.Second, "map[a:[0 1] b:[2 3]]", a, b)
	waitSaved(t, a, "a", 0, 1)
	waitSaved(t, b, "b", 2, 3)
	ctx := ctxT(t, 20*time.Second)
	stray, err := b.table.Acquire(ctx, shardlease.Key{ID: 5, Count: 8})
	if err != nil {
		t.Fatalf("b: acquire 5/8: %v", err)
	}
	waitRecords(t, a, "0.4:a+ 1.4:a+ 2.4:b+ 3.4:b+ 5.8:b-")

	err = a.mgr.SplitShard(ctx, 1, 2)
	if !errors.Is(err, manager.ErrAborted) || !errors.Is(err, ErrSplitRefused) || !errors.Is(err, shardlease.ErrHeld) {
		t.Fatalf("split with 5/8 held by b: %v, want ErrAborted, ErrSplitRefused and shardlease.ErrHeld", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "5/8") || !strings.Contains(msg, `"b"`) || !strings.Contains(msg, "1/4") {
		t.Fatalf("error %q does not name the shard split, the new shard held and its node", msg)
	}
	var he *shardlease.HeldError
	if !errors.As(err, &he) || he.Owner != "b" || he.Key != (shardlease.Key{ID: 5, Count: 8}) {
		t.Fatalf("error %v: HeldError %+v, want 5/8 held by b", err, he)
	}
	waitKeys(t, a, "[0/4 1/4]", 2)
	waitRecords(t, a, "0.4:a+ 1.4:a+ 2.4:b+ 3.4:b+ 5.8:b-") // a's lease of 1/8 is gone with its record
	if st := c.sim.Stats(); st.Identifies != 4 {
		t.Fatalf("identifies %d after the refused split, want 4", st.Identifies)
	}

	if err := b.table.Delete(ctx, stray.Key(), stray); err != nil {
		t.Fatalf("b: delete 5/8: %v", err)
	}
	waitRecords(t, a, "0.4:a+ 1.4:a+ 2.4:b+ 3.4:b+")
	if err := a.mgr.SplitShard(ctx, 1, 2); err != nil {
		t.Fatalf("split once 5/8 is free: %v", err)
	}
	waitKeys(t, a, "[0/4 1/8 5/8]", 3)
	waitRecords(t, a, "0.4:a+ 2.4:b+ 3.4:b+ 1.8:a+ 5.8:a+")
	waitKeys(t, b, "[2/4 3/4]", 2)
}

// A whole re-shard is refused on a node of a cluster, saying what to do.
func TestReshardRefusedInACluster(t *testing.T) {
	c := newCluster(t, 2)
	a := c.start("a", Balanced(2))
	waitRun(t, 20*time.Second, "map[a:[0 1]]", a)
	err := a.mgr.Reshard(ctxT(t, 10*time.Second), 4)
	if !errors.Is(err, manager.ErrReshardRefused) || !strings.Contains(err.Error(), "re-shard in a cluster") {
		t.Fatalf("Reshard on a cluster's node: %v, want ErrReshardRefused explaining the cluster", err)
	}
	waitKeys(t, a, "[0/2 1/2]", 2)
}

// Fixed nodes with overlapping IDs: the shards a split of shard 1 makes
// are the nodes' given 1; the splitter runs them, the other only takes
// them over (by resume) when it leaves, and never creates 1/2 again.
func TestSplitInFixedMode(t *testing.T) {
	c := newCluster(t, 2)
	a := c.start("a", Fixed([]int{0, 1}, 2))
	waitRun(t, 20*time.Second, "map[a:[0 1]]", a)
	b := c.start("b", Fixed([]int{1}, 2))
	waitSaved(t, a, "a", 0, 1)
	if err := a.mgr.SplitShard(ctxT(t, 20*time.Second), 1, 2); err != nil {
		t.Fatalf("split 1/2 into 2: %v", err)
	}
	waitKeys(t, a, "[0/2 1/4 3/4]", 3)
	waitRecords(t, b, "0.2:a+ 1.4:a+ 3.4:a+")
	waitKeys(t, b, "[]", 0)
	a.leave(t)
	waitKeys(t, b, "[1/4 3/4]", 2)           // 0/2 is not b's
	waitRecords(t, b, "0.2:+ 1.4:b+ 3.4:b+") // 0/2 released, free
	if st := c.sim.Stats(); st.Identifies != 4 {
		t.Fatalf("identifies %d, want 4 (2, then the split's 2; b resumed)", st.Identifies)
	}
}

// Records of a split that never completed, left by a node that died, while
// the shard split runs: its owner deletes them and keeps running it.
func TestLeftoverSplitRecordsAreDeleted(t *testing.T) {
	c := newCluster(t, 4)
	b := c.start("b", Balanced(4))
	waitRun(t, 20*time.Second, "map[b:[0 1 2 3]]", b)
	waitSaved(t, b, "b", 0, 1, 2, 3)
	nc, err := nats.Connect(c.ns.ClientURL())
	if err != nil {
		t.Fatalf("x: connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("x: jetstream: %v", err)
	}
	ctx := ctxT(t, 20*time.Second)
	x, err := shardlease.Open(ctx, js, "x", shardlease.WithTTL(testTTL))
	if err != nil {
		t.Fatalf("x: open leases: %v", err)
	}
	for _, k := range []shardlease.Key{{ID: 1, Count: 8}, {ID: 5, Count: 8}} {
		if _, err := x.Acquire(ctx, k); err != nil {
			t.Fatalf("x: acquire %v: %v", k, err)
		}
	}
	waitRecords(t, b, "0.4:b+ 1.4:b+ 2.4:b+ 3.4:b+ 1.8:x- 5.8:x-")
	x.Close() // x dies: its records expire
	waitRecords(t, b, "0.4:b+ 1.4:b+ 2.4:b+ 3.4:b+")
	waitKeys(t, b, "[0/4 1/4 2/4 3/4]", 4)
	if st := c.sim.Stats(); st.Identifies != 4 {
		t.Fatalf("identifies %d, want 4", st.Identifies)
	}
}
