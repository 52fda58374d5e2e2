package manager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/store"
)

// loop is the state the loop goroutine (run) owns: nothing else reads or
// writes it. Messages are functions run on that goroutine (Manager.send);
// whatever readers need is published from here (view, entry records).
type loop struct {
	m    *Manager
	life lifecycle

	active map[int]*entry // by shard ID: the active shards partition the guilds
	others []*entry       // joining and retiring shards
	saved  map[ShardKey]gateway.Session
	busy   map[int]bool           // shard IDs with an action running
	ops    []*replaceOp           // splits and re-shards in progress
	resh   *replaceOp             // the whole re-shard in progress, if any
	closer func(error)            // Close's reply, once closing
	held   map[ShardKey]heldShard // shards closed until the event sink is ready
	// waitingForSink: a worker waits for the sink's Ready.
	waitingForSink bool
	done           bool // the loop ends after this message

	lim         IdentifyLimiter
	gwURL       string
	maxConc     int
	recommended int
	canReshard  bool
	retired     struct{ identifies, resumes uint64 }

	pendingStore []storeOp   // store writes not yet handed to the store writer
	identSaved   []time.Time // the last identifies given to the store
	identBuf     []time.Time
	lastSample   time.Time
	lastPersist  time.Time
	lastPoint    time.Time // the last point of the shards' detail samples
	pointTicks   int       // sample intervals read since then

	dirty   bool // the view must be published again
	changed bool // readers must be notified
}

// testHookBeforeStart, if set, runs as startAll begins (a test cancels
// Open's context there).
var testHookBeforeStart atomic.Pointer[func(*Manager)]

// run is the loop: it starts the shards, then handles messages, store
// hand-overs and its own clock until Close has finished.
func (m *Manager) run(ctx context.Context, l *loop, started chan<- error) {
	defer close(m.loopDone)
	l.dirty = true
	l.publish()
	started <- l.startAll(ctx)
	tick := time.NewTicker(m.cfg.sampleInterval)
	defer tick.Stop()
	for !l.done {
		var out chan []storeOp
		if len(l.pendingStore) > 0 {
			out = m.storeIn
		}
		select {
		case f := <-m.inbox:
			f(l)
		case out <- l.pendingStore:
			l.pendingStore = nil
		case now := <-tick.C:
			l.sample(now)
		}
		l.publish()
	}
	close(m.storeIn) // nothing is pending: the flush was the last write
}

