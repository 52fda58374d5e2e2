package gateway

import (
	"context"
	"errors"
	"github.com/shardtop/shardtop/internal/poll"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/shardtop/shardtop/discordsim"
)

// reconnect is one Reconnecting transition with the countdown Stats showed.
type reconnect struct {
	reason     string
	at, retry  time.Time
	statsState State
}

// reconnectLog records every Reconnecting transition of a shard, reading
// Stats from inside the state handler (the state is already recorded).
type reconnectLog struct {
	mu    sync.Mutex
	shard atomic.Pointer[Shard]
	list  []reconnect
}

func (l *reconnectLog) handle(c StateChange) {
	if c.To != StateReconnecting {
		return
	}
	st := l.shard.Load().Stats()
	l.mu.Lock()
	l.list = append(l.list, reconnect{reason: c.Reason, at: c.At, retry: st.RetryAt, statsState: st.State})
	l.mu.Unlock()
}

func (l *reconnectLog) all() []reconnect {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]reconnect(nil), l.list...)
}

// failingDialer fails the first n dials, then dials for real.
func failingDialer(n int64) (*websocket.Dialer, *atomic.Int64) {
	var dials atomic.Int64
	var d net.Dialer
	return &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) <= n {
			return nil, errors.New("connection refused (test)")
		}
		return d.DialContext(ctx, network, addr)
	}}, &dials
}

// After op 9 (not resumable) the shard waits Discord's 1-5 s (here the
// configured 5-20 ms), not the backoff that earlier failed dials built up;
// the wait shows as Stats.RetryAt while the shard is Reconnecting.
func TestOp9WaitIgnoresAccumulatedBackoff(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	dialer, dials := failingDialer(4)
	log := &reconnectLog{}
	// A session the simulator does not know: the resume gets op 9 d=false.
	ts := newShard(t, sim, WithDialer(dialer),
		WithSession(Session{ID: "stale-session", Sequence: 3, ResumeURL: sim.ResumeURL()}),
		WithBackoff(20*time.Millisecond, 10*time.Second), WithBackoffJitter(func() float64 { return 1 }),
		WithStateHandler(log.handle))
	log.shard.Store(ts.Shard)
	ts.open(t)
	if dials.Load() < 5 || sim.Stats().Identifies != 1 {
		t.Fatalf("dials %d, identifies %d; want 4 failed dials, then an op 9 and one identify", dials.Load(), sim.Stats().Identifies)
	}
	var op9 *reconnect
	list := log.all()
	for i := range list {
		r := &list[i]
		if r.statsState != StateReconnecting {
			t.Errorf("Stats said %v during the Reconnecting transition %q", r.statsState, r.reason)
		}
		if strings.Contains(r.reason, "op 9") {
			op9 = r
		}
	}
	if op9 == nil {
		t.Fatalf("no op 9 among the reconnects: %+v", list)
	}
	// Four failed dials made the backoff 160 ms; op 9's wait is at most 20 ms.
	if wait := op9.retry.Sub(op9.at); op9.retry.IsZero() || wait > 20*time.Millisecond {
		t.Fatalf("after op 9 the shard waits %v (RetryAt %v), want Discord's invalid-session wait (<= 20ms)", wait, op9.retry)
	}
	// The dial failures before it show their backoff as a countdown too.
	if r := list[1]; r.retry.IsZero() || r.retry.Sub(r.at) < 15*time.Millisecond {
		t.Fatalf("second dial failure: RetryAt %v at %v, want the 20 ms backoff", r.retry, r.at)
	}
	if st := ts.Stats(); !st.RetryAt.IsZero() {
		t.Fatalf("Ready shard still shows RetryAt %v", st.RetryAt)
	}
}

// A saved resume URL that cannot be reached is given up after a few dials:
// the shard resumes the same session through the gateway URL.
func TestUnreachableResumeURLFallsBackToGateway(t *testing.T) {
	sim := startSim(t, discordsim.Config{EventRate: 50})
	first := newShard(t, sim)
	first.open(t)
	poll.Until(t, poll.Timeout, "traffic", func() bool { return first.Stats().Sequence > 3 })
	sess, err := first.Close(ctxT(t))
	if err != nil || !sess.Resumable() {
		t.Fatalf("Close: %+v %v", sess, err)
	}
	sess.ResumeURL = "ws://127.0.0.1:1/x" // nothing listens on port 1
	ts := newShard(t, sim, WithSession(sess))
	ts.open(t)
	st := sim.Stats()
	if st.Resumes != 1 || st.Identifies != 1 || ts.gate.approaches.Load() != 0 {
		t.Fatalf("resumes %d identifies %d gate approaches %d: want the session resumed through the gateway URL",
			st.Resumes, st.Identifies, ts.gate.approaches.Load())
	}
	if got := ts.Session(); got.ID != sess.ID || got.ResumeURL != "" {
		t.Fatalf("session after the fallback: %+v (want %s with no resume URL)", got, sess.ID)
	}
	if n := ts.rec.count(StateReconnecting); n != maxResumeURLDialFails {
		t.Fatalf("%d reconnects, want %d failed dials to the resume URL", n, maxResumeURLDialFails)
	}
	if last, _ := ts.rec.find(StateReconnecting); !strings.Contains(last.Reason, "resuming through the gateway URL") {
		t.Fatalf("last reconnect says %q, want the fallback named", last.Reason)
	}
	if st := ts.Stats(); !strings.Contains(st.LastError, "127.0.0.1:1") || st.LastErrorAt.IsZero() {
		t.Fatalf("Stats.LastError %q at %v, want the failed dial in full", st.LastError, st.LastErrorAt)
	}
}

// The shard's own close is its last close: LAST CLOSE must not read "-"
// after the operator closed it.
func TestLocalCloseIsLastClose(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	ts := newShard(t, sim)
	ts.open(t)
	if _, err := ts.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	st := ts.Stats()
	if st.LastCloseCode != resumableCloseCode || !strings.Contains(st.LastCloseReason, "resumable") || st.LastCloseAt.IsZero() {
		t.Fatalf("after Close: last close %d %q at %v, want 4000 (session kept resumable)", st.LastCloseCode, st.LastCloseReason, st.LastCloseAt)
	}
}

// A shard stopped while still queued closed no connection: no close code
// is recorded, and the reason says it had no session.
func TestCloseWhileQueuedRecordsNoClose(t *testing.T) {
	g := &queueGate{entered: make(chan struct{})}
	s := New(testToken, 0, 1, WithURL("ws://127.0.0.1:1"), WithIdentifyGate(g))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	if _, err := s.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.LastCloseCode != 0 || st.LastCloseReason != "" {
		t.Fatalf("closed while queued: last close %d %q, want none", st.LastCloseCode, st.LastCloseReason)
	}
}

// queueGate keeps every shard queued until its ctx ends.
type queueGate struct{ entered chan struct{} }

func (g *queueGate) Enqueue(int) (uint64, error) { return 1, nil }
func (g *queueGate) Approach(ctx context.Context, _ uint64, _ time.Duration) error {
	close(g.entered)
	<-ctx.Done()
	return ctx.Err()
}
func (g *queueGate) Acquire(ctx context.Context, _ uint64) error { return ctx.Err() }
func (g *queueGate) Release(uint64, bool)                        {}
