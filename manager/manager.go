// Package manager runs a bot's shards in one process: it discovers the
// gateway, paces identifies through a shared limiter, resumes saved sessions
// after a restart, splits and re-shards with zero downtime, routes guilds to
// shards, and gives the UI a cheap snapshot of everything.
//
// # One owner
//
// One goroutine, the loop (loop.go), owns the registry: every shard entry,
// the saved sessions, which shard IDs have an action running, and the
// splits and re-shards in progress. Operator actions and the shards' state
// changes reach it as messages; it decides, starts whatever I/O follows on
// other goroutines, and hears their results as messages too. It never waits
// for network I/O. What readers need (Snapshot, routing, WaitReady,
// metrics) the loop publishes: an immutable view of the registry behind an
// atomic pointer, and a small immutable record per shard, so readers never
// wait for the loop.
//
// The package has two mutexes: the subscribers' (events.go), which guards
// their list so that a send never meets a closed channel, and each shard
// key's track (detail.go), which guards its history of state changes and
// samples between the loop that writes it and ShardDetailInto.
package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/secret"
	"github.com/shardtop/shardtop/store"
)

// Store is what the manager needs from a session store; *store.File
// satisfies it. Put and Delete only change memory or schedule a write;
// Flush makes the records durable. The manager calls it from one goroutine
// of its own, in order.
type Store interface {
	Load() []store.ShardState
	Put(store.ShardState) error
	Delete(shardID, shardCount int) error
	Flush(ctx context.Context) error
}

// IdentifyHistory is what a Store may also keep: when each identify bucket
// last sent an identify. A manager whose store has it saves the times with
// the sessions and, on Open, waits out what is left of each window, so a
// restart within one identify window earns no op 9. *store.File has it.
type IdentifyHistory interface {
	LastIdentifies() (maxConcurrency int, at []time.Time)
	SetLastIdentifies(maxConcurrency int, at []time.Time) error
}

// Role is what a shard does in the set.
type Role uint8

// The roles.
const (
	// RoleActive: the shard serves its guilds; its dispatches are delivered.
	RoleActive Role = iota
	// RoleJoining: a new shard of a split or re-shard; its dispatches are
	// held back until the whole new set is READY.
	RoleJoining
	// RoleRetiring: replaced by a split or re-shard; being ended.
	RoleRetiring
)

// String names the role.
func (r Role) String() string {
	switch r {
	case RoleActive:
		return "active"
	case RoleJoining:
		return "joining"
	case RoleRetiring:
		return "retiring"
	}
	return "role(?)"
}

// User is the bot user, from GET /users/@me during Open or else from the
// first READY.
type User struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

type lifecycle uint8

const (
	stateNew lifecycle = iota
	stateOpening
	stateOpen
	stateClosing
	stateClosed
)

// Manager owns a bot's shards. Make one with New; all methods are safe for
// concurrent use.
type Manager struct {
	token secret.Token
	cfg   config
	log   *slog.Logger

	// phase is the lifecycle as Open and Close move it (a lifecycle); the
	// loop's view says the same to readers once the loop runs.
	phase atomic.Uint32

	inbox    chan func(*loop) // messages to the loop
	loopDone chan struct{}    // closed when the loop has ended (or was never started)
	storeIn  chan []storeOp   // batches of store writes, from the loop to the store goroutine

	view    atomic.Pointer[view]
	changed atomic.Pointer[chan struct{}]
	// lastRead is when a Snapshot was last taken (unix nanoseconds): the
	// loop samples events/s only while someone reads them.
	lastRead atomic.Int64
	// failures counts the shards the loop has seen fail (and the changes
	// of what makes a failure final): WaitReady looks for one only then.
	failures atomic.Uint64
	botUser  atomic.Pointer[User]
	subs     subscribers

	// workers are the goroutines the loop starts for I/O (closing and
	// ending shards, the store writer, the refresher); handlers the close
	// handler calls. Close waits for both.
	workers  sync.WaitGroup
	handlers sync.WaitGroup

	closeDone chan struct{} // closed when the first Close has finished
	closeErr  error         // its result; read after closeDone

	// runCtx ends when Close begins: the refresher's REST calls stop.
	runCtx    context.Context
	cancelRun context.CancelFunc
}

// New validates the options and returns a Manager. It does no network I/O
// and starts no goroutine; Open connects.
func New(token string, opts ...Option) (*Manager, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if token == "" {
		return nil, fmt.Errorf("%w: empty bot token", ErrInvalidOption)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		token:     secret.New(token),
		cfg:       cfg,
		log:       cfg.logger.With("component", "manager"),
		inbox:     make(chan func(*loop), inboxSize),
		loopDone:  make(chan struct{}),
		storeIn:   make(chan []storeOp),
		closeDone: make(chan struct{}),
	}
	m.view.Store(&view{life: stateNew, active: map[int]*entry{}, canReshard: len(cfg.shardIDs) == 0 && !cfg.noInitialShards})
	ch := make(chan struct{})
	m.changed.Store(&ch)
	return m, nil
}

