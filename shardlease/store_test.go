package shardlease

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/store"
)

// managerStore is the manager's Store interface (manager/manager.go),
// restated: the adapter must satisfy it.
type managerStore interface {
	Load() []store.ShardState
	Put(store.ShardState) error
	Delete(shardID, shardCount int) error
	Flush(ctx context.Context) error
}

var _ managerStore = (*Store)(nil)

// The adapter writes puts through the leases: coalesced, on Flush or on its
// own cadence, refused for shards not held; the next owner resumes them.
func TestStoreRoundTrip(t *testing.T) {
	s := natstest.Start(t)
	a, b := process(t, s, "node-a"), process(t, s, "node-b")
	k1, k2, k3 := Key{0, 4}, Key{1, 4}, Key{2, 4}
	l1, err := a.Acquire(ctxT(t, 10*time.Second), k1)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := a.Acquire(ctxT(t, 10*time.Second), k2)
	if err != nil {
		t.Fatal(err)
	}
	st := a.Store()
	if got := st.Load(); len(got) != 0 {
		t.Fatalf("Load of fresh leases: %+v, want none", got)
	}
	err = st.Put(session(k3, "c", 1))
	if !errors.Is(err, ErrNotHeld) || !strings.Contains(err.Error(), "2.4") {
		t.Fatalf("put of a shard not held: %v, want ErrNotHeld naming 2.4", err)
	}
	if err := st.Put(store.ShardState{ShardID: 0, ShardCount: 4, Sequence: -1, SessionID: "x"}); !errors.Is(err, store.ErrInvalidState) {
		t.Fatalf("put of an invalid state: %v, want store.ErrInvalidState", err)
	}

	rev := l1.Revision()
	for seq := range int64(50) { // coalesced: far fewer writes than puts
		if err := st.Put(session(k1, "a", seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put(session(k2, "b", 3)); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if v := bucketRecord(t, b, k1); !sameSession(v.session, session(k1, "a", 49)) || v.owner != "node-a" {
		t.Fatalf("after Flush the bucket holds %+v", v)
	}
	if writes := l1.Revision() - rev; writes > 50 {
		t.Fatalf("revision moved %d for 50 puts", writes)
	}
	if got := st.Load(); len(got) != 2 {
		t.Fatalf("Load: %+v, want the two held sessions", got)
	}

	// Without Flush, the writer's cadence writes it.
	if err := st.Put(session(k2, "b", 4)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, poll.Timeout, "the put written on the adapter's cadence", func() bool {
		r, _ := recordOf(b, k2)
		return r.Session.Sequence == 4
	})

	// Delete clears the session and keeps the lease.
	if err := st.Delete(k2.ID, k2.Count); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if v := bucketRecord(t, b, k2); v.session.SessionID != "" || v.owner != "node-a" {
		t.Fatalf("after Delete the bucket holds %+v, want node-a's lease with no session", v)
	}
	if l2.Err() != nil {
		t.Fatal(l2.Err())
	}

	// Hand-off: a put not yet written goes with the release, and the next
	// owner's adapter loads it.
	if err := st.Put(session(k1, "a", 77)); err != nil {
		t.Fatal(err)
	}
	if err := l1.Release(ctxT(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(session(k1, "a", 50)); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("put after release: %v, want ErrNotHeld", err)
	}
	poll.Until(t, poll.Timeout, "b sees the release", func() bool { r, _ := recordOf(b, k1); return r.Owner == "" })
	if _, err := b.Acquire(ctxT(t, 10*time.Second), k1); err != nil {
		t.Fatal(err)
	}
	got := b.Store().Load()
	if len(got) != 1 || !sameSession(got[0], session(k1, "a", 77)) {
		t.Fatalf("next owner loads %+v, want a's last session", got)
	}

	a.Close()
	if err := st.Put(session(k2, "b", 5)); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("put after Close: %v, want store.ErrClosed", err)
	}
}

// Release without a session writes the put the adapter has not written yet.
func TestReleaseTakesTheUnwrittenPut(t *testing.T) {
	s := natstest.Start(t)
	a := process(t, s, "node-a", WithFlushInterval(time.Hour))
	k := Key{0, 1}
	l, err := a.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Save(ctxT(t, 10*time.Second), session(k, "a", 1)); err != nil {
		t.Fatal(err)
	}
	if err := a.Store().Put(session(k, "a", 2)); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctxT(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if v := bucketRecord(t, a, k); v.owner != "" || !sameSession(v.session, session(k, "a", 2)) {
		t.Fatalf("released record %+v, want the unwritten put's session", v)
	}
	if err := a.Store().Flush(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("flush after the release: %v (the put went with the release)", err)
	}
}

// A hand-off: the manager Puts the shard's session, then the owner
// releases the lease with it before the adapter wrote the put. The put is
// superseded, not written after the release (when the lease is no longer
// ours, which would fail the next Flush, and the manager's Close with it).
func TestReleaseSupersedesAPendingPut(t *testing.T) {
	s := natstest.Start(t)
	a := process(t, s, "node-a", WithFlushInterval(time.Hour)) // only Flush writes
	b := process(t, s, "node-b")
	k := Key{3, 8}
	l, err := a.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store().Put(session(k, "x", 41)); err != nil {
		t.Fatal(err)
	}
	final := session(k, "x", 42)
	if err := l.Release(ctxT(t, 10*time.Second), &final); err != nil {
		t.Fatal(err)
	}
	if err := a.Store().Flush(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("Flush after the release: %v, want nothing left to write", err)
	}
	if v := bucketRecord(t, b, k); v.owner != "" || !sameSession(v.session, final) {
		t.Fatalf("record after the release: %+v, want no owner and sequence 42", v)
	}
}
