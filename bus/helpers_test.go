package bus

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/manager"
)

const testToken = "sim-token-secret-0123456789"

// testNATS is a real NATS server with JetStream in the test process. It
// can be stopped and started again on the same port and storage, as an
// operator restarting it would.
type testNATS struct {
	t    testing.TB
	opts server.Options
	srv  *server.Server
}

// startNATS runs a server on a free loopback port until the test ends.
func startNATS(t testing.TB) *testNATS {
	t.Helper()
	n := &testNATS{t: t, opts: server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, MaxPayload: 8 << 20,
	}}
	n.start()
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port // the same one after a restart
	t.Cleanup(n.stop)
	return n
}

func (n *testNATS) start() {
	n.t.Helper()
	opts := n.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		n.t.Fatalf("nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		n.t.Fatalf("nats server not ready")
	}
	n.srv = s
}

// stop shuts the server down (a no-op when it is stopped).
func (n *testNATS) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *testNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// connect opens a client connection that reconnects forever, closed at
// the end of the test.
func (n *testNATS) connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.url(), append(ConnectOptions(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.RetryOnFailedConnect(false))...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// newTestBus makes a bus on nc, closed at the end of the test.
func newTestBus(t testing.TB, nc *nats.Conn, opts ...Option) *Bus {
	t.Helper()
	b, err := New(ctxT(t, 10*time.Second), nc, append([]Option{withCheckEvery(20 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("bus.New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func startSim(t testing.TB, cfg discordsim.Config) *discordsim.Server {
	t.Helper()
	cfg.Token = testToken
	cfg.IdentifyWindow = cmpOr(cfg.IdentifyWindow, 30*time.Millisecond)
	cfg.HeartbeatInterval = cmpOr(cfg.HeartbeatInterval, 5*time.Second) // a burst delays the ACK behind it
	cfg.Seed = 1
	s, err := discordsim.Start(cfg)
	if err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func cmpOr[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// newTestManager builds a manager against sim that hands its events to
// sink, and closes it at the end of the test.
func newTestManager(t testing.TB, sim *discordsim.Server, sink manager.EventSink, opts ...manager.Option) *manager.Manager {
	t.Helper()
	base := []manager.Option{
		manager.WithAPIURL(sim.APIURL()),
		manager.WithIdentifyWindow(30 * time.Millisecond),
		manager.WithGatewayOptions(
			gateway.WithCompression(gateway.CompressionNone),
			gateway.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
			gateway.WithInvalidSessionWait(5*time.Millisecond, 20*time.Millisecond),
			gateway.WithHandshakeTimeout(2*time.Second)),
		manager.WithSampleInterval(50 * time.Millisecond),
		manager.WithPersistInterval(100 * time.Millisecond),
	}
	if sink != nil {
		base = append(base, manager.WithEventSink(sink))
	}
	m, err := manager.New(testToken, append(base, opts...)...)
	if err != nil {
		t.Fatalf("manager.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	return m
}

// openReady opens m and waits for every shard to be Ready.
func openReady(t testing.TB, m *manager.Manager) {
	t.Helper()
	if err := m.Open(ctxT(t, 30*time.Second)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	poll.Until(t, 30*time.Second, "every shard Ready", func() bool { return allReady(m) })
}

func allReady(m *manager.Manager) bool {
	n := 0
	for si := range m.Shards() {
		if si.State != gateway.StateReady {
			return false
		}
		n++
	}
	return n > 0
}

// event is one message read from the stream, as a worker sees it.
type event struct {
	subject, shard, session, name, guild, msgID string
	seq                                         int64
	streamSeq                                   uint64
	header                                      nats.Header
	data                                        []byte
}

// collector is a durable pull consumer that acknowledges everything and
// keeps what it read.
type collector struct {
	mu     sync.Mutex
	events []event
	cc     jetstream.ConsumeContext
}

// collect starts a durable consumer of the whole stream on nc.
func collect(t testing.TB, nc *nats.Conn, name string) *collector {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctxT(t, 10*time.Second), DefaultStreamName, jetstream.ConsumerConfig{
		Durable: name, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	c := &collector{}
	c.cc, err = cons.Consume(func(m jetstream.Msg) {
		meta, _ := m.Metadata()
		h := m.Headers()
		seq, _ := strconv.ParseInt(h.Get(HeaderSeq), 10, 64)
		e := event{subject: m.Subject(), shard: h.Get(HeaderShard), session: h.Get(HeaderSession),
			name: h.Get(HeaderEvent), guild: h.Get(HeaderGuild), msgID: h.Get(jetstream.MsgIDHeader),
			seq: seq, header: h, data: append([]byte(nil), m.Data()...)}
		if meta != nil {
			e.streamSeq = meta.Sequence.Stream
		}
		c.mu.Lock()
		c.events = append(c.events, e)
		c.mu.Unlock()
		_ = m.Ack()
	}, jetstream.ConsumeErrHandler(func(jetstream.ConsumeContext, error) {}))
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	t.Cleanup(c.cc.Stop)
	return c
}

func (c *collector) all() []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]event(nil), c.events...)
}

// count returns how many events named name it has read.
func (c *collector) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.events {
		if e.name == name {
			n++
		}
	}
	return n
}

// checkExactlyOnce fails t unless every event is there once and, per
// shard and session, in Discord's order. It returns the events by shard.
func checkExactlyOnce(t testing.TB, events []event) map[string][]event {
	t.Helper()
	seen := make(map[string]uint64, len(events))
	byShard := make(map[string][]event)
	for _, e := range events {
		if e.name == LostEvent {
			continue
		}
		if prev, dup := seen[e.msgID]; dup {
			t.Errorf("event %s (%s, shard %s) twice: stream sequences %d and %d", e.msgID, e.name, e.shard, prev, e.streamSeq)
		}
		seen[e.msgID] = e.streamSeq
		if want := e.session + ":" + strconv.FormatInt(e.seq, 10); e.msgID != want {
			t.Errorf("Nats-Msg-Id %q, want %q", e.msgID, want)
		}
		byShard[e.shard] = append(byShard[e.shard], e)
	}
	for shard, es := range byShard {
		sort.SliceStable(es, func(i, j int) bool { return es[i].streamSeq < es[j].streamSeq })
		last := map[string]int64{}
		for _, e := range es {
			if e.seq <= last[e.session] {
				t.Errorf("shard %s session %s: seq %d after %d in the stream", shard, e.session, e.seq, last[e.session])
			}
			if l := last[e.session]; l != 0 && e.seq != l+1 {
				t.Errorf("shard %s session %s: seq %d follows %d: %d missing", shard, e.session, e.seq, l, e.seq-l-1)
			}
			last[e.session] = e.seq
		}
	}
	return byShard
}

// shardGaps describes what the manager's shards saw, for a failure message:
// sequence gaps Discord left, state, sequence.
func shardGaps(m *manager.Manager) string {
	var b strings.Builder
	for si := range m.Shards() {
		fmt.Fprintf(&b, "shard %s: %s seq %d gaps %d resumes %d identifies %d held %v\n",
			si.Key, si.State, si.Sequence, si.SequenceGaps, si.Resumes, si.Identifies, si.Held)
	}
	return b.String()
}

// describe summarises events for a failure message.
func describe(events []event) string {
	counts := map[string]int{}
	for _, e := range events {
		counts[e.shard+" "+e.name]++
	}
	var b strings.Builder
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %d\n", k, counts[k])
	}
	b.WriteString(messageRuns(events))
	return b.String()
}

// messageRuns describes each session's events: how many MESSAGE_CREATE,
// the sequence range of all its events, and the first gaps in it (every
// event counts: a RESUMED takes a sequence number between messages), to
// tell a hole from a missing tail.
func messageRuns(events []event) string {
	bySession := map[string][]int64{}
	messages := map[string]int{}
	for _, e := range events {
		if e.name == LostEvent {
			continue
		}
		k := e.shard + " " + e.session
		bySession[k] = append(bySession[k], e.seq)
		if e.name == "MESSAGE_CREATE" {
			messages[k]++
		}
	}
	keys := make([]string, 0, len(bySession))
	for k := range bySession {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		seqs := bySession[k]
		slices.Sort(seqs)
		fmt.Fprintf(&b, "%s: %d MESSAGE_CREATE, events seq %d..%d", k, messages[k], seqs[0], seqs[len(seqs)-1])
		gaps := 0
		for i := 1; i < len(seqs) && gaps < 5; i++ {
			if seqs[i] > seqs[i-1]+1 {
				fmt.Fprintf(&b, ", gap after %d to %d", seqs[i-1], seqs[i])
				gaps++
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