// prepare does Open's network and store work before the loop exists, on
// Open's goroutine, and returns the loop's first state.
func (m *Manager) prepare(ctx context.Context) (*loop, error) {
	c := &m.cfg
	count, conc, url := c.shardCount, c.maxConcurrency, c.gatewayURL
	var setBudget func(IdentifyLimiter)
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
		return nil, userErr
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
		setBudget = func(lim IdentifyLimiter) {
			lim.SetSessionStartLimit(gb.SessionStartLimit.Total, gb.SessionStartLimit.Remaining, gb.resetAfter())
		}
	case errors.Is(err, ErrUnauthorized):
		return nil, err
	case count > 0 && conc > 0 && url != "":
		// Everything needed was given: run with an unknown (unlimited) budget.
		m.log.Warn("GET /gateway/bot failed; the daily session start budget is unknown", "err", err)
	default:
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids := c.shardIDs
	if len(ids) == 0 && !c.noInitialShards {
		ids = make([]int, count) // count <= store.MaxShardCount (validate, fetchGatewayBot)
		for i := range ids {
			ids[i] = i
		}
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	for _, id := range ids {
		if id >= count {
			return nil, fmt.Errorf("%w: WithShardIDs: shard %d is outside [0, %d) (shard count from /gateway/bot)", ErrInvalidOption, id, count)
		}
	}
	lim, err := c.newLimiter(conc)
	switch {
	case err != nil:
		return nil, fmt.Errorf("manager: open: identify limiter: %w", err)
	case lim == nil:
		return nil, fmt.Errorf("manager: open: identify limiter: %w: WithIdentifyLimiter's function returned no limiter", ErrInvalidOption)
	}
	if setBudget != nil {
		setBudget(lim)
	}
	l := &loop{
		m: m, life: stateOpen,
		active: make(map[int]*entry, len(ids)), saved: make(map[ShardKey]gateway.Session), busy: make(map[int]bool),
		held: make(map[ShardKey]heldShard),
		lim:  lim, gwURL: url, maxConc: conc, recommended: gb.Shards,
		canReshard: len(c.shardIDs) == 0 && !c.noInitialShards, lastSample: time.Now(),
	}
	l.lastPersist, l.lastPoint = l.lastSample, l.lastSample
	m.seedIdentifies(l.lim, conc)

	// Saved sessions: those of the configured shards, or of the split
	// layout that replaced them; the rest are deleted.
	var records []store.ShardState
	if c.store != nil {
		records = c.store.Load()
	}
	if c.noInitialShards {
		// The shards come with AddShard: keep every session for them.
		for _, r := range records {
			l.saved[ShardKey{r.ShardID, r.ShardCount}] = gateway.Session{ID: r.SessionID, Sequence: r.Sequence, ResumeURL: r.ResumeURL, Guilds: r.Guilds}
		}
		return l, nil
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
	for k, r := range plan.saved {
		l.saved[k] = gateway.Session{ID: r.SessionID, Sequence: r.Sequence, ResumeURL: r.ResumeURL, Guilds: r.Guilds}
	}
	if len(plan.keys) != len(ids) || (len(plan.keys) > 0 && plan.keys[0].Count != count) {
		m.log.Info("resuming the layout saved in the state file, not the configured one (re-shard to change it)",
			"shards", len(plan.keys), "configured", len(ids))
	}
	for i, key := range plan.keys {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err() // a signal during a large start-up
		}
		l.active[key.ID] = m.newEntry(key, RoleActive, l.saved[key], l)
	}
	return l, nil
}

// startAll starts every shard in ID order: a shard that must identify
// takes its ticket in Start, so they identify in that order whatever order
// their goroutines run in. It stops early when ctx (Open's) ends: a signal
// during a large start-up; Close then closes what started and keeps every
// saved session.
func (l *loop) startAll(ctx context.Context) error {
	if hook := testHookBeforeStart.Load(); hook != nil {
		(*hook)(l.m)
	}
	v := l.m.view.Load()
	identify := 0
	for i, e := range v.entries {
		if i%1024 == 0 && ctx.Err() != nil {
			l.m.log.Info("start-up cancelled", "started", i, "shards", len(v.entries))
			return fmt.Errorf("manager: open: %w with %d of %d shards started", ctx.Err(), i, len(v.entries))
		}
		if !e.infoOf().resumable {
			identify++
		}
		if err := e.shard.Start(); err != nil {
			return &ShardError{Key: e.key, Op: "open", Err: err}
		}
	}
	l.m.log.Info("shards started", "shards", len(v.entries), "identify", identify, "resume", len(v.entries)-identify)
	return nil
}

// publish makes what changed visible: a new view if the registry changed,
// and a wake-up for everyone waiting on a change.
func (l *loop) publish() {
	if l.dirty {
		l.dirty = false
		l.changed = true
		v := &view{life: l.life, active: make(map[int]*entry, len(l.active)), lim: l.lim, gwURL: l.gwURL,
			maxConc: l.maxConc, recommended: l.recommended, resharding: l.resh != nil, canReshard: l.canReshard,
			retired: l.retired}
		v.entries = make([]*entry, 0, len(l.active)+len(l.others))
		for id, e := range l.active {
			v.active[id] = e
			v.entries = append(v.entries, e)
			if !slices.Contains(v.counts, e.key.Count) {
				v.counts = append(v.counts, e.key.Count)
			}
		}
		v.entries = append(v.entries, l.others...)
		slices.SortFunc(v.entries, func(a, b *entry) int {
			if a.key.ID != b.key.ID {
				return a.key.ID - b.key.ID
			}
			return a.key.Count - b.key.Count
		})
		slices.Sort(v.counts)
		for _, op := range l.ops {
			v.ops = append(v.ops, op.describe())
		}
		l.m.view.Store(v)
	}
	if l.changed {
		l.changed = false
		l.m.notify()
	}
}

// notify wakes everyone waiting for a change (changedCh).
func (m *Manager) notify() {
	ch := make(chan struct{})
	close(*m.changed.Swap(&ch))
}

// registered reports whether e is still in the registry.
func (l *loop) registered(e *entry) bool {
	return l.active[e.key.ID] == e || slices.Contains(l.others, e)
}

// onState handles a shard's state change: record it, publish it, and act
// on it (save the session at READY; the close handler and an automatic
// split on a failure; a split's progress).
func (l *loop) onState(e *entry, c gateway.StateChange) {
	if !l.registered(e) && c.To != gateway.StateClosed {
		return // a late callback of an instance the registry has let go
	}
	info := e.infoOf()
	from := c.From
	if from == gateway.StateIdle && e.carried.state != gateway.StateIdle {
		from = e.carried.state // the operator sees one shard go on, not a new one
	}
	var failErr error
	autoSplit := info.autoSplit
	switch c.To {
	case gateway.StateReady:
		autoSplit = false
	case gateway.StateFailed:
		failErr = c.Err
		if failErr == nil {
			failErr = errors.New(c.Reason)
		}
		autoSplit = l.m.cfg.autoReshard && info.role == RoleActive &&
			(c.CloseCode == 4011 || errors.Is(failErr, gateway.ErrShardingRequired))
	}
	e.update(func(i *entryInfo) {
		i.handled, i.autoSplit = c.To, autoSplit
		if failErr != nil {
			i.failErr = failErr
		}
	})
	l.changed = true
	if c.To == gateway.StateFailed {
		l.m.failures.Add(1)
	}
	e.record(from, &c)
	l.m.subs.publish(Event{Type: EventState, Key: e.key, Role: info.role, From: from, To: c.To,
		Reason: c.Reason, CloseCode: c.CloseCode, Err: c.Err, At: c.At})
	switch c.To {
	case gateway.StateReady:
		l.persist(e)
		l.saveIdentifies() // a READY follows an identify (or a resume)
		l.checkHeldResume(e)
	case gateway.StateFailed:
		if h := l.m.cfg.onClose; h != nil && l.life == stateOpen {
			l.m.handlers.Add(1)
			go l.m.callCloseHandler(h, e.key, failErr)
		}
		if autoSplit {
			l.autoSplit(e)
		}
	}
	l.progress(e)
}

// persist saves e's current session in memory and in the store.
func (l *loop) persist(e *entry) {
	if !l.registered(e) {
		return
	}
	if sess := e.shard.Session(); sess.Resumable() {
		l.save(e, sess)
	}
}

// save keeps sess as e's saved session. An unchanged session (an idle
// shard's, every persist interval) is not written again: its record says
// when it last changed.
func (l *loop) save(e *entry, sess gateway.Session) {
	if e.dropped {
		return // handed to another process: its store records are not ours
	}
	sess = l.durable(e.key, sess)
	if old, ok := l.saved[e.key]; ok && old == sess && e.infoOf().resumable {
		return
	}
	l.saved[e.key] = sess
	if !e.infoOf().resumable {
		e.update(func(i *entryInfo) { i.resumable = true })
		l.changed = true
	}
	l.storePut(e.key, sess)
}

// forget deletes the saved session of key, in memory and in the store.
func (l *loop) forget(key ShardKey) {
	delete(l.saved, key)
	l.storeDelete(key)
}

// retire adds the counters of e, which leaves the registry now, to the
// lifetime totals, so a Snapshot counts it exactly once.
func (l *loop) retire(e *entry) {
	st := e.shard.Stats()
	l.retired.identifies += st.Identifies
	l.retired.resumes += st.Resumes
	l.dirty = true
}

// sample computes events/s from the shards' counters while someone reads
// them (a Snapshot in the last two sample intervals: the TUI, a metrics
// scrape), and every persist interval saves the latest sequence of every
// Ready shard whose sequence moved. An idle headless manager of 10,000
// shards so does almost nothing between heartbeats. A rate sampled after a
// pause is the average over the pause.
func (l *loop) sample(now time.Time) {
	l.checkRefused()
	doPersist := now.Sub(l.lastPersist) >= l.m.cfg.persistInterval
	read := now.UnixNano()-l.m.lastRead.Load() < int64(2*l.m.cfg.sampleInterval)
	if !doPersist && !read {
		return
	}
	if doPersist {
		l.lastPersist = now
	}
	dt := now.Sub(l.lastSample).Seconds()
	if read {
		l.lastSample = now
		if l.pointTicks++; l.pointTicks >= detailSampleEvery {
			l.pointTicks = 0
			l.samplePoint(now)
		}
	}
	// Atomic loads only: this is most of what an idle manager does.
	visit := func(e *entry) {
		if read {
			events := e.shard.Events()
			if dt > 0 && events != e.lastEvents {
				e.rate.Store(float64bits(float64(events-e.lastEvents) / dt))
			} else if e.rate.Load() != 0 {
				e.rate.Store(0)
			}
			e.lastEvents = events
		}
		if doPersist && e.shard.Sequence() != l.saved[e.key].Sequence &&
			e.shard.State() == gateway.StateReady && e.infoOf().role != RoleRetiring {
			l.persist(e)
		}
	}
	for _, e := range l.active {
		visit(e)
	}
	for _, e := range l.others {
		visit(e)
	}
	if doPersist {
		l.saveIdentifies() // identifies that got no READY count too
	}
}

// claim marks shard id busy for an action and returns its entry.
func (l *loop) claim(id int) (*entry, error) {
	if l.life != stateOpen {
		return nil, ErrClosed
	}
	e := l.active[id]
	if e == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownShard, id)
	}
	if l.busy[id] || l.resh != nil {
		return nil, &ShardError{Key: e.key, Err: ErrBusy}
	}
	l.busy[id] = true
	e.update(func(i *entryInfo) { i.busy = true })
	l.changed = true
	return e, nil
}

