package manager

import (
	"context"
	"github.com/shardtop/shardtop/limiter"
	"github.com/shardtop/shardtop/store"
	"sync"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
)

const testToken = "sim-token-secret-0123456789"

// testMargin absorbs the variation of the delay between a grant and the sim
// reading the Identify, on 2 shared cores under -race: it is the production
// default (50 ms, 1% of Discord's 5 s window). It costs little: a READY that
// comes back within the margin moves the next slot up to READY + window
// (limiter/doc.go), so the margin is spent only when a process stalls.
const testMargin = limiter.DefaultMargin

// simConfig is a simulator tuned for fast tests: short identify window and heartbeats.
func simConfig() discordsim.Config {
	return discordsim.Config{
		Token:             testToken,
		Shards:            4,
		MaxConcurrency:    1,
		IdentifyWindow:    30 * time.Millisecond,
		HeartbeatInterval: 300 * time.Millisecond,
		Guilds:            40,
		Seed:              1,
	}
}

func startSim(t testing.TB, cfg discordsim.Config) *discordsim.Server {
	t.Helper()
	s, err := discordsim.Start(cfg)
	if err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fastGateway are shard options for tests: no compression, short waits.
func fastGateway() []gateway.Option {
	return []gateway.Option{
		gateway.WithCompression(gateway.CompressionNone),
		gateway.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
		gateway.WithInvalidSessionWait(5*time.Millisecond, 20*time.Millisecond),
		gateway.WithHandshakeTimeout(2 * time.Second),
	}
}

// newTestManager builds a manager against sim whose identify window matches
// the sim's, and closes it at the end of the test.
func newTestManager(t testing.TB, sim *discordsim.Server, window time.Duration, opts ...Option) *Manager {
	t.Helper()
	base := []Option{
		WithAPIURL(sim.APIURL()),
		WithIdentifyWindow(window),
		WithIdentifyMargin(testMargin),
		WithGatewayOptions(fastGateway()...),
		WithSampleInterval(100 * time.Millisecond),
		WithPersistInterval(200 * time.Millisecond),
	}
	m, err := New(testToken, append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	return m
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func openReady(t testing.TB, m *Manager) {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	if err := m.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
}

func activeKeys(m *Manager) []ShardKey {
	var out []ShardKey
	for _, s := range m.Snapshot().Shards {
		if s.Role == RoleActive {
			out = append(out, s.Key)
		}
	}
	return out
}

func allActiveReady(m *Manager) bool {
	s := m.Snapshot()
	return s.Totals.Total > 0 && s.Totals.Ready == s.Totals.Total && len(s.Shards) == s.Totals.Total
}

// dispatchLog records delivered dispatches (event, shard key).
type dispatchLog struct {
	mu     sync.Mutex
	events []loggedDispatch
}

type loggedDispatch struct {
	Event string
	Key   ShardKey
	Seq   int64
}

func (l *dispatchLog) handler(d gateway.Dispatch) {
	l.mu.Lock()
	l.events = append(l.events, loggedDispatch{d.Event, ShardKey{d.ShardID, d.ShardCount}, d.Seq})
	l.mu.Unlock()
}

func (l *dispatchLog) snapshot() []loggedDispatch {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loggedDispatch(nil), l.events...)
}

// openStore opens the state file at path for a test; the test closes it
// (some close and reopen it to play a restart).
func openStore(t testing.TB, path string, opts ...store.Option) *store.File {
	t.Helper()
	f, err := store.OpenFile(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
