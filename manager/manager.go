// Package manager runs a bot's shards in one process: it discovers the
// gateway, paces identifies through a shared limiter, resumes saved sessions
// after a restart, splits and re-shards with zero downtime, routes guilds to
// shards, and gives the UI a cheap snapshot of everything.
//
// # Locking
//
// One mutex guards the shard registry. It is never held across network I/O
// or while calling a shard method that blocks. Shard state handlers run on
// shard goroutines: they only record the change (atomics), publish an event
// and queue work (store Puts, close handler calls, automatic splits) for
// goroutines the manager owns, so they never wait for an action that holds
// the lock or waits for a shard.
package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/secret"
	"github.com/shardtop/shardtop/limiter"
	"github.com/shardtop/shardtop/store"
)

// Store is what the manager needs from a session store; *store.File
// satisfies it. Put and Delete only change memory or schedule a write;
// Flush makes the records durable.
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

// holdRef decides whether an entry's dispatches are delivered during a split
// or re-shard: old and new shards share flag; flipping it switches delivery
// from the old side to the new side in one atomic step.
type holdRef struct {
	flag    *atomic.Bool
	newSide bool
}

// entry is one gateway.Shard instance and what the manager knows of it. A
// restarted shard gets a new entry, so late callbacks of the old instance
// never touch the new one.
type entry struct {
	key     ShardKey
	shard   *gateway.Shard
	started time.Time

	role      atomic.Uint32 // Role; written under Manager.mu
	hold      atomic.Pointer[holdRef]
	failErr   atomic.Pointer[error] // why the shard failed
	autoSplit atomic.Bool           // failed with 4011, an automatic split is pending
	// handled is the last state onState has dealt with (a gateway.State):
	// WaitReady judges by it, not by the shard's live state, so it never
	// sees Failed before autoSplit says whether a split will follow.
	handled atomic.Uint32

	// joined is set for the new shards of a split or re-shard. Their first
	// READY is never delivered: the gateway reports Ready before it hands
	// READY to the dispatch handler, so the swap can come in between, and
	// that READY only repeats guilds the old shards announced.
	joined     bool
	readyTaken atomic.Bool

	// carried is what the instance this entry replaced (restart, open)
	// knew: its final state, so the first event reads "closed →
	// connecting" rather than "idle → connecting", and its last close, shown
	// until this instance has one of its own. Set before the shard starts.
	carried carried

	// sampled by the sampler goroutine only (rate is read by Snapshot)
	lastEvents uint64
	rate       atomic.Uint64 // float64 bits, events/s
}

// carried is what an entry takes over from the instance it replaces.
type carried struct {
	state       gateway.State // StateIdle: nothing replaced
	closeCode   int
	closeReason string
	closeAt     time.Time
	err         string
	errAt       time.Time
}

// carry is what the instance whose Stats are st hands its successor.
func (e *entry) carry(st *gateway.Stats) carried {
	c := carried{state: st.State}
	c.closeCode, c.closeReason, c.closeAt = e.lastClose(st)
	c.err, c.errAt = e.lastError(st)
	return c
}

// lastClose is the shard's last close, the replaced instance's while this
// one has none.
func (e *entry) lastClose(st *gateway.Stats) (int, string, time.Time) {
	if st.LastCloseCode != 0 || st.LastCloseReason != "" {
		return st.LastCloseCode, st.LastCloseReason, st.LastCloseAt
	}
	return e.carried.closeCode, e.carried.closeReason, e.carried.closeAt
}

// lastError is the shard's last error, the replaced instance's while this
// one has none.
func (e *entry) lastError(st *gateway.Stats) (string, time.Time) {
	if st.LastError != "" {
		return st.LastError, st.LastErrorAt
	}
	return e.carried.err, e.carried.errAt
}

func (e *entry) delivers() bool {
	h := e.hold.Load()
	return h == nil || h.flag.Load() == h.newSide
}

func (e *entry) roleOf() Role { return Role(e.role.Load()) }