// inboxSize is the loop's message buffer: shards that change state while
// the loop is busy (starting thousands of shards) wait only when it is full.
const inboxSize = 4096

// String describes the manager without secrets.
func (m *Manager) String() string {
	v := m.view.Load()
	n := 0
	for _, e := range v.entries {
		if e.infoOf().role == RoleActive {
			n++
		}
	}
	return fmt.Sprintf("manager.Manager{shards=%d max_concurrency=%d}", n, v.maxConc)
}

// GoString is String: %#v never prints the token.
func (m *Manager) GoString() string { return m.String() }

// LogValue logs the manager without secrets.
func (m *Manager) LogValue() slog.Value { return slog.StringValue(m.String()) }

// Open discovers the gateway (GET /gateway/bot; a 401 is ErrUnauthorized)
// and, at the same time, the bot user (GET /users/@me, so that Snapshot
// names the bot even when every shard resumes and no READY comes; a
// failure is logged and the first READY names the bot instead, but a 401
// while /gateway/bot failed too is ErrUnauthorized), configures the
// identify limiter and its daily budget, loads the store and starts every
// shard (none with WithNoInitialShards: see AddShard): a shard with a saved session for the same [id, count]
// resumes at once without the limiter; the others take their identify
// tickets in ID order and identify through it. Open returns once every
// shard is started, not ready (see WaitReady).
func (m *Manager) Open(ctx context.Context) error {
	if !m.phase.CompareAndSwap(uint32(stateNew), uint32(stateOpening)) {
		if lifecycle(m.phase.Load()) >= stateClosing {
			return ErrClosed
		}
		return ErrAlreadyOpen
	}
	l, err := m.prepare(ctx)
	if err != nil {
		m.phase.CompareAndSwap(uint32(stateOpening), uint32(stateNew))
		return err
	}
	if !m.phase.CompareAndSwap(uint32(stateOpening), uint32(stateOpen)) {
		return ErrClosed // closed meanwhile: nothing was started
	}
	m.runCtx, m.cancelRun = context.WithCancel(context.Background())
	m.workers.Add(1) // the store writer
	go m.storeWriter()
	m.workers.Add(1)
	go m.refresher()
	started := make(chan error, 1)
	go m.run(ctx, l, started)
	return <-started
}

// Close closes every shard keeping its session resumable (close code
// 4000), Puts the sessions, flushes the store and ends every goroutine of
// the manager, close handler calls included. A shard that has sent its
// Identify first gets up to 3 s (within ctx) for its READY, so that the
// identify spent becomes a session the next run resumes. A new manager on
// the same store resumes every shard. Splits and re-shards in progress are
// aborted. A second call waits for the first to finish and returns its
// result; a call from a close handler does not wait for that handler.
func (m *Manager) Close(ctx context.Context) error {
	fromHandler := calledFromCloseHandler()
	for {
		p := lifecycle(m.phase.Load())
		switch p {
		case stateNew, stateOpening:
			if !m.phase.CompareAndSwap(uint32(p), uint32(stateClosed)) {
				continue
			}
			// Never opened (or Open is in prepare, and will see it).
			m.subs.close()
			m.publishClosed()
			close(m.loopDone)
			close(m.closeDone)
			return nil
		case stateOpen:
			if !m.phase.CompareAndSwap(uint32(p), uint32(stateClosing)) {
				continue
			}
			m.shutdown(ctx)
			close(m.closeDone)
		}
		break // closing or closed (by this call or another): wait for it
	}
	select {
	case <-m.closeDone:
	case <-ctx.Done():
		return fmt.Errorf("manager: close: waiting for the Close under way: %w", ctx.Err())
	}
	if !fromHandler {
		m.handlers.Wait()
	}
	return m.closeErr
}

// shutdown is the first Close of an open manager: the loop closes the
// shards, saves the sessions and flushes the store, then ends.
func (m *Manager) shutdown(ctx context.Context) {
	result := make(chan error, 1)
	if !m.send(func(l *loop) { l.close(ctx, func(err error) { result <- err }) }) {
		result <- ErrClosed
	}
	var err error
	select {
	case err = <-result:
	case <-m.loopDone:
		select {
		case err = <-result:
		default:
			err = ErrClosed
		}
	}
	<-m.loopDone
	m.workers.Wait()
	m.closeErr = err
	m.phase.Store(uint32(stateClosed))
}