// unclaim ends the action on shard id.
func (l *loop) unclaim(id int) {
	l.m.failures.Add(1) // a failed shard no longer busy is a failure now
	delete(l.busy, id)
	if e := l.active[id]; e != nil && e.infoOf().busy {
		e.update(func(i *entryInfo) { i.busy = false })
	}
	l.changed = true
}

func running(s gateway.State) bool { return s != gateway.StateIdle && !s.Terminal() }

// openShard starts the stopped shard id again: from sess if given, else
// from its saved session (needSession: only from a session).
func (l *loop) openShard(id int, sess *gateway.Session, needSession bool, reply func(error)) {
	e, err := l.claim(id)
	if err != nil {
		reply(err)
		return
	}
	defer l.unclaim(id)
	if running(e.shard.State()) {
		if needSession {
			reply(&ShardError{Key: e.key, Op: "resume", Err: ErrRunning})
		} else {
			reply(nil)
		}
		return
	}
	reply(l.restart(e, sess, needSession))
}

// restart replaces the stopped e by a new shard with the same key, resuming
// sess (or the saved session when sess is nil) and started at once.
func (l *loop) restart(e *entry, sess *gateway.Session, needSession bool) error {
	s := l.saved[e.key]
	if sess != nil {
		s = *sess
	}
	if needSession && !s.Resumable() {
		return &ShardError{Key: e.key, Op: "resume", Err: ErrNoSession}
	}
	if sink := l.m.cfg.sink; sink != nil && s.Resumable() {
		sink.Resumed(e.key, s.ID) // the shard takes its events again, from s
	}
	delete(l.held, e.key)
	n := l.m.newEntry(e.key, RoleActive, s, l)
	st := e.shard.Stats()
	n.carried = e.carry(&st)
	n.track = e.track // one shard goes on: so does its past
	n.track.pointEvents = 0
	n.update(func(i *entryInfo) { i.busy = l.busy[e.key.ID] })
	if l.active[e.key.ID] == e {
		l.retire(e)
	}
	l.active[e.key.ID] = n
	l.dirty = true
	if err := n.shard.Start(); err != nil {
		return &ShardError{Key: e.key, Op: "open", Err: err}
	}
	return nil
}