func (e *entry) err() error {
	if p := e.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Manager owns a bot's shards. Make one with New; all methods are safe for
// concurrent use.
type Manager struct {
	token secret.Token
	cfg   config
	log   *slog.Logger

	mu          sync.RWMutex // the shard registry: the fields below
	life        lifecycle
	active      map[int]*entry // by shard ID: the active shards partition the guilds
	counts      []int          // distinct counts of the active shards, ascending
	others      []*entry       // joining and retiring shards
	view        []*entry       // every entry sorted by (id, count); rebuilt on change, never mutated
	saved       map[ShardKey]gateway.Session
	closeDone   chan struct{} // closed when the first Close has finished
	closeErr    error         // its result; read after closeDone
	busy        map[int]bool  // shard IDs with an action running
	resharding  bool
	lim         *limiter.Limiter
	turns       turns // identify turns by shard ID, shared by the entries of an ID
	gwURL       string
	maxConc     int
	recommended int
	explicitIDs bool
	// retired sums the counters of shard instances that have left the
	// registry (restarted, split, re-sharded, aborted), so that the
	// Snapshot totals count over the manager's life and never go down.
	retired struct{ identifies, resumes uint64 }

	botUser atomic.Pointer[User]

	// storeMu orders store writes with the registration they depend on: a
	// periodic persist of a shard being retired must not land after the
	// retirement's Delete, nor an older sequence after a newer one. Taken
	// before mu, never while holding it.
	storeMu sync.Mutex
	// stateMu makes publishing a state event and recording it in
	// entry.handled one step for the readers of handled (see onState).
	// Never take mu while holding it.
	stateMu  sync.RWMutex
	notifyMu sync.Mutex
	notifyCh chan struct{} // closed and replaced whenever a shard changes state

	subs subscribers

	jobMu   sync.Mutex
	jobs    []job
	jobWake chan struct{}

	ctx     context.Context // ended by Close: stops background work and pending splits
	cancel  context.CancelFunc
	bg      sync.WaitGroup // worker and sampler
	actions sync.WaitGroup // splits, re-shards and automatic splits in progress
}

type jobKind uint8

const (
	jobPersist jobKind = iota
	jobFailed
	jobAutoSplit
)

type job struct {
	kind jobKind
	e    *entry
	err  error
}

// New validates the options and returns a Manager. It does no network I/O;
// Open connects.
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
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		token:       secret.New(token),
		cfg:         cfg,
		log:         cfg.logger.With("component", "manager"),
		active:      make(map[int]*entry),
		saved:       make(map[ShardKey]gateway.Session),
		closeDone:   make(chan struct{}),
		busy:        make(map[int]bool),
		notifyCh:    make(chan struct{}),
		jobWake:     make(chan struct{}, 1),
		ctx:         ctx,
		cancel:      cancel,
		explicitIDs: len(cfg.shardIDs) > 0,
	}
	return m, nil
}

// String describes the manager without secrets.
func (m *Manager) String() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fmt.Sprintf("manager.Manager{shards=%d max_concurrency=%d}", len(m.active), m.maxConc)
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
// shard: a shard with a saved session for the same [id, count]
// resumes at once without the limiter; the others are queued in the limiter
// in ID order and identify through it. Open returns once every shard is
// started, not ready (see WaitReady).
func (m *Manager) Open(ctx context.Context) error {
	m.mu.Lock()
	switch m.life {
	case stateOpening, stateOpen:
		m.mu.Unlock()
		return ErrAlreadyOpen
	case stateClosing, stateClosed:
		m.mu.Unlock()
		return ErrClosed
	}
	m.life = stateOpening
	m.mu.Unlock()

	entries, identify, err := m.prepare(ctx)
	if err != nil {
		m.mu.Lock()
		if m.life == stateOpening {
			m.life = stateNew
		}
		m.mu.Unlock()
		return err
	}

	m.mu.Lock()
	if m.life != stateOpening { // closed meanwhile
		m.mu.Unlock()
		return ErrClosed
	}
	for _, e := range entries {
		m.active[e.key.ID] = e
	}
	m.rebuildLocked()
	m.life = stateOpen
	lim := m.lim
	m.bg.Add(3) // under mu: a Close from now on waits for them
	m.mu.Unlock()

	go m.worker()
	go m.sampler()
	go m.refresher()

	// Queue the shards that must identify in ID order before any starts, so
	// they identify in that order whatever order their goroutines run in.
	lim.Enqueue(identify...)
	for i, e := range entries {
		if err := e.shard.Start(); err != nil {
			for _, rest := range entries[i:] {
				lim.Release(rest.key.ID, false)
			}
			return &ShardError{Key: e.key, Op: "open", Err: err}
		}
	}
	m.log.Info("shards started", "shards", len(entries), "identify", len(identify), "resume", len(entries)-len(identify))
	return nil
}

