package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/manager"
)

// Bus publishes the shards' dispatches to a JetStream stream and answers
// the workers' commands. It is a manager.EventSink. Make one with New; all
// methods are safe for concurrent use.
type Bus struct {
	cfg    config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	// evPrefix is "PREFIX.ev.", the events' subject prefix.
	evPrefix string
	// replyPrefix is "_INBOX.<nuid>.": the stream answers each event on
	// replyPrefix+"SLOT.GEN.SEQ", heard by ackSub (see onReply).
	replyPrefix string
	ackSub      *nats.Subscription
	scratch     sync.Pool
	// up reports NATS connected, as last heard: Take refuses while it is
	// not, so nothing piles up in the client's reconnect buffer.
	up atomic.Bool
	// maxPayload is the largest event body the server takes (readMaxPayload).
	maxPayload atomic.Int64

	shardsMu sync.RWMutex
	shards   map[manager.ShardKey]*shardState
	// slots is every shard state by its slot, append-only (under
	// shardsMu): onReply finds a shard without a lock.
	slots atomic.Pointer[[]*shardState]
	// byID is the shard states by shard ID, of the shard count last
	// seen for each ID (under shardsMu): Take's lookup without a lock.
	byID atomic.Pointer[[]*shardState]

	// mu guards refused and ready: the shards to hold and the wake-up
	// for when the bus takes events again.
	mu      sync.Mutex
	refused []manager.ShardKey
	ready   chan struct{} // nil while nobody waits

	inflight, inflightBytes atomic.Int64
	// room is closed when the buffer has room again for the shards
	// waiting (waiting reports some do).
	roomMu  sync.Mutex
	room    chan struct{}
	waiting atomic.Bool

	published, acked, duplicates, failed, refusedEvents, lost atomic.Uint64

	lostMu    sync.Mutex
	lostQueue []lostRange

	statsMu   sync.Mutex
	streamSt  StreamStats
	consumers []ConsumerStats
	updated   time.Time

	statusCh chan nats.Status
	cmdSubs  []*nats.Subscription
	closing  chan struct{}
	done     sync.WaitGroup
	closed   atomic.Bool
}

// ConnectOptions are what a NATS connection needs to carry the bus; New
// refuses a connection made without them. While reconnecting the
// connection must not buffer what is published: an event buffered then
// would be stored after its shard's events lost with the old connection
// and replayed later, out of order. Its write buffer is sized for a
// stream of events (the default is a write system call every ~20).
func ConnectOptions() []nats.Option {
	return []nats.Option{nats.ReconnectBufSize(-1), nats.WriteBufferSize(writeBuffer)}
}

// writeBuffer is the connection's write buffer (ConnectOptions).
const writeBuffer = 256 << 10

// ErrReconnectBuffer is New's error for a connection that buffers while
// reconnecting: make it with ConnectOptions.
var ErrReconnectBuffer = errors.New("bus: the NATS connection buffers what is published while it reconnects, which could store a shard's events out of order; connect with bus.ConnectOptions()")

