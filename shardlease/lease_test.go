package shardlease

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
)

// Two processes race for the same keys: each key has exactly one winner,
// and the loser is told who holds it.
func TestContendedAcquireHasOneWinner(t *testing.T) {
	s := natstest.Start(t)
	a, b := process(t, s, "node-a"), process(t, s, "node-b")
	const n = 16
	type result struct {
		l   *Lease
		err error
	}
	var res [2][n]result
	var wg sync.WaitGroup
	for i, tb := range []*Table{a, b} {
		wg.Go(func() {
			for id := range n {
				l, err := tb.Acquire(ctxT(t, 10*time.Second), Key{id, n})
				res[i][id] = result{l, err}
			}
		})
	}
	wg.Wait()
	for id := range n {
		ra, rb := res[0][id], res[1][id]
		if (ra.l == nil) == (rb.l == nil) {
			t.Fatalf("shard %d: a got (%v, %v), b got (%v, %v); want exactly one lease", id, ra.l, ra.err, rb.l, rb.err)
		}
		winner, loser := "node-a", rb
		if rb.l != nil {
			winner, loser = "node-b", ra
		}
		var he *HeldError
		if !errors.As(loser.err, &he) || !errors.Is(loser.err, ErrHeld) {
			t.Fatalf("shard %d: loser's error %v, want a *HeldError", id, loser.err)
		}
		// The loser may not have seen the winner's write yet only when its
		// compare-and-set lost three times in a row; it then says so.
		if he.Owner != winner {
			t.Fatalf("shard %d: HeldError names %q, want %q", id, he.Owner, winner)
		}
	}
	// A second Acquire of a held lease by its own Table is refused too.
	if _, err := a.Acquire(ctxT(t, 10*time.Second), Key{0, n}); !errors.Is(err, ErrHeld) {
		t.Fatalf("re-acquire of a held key: %v, want ErrHeld", err)
	}
}

// A release hands the final session to the next owner, which acquires at
// once (no expiry wait) with the next epoch.
func TestReleaseHandsSessionOver(t *testing.T) {
	s := natstest.Start(t)
	a, b := process(t, s, "node-a"), process(t, s, "node-b")
	k := Key{3, 8}
	la, err := a.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatal(err)
	}
	if la.Session().SessionID != "" || la.Epoch() != 1 {
		t.Fatalf("new lease: session %+v epoch %d, want none and 1", la.Session(), la.Epoch())
	}
	if err := la.Save(ctxT(t, 10*time.Second), session(k, "a1", 10)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, poll.Timeout, "b sees a's lease", func() bool {
		r, ok := recordOf(b, k)
		return ok && r.Owner == "node-a"
	})
	if _, err := b.Acquire(ctxT(t, 10*time.Second), k); !errors.Is(err, ErrHeld) {
		t.Fatalf("acquire of a's live lease: %v, want ErrHeld", err)
	}
	final := session(k, "a1", 99)
	if err := la.Release(ctxT(t, 10*time.Second), &final); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// A held record in b's view is refused without I/O, so b waits until
	// its watch delivers the release (the ownership code hears Changes).
	poll.Until(t, poll.Timeout, "b sees the release", func() bool { r, _ := recordOf(b, k); return r.Owner == "" })
	lb, err := b.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if d := time.Since(start); d >= testTTL {
		t.Fatalf("acquire after release took %v, as long as an expiry", d)
	}
	if !sameSession(lb.Session(), final) || lb.Epoch() != 2 {
		t.Fatalf("b's lease: session %+v epoch %d, want %+v and 2", lb.Session(), lb.Epoch(), final)
	}
	if err := la.Save(ctxT(t, 10*time.Second), session(k, "a2", 100)); !errors.Is(err, ErrReleased) {
		t.Fatalf("save after release: %v, want ErrReleased", err)
	}
	select {
	case <-la.Lost():
		t.Fatal("Lost closed by a release")
	default:
	}
	if v := bucketRecord(t, b, k); v.owner != "node-b" || !sameSession(v.session, final) {
		t.Fatalf("bucket holds %+v, want node-b with the final session", v)
	}
}