// prepare does Open's network and store work outside the lock.
func (m *Manager) prepare(ctx context.Context) (entries []*entry, identify []int, err error) {
	c := &m.cfg
	count, conc, url := c.shardCount, c.maxConcurrency, c.gatewayURL
	var limOpts []limiter.Option
	userDone := make(chan struct{})
	var user User
	var userErr error
	go func() {
		defer close(userDone)
		user, userErr = m.fetchBotUser(ctx)
	}()
	gb, err := m.fetchGatewayBot(ctx)
	<-userDone
	switch {
	case userErr == nil:
		m.botUser.Store(&user)
	case errors.Is(userErr, ErrUnauthorized) && err != nil:
		// Nothing vouches for the token: stop, as for /gateway/bot.
		return nil, nil, userErr
	case err == nil || (count > 0 && conc > 0 && url != ""):
		// Said only when start-up goes on: otherwise the /gateway/bot error
		// below is the one that matters, and this would come before it.
		m.log.Warn("GET /users/@me failed; the bot user is read from READY instead", "err", userErr)
	}
	switch {
	case err == nil:
		if count == 0 {
			count = gb.Shards
		}
		if discord := gb.SessionStartLimit.MaxConcurrency; conc > discord {
			m.log.Warn("max_concurrency is above Discord's: identifies beyond Discord's buckets will be refused with op 9 and retried",
				"max_concurrency", conc, "discord_max_concurrency", discord)
		}
		if conc == 0 {
			conc = gb.SessionStartLimit.MaxConcurrency
		}
		if url == "" {
			url = gb.URL
		}
		limOpts = append(limOpts, limiter.WithSessionStartLimit(gb.SessionStartLimit.Total, gb.SessionStartLimit.Remaining, gb.resetAfter()))
	case errors.Is(err, ErrUnauthorized):
		return nil, nil, err
	case count > 0 && conc > 0 && url != "":
		// Everything needed was given: run with an unknown (unlimited) budget.
		m.log.Warn("GET /gateway/bot failed; the daily session start budget is unknown", "err", err)
	default:
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	ids := c.shardIDs
	if len(ids) == 0 {
		ids = make([]int, count) // count <= store.MaxShardCount (validate, fetchGatewayBot)
		for i := range ids {
			ids[i] = i
		}
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	for _, id := range ids {
		if id >= count {
			return nil, nil, fmt.Errorf("%w: WithShardIDs: shard %d is outside [0, %d) (shard count from /gateway/bot)", ErrInvalidOption, id, count)
		}
	}
	limOpts = append(limOpts, limiter.WithWindow(c.identifyWindow), limiter.WithMargin(c.identifyMargin),
		limiter.WithReserve(c.reserve), limiter.WithLogger(c.logger.With("component", "limiter")))
	lim := limiter.New(conc, limOpts...)
	m.seedIdentifies(lim, conc)

	// Saved sessions: those of the configured shards, or of the split
	// layout that replaced them; the rest are deleted.
	var records []store.ShardState
	if c.store != nil {
		records = c.store.Load()
	}
	plan := planLayout(count, ids, len(c.shardIDs) == 0, records)
	if len(plan.stale) > 0 {
		stale := make([]string, len(plan.stale))
		for i, r := range plan.stale {
			stale[i] = ShardKey{r.ShardID, r.ShardCount}.String()
		}
		m.log.Warn("saved sessions that fit no shard to start are dropped; those shards identify", "sessions", stale)
	}
	for _, r := range plan.stale {
		if err := c.store.Delete(r.ShardID, r.ShardCount); err != nil {
			m.log.Warn("store: delete stale session", "shard", r.ShardID, "shards", r.ShardCount, "err", err)
		}
	}
	saved := make(map[ShardKey]gateway.Session, len(plan.saved))
	for k, r := range plan.saved {
		saved[k] = gateway.Session{ID: r.SessionID, Sequence: r.Sequence, ResumeURL: r.ResumeURL, Guilds: r.Guilds}
	}
	if len(plan.keys) != len(ids) || (len(plan.keys) > 0 && plan.keys[0].Count != count) {
		m.log.Info("resuming the layout saved in the state file, not the configured one (re-shard to change it)",
			"shards", len(plan.keys), "configured", len(ids))
	}

	m.mu.Lock()
	m.lim, m.gwURL, m.maxConc, m.recommended = lim, url, conc, gb.Shards
	for k, s := range saved {
		m.saved[k] = s
	}
	m.mu.Unlock()

	entries = make([]*entry, 0, len(plan.keys))
	for i, key := range plan.keys {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, nil, ctx.Err() // a signal during a large start-up
		}
		sess := saved[key]
		if !sess.Resumable() {
			identify = append(identify, key.ID)
		}
		entries = append(entries, m.newEntry(key, RoleActive, sess, lim, url))
	}
	return entries, identify, nil
}

// newEntry builds a shard (not started) wired to the manager.
func (m *Manager) newEntry(key ShardKey, role Role, sess gateway.Session, lim *limiter.Limiter, url string) *entry {
	e := &entry{key: key, started: time.Now(), joined: role == RoleJoining}
	e.role.Store(uint32(role))
	opts := make([]gateway.Option, 0, len(m.cfg.gatewayOpts)+6)
	opts = append(opts, m.cfg.gatewayOpts...)
	opts = append(opts,
		gateway.WithURL(url),
		gateway.WithIdentifyGate(&turnGate{inner: lim, turn: m.turns.of(key.ID)}),
		gateway.WithSession(sess),
		gateway.WithDispatchHandler(m.dispatchHandler(e)),
		gateway.WithStateHandler(func(c gateway.StateChange) { m.onState(e, c) }),
		gateway.WithLogger(m.cfg.logger),
	)
	e.shard = gateway.New(m.token.Reveal(), key.ID, key.Count, opts...)
	return e
}

func (m *Manager) dispatchHandler(e *entry) func(gateway.Dispatch) {
	h := m.cfg.onDispatch
	return func(d gateway.Dispatch) {
		if d.Event == "READY" && m.botUser.Load() == nil {
			m.readBotUser(d.Data)
		}
		if h == nil || !e.delivers() {
			return
		}
		if e.joined && d.Event == "READY" && !e.readyTaken.Swap(true) {
			return
		}
		h(d)
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

// onState runs on the shard's goroutine: record, publish, queue; never block.
// The state is recorded before any job is queued, so whatever a job
// triggers (the close handler, say) already sees it in WaitReady.
func (m *Manager) onState(e *entry, c gateway.StateChange) {
	var jobs [2]job
	n := 0
	switch c.To {
	case gateway.StateReady:
		e.autoSplit.Store(false)
		jobs[n] = job{kind: jobPersist, e: e}
		n++
	case gateway.StateFailed:
		err := c.Err
		if err == nil {
			err = fmt.Errorf("%s", c.Reason)
		}
		e.failErr.Store(&err)
		if m.cfg.autoReshard && e.roleOf() == RoleActive && (c.CloseCode == 4011 || errors.Is(err, gateway.ErrShardingRequired)) {
			e.autoSplit.Store(true)
			jobs[n] = job{kind: jobAutoSplit, e: e}
			n++
		}
		jobs[n] = job{kind: jobFailed, e: e, err: err}
		n++
	}
	// Publish and record as one step for WaitReady (which reads under
	// stateMu): when it finds every shard ready, every event that led there
	// has been published; a subscriber that saw this event and calls
	// WaitReady finds the state recorded.
	from := c.From
	if from == gateway.StateIdle && e.carried.state != gateway.StateIdle {
		from = e.carried.state // the operator sees one shard go on, not a new one
	}
	m.stateMu.Lock()
	m.publish(Event{Type: EventState, Key: e.key, Role: e.roleOf(), From: from, To: c.To,
		Reason: c.Reason, CloseCode: c.CloseCode, Err: c.Err, At: c.At})
	e.handled.Store(uint32(c.To))
	m.stateMu.Unlock()
	for _, j := range jobs[:n] {
		m.pushJob(j)
	}
	m.notify()
}

// notify wakes everyone waiting for a state change.
func (m *Manager) notify() {
	m.notifyMu.Lock()
	close(m.notifyCh)
	m.notifyCh = make(chan struct{})
	m.notifyMu.Unlock()
}

func (m *Manager) changed() <-chan struct{} {
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	return m.notifyCh
}

func (m *Manager) pushJob(j job) {
	m.jobMu.Lock()
	m.jobs = append(m.jobs, j)
	m.jobMu.Unlock()
	select {
	case m.jobWake <- struct{}{}:
	default:
	}
}

// worker runs the work state handlers hand off: store Puts, close handler
// calls, and starting automatic splits.
func (m *Manager) worker() {
	defer m.bg.Done()
	var batch []job
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.jobWake:
		}
		m.jobMu.Lock()
		batch, m.jobs = m.jobs, batch[:0]
		m.jobMu.Unlock()
		persisted := false
		for i, j := range batch {
			switch j.kind {
			case jobPersist:
				m.persist(j.e)
				persisted = true
			case jobFailed:
				if h := m.cfg.onClose; h != nil && m.ctx.Err() == nil {
					// On its own goroutine: the handler may call Close,
					// which waits for this worker.
					go h(j.e.key, j.err)
				}
			case jobAutoSplit:
				m.startAutoSplit(j.e)
			}
			batch[i] = job{}
		}
		if persisted {
			// A READY follows an identify (or a resume): the bucket's time
			// goes to the file with the session.
			m.saveIdentifies()
		}
	}
}

// seedIdentifies tells lim when the previous run's buckets last
// identified, as the store kept it. Saved under another max_concurrency the
// buckets do not map: every bucket then waits for the latest of them.
func (m *Manager) seedIdentifies(lim *limiter.Limiter, conc int) {
	h, ok := m.cfg.store.(IdentifyHistory)
	if !ok {
		return
	}
	savedConc, at := h.LastIdentifies()
	if savedConc == conc {
		for b, t := range at {
			lim.SeedLastIdentify(b, t)
		}
		return
	}
	var latest time.Time
	for _, t := range at {
		if t.After(latest) {
			latest = t
		}
	}
	for b := range conc {
		lim.SeedLastIdentify(b, latest)
	}
}

// saveIdentifies hands the buckets' last identifies to the store, if it
// keeps them (the store writes only what changed).
func (m *Manager) saveIdentifies() {
	h, ok := m.cfg.store.(IdentifyHistory)
	if !ok {
		return
	}
	m.mu.RLock()
	lim, conc := m.lim, m.maxConc
	m.mu.RUnlock()
	if lim == nil {
		return
	}
	if err := h.SetLastIdentifies(conc, lim.LastIdentifies(nil)); err != nil && !errors.Is(err, store.ErrClosed) {
		m.log.Warn("store: save the buckets' last identifies", "err", err)
	}
}

// persist saves e's current session in memory and in the store, if e is
// still registered.
func (m *Manager) persist(e *entry) {
	m.storeMu.Lock()
	defer m.storeMu.Unlock()
	sess := e.shard.Session()
	if !sess.Resumable() {
		return
	}
	m.mu.Lock()
	registered := m.active[e.key.ID] == e || slices.Contains(m.others, e)
	if registered {
		m.saved[e.key] = sess
	}
	m.mu.Unlock()
	if registered {
		m.storePut(e.key, sess)
	}
}

func (m *Manager) storePut(key ShardKey, sess gateway.Session) {
	st := m.cfg.store
	if st == nil || !sess.Resumable() {
		return
	}
	err := st.Put(store.ShardState{ShardID: key.ID, ShardCount: key.Count, SessionID: sess.ID,
		Sequence: sess.Sequence, ResumeURL: sess.ResumeURL, UpdatedAt: time.Now(), Guilds: sess.Guilds})
	if err != nil {
		m.log.Warn("store: put session", "shard", key.ID, "shards", key.Count, "err", err)
	}
}

func (m *Manager) storeDelete(key ShardKey) {
	if st := m.cfg.store; st != nil {
		if err := st.Delete(key.ID, key.Count); err != nil {
			m.log.Warn("store: delete session", "shard", key.ID, "shards", key.Count, "err", err)
		}
	}
}

// sampler computes events/s from the shards' counters and periodically
// saves the latest sequence of every Ready shard.
func (m *Manager) sampler() {
	defer m.bg.Done()
	tick := time.NewTicker(m.cfg.sampleInterval)
	defer tick.Stop()
	last := time.Now()
	lastPersist := last
	for {
		select {
		case <-m.ctx.Done():
			return
		case now := <-tick.C:
			m.mu.RLock()
			view := m.view
			m.mu.RUnlock()
			dt := now.Sub(last).Seconds()
			last = now
			doPersist := now.Sub(lastPersist) >= m.cfg.persistInterval
			if doPersist {
				lastPersist = now
			}
			for _, e := range view {
				st := e.shard.Stats()
				if dt > 0 {
					e.rate.Store(float64bits(float64(st.Events-e.lastEvents) / dt))
				}
				e.lastEvents = st.Events
				if doPersist && st.State == gateway.StateReady && e.roleOf() != RoleRetiring {
					m.persist(e)
				}
			}
			if doPersist {
				m.saveIdentifies() // identifies that got no READY count too
			}
		}
	}
}

// retireLocked adds the counters of e, which is leaving the registry, to
// the lifetime totals. m.mu held; call it in the critical section that
// removes e from the view, so a Snapshot counts e exactly once.
func (m *Manager) retireLocked(e *entry) {
	st := e.shard.Stats()
	m.retired.identifies += st.Identifies
	m.retired.resumes += st.Resumes
}

// rebuildLocked recomputes the view and the routing counts. m.mu held.
func (m *Manager) rebuildLocked() {
	view := make([]*entry, 0, len(m.active)+len(m.others))
	counts := m.counts[:0:0]
	for _, e := range m.active {
		view = append(view, e)
		if !slices.Contains(counts, e.key.Count) {
			counts = append(counts, e.key.Count)
		}
	}
	view = append(view, m.others...)
	slices.SortFunc(view, func(a, b *entry) int {
		if a.key.ID != b.key.ID {
			return a.key.ID - b.key.ID
		}
		return a.key.Count - b.key.Count
	})
	slices.Sort(counts)
	m.view, m.counts = view, counts
}

// WaitReady waits until every active shard is Ready. A shard that failed
// (and is not being split automatically) ends the wait with a *ShardError;
// shards stopped with CloseShard are not waited for.
func (m *Manager) WaitReady(ctx context.Context) error {
	return m.waitUntil(ctx, func() (bool, error) {
		m.mu.RLock()
		life, view := m.life, m.view
		busy := m.resharding
		busyIDs := maps.Clone(m.busy)
		m.mu.RUnlock()
		m.stateMu.RLock()
		defer m.stateMu.RUnlock()
		switch life {
		case stateNew, stateOpening:
			return false, ErrNotOpen
		case stateClosing, stateClosed:
			return false, ErrClosed
		}
		all := true
		for _, e := range view {
			if e.roleOf() != RoleActive {
				continue
			}
			switch gateway.State(e.handled.Load()) {
			case gateway.StateReady, gateway.StateClosed:
			case gateway.StateFailed:
				if !e.autoSplit.Load() && !busy && !busyIDs[e.key.ID] {
					return false, &ShardError{Key: e.key, Err: e.err()}
				}
				all = false
			default:
				all = false
			}
		}
		return all, nil
	})
}

// waitUntil re-evaluates cond after every change of state until it is done
// or fails, ctx ends or the manager closes.
func (m *Manager) waitUntil(ctx context.Context, cond func() (done bool, err error)) error {
	for {
		ch := m.changed() // before cond, so no change between the two is missed
		if done, err := cond(); done || err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-m.ctx.Done():
			return ErrClosed
		}
	}
}

