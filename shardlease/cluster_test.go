package shardlease

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
)

// startCluster runs three embedded NATS servers forming a JetStream
// cluster, for R3 buckets.
func startCluster(tb testing.TB) []*server.Server { return natstest.StartCluster(tb, 3) }

// The contention and fencing hold on a replicated bucket, with each
// process connected to a different server.
func TestR3ContentionAndFence(t *testing.T) {
	servers := startCluster(t)
	var frozen = make(chan struct{})
	a := process(t, servers[0], "node-a", WithReplicas(3), withHoldRenewals(func() bool {
		select {
		case <-frozen:
			return true
		default:
			return false
		}
	}))
	b := process(t, servers[1], "node-b", WithReplicas(3))
	k := Key{5, 16}
	la, errA := a.Acquire(ctxT(t, 10*time.Second), k)
	lb, errB := b.Acquire(ctxT(t, 10*time.Second), k)
	if errA != nil || lb != nil || !isHeld(errB) {
		t.Fatalf("a: %v %v; b: %v %v; want a to win", la, errA, lb, errB)
	}
	if err := la.Save(ctxT(t, 10*time.Second), session(k, "a", 1)); err != nil {
		t.Fatal(err)
	}
	close(frozen)
	poll.Until(t, poll.Timeout, "b takes the unrenewed lease over", func() bool {
		var err error
		lb, err = b.Acquire(ctxT(t, 10*time.Second), k)
		return err == nil
	})
	select {
	case <-la.Lost():
	default:
		t.Fatal("b acquired before a's lease was lost")
	}
	if err := lb.Save(ctxT(t, 10*time.Second), session(k, "b", 2)); err != nil {
		t.Fatal(err)
	}
	suspend(la)
	if err := la.Save(ctxT(t, 10*time.Second), session(k, "a", 3)); !isLost(err) {
		t.Fatalf("stale save on R3: %v, want ErrLost", err)
	}
	if v := bucketRecord(t, a, k); v.owner != "node-b" || !sameSession(v.session, session(k, "b", 2)) {
		t.Fatalf("bucket holds %+v, want b's session", v)
	}
}

// Stopping the server that leads the bucket's stream, and to which the
// owner is connected, loses no lease: the client reconnects, the stream
// elects a leader, renewals and saves go on.
func TestR3LeaseSurvivesLeaderServerStop(t *testing.T) {
	servers := startCluster(t)
	stream := "KV_" + DefaultBucket
	// Create the bucket, then find its leader.
	setup := process(t, servers[0], "setup", WithReplicas(3))
	setup.Close()
	var leader int
	poll.Until(t, poll.Timeout, "the bucket's stream has a leader", func() bool {
		for i, s := range servers {
			if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
				leader = i
				return true
			}
		}
		return false
	})
	urls := []string{servers[leader].ClientURL()}
	for i, s := range servers {
		if i != leader {
			urls = append(urls, s.ClientURL())
		}
	}
	js := natstest.JetStream(t, strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	// A production-like TTL relative to an election: the test's 1.5 s
	// would not outlast one on a loaded machine; 15 s is the default.
	a := openTable(t, js, "node-a", WithReplicas(3), WithTTL(8*time.Second), WithSafetyMargin(2*time.Second), WithRenewInterval(500*time.Millisecond))
	k := Key{0, 2}
	l, err := a.Acquire(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Save(ctxT(t, 10*time.Second), session(k, "a", 1)); err != nil {
		t.Fatal(err)
	}
	servers[leader].Shutdown()
	servers[leader].WaitForShutdown()
	from := l.Revision()
	poll.Until(t, 30*time.Second, "renewals after the leader's server stopped", func() bool {
		if l.Err() != nil {
			t.Fatalf("lease ended: %v", l.Err())
		}
		return l.Revision() >= from+3
	})
	if err := l.Save(ctxT(t, 10*time.Second), session(k, "a", 2)); err != nil {
		t.Fatalf("save after the stop: %v", err)
	}
	if v := bucketRecord(t, a, k); v.owner != "node-a" || v.session.Sequence != 2 {
		t.Fatalf("bucket holds %+v", v)
	}
}
