package clusterview

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/manager"
)

const testToken = "sim-token-secret-0123456789"

func startSim(t testing.TB) *discordsim.Server {
	t.Helper()
	s, err := discordsim.Start(discordsim.Config{
		Token: testToken, Shards: 4, MaxConcurrency: 1, IdentifyWindow: time.Nanosecond,
		HeartbeatInterval: 300 * time.Millisecond, Guilds: 40, Seed: 1,
	})
	if err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newManager opens a manager running ids of a 4-shard bot against sim and
// waits until they are Ready.
func newManager(t testing.TB, sim *discordsim.Server, ids ...int) *manager.Manager {
	t.Helper()
	m, err := manager.New(testToken,
		manager.WithAPIURL(sim.APIURL()),
		manager.WithIdentifyWindow(time.Millisecond),
		manager.WithGatewayOptions(
			gateway.WithCompression(gateway.CompressionNone),
			gateway.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
			gateway.WithInvalidSessionWait(5*time.Millisecond, 20*time.Millisecond),
			gateway.WithHandshakeTimeout(2*time.Second)),
		manager.WithSampleInterval(100*time.Millisecond),
		manager.WithShardCount(4), manager.WithShardIDs(ids...))
	if err != nil {
		t.Fatalf("manager.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	return m
}

// connect starts a NATS server (if url is empty) and returns a connection.
func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func natsURL(t testing.TB) string {
	t.Helper()
	return natstest.Start(t).ClientURL()
}

func publish(t testing.TB, nc *nats.Conn, node string, src Source, opts ...Option) *Publisher {
	t.Helper()
	p, err := Publish(nc, node, src, append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatalf("Publish %s: %v", node, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func newView(t testing.TB, nc *nats.Conn, self string, local Local, opts ...Option) *View {
	t.Helper()
	v, err := NewView(nc, self, local, opts...)
	if err != nil {
		t.Fatalf("NewView: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func nodeOf(s *manager.Snapshot, name string) (manager.NodeInfo, bool) {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return manager.NodeInfo{}, false
}

func shardOf(s *manager.Snapshot, id int) (manager.ShardInfo, bool) {
	for _, sh := range s.Shards {
		if sh.Key.ID == id && sh.Role == manager.RoleActive {
			return sh, true
		}
	}
	return manager.ShardInfo{}, false
}