// Close closes every shard keeping its session resumable (close code
// 4000), Puts the sessions, flushes the store and ends every goroutine of
// the manager. A shard that has sent its Identify first gets up to 3 s
// (within ctx) for its READY, so that the identify spent becomes a session
// the next run resumes. A new manager on the same store resumes every shard. Splits
// and re-shards in progress are aborted. A second call waits for the first
// to finish and returns its result.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	switch m.life {
	case stateClosing, stateClosed:
		// Another Close runs or ran: its outcome is this one's, once the
		// sessions are saved (an embedder may close the store right after).
		done := m.closeDone
		m.mu.Unlock()
		select {
		case <-done:
			return m.closeErr
		case <-ctx.Done():
			return fmt.Errorf("manager: close: waiting for the Close under way: %w", ctx.Err())
		}
	}
	wasOpen := m.life != stateNew
	m.life = stateClosing
	m.mu.Unlock()
	defer close(m.closeDone)

	m.cancel()
	// Wait for splits and re-shards to abort (they end their new shards);
	// past ctx, close the shards anyway rather than leave them running.
	var all []error
	if err := waitGroup(ctx, &m.actions); err != nil {
		all = append(all, fmt.Errorf("manager: close: waiting for splits to abort: %w", err))
	}

	m.mu.RLock()
	view := m.view
	m.mu.RUnlock()
	sessions := make([]gateway.Session, len(view))
	errs := make([]error, len(view))
	var wg sync.WaitGroup
	for i, e := range view {
		wg.Go(func() {
			if e.roleOf() == RoleActive {
				m.awaitIdentify(ctx, e)
				sessions[i], errs[i] = e.shard.Close(ctx)
			} else {
				errs[i] = e.shard.End(ctx)
			}
		})
	}
	wg.Wait()
	m.bg.Wait()

	for i, e := range view {
		if errs[i] != nil {
			all = append(all, &ShardError{Key: e.key, Op: "close", Err: errs[i]})
		}
		if e.roleOf() != RoleActive {
			m.storeDelete(e.key)
			continue
		}
		if sessions[i].Resumable() {
			m.mu.Lock()
			m.saved[e.key] = sessions[i]
			m.mu.Unlock()
			m.storePut(e.key, sessions[i])
		}
	}
	if st := m.cfg.store; st != nil && wasOpen {
		m.saveIdentifies()
		if err := st.Flush(ctx); err != nil {
			all = append(all, fmt.Errorf("manager: close: flush store: %w", err))
		}
	}
	m.closeSubscribers()
	m.mu.Lock()
	m.life = stateClosed
	m.closeErr = errors.Join(all...)
	m.mu.Unlock()
	m.notify()
	return m.closeErr
}

