package shardowner

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/shardlease"
)

const (
	testToken = "sim-token-secret-0123456789"
	testTTL   = 1500 * time.Millisecond
	window    = 30 * time.Millisecond
)

// cluster is one NATS server and one simulated Discord shared by the
// "processes" of a test.
type cluster struct {
	t   *testing.T
	ns  *server.Server
	sim *discordsim.Server
}

func newCluster(t *testing.T, shards int) *cluster {
	t.Helper()
	ns := natstest.Start(t)
	sim, err := discordsim.Start(discordsim.Config{
		Token: testToken, Shards: shards, MaxConcurrency: shards, // a bucket per shard: processes never share one
		IdentifyWindow: window, HeartbeatInterval: 300 * time.Millisecond, Guilds: 10 * shards, Seed: 1,
	})
	if err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return &cluster{t: t, ns: ns, sim: sim}
}

// proc is one "process": its NATS connection, lease table, manager and Runner.
type proc struct {
	name   string
	nc     *nats.Conn
	table  *shardlease.Table
	mgr    *manager.Manager
	runner *Runner
	closed bool
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// start runs a process named name in mode.
func (c *cluster) start(name string, mode Mode) *proc {
	t := c.t
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	nc, err := nats.Connect(c.ns.ClientURL())
	if err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("%s: jetstream: %v", name, err)
	}
	table, err := shardlease.Open(ctx, js, name, shardlease.WithTTL(testTTL), shardlease.WithFlushInterval(50*time.Millisecond))
	if err != nil {
		t.Fatalf("%s: open leases: %v", name, err)
	}
	hooks := NewHooks(table.Store())
	m, err := manager.New(testToken,
		manager.WithAPIURL(c.sim.APIURL()),
		manager.WithIdentifyWindow(window),
		manager.WithNoInitialShards(),
		manager.WithStore(hooks.Store()),
		manager.WithShardKeysHook(hooks.KeysHook),
		manager.WithGatewayOptions(gateway.WithCompression(gateway.CompressionNone),
			gateway.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
			gateway.WithInvalidSessionWait(5*time.Millisecond, 20*time.Millisecond),
			gateway.WithHandshakeTimeout(2*time.Second)),
		manager.WithSampleInterval(100*time.Millisecond),
		manager.WithPersistInterval(100*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("%s: manager: %v", name, err)
	}
	if err := m.Open(ctx); err != nil {
		t.Fatalf("%s: manager open: %v", name, err)
	}
	r, err := New(table, m, js, mode, WithTTL(testTTL), WithHandoffInterval(20*time.Millisecond), WithHooks(hooks))
	if err != nil {
		t.Fatalf("%s: runner: %v", name, err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("%s: runner start: %v", name, err)
	}
	p := &proc{name: name, nc: nc, table: table, mgr: m, runner: r}
	t.Cleanup(p.stop)
	return p
}

// stop ends the process the way a crash would, as far as the others see:
// nothing is released; its connections just go.
func (p *proc) stop() {
	if p.closed {
		return
	}
	p.closed = true
	p.runner.Close()
	p.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.mgr.Close(ctx)
	p.table.Close()
}

// leave stops the process gracefully.
func (p *proc) leave(t *testing.T) {
	t.Helper()
	if err := p.runner.Leave(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("%s: Leave: %v", p.name, err)
	}
	p.stop()
}

// readyIDs returns the IDs of p's ready active shards and whether every
// active shard of p is ready.
func readyIDs(p *proc) (ids []int, all bool) {
	all = true
	for _, s := range p.mgr.Snapshot().Shards {
		if s.Role != manager.RoleActive {
			continue
		}
		if s.State == gateway.StateReady {
			ids = append(ids, s.Key.ID)
		} else {
			all = false
		}
	}
	return ids, all
}

// waitRun waits until each process runs exactly the ready shards want
// names for it (want is printed as fmt prints a map[string][]int, e.g.
// "map[a:[0 1] b:[2 3]]"), every active shard of theirs is ready and each
// holds just those leases.
func waitRun(t *testing.T, timeout time.Duration, want string, ps ...*proc) {
	t.Helper()
	poll.UntilState(t, timeout, "shards running "+want, func() (bool, string) {
		got := map[string][]int{}
		ok := true
		for _, p := range ps {
			ids, all := readyIDs(p)
			got[p.name] = ids
			ok = ok && all && p.runner.Leases() == len(ids)
		}
		s := fmt.Sprint(got)
		return ok && s == want, s
	})
}

// waitSaved waits until p's table shows the records of ids owned by owner
// with a session saved.
func waitSaved(t *testing.T, p *proc, owner string, ids ...int) {
	t.Helper()
	poll.UntilState(t, 10*time.Second, fmt.Sprintf("sessions of %v saved by %s", ids, owner), func() (bool, string) {
		saved := map[int]bool{}
		for _, rec := range p.table.Records() {
			saved[rec.Key.ID] = rec.Owner == owner && rec.Session.SessionID != ""
		}
		for _, id := range ids {
			if !saved[id] {
				return false, fmt.Sprint(saved)
			}
		}
		return true, ""
	})
}