// New wraps a connected *nats.Conn made with ConnectOptions: it creates
// the stream (or updates its limits) and is ready to publish. It does not
// close nc.
func New(ctx context.Context, nc *nats.Conn, opts ...Option) (*Bus, error) {
	if nc.Opts.ReconnectBufSize >= 0 {
		return nil, ErrReconnectBuffer
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &Bus{cfg: cfg, log: cfg.logger.With("component", "bus"), nc: nc,
		evPrefix: cfg.prefix + ".ev.", closing: make(chan struct{}),
		shards:      make(map[manager.ShardKey]*shardState),
		replyPrefix: nats.NewInbox() + "."}
	b.slots.Store(new([]*shardState))
	b.scratch.New = newScratch
	if b.cfg.url == "" {
		b.cfg.url = nc.ConnectedUrlRedacted()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.js = js
	subjects := []string{cfg.prefix + ".ev.>"}
	if old, err := js.Stream(ctx, cfg.stream.Name); err == nil {
		if have := old.CachedInfo().Config.Subjects; !slices.Equal(have, subjects) {
			return nil, fmt.Errorf("bus: stream %s on %s holds the subjects %v, not %v: another bot's stream? Choose another stream name (and prefix)",
				cfg.stream.Name, b.cfg.url, have, subjects)
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("bus: stream %s on %s: %w", cfg.stream.Name, b.cfg.url, err)
	}
	storage := jetstream.FileStorage
	if cfg.stream.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	scfg := jetstream.StreamConfig{
		Name:        cfg.stream.Name,
		Description: "shardtop: every dispatch of the bot's shards",
		Subjects:    subjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.stream.MaxAge,
		MaxBytes:    cfg.stream.MaxBytes,
		Duplicates:  cfg.stream.Duplicates,
		Replicas:    cfg.stream.Replicas,
		Storage:     storage,
	}
	// Create, and update only what exists: concurrent CreateOrUpdate calls
	// of one new replicated stream all time out (nats-server 2.15), which
	// is what the processes of a cluster do when they start together.
	b.stream, err = js.CreateStream(ctx, scfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		b.stream, err = js.UpdateStream(ctx, scfg)
	}
	if err != nil {
		return nil, fmt.Errorf("bus: stream %s on %s: %w", cfg.stream.Name, b.cfg.url, err)
	}
	// Events are published with core NATS and their acknowledgements
	// heard here, not through jetstream's asynchronous publisher: that one
	// makes a reply inbox, a future and a map entry per message and
	// decodes each answer as JSON, which cost as much as the rest of the
	// dispatch path (see the commit that made this). Nothing is retried by
	// the client: a retry could land after a later event of the shard; a
	// failure holds the shard and Discord's replay retries in order.
	b.ackSub, err = nc.Subscribe(b.replyPrefix+"*.*.*", b.onReply)
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe to the stream's acknowledgements: %w", err)
	}
	// The buffer bounds the answers that can be pending.
	_ = b.ackSub.SetPendingLimits(cfg.maxPending+1024, int(cfg.maxPending+1024)*1024)
	b.statusCh = nc.StatusChanged(nats.CONNECTED, nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	b.up.Store(nc.IsConnected())
	b.readMaxPayload()
	b.done.Add(1)
	go b.watch()
	return b, nil
}

// Close stops publishing and answering commands. It does not close the
// NATS connection; the manager has flushed (or given up on) the events.
func (b *Bus) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.closing)
	var errs []error
	b.mu.Lock()
	subs := append([]*nats.Subscription{b.ackSub}, b.cmdSubs...)
	b.mu.Unlock()
	for _, sub := range subs {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	b.done.Wait()
	b.nc.RemoveStatusListener(b.statusCh)
	b.lostMu.Lock()
	for _, r := range b.lostQueue {
		b.log.Error("closing with lost events not announced", "shard", r.key.String(), "session", r.session, "from", r.from, "to", r.to)
	}
	b.lostMu.Unlock()
	return errors.Join(errs...)
}

// watch is the bus's own clock: it follows the connection, refreshes the
// stream's stats, holds shards whose events wait too long, announces lost
// events and, while someone waits for it, finds when the bus takes events
// again.
func (b *Bus) watch() {
	defer b.done.Done()
	tick := time.NewTicker(b.cfg.checkEvery)
	defer tick.Stop()
	var lastStats, lastTimeouts time.Time
	for {
		select {
		case <-b.closing:
			return
		case st := <-b.statusCh:
			b.up.Store(st == nats.CONNECTED)
			if st != nats.CONNECTED {
				b.log.Warn("NATS connection lost: shards with events are held until it is back", "status", st.String())
				b.failInFlight("NATS disconnected with the shard's events in flight")
			} else {
				b.readMaxPayload()
				b.log.Info("NATS connection back", "url", b.nc.ConnectedUrlRedacted())
			}
		case now := <-tick.C:
			b.up.Store(b.nc.IsConnected()) // a status change may have been dropped
			if now.Sub(lastStats) >= statsEvery {
				lastStats = now
				b.refreshStats()
			}
			if now.Sub(lastTimeouts) >= time.Second {
				lastTimeouts = now
				b.holdTimedOut(now)
			}
			b.announceLost()
			b.maybeReady()
		}
	}
}

// holdTimedOut fails the events that have waited longer than the ack
// timeout for the stream's answer, and holds their shards.
func (b *Bus) holdTimedOut(now time.Time) {
	limit := now.Add(-b.cfg.ackTimeout).UnixNano()
	b.failWhere(func(at int64) bool { return at < limit }, "an event waited more than "+b.cfg.ackTimeout.String()+" for the stream")
}

// statsEvery is how often the stream's and consumers' stats are read.
const statsEvery = 2 * time.Second

// maybeReady wakes whoever waits for the bus once it takes events again:
// connected, the stream answering, and the buffer at most half full.
func (b *Bus) maybeReady() {
	b.mu.Lock()
	waiting := b.ready != nil
	b.mu.Unlock()
	if !waiting || !b.up.Load() || b.inflight.Load() > int64(b.cfg.maxPending/2) ||
		b.inflightBytes.Load() > b.cfg.maxPendingBytes/2 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := b.stream.Info(ctx)
	cancel()
	if err != nil {
		return
	}
	b.mu.Lock()
	if b.ready != nil {
		close(b.ready)
		b.ready = nil
	}
	b.mu.Unlock()
}

// refreshStats reads the stream's and its consumers' state.
func (b *Bus) refreshStats() {
	if !b.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		return
	}
	st := StreamStats{Name: info.Config.Name, Msgs: info.State.Msgs, Bytes: info.State.Bytes,
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq}
	var cs []ConsumerStats
	lister := b.stream.ListConsumers(ctx)
	for ci := range lister.Info() {
		cs = append(cs, ConsumerStats{Name: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered})
	}
	b.statsMu.Lock()
	b.streamSt, b.consumers, b.updated = st, cs, time.Now()
	b.statsMu.Unlock()
}

// Stats says how the bus is doing; it reads no network.
func (b *Bus) Stats() Stats {
	s := Stats{Mode: b.cfg.mode, URL: b.cfg.url, Connected: b.up.Load(),
		Published: b.published.Load(), Acked: b.acked.Load(), Duplicates: b.duplicates.Load(),
		Failed: b.failed.Load(), Refused: b.refusedEvents.Load(), Lost: b.lost.Load(),
		InFlight: int(b.inflight.Load()), InFlightBytes: b.inflightBytes.Load(),
		Buffer: b.cfg.maxPending, BufferBytes: b.cfg.maxPendingBytes}
	b.shardsMu.RLock()
	s.Shards = make([]ShardStats, 0, len(b.shards))
	for _, st := range b.shards {
		st.mu.Lock()
		ss := ShardStats{ShardID: st.key.ID, ShardCount: st.key.Count, InFlight: st.inflight,
			Held: st.refusedAt != 0, Lost: st.lost}
		st.mu.Unlock()
		if ss.Held {
			s.Held++
		}
		s.Shards = append(s.Shards, ss)
	}
	b.shardsMu.RUnlock()
	slices.SortFunc(s.Shards, func(a, c ShardStats) int {
		return cmp.Or(cmp.Compare(a.ShardCount, c.ShardCount), cmp.Compare(a.ShardID, c.ShardID))
	})
	b.statsMu.Lock()
	s.Stream, s.Consumers, s.Updated = b.streamSt, append([]ConsumerStats(nil), b.consumers...), b.updated
	b.statsMu.Unlock()
	return s
}

// errClosed is Flush's answer after Close.
var errClosed = errors.New("bus: closed")

// subjectToken makes an event name safe as a subject token: Discord's are
// upper case and underscores; anything else becomes "_".
func subjectToken(event string) string {
	if event == "" {
		return "_"
	}
	if !strings.ContainsAny(event, ".*> \t\r\n") {
		return event
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, event)
}