// awaitIdentify lets a shard that has sent its Identify get its READY
// before Close closes it, for at most identifyGrace: closed now, the
// identify already spent would be lost and the next run would spend
// another where it could resume.
func (m *Manager) awaitIdentify(ctx context.Context, e *entry) {
	if e.shard.State() != gateway.StateIdentifying {
		return
	}
	grace := time.NewTimer(identifyGrace)
	defer grace.Stop()
	for {
		ch := m.changed() // before the check, so no change is missed
		if e.shard.State() != gateway.StateIdentifying {
			return
		}
		select {
		case <-ch:
		case <-grace.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// claim marks shard id busy for an action and returns its entry.
func (m *Manager) claim(id int) (*entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.openLocked(); err != nil {
		return nil, err
	}
	e := m.active[id]
	if e == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownShard, id)
	}
	if m.busy[id] || m.resharding {
		return nil, &ShardError{Key: e.key, Err: ErrBusy}
	}
	m.busy[id] = true
	m.actions.Add(1)
	return e, nil
}

func (m *Manager) unclaim(id int) {
	m.mu.Lock()
	delete(m.busy, id)
	m.mu.Unlock()
	m.actions.Done()
	m.notify()
}

func (m *Manager) openLocked() error {
	switch m.life {
	case stateOpen:
		return nil
	case stateNew, stateOpening:
		return ErrNotOpen
	}
	return ErrClosed
}

func running(s gateway.State) bool { return s != gateway.StateIdle && !s.Terminal() }

// OpenShard starts a stopped (closed or failed) shard: it resumes if a
// session is saved, else identifies through the limiter. A running shard is
// left alone.
func (m *Manager) OpenShard(ctx context.Context, id int) error {
	e, err := m.claim(id)
	if err != nil {
		return err
	}
	defer m.unclaim(id)
	if running(e.shard.State()) {
		return nil
	}
	return m.restartEntry(e, false)
}

// ResumeShard starts a stopped shard from its saved session: ErrNoSession
// if there is none, ErrRunning if the shard runs.
func (m *Manager) ResumeShard(ctx context.Context, id int) error {
	e, err := m.claim(id)
	if err != nil {
		return err
	}
	defer m.unclaim(id)
	if running(e.shard.State()) {
		return &ShardError{Key: e.key, Op: "resume", Err: ErrRunning}
	}
	return m.restartEntry(e, true)
}

// CloseShard closes a shard keeping its session resumable and saves the
// session (store Put).
func (m *Manager) CloseShard(ctx context.Context, id int) error {
	e, err := m.claim(id)
	if err != nil {
		return err
	}
	defer m.unclaim(id)
	return m.closeEntry(ctx, e)
}

// RestartShard closes a shard keeping its session, then resumes it (or
// identifies, if it had no session).
func (m *Manager) RestartShard(ctx context.Context, id int) error {
	e, err := m.claim(id)
	if err != nil {
		return err
	}
	defer m.unclaim(id)
	if err := m.closeEntry(ctx, e); err != nil {
		return err
	}
	return m.restartEntry(e, false)
}

func (m *Manager) closeEntry(ctx context.Context, e *entry) error {
	sess, err := e.shard.Close(ctx)
	if sess.Resumable() {
		m.storeMu.Lock()
		defer m.storeMu.Unlock()
		m.mu.Lock()
		m.saved[e.key] = sess
		m.mu.Unlock()
		m.storePut(e.key, sess)
	}
	if err != nil {
		return &ShardError{Key: e.key, Op: "close", Err: err}
	}
	return nil
}

// restartEntry replaces the stopped e by a new shard with the same key.
// The caller holds the claim on e's ID.
func (m *Manager) restartEntry(e *entry, needSession bool) error {
	m.mu.Lock()
	sess := m.saved[e.key]
	if needSession && !sess.Resumable() {
		m.mu.Unlock()
		return &ShardError{Key: e.key, Op: "resume", Err: ErrNoSession}
	}
	n := m.newEntry(e.key, RoleActive, sess, m.lim, m.gwURL)
	st := e.shard.Stats()
	n.carried = e.carry(&st)
	if m.active[e.key.ID] == e {
		m.retireLocked(e)
	}
	m.active[e.key.ID] = n
	m.rebuildLocked()
	m.mu.Unlock()
	if err := n.shard.Start(); err != nil {
		return &ShardError{Key: e.key, Op: "open", Err: err}
	}
	m.notify()
	return nil
}

// Shard returns the active shard with this ID, or nil.
func (m *Manager) Shard(id int) *gateway.Shard {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if e := m.active[id]; e != nil {
		return e.shard
	}
	return nil
}

// Shards returns the active shards sorted by ID.
func (m *Manager) Shards() []*gateway.Shard {
	m.mu.RLock()
	view := m.view
	m.mu.RUnlock()
	out := make([]*gateway.Shard, 0, len(view))
	for _, e := range view {
		if e.roleOf() == RoleActive {
			out = append(out, e.shard)
		}
	}
	return out
}

// ShardIDByGuild returns the ID of the active shard serving guildID, or -1
// if none does (not open, or that part of the bot runs elsewhere). Shards of
// different counts (after a split) are routed right: the shard s of count c
// serves the guilds with (guild_id >> 22) % c == s.
func (m *Manager) ShardIDByGuild(guildID uint64) int {
	if e := m.entryByGuild(guildID); e != nil {
		return e.key.ID
	}
	return -1
}

// ShardByGuildID returns the active shard serving guildID, or nil.
func (m *Manager) ShardByGuildID(guildID uint64) *gateway.Shard {
	if e := m.entryByGuild(guildID); e != nil {
		return e.shard
	}
	return nil
}

func (m *Manager) entryByGuild(guildID uint64) *entry {
	ts := guildID >> 22
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, c := range m.counts {
		if e := m.active[int(ts%uint64(c))]; e != nil && e.key.Count == c {
			return e
		}
	}
	return nil
}