// publishClosed publishes a closed view for a manager that never ran.
func (m *Manager) publishClosed() {
	v := *m.view.Load()
	v.life = stateClosed
	m.view.Store(&v)
	m.notify()
}

// send hands f to the loop; false if the loop has ended.
func (m *Manager) send(f func(*loop)) bool {
	select {
	case m.inbox <- f:
		return true
	case <-m.loopDone:
		return false
	}
}

// ask runs f on the loop with a reply function and waits for the reply.
// If ctx ends first, cancel (if not nil) runs on the loop and the reply is
// still awaited: an action the loop started is seen to its end.
func (m *Manager) ask(ctx context.Context, f func(l *loop, reply func(error)), cancel func(l *loop, err error)) error {
	if err := m.view.Load().openErr(); err != nil {
		return err
	}
	res := make(chan error, 1)
	if !m.send(func(l *loop) { f(l, func(err error) { res <- err }) }) {
		return ErrClosed
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
	case <-m.loopDone:
	}
	if cancel != nil {
		m.send(func(l *loop) { cancel(l, ctx.Err()) })
	}
	select {
	case err := <-res:
		return err
	case <-m.loopDone:
		select {
		case err := <-res:
			return err
		default:
			return ErrClosed
		}
	}
}

// callCloseHandler runs the close handler for one failed shard, on a
// goroutine of its own that Close waits for. Close recognises this frame
// in its caller's stack: a handler that calls Close is not waited for by
// that Close (it is the caller), which lets it return.
func (m *Manager) callCloseHandler(h func(ShardKey, error), key ShardKey, err error) {
	defer m.handlers.Done()
	h(key, err)
}

// calledFromCloseHandler reports whether callCloseHandler is up the stack.
func calledFromCloseHandler() bool {
	pc := make([]uintptr, 64)
	frames := runtime.CallersFrames(pc[:runtime.Callers(3, pc)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "manager.(*Manager).callCloseHandler") {
			return true
		}
		if !more {
			return false
		}
	}
}

// newEntry builds a shard (not started) wired to the manager.
func (m *Manager) newEntry(key ShardKey, role Role, sess gateway.Session, v *loop) *entry {
	e := &entry{key: key, started: time.Now(), joined: role == RoleJoining, sessionID: sess.ID, track: &track{}}
	e.info.Store(&entryInfo{role: role, resumable: sess.Resumable()})
	opts := make([]gateway.Option, 0, len(m.cfg.gatewayOpts)+6)
	opts = append(opts, m.cfg.gatewayOpts...)
	opts = append(opts,
		gateway.WithURL(v.gwURL),
		gateway.WithIdentifyGate(v.lim),
		gateway.WithSession(sess),
		gateway.WithDispatchHandler(m.dispatchHandler(e)),
		gateway.WithStateHandler(func(c gateway.StateChange) {
			m.send(func(l *loop) { l.onState(e, c) })
		}),
		gateway.WithLogger(m.cfg.logger),
		gateway.WithDialGuard(m.dialGuard(key)),
	)
	e.shard = gateway.New(m.token.Reveal(), key.ID, key.Count, opts...)
	return e
}

// dialGuard is shard key's check before each dial, nil without
// WithShardDialGuard.
func (m *Manager) dialGuard(key ShardKey) func() error {
	g := m.cfg.dialGuard
	if g == nil {
		return nil
	}
	return func() error { return g(key) }
}

func (m *Manager) dispatchHandler(e *entry) func(gateway.Dispatch) {
	h, sink := m.cfg.onDispatch, m.cfg.sink
	return func(d gateway.Dispatch) {
		if d.Event == "READY" {
			if m.botUser.Load() == nil {
				m.readBotUser(d.Data)
			}
			e.sessionID = e.shard.Session().ID // a new session: its events carry its ID
		}
		if (h == nil && sink == nil) || !e.delivers() {
			return
		}
		if e.joined && d.Event == "READY" && !e.readyTaken.Swap(true) {
			return
		}
		if h != nil {
			h(d)
		}
		if sink != nil && !sink.Take(e.sessionID, d) && !e.holdAsked.Swap(true) {
			m.send(func(l *loop) { l.hold(e) })
		}
	}
}

func (m *Manager) readBotUser(data []byte) {
	var ready struct {
		User User `json:"user"`
	}
	if err := json.Unmarshal(data, &ready); err != nil || ready.User.ID == "" {
		return
	}
	m.botUser.CompareAndSwap(nil, &ready.User)
}