// closeShard closes shard id resumable on a worker, saves its session,
// and with restart starts it again.
func (l *loop) closeShard(ctx context.Context, id int, restart bool, reply func(error)) {
	e, err := l.claim(id)
	if err != nil {
		reply(err)
		return
	}
	l.m.work(func() {
		sess, err := e.shard.Close(ctx)
		l.m.send(func(l *loop) { l.closedShard(e, sess, err, restart, reply) })
	})
}

func (l *loop) closedShard(e *entry, sess gateway.Session, err error, restart bool, reply func(error)) {
	defer l.unclaim(e.key.ID)
	if sess.Resumable() && l.registered(e) {
		l.save(e, sess)
	}
	switch {
	case err != nil:
		reply(&ShardError{Key: e.key, Op: "close", Err: err})
	case restart && l.life == stateOpen && l.active[e.key.ID] == e:
		reply(l.restart(e, nil, false))
	default:
		reply(nil)
	}
}

// work runs f on a worker goroutine that Close waits for. Only the loop
// starts workers, so every one is counted before Close waits.
func (m *Manager) work(f func()) {
	m.workers.Add(1)
	go func() {
		defer m.workers.Done()
		f()
	}()
}

// close begins the shutdown: no action starts any more, splits and
// re-shards in progress are abandoned, and a worker closes every shard.
func (l *loop) close(ctx context.Context, reply func(error)) {
	l.life, l.closer, l.dirty = stateClosing, reply, true
	l.m.cancelRun()
	for _, op := range slices.Clone(l.ops) {
		l.abandon(op)
	}
	entries := l.m.viewEntries(l)
	l.m.work(func() {
		sessions, errs := l.m.closeAll(ctx, entries)
		l.m.send(func(l *loop) { l.closedAll(ctx, entries, sessions, errs) })
	})
}