// The SIGSTOP test's core. An owner that stops renewing loses its lease
// (Lost closes) before another process can acquire it; and one whose clock
// stood still, so it believes it still holds the lease, cannot overwrite
// the new owner's session: its write fails on the revision.
func TestPausedOwnerLosesBeforeTakeoverAndIsFenced(t *testing.T) {
	s := natstest.Start(t)
	var frozen atomic.Bool
	a := process(t, s, "node-a", withHoldRenewals(frozen.Load))
	b := process(t, s, "node-b")
	k := Key{0, 1}
	la, err := a.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatal(err)
	}
	if err := la.Save(ctxT(t, 10*time.Second), session(k, "a", 5)); err != nil {
		t.Fatal(err)
	}
	// Renewed, the lease outlives several TTLs.
	renewedFrom := la.Revision()
	poll.Until(t, poll.Timeout, "a few renewals", func() bool { return la.Revision() > renewedFrom+2 })
	if _, err := b.Acquire(ctxT(t, 10*time.Second), k); !errors.Is(err, ErrHeld) {
		t.Fatalf("acquire of a renewed lease: %v, want ErrHeld", err)
	}
	select {
	case <-la.Lost():
		t.Fatalf("lost while renewed: %v", la.Err())
	default:
	}

	frozen.Store(true)
	var lostAt atomic.Pointer[time.Time]
	go func() {
		<-la.Lost()
		now := time.Now()
		lostAt.Store(&now)
	}()
	var lb *Lease
	poll.Until(t, poll.Timeout, "b acquires the unrenewed lease", func() bool {
		var err error
		lb, err = b.Acquire(ctxT(t, 10*time.Second), k)
		if err != nil && !errors.Is(err, ErrHeld) {
			t.Fatalf("acquire: %v", err)
		}
		return err == nil
	})
	acquiredAt := time.Now()
	lost := lostAt.Load()
	if lost == nil {
		// Lost may still be on its way to the goroutine: it must already be closed.
		select {
		case <-la.Lost():
			t.Fatalf("b acquired at %v before a's Lost was observed", acquiredAt)
		default:
			t.Fatal("b acquired while a's lease was not lost")
		}
	}
	if !lost.Before(acquiredAt) {
		t.Fatalf("a lost at %v, b acquired at %v: want the loss first", lost, acquiredAt)
	}
	if !errors.Is(la.Err(), ErrLost) {
		t.Fatalf("a's lease Err %v, want ErrLost", la.Err())
	}
	if !sameSession(lb.Session(), session(k, "a", 5)) || lb.Epoch() != 2 {
		t.Fatalf("b took over session %+v epoch %d, want a's and 2", lb.Session(), lb.Epoch())
	}
	bs := session(k, "b", 6)
	if err := lb.Save(ctxT(t, 10*time.Second), bs); err != nil {
		t.Fatal(err)
	}

	// A process that noticed the deadline refuses to write at all...
	frozen.Store(false)
	if err := la.Save(ctxT(t, 10*time.Second), session(k, "a", 7)); !errors.Is(err, ErrLost) {
		t.Fatalf("save after loss: %v, want ErrLost", err)
	}
	// ...and one that did not is stopped by the fence.
	suspend(la)
	if err := la.Save(ctxT(t, 10*time.Second), session(k, "a", 8)); !errors.Is(err, ErrLost) {
		t.Fatalf("stale save: %v, want ErrLost", err)
	}
	select {
	case <-la.Lost():
	default:
		t.Fatal("a fenced write did not close Lost")
	}
	if err := la.renew(ctxT(t, 10*time.Second)); !errors.Is(err, ErrLost) {
		t.Fatalf("renew after the fence: %v, want ErrLost", err)
	}
	if v := bucketRecord(t, b, k); v.owner != "node-b" || v.epoch != 2 || !sameSession(v.session, bs) {
		t.Fatalf("bucket holds %+v, want node-b's session %+v", v, bs)
	}
	select {
	case <-lb.Lost():
		t.Fatalf("b's lease lost: %v", lb.Err())
	default:
	}
}