// OpenShard starts a stopped (closed or failed) shard: it resumes if a
// session is saved, else identifies through the limiter. A running shard is
// left alone.
func (m *Manager) OpenShard(ctx context.Context, id int) error {
	return m.ask(ctx, func(l *loop, reply func(error)) { l.openShard(id, nil, false, reply) }, nil)
}

// ResumeShard starts a stopped shard from its saved session: ErrNoSession
// if there is none, ErrRunning if the shard runs.
func (m *Manager) ResumeShard(ctx context.Context, id int) error {
	return m.ask(ctx, func(l *loop, reply func(error)) { l.openShard(id, nil, true, reply) }, nil)
}

// ResumeShardSession starts a stopped shard resuming sess (a session ID,
// the last sequence and the resume URL, kept elsewhere), as disgo's
// ResumeShard(ctx, shardID, state) does, instead of the saved session:
// ErrRunning if the shard runs, ErrInvalidOption for a session without an
// ID or with a resume URL that is not ws:// or wss://.
func (m *Manager) ResumeShardSession(ctx context.Context, id int, sess gateway.Session) error {
	if !sess.Resumable() || (sess.ResumeURL != "" && !strings.HasPrefix(sess.ResumeURL, "ws://") && !strings.HasPrefix(sess.ResumeURL, "wss://")) {
		return fmt.Errorf("%w: ResumeShardSession: shard %d: a session needs an ID and a ws:// or wss:// resume URL (or none)", ErrInvalidOption, id)
	}
	return m.ask(ctx, func(l *loop, reply func(error)) { l.openShard(id, &sess, true, reply) }, nil)
}

// CloseShard closes a shard keeping its session resumable and saves the
// session (store Put).
func (m *Manager) CloseShard(ctx context.Context, id int) error {
	return m.ask(ctx, func(l *loop, reply func(error)) { l.closeShard(ctx, id, false, reply) }, nil)
}

// RestartShard closes a shard keeping its session, then resumes it (or
// identifies, if it had no session).
func (m *Manager) RestartShard(ctx context.Context, id int) error {
	return m.ask(ctx, func(l *loop, reply func(error)) { l.closeShard(ctx, id, true, reply) }, nil)
}

// SplitShard splits the active shard id of count c into k shards id, id+c,
// ..., id+(k-1)c of count c*k with zero downtime: the new shards identify
// through the limiter while the old one keeps serving, their dispatches are
// held back until all are READY, then delivery switches to them in one step
// and the old shard is ended (1000) and its record deleted. If a new shard
// fails, or ctx ends first, the split is aborted: the new shards are ended
// and the old one keeps serving. Repeated splits use each shard's own count.
func (m *Manager) SplitShard(ctx context.Context, id, k int) error {
	if k < 2 {
		return fmt.Errorf("manager: split shard %d: k = %d, must be at least 2", id, k)
	}
	var op *replaceOp
	return m.ask(ctx, func(l *loop, reply func(error)) { op = l.split(ctx, id, k, false, reply) },
		func(l *loop, err error) { l.abort(op, err) })
}

// Reshard moves the whole bot to count shards (0 = Discord's current
// recommendation) with zero downtime: a new set identifies beside the old
// one, its dispatches held back, and is swapped in in one step once every
// new shard is READY; the old shards are then ended (1000) and their records
// deleted. Shards already at the new count stay as they are. A manager
// limited by WithShardIDs cannot re-shard the whole bot.
func (m *Manager) Reshard(ctx context.Context, count int) error {
	if count < 0 || count > store.MaxShardCount {
		return fmt.Errorf("manager: reshard: %w: count %d is outside [0, %d]", ErrInvalidOption, count, store.MaxShardCount)
	}
	if err := m.view.Load().openErr(); err != nil {
		return err
	}
	if !m.view.Load().canReshard {
		if m.cfg.noInitialShards {
			return fmt.Errorf("manager: reshard: %w: a re-shard in a cluster is not supported yet: stop all nodes but one, "+
				"restart it with the cluster disabled and re-shard there, then start the nodes with the new shard count "+
				"(splits of single shards work in a cluster)", ErrReshardRefused)
		}
		return fmt.Errorf("manager: reshard: %w: it runs only some shard IDs (WithShardIDs); re-shard every process instead", ErrReshardRefused)
	}
	if count == 0 {
		gb, err := m.refreshGatewayBot(ctx)
		if err != nil {
			return fmt.Errorf("manager: reshard: %w", err)
		}
		count = gb.Shards
	}
	var op *replaceOp
	return m.ask(ctx, func(l *loop, reply func(error)) { op = l.reshard(ctx, count, reply) },
		func(l *loop, err error) { l.abort(op, err) })
}
