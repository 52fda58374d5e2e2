package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
)

const waitTimeout = 10 * time.Second

const testToken = "sim-token"

// startSim starts an in-process simulator with fast timings.
func startSim(t testing.TB, cfg discordsim.Config) *discordsim.Server {
	t.Helper()
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 300 * time.Millisecond
	}
	if cfg.IdentifyWindow == 0 {
		cfg.IdentifyWindow = 20 * time.Millisecond
	}
	if cfg.CloseGrace == 0 {
		cfg.CloseGrace = 100 * time.Millisecond
	}
	if cfg.Guilds == 0 {
		cfg.Guilds = 12
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	s, err := discordsim.Start(cfg)
	if err != nil {
		t.Fatalf("discordsim.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("sim Close: %v", err)
		}
	})
	return s
}

// recorder collects state changes and checks each against the state machine.
type recorder struct {
	t       testing.TB
	mu      sync.Mutex
	changes []StateChange
}

func (r *recorder) handle(c StateChange) {
	if !ValidTransition(c.From, c.To) {
		r.t.Errorf("illegal transition %v -> %v (%s)", c.From, c.To, c.Reason)
	}
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}

func (r *recorder) count(to State) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.changes {
		if c.To == to {
			n++
		}
	}
	return n
}

func (r *recorder) find(to State) (StateChange, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.changes) - 1; i >= 0; i-- {
		if r.changes[i].To == to {
			return r.changes[i], true
		}
	}
	return StateChange{}, false
}

// testGate is an IdentifyGate that counts calls and can hold Acquire.
type testGate struct {
	enqueues, approaches, acquires, releases, readyReleases atomic.Int64
	hold                                                    chan struct{} // when non-nil, Acquire waits until it is closed
	spacing                                                 IdentifyGate  // optional real spacing under the counting
}

func (g *testGate) Enqueue(id int) (uint64, error) {
	g.enqueues.Add(1)
	if g.spacing != nil {
		return g.spacing.Enqueue(id)
	}
	return uint64(g.enqueues.Load()), nil
}

func (g *testGate) Approach(ctx context.Context, t uint64, lead time.Duration) error {
	g.approaches.Add(1)
	if g.spacing != nil {
		return g.spacing.Approach(ctx, t, lead)
	}
	return ctx.Err()
}

func (g *testGate) Acquire(ctx context.Context, t uint64) error {
	if g.hold != nil {
		select {
		case <-g.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if g.spacing != nil {
		if err := g.spacing.Acquire(ctx, t); err != nil {
			return err
		}
	}
	g.acquires.Add(1)
	return nil
}

func (g *testGate) Release(t uint64, ready bool) {
	g.releases.Add(1)
	if ready {
		g.readyReleases.Add(1)
	}
	if g.spacing != nil {
		g.spacing.Release(t, ready)
	}
}

type testShard struct {
	*Shard
	rec    *recorder
	gate   *testGate
	events atomic.Int64
	maxSeq atomic.Int64
}

// newShard makes a shard against sim with fast timings; Close runs at cleanup.
func newShard(t testing.TB, sim *discordsim.Server, opts ...Option) *testShard {
	t.Helper()
	// The gate spaces identifies a little over the sim's 20 ms window.
	ts := &testShard{rec: &recorder{t: t}, gate: &testGate{spacing: NewLocalGate(30 * time.Millisecond)}}
	base := []Option{
		WithURL(sim.GatewayURL()),
		WithCompression(CompressionNone),
		WithIdentifyGate(ts.gate),
		WithBackoff(5*time.Millisecond, 50*time.Millisecond),
		WithInvalidSessionWait(5*time.Millisecond, 20*time.Millisecond),
		WithHandshakeTimeout(3 * time.Second),
		WithStateHandler(ts.rec.handle),
		WithDispatchHandler(func(d Dispatch) {
			ts.events.Add(1)
			if d.Seq > ts.maxSeq.Load() {
				ts.maxSeq.Store(d.Seq)
			}
		}),
	}
	ts.Shard = New(testToken, 0, 1, append(base, opts...)...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if _, err := ts.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ts
}

func (ts *testShard) open(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ts.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}