// viewEntries lists every entry of the registry (the loop's own view).
func (m *Manager) viewEntries(l *loop) []*entry {
	out := make([]*entry, 0, len(l.active)+len(l.others))
	for _, e := range l.active {
		out = append(out, e)
	}
	return append(out, l.others...)
}

// closeAll closes every active shard resumable and ends the others, all at
// once, on a worker: a shard whose Identify is out gets its READY first.
func (m *Manager) closeAll(ctx context.Context, entries []*entry) ([]gateway.Session, []error) {
	sessions := make([]gateway.Session, len(entries))
	errs := make([]error, len(entries))
	done := make(chan struct{}, len(entries))
	for i, e := range entries {
		go func() { // counted by closeAll's own wait below
			defer func() { done <- struct{}{} }()
			if e.infoOf().role == RoleActive {
				m.awaitIdentify(ctx, e)
				sessions[i], errs[i] = e.shard.Close(ctx)
			} else {
				errs[i] = e.shard.End(ctx)
			}
		}()
	}
	for range entries {
		<-done
	}
	if sink := m.cfg.sink; sink != nil {
		// The shards are closed: what they delivered becomes durable now,
		// or is replayed by Discord after the restart.
		fctx, cancel := context.WithTimeout(ctx, flushTimeout)
		if err := sink.Flush(fctx); err != nil {
			m.log.Warn("the event bus did not make every event durable before the shutdown; Discord replays the rest at the next start", "err", err)
		}
		cancel()
	}
	return sessions, errs
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
		ch := m.changedCh() // before the check, so no change is missed
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

// closedAll saves what the shards gave back, then has the store flushed;
// the loop ends when the flush has answered.
func (l *loop) closedAll(ctx context.Context, entries []*entry, sessions []gateway.Session, errs []error) {
	var all []error
	for i, e := range entries {
		if errs[i] != nil {
			all = append(all, &ShardError{Key: e.key, Op: "close", Err: errs[i]})
		}
		if e.infoOf().role != RoleActive {
			l.forget(e.key)
			continue
		}
		if sessions[i].Resumable() {
			l.save(e, sessions[i])
		}
	}
	l.saveIdentifies()
	finish := func(err error) {
		if err != nil {
			all = append(all, fmt.Errorf("manager: close: flush store: %w", err))
		}
		l.m.subs.close()
		l.life, l.dirty, l.done = stateClosed, true, true
		l.closer(errors.Join(all...))
	}
	if l.m.cfg.store == nil {
		finish(nil)
		return
	}
	l.pendingStore = append(l.pendingStore, storeOp{flush: func(err error) {
		l.m.send(func(l *loop) { finish(err) })
	}, ctx: ctx})
}

// autoSplit starts an automatic split of e, which failed with 4011, unless
// an action holds its ID.
func (l *loop) autoSplit(e *entry) {
	id := e.key.ID
	if l.life != stateOpen || l.active[id] != e || l.busy[id] || l.resh != nil {
		e.update(func(i *entryInfo) { i.autoSplit = false })
		l.m.failures.Add(1)
		return
	}
	l.busy[id] = true
	e.update(func(i *entryInfo) { i.busy = true })
	l.startSplit(l.m.runCtx, e, l.m.cfg.splitCount, true, nil)
}

// seedIdentifies tells lim when the previous run's buckets last
// identified, as the store kept it. Saved under another max_concurrency the
// buckets do not map: every bucket then waits for the latest of them.
func (m *Manager) seedIdentifies(limIface IdentifyLimiter, conc int) {
	h, ok := m.cfg.store.(IdentifyHistory)
	lim, recorder := limIface.(IdentifyRecorder)
	if !ok || !recorder {
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
// keeps them and they changed.
func (l *loop) saveIdentifies() {
	if _, ok := l.m.cfg.store.(IdentifyHistory); !ok {
		return
	}
	rec, ok := l.lim.(IdentifyRecorder)
	if !ok {
		return
	}
	l.identBuf = rec.LastIdentifies(l.identBuf[:0])
	if slices.EqualFunc(l.identBuf, l.identSaved, time.Time.Equal) {
		return
	}
	l.identSaved = slices.Clone(l.identBuf)
	l.pendingStore = append(l.pendingStore, storeOp{identifies: l.identSaved, conc: l.maxConc})
}

func (l *loop) storePut(key ShardKey, sess gateway.Session) {
	if l.m.cfg.store == nil {
		return
	}
	l.pendingStore = append(l.pendingStore, storeOp{put: &store.ShardState{ShardID: key.ID, ShardCount: key.Count,
		SessionID: sess.ID, Sequence: sess.Sequence, ResumeURL: sess.ResumeURL, UpdatedAt: time.Now(), Guilds: sess.Guilds}})
}

func (l *loop) storeDelete(key ShardKey) {
	if l.m.cfg.store == nil {
		return
	}
	l.pendingStore = append(l.pendingStore, storeOp{del: &key})
}

func float64bits(f float64) uint64 { return math.Float64bits(f) }