// Closing a Table, as a crash would, releases nothing: the others wait for
// expiry, and the closed Table's leases are lost at once.
func TestCloseLosesLeasesWithoutRelease(t *testing.T) {
	s := natstest.Start(t)
	a, b := process(t, s, "node-a"), process(t, s, "node-b")
	k := Key{1, 2}
	la, err := a.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatal(err)
	}
	changes := b.Changes()
	poll.Until(t, poll.Timeout, "b sees a's lease", func() bool {
		r, ok := recordOf(b, k)
		return ok && r.Owner == "node-a"
	})
	closedAt := time.Now()
	a.Close()
	select {
	case <-la.Lost():
	default:
		t.Fatal("Close left a lease not lost")
	}
	if _, err := b.Acquire(ctxT(t, 10*time.Second), k); !errors.Is(err, ErrHeld) {
		t.Fatalf("acquire right after the owner closed: %v, want ErrHeld", err)
	}
	// b learns of the expiry through Changes, without polling.
	deadline := time.After(poll.Timeout)
	for {
		r, _ := recordOf(b, k)
		if r.Expired {
			break
		}
		select {
		case <-changes:
		case <-deadline:
			t.Fatal("no change signalled at expiry")
		}
	}
	if d := time.Since(closedAt); d < testTTL-testMargin {
		t.Fatalf("expired %v after the owner's last write could have been sent, before the TTL", d)
	}
	lb, err := b.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatalf("acquire after expiry: %v", err)
	}
	if lb.Epoch() != 2 {
		t.Fatalf("epoch %d, want 2", lb.Epoch())
	}
}

// A retired shard's record goes with a compare-and-set delete.
func TestDeleteRetiredShard(t *testing.T) {
	s := natstest.Start(t)
	a, b := process(t, s, "node-a"), process(t, s, "node-b")
	k := Key{0, 2}
	la, err := a.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, poll.Timeout, "b sees the record", func() bool { _, ok := recordOf(b, k); return ok })
	if err := b.Delete(ctxT(t, 10*time.Second), k, nil); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("delete without the lease: %v, want ErrNotHeld", err)
	}
	if err := a.Delete(ctxT(t, 10*time.Second), k, la); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, poll.Timeout, "the record gone from b's view", func() bool { _, ok := recordOf(b, k); return !ok })
	if err := la.Save(ctxT(t, 10*time.Second), session(k, "x", 1)); !errors.Is(err, ErrReleased) {
		t.Fatalf("save after delete: %v, want ErrReleased", err)
	}
	// A stale lease cannot delete the new owner's record.
	lb, err := b.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatal(err)
	}
	suspend(la)
	if err := a.Delete(ctxT(t, 10*time.Second), k, la); !errors.Is(err, ErrLost) {
		t.Fatalf("stale delete: %v, want ErrLost", err)
	}
	if lb.Err() != nil {
		t.Fatal(lb.Err())
	}
	if v := bucketRecord(t, b, k); v.owner != "node-b" {
		t.Fatalf("record %+v, want node-b's", v)
	}
}

// A write whose answer was lost (it timed out, yet the server stored it)
// moved the revision under the lease: the lease recognises its own owner
// and epoch and carries on instead of counting itself lost.
func TestOwnUnacknowledgedWriteIsNotALoss(t *testing.T) {
	s := natstest.Start(t)
	var frozen atomic.Bool
	frozen.Store(true) // the test makes the writes
	a := process(t, s, "node-a", withHoldRenewals(frozen.Load))
	k := Key{2, 3}
	l, err := a.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatal(err)
	}
	// The lost-answer write: the lease's own value, stored behind its back.
	l.mu.Lock()
	data, rev := l.data, l.rev
	l.mu.Unlock()
	if _, err := a.kv.Update(ctxT(t, 10*time.Second), k.String(), data, rev); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(ctxT(t, 10*time.Second), session(k, "a", 1)); err != nil {
		t.Fatalf("save after an unacknowledged own write: %v", err)
	}
	if l.Err() != nil {
		t.Fatalf("lease ended: %v", l.Err())
	}
	if l.Revision() != rev+2 {
		t.Fatalf("revision %d, want %d", l.Revision(), rev+2)
	}
	// The same shape written by the next epoch's owner is a loss.
	next := value{owner: "node-a", epoch: l.Epoch() + 1}
	other, _ := encode(next)
	if _, err := a.kv.Update(ctxT(t, 10*time.Second), k.String(), other, l.Revision()); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(ctxT(t, 10*time.Second), session(k, "a", 2)); !errors.Is(err, ErrLost) {
		t.Fatalf("save after another epoch's write: %v, want ErrLost", err)
	}
}
