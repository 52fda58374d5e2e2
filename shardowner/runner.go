package shardowner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/shardlease"
	"github.com/shardtop/shardtop/store"
)

// Manager is what a Runner needs from the shard manager (a *manager.Manager
// opened WithNoInitialShards whose Store is the lease table's).
type Manager interface {
	// AddShard starts key, resuming sess when it is resumable.
	AddShard(ctx context.Context, key manager.ShardKey, sess gateway.Session) error
	// RemoveShard stops shard id and takes it out; with save its session
	// stays resumable and is returned.
	RemoveShard(ctx context.Context, id int, save bool) (gateway.Session, error)
}

// Leases is what a Runner needs from the lease table (a *shardlease.Table).
type Leases interface {
	// Node names this process.
	Node() string
	// Acquire takes key's lease when it is free or expired.
	Acquire(ctx context.Context, key shardlease.Key) (*shardlease.Lease, error)
	// Records are the records as the table last saw them.
	Records() []shardlease.Record
	// Changes is signalled when the records change.
	Changes() <-chan struct{}
	// Delete removes the record of a retired shard with its lease.
	Delete(ctx context.Context, key shardlease.Key, l *shardlease.Lease) error
}

// Mode says which shards a Runner runs. Make one with Fixed or Balanced.
type Mode struct {
	balanced bool
	ids      []int
	count    int
}

// Fixed is the mode of a process given the shard IDs it runs (out of
// count): it runs each of them whose lease it wins, and watches the rest to
// take them over when their owner goes.
func Fixed(ids []int, count int) Mode {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return Mode{ids: slices.Compact(ids), count: count}
}

// Balanced is the mode of a process sharing count shards evenly with the
// other live nodes (see Targets).
func Balanced(count int) Mode { return Mode{balanced: true, count: count} }

// IDs returns the shard IDs of a Fixed mode, sorted (nil when Balanced).
func (m Mode) IDs() []int { return slices.Clone(m.ids) }

// Count returns the mode's shard count.
func (m Mode) Count() int { return m.count }

// IsBalanced reports whether the mode is Balanced.
func (m Mode) IsBalanced() bool { return m.balanced }

// String describes the mode: "balanced/8" or "fixed 0,1,2/8".
func (m Mode) String() string {
	if m.balanced {
		return "balanced/" + strconv.Itoa(m.count)
	}
	s := make([]string, len(m.ids))
	for i, id := range m.ids {
		s[i] = strconv.Itoa(id)
	}
	return fmt.Sprintf("fixed %s/%d", joinComma(s), m.count)
}

func joinComma(s []string) string { return strings.Join(s, ",") }

func (m Mode) validate() error {
	if m.count < 1 || m.count > store.MaxShardCount {
		return fmt.Errorf("%w: shard count %d, must be 1..%d", ErrInvalidOption, m.count, store.MaxShardCount)
	}
	if !m.balanced && len(m.ids) == 0 {
		return fmt.Errorf("%w: fixed mode with no shard IDs", ErrInvalidOption)
	}
	for _, id := range m.ids {
		if id < 0 || id >= m.count {
			return fmt.Errorf("%w: shard %d out of range for count %d", ErrInvalidOption, id, m.count)
		}
	}
	return nil
}

// held is a shard this Runner runs.
type held struct {
	lease *shardlease.Lease
	stop  chan struct{} // ends the lost forwarder
	// rescued is the live set (joined) when the shard was adopted as an
	// orphan, until when it is kept; "" for a shard adopted as its target's.
	rescued      string
	rescuedUntil time.Time
	// split is the split in progress this shard is part of (the shard
	// split, or one of its new shards), nil otherwise. Such a shard is
	// never handed over: the manager's split owns it until it ends.
	split *splitOp
}

// splitOp is a split of a held shard whose new shards' leases this Runner
// holds, until the manager tells (through Hooks) how it ended.
type splitOp struct {
	parent   shardlease.Key
	children []shardlease.Key // those whose records are not deleted yet
}

type lostMsg struct {
	key   shardlease.Key
	lease *shardlease.Lease
}

type splitReq struct {
	ctx   context.Context
	keys  []manager.ShardKey
	reply chan error
}

// Runner owns the shards of one process: it takes their leases, starts them
// in the manager, hands them over and stops them when the lease is lost.
// Its state belongs to one goroutine; its methods are safe for concurrent use.
type Runner struct {
	cfg    config
	mode   Mode
	node   string
	leases Leases
	mgr    Manager
	js     jetstream.JetStream
	log    *slog.Logger

	members *members
	count   atomic.Int32

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	leaveCh chan leaveReq
	splitCh chan splitReq
	lost    chan lostMsg
	done    chan struct{} // closed when the loop ends
	started atomic.Bool
	closeMu sync.Once

	// loop-owned
	held        map[shardlease.Key]*held
	free        map[shardlease.Key]freeSeen          // records seen free, for the rescue of orphans
	splits      map[shardlease.Key]*splitOp          // by the shard split
	doomed      map[shardlease.Key]*shardlease.Lease // records to delete, retried until done
	nextHandoff time.Time
	beatCancel  context.CancelFunc
	beatDone    chan struct{} // closed when the heartbeat goroutine ends
}

// freeSeen is when the loop first saw a record free at a revision.
type freeSeen struct {
	rev uint64
	at  time.Time
}

type leaveReq struct {
	ctx   context.Context
	reply chan error
}

// New makes a Runner for node leases.Node(), driving mgr in mode. js holds
// the nodes bucket. Start it with Start.
func New(leases Leases, mgr Manager, js jetstream.JetStream, mode Mode, opts ...Option) (*Runner, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := mode.validate(); err != nil {
		return nil, err
	}
	node := leases.Node()
	if node == "" {
		return nil, fmt.Errorf("%w: empty node name", ErrInvalidOption)
	}
	r := &Runner{cfg: cfg, mode: mode, node: node, leases: leases, mgr: mgr, js: js,
		log:     cfg.logger.With("component", "shardowner", "node", node),
		leaveCh: make(chan leaveReq), splitCh: make(chan splitReq), lost: make(chan lostMsg), done: make(chan struct{}),
		held: map[shardlease.Key]*held{}, free: map[shardlease.Key]freeSeen{},
		splits: map[shardlease.Key]*splitOp{}, doomed: map[shardlease.Key]*shardlease.Lease{}}
	if cfg.hooks != nil {
		if err := cfg.hooks.attach(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Node returns this process's node name.
func (r *Runner) Node() string { return r.node }

// Mode returns the Runner's mode.
func (r *Runner) Mode() Mode {
	m := r.mode
	m.ids = slices.Clone(m.ids)
	return m
}

// Nodes returns the live nodes as this Runner sees them, sorted, itself
// among them. Call it after Start has returned (nil before).
func (r *Runner) Nodes() []string {
	if r.members == nil {
		return nil
	}
	live, _ := r.members.live(time.Now())
	return live
}

// Leases returns how many shard leases the Runner holds now.
func (r *Runner) Leases() int { return int(r.count.Load()) }

// Start creates the nodes bucket, writes this node's first heartbeat, waits
// for the view of the other nodes and starts the Runner's goroutines.
func (r *Runner) Start(ctx context.Context) (err error) {
	if !r.started.CompareAndSwap(false, true) {
		return fmt.Errorf("shardowner: node %s: already started", r.node)
	}
	defer func() {
		if err != nil {
			r.started.Store(false) // nothing runs yet: Start may be tried again
		}
	}()
	m, err := openMembers(ctx, r.js, r.node, r.cfg)
	if err != nil {
		return err
	}
	r.members = m
	if err := m.beat(ctx, 0); err != nil {
		return err
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	loaded := make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := m.watch(r.ctx, loaded); err != nil {
			r.log.Error("nodes watch ended", "err", err)
		}
	}()
	select {
	case <-loaded:
	case <-ctx.Done():
		r.cancel()
		r.wg.Wait()
		return fmt.Errorf("shardowner: node %s: waiting for the nodes bucket: %w", r.node, ctx.Err())
	}
	var bctx context.Context
	bctx, r.beatCancel = context.WithCancel(r.ctx)
	r.beatDone = make(chan struct{})
	r.wg.Add(2)
	go func() { defer r.wg.Done(); defer close(r.beatDone); r.heartbeats(bctx) }()
	go func() { defer r.wg.Done(); r.loop() }()
	return nil
}

func (r *Runner) heartbeats(ctx context.Context) {
	t := time.NewTicker(r.cfg.ttl / 3)
	defer t.Stop()
	for n := uint64(1); ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.members.beat(ctx, n); err != nil && ctx.Err() == nil {
			r.log.Warn("heartbeat failed", "err", err)
		}
	}
}

// Close stops the Runner without handing anything over: its shards keep
// running in the manager and its leases stay held until the table closes
// (and then expire for the others). Use Leave for a graceful stop.
func (r *Runner) Close() {
	r.closeMu.Do(func() {
		if r.cancel != nil {
			r.cancel()
		}
	})
	r.wg.Wait()
}

// Leave hands every shard over: it deletes this node's heartbeat, so the
// others stop counting it, then for each shard removes it from the manager
// keeping its session and releases its lease with that session, and stops
// the Runner. The others adopt the shards by resuming them. The shards of a
// split under way (the shard split and its new shards) are not handed over:
// the manager's split owns them; their leases expire once the table closes,
// and Leave's error counts them.
func (r *Runner) Leave(ctx context.Context) error {
	if !r.started.Load() || r.cancel == nil {
		return ErrClosed
	}
	req := leaveReq{ctx: ctx, reply: make(chan error, 1)}
	select {
	case r.leaveCh <- req:
	case <-r.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	select {
	case err = <-req.reply:
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.Close()
	return err
}

func (r *Runner) tick() time.Duration { return max(r.cfg.ttl/10, 20*time.Millisecond) }

func (r *Runner) loop() {
	defer close(r.done)
	defer r.stopForwarders()
	changes := r.leases.Changes()
	var retired <-chan struct{}
	if r.cfg.hooks != nil {
		retired = r.cfg.hooks.notify
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := r.reconcile(r.ctx)
		timer.Reset(wait)
		select {
		case <-r.ctx.Done():
			return
		case <-changes:
		case <-r.members.notify:
		case <-timer.C:
		case m := <-r.lost:
			r.onLost(m)
		case req := <-r.splitCh:
			req.reply <- r.startSplit(req.ctx, req.keys)
		case <-retired:
			for _, k := range r.cfg.hooks.take() {
				r.onRetired(r.ctx, k)
			}
		case req := <-r.leaveCh:
			req.reply <- r.leave(req.ctx)
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (r *Runner) stopForwarders() {
	for k, h := range r.held {
		close(h.stop)
		delete(r.held, k)
	}
	r.count.Store(0)
}

// desired reports, for a view of live nodes, whether this node should run
// key: whether it owns key's base ID (see BaseID).
func (r *Runner) desired(targets []string, key shardlease.Key) bool {
	id, ok := BaseID(key, r.mode.count)
	if !ok {
		return false
	}
	if r.mode.balanced {
		return id < len(targets) && targets[id] == r.node
	}
	_, ok = slices.BinarySearch(r.mode.ids, id)
	return ok
}

// target names key's target for a log line.
func target(targets []string, key shardlease.Key, base int) string {
	if id, ok := BaseID(key, base); ok && id < len(targets) {
		return "target " + targets[id]
	}
	return "not in this node's range"
}

// reconcile brings the held shards towards the desired ones and returns
// when to look again.
func (r *Runner) reconcile(ctx context.Context) time.Duration {
	now := time.Now()
	wait := r.tick()
	r.retryDoomed(ctx)
	var targets []string
	var liveSet string
	if r.mode.balanced {
		live, _ := r.members.live(now)
		targets = Targets(live, r.mode.count)
		liveSet = joinComma(live)
	}
	// Hand-offs, one per HandoffInterval.
	for _, key := range sortedKeys(r.held) {
		h := r.held[key]
		if h.split != nil || r.desired(targets, key) {
			continue
		}
		if h.rescued != "" {
			if h.rescued == liveSet && now.Before(h.rescuedUntil) {
				continue // its target did not take it: keep it for now
			}
			h.rescued = ""
		}
		if d := r.nextHandoff.Sub(now); d > 0 {
			wait = min(wait, d)
			break
		}
		r.handoff(ctx, key, target(targets, key, r.mode.count))
		r.nextHandoff = time.Now().Add(r.cfg.handoff)
		if r.cfg.handoff > 0 {
			wait = min(wait, r.cfg.handoff)
			break
		}
	}
	// The shards of the mode's count and those splits made of them.
	recs := make(map[shardlease.Key]shardlease.Record)
	keys := make([]shardlease.Key, 0, r.mode.count)
	for id := range r.mode.count {
		keys = append(keys, shardlease.Key{ID: id, Count: r.mode.count})
	}
	mixed := false // records of split shards: keys need classify
	for _, rec := range r.leases.Records() {
		if _, ok := BaseID(rec.Key, r.mode.count); ok {
			recs[rec.Key] = rec
			if rec.Key.Count != r.mode.count {
				keys = append(keys, rec.Key)
				mixed = true
			}
		}
	}
	for _, key := range keys {
		if _, ok := r.held[key]; ok {
			continue
		}
		if _, ok := r.doomed[key]; ok {
			continue
		}
		rec, ok := recs[key]
		if ok && (rec.Owner != "" && !rec.Expired || rec.Err != nil) {
			delete(r.free, key)
			continue // held by a live owner: wait for a change
		}
		if mixed && key.Count != r.mode.count {
			if a, live := liveAncestor(key, recs); live {
				// A split's record while the shard it came from runs: the
				// split never completed. The shard's owner deletes it.
				delete(r.free, key)
				if h := r.held[a]; h != nil && h.split == nil {
					r.retireLeftover(ctx, key)
				}
				continue
			}
		}
		st := standingShard
		if mixed {
			st = classify(key, recs)
		}
		switch st {
		case standingVanished:
			delete(r.free, key)
			continue // retired by a split: not a shard any more
		case standingSuperseded, standingStray:
			delete(r.free, key)
			if r.desired(targets, key) {
				r.retireLeftover(ctx, key)
			}
			continue
		}
		if !r.desired(targets, key) && !r.orphan(now, key, rec, ok) {
			continue
		}
		if h := r.adopt(ctx, key); h != nil && !r.desired(targets, key) {
			h.rescued, h.rescuedUntil = liveSet, now.Add(rescueHold*r.cfg.ttl)
		}
		if ctx.Err() != nil {
			break
		}
	}
	r.count.Store(int32(len(r.held)))
	return wait
}

// orphan reports whether a balanced shard that is not this node's has lain
// free (released, or never taken) at one revision for two TTLs of this
// node's clock: its target is live but does not take it (stalled, or of
// another mode), so anyone may run it rather than nobody. Acquire is a
// compare-and-set, so one node wins; the target takes it over later by the
// usual hand-off.
func (r *Runner) orphan(now time.Time, key shardlease.Key, rec shardlease.Record, exists bool) bool {
	if !r.mode.balanced {
		return false
	}
	var rev uint64
	if exists {
		rev = rec.Revision
	}
	f, ok := r.free[key]
	if !ok || f.rev != rev {
		r.free[key] = freeSeen{rev: rev, at: now}
		return false
	}
	return now.Sub(f.at) >= 2*r.cfg.ttl
}

func sortedKeys(m map[shardlease.Key]*held) []shardlease.Key {
	keys := make([]shardlease.Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

// rescueHold is how many TTLs an orphan adopted by a node that is not its
// target stays there while the live nodes do not change.
const rescueHold = 10

// adopt acquires key's lease and starts it from the record's session;
// it returns the shard's entry, or nil when it did not adopt it.
func (r *Runner) adopt(ctx context.Context, key shardlease.Key) *held {
	log := r.log.With("shard", key.String())
	l, err := r.leases.Acquire(ctx, key)
	if err != nil {
		if !errors.Is(err, shardlease.ErrHeld) && ctx.Err() == nil {
			log.Warn("acquire failed", "err", err)
		}
		return nil
	}
	st := l.Session()
	sess := gateway.Session{ID: st.SessionID, Sequence: st.Sequence, ResumeURL: st.ResumeURL, Guilds: st.Guilds}
	if err := r.mgr.AddShard(ctx, manager.ShardKey{ID: key.ID, Count: key.Count}, sess); err != nil {
		log.Warn("manager did not take the shard; releasing its lease", "err", err)
		if err := l.Release(ctx, &st); err != nil {
			log.Warn("release failed", "err", err)
		}
		return nil
	}
	delete(r.free, key)
	log.Info("shard adopted", "resume", sess.Resumable(), "epoch", l.Epoch())
	return r.hold(l)
}

// hold registers l as held and forwards its loss to the loop.
func (r *Runner) hold(l *shardlease.Lease) *held {
	key := l.Key()
	h := &held{lease: l, stop: make(chan struct{})}
	r.held[key] = h
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case <-l.Lost():
			select {
			case r.lost <- lostMsg{key: key, lease: l}:
			case <-h.stop:
			case <-r.ctx.Done():
			}
		case <-h.stop:
		}
	}()
	return h
}

// handoff stops shard key keeping its session and releases its lease with it.
func (r *Runner) handoff(ctx context.Context, key shardlease.Key, why string) {
	h := r.held[key]
	log := r.log.With("shard", key.String())
	sess, err := r.mgr.RemoveShard(ctx, key.ID, true)
	st := h.lease.Session()
	switch {
	case err == nil:
		st = store.ShardState{ShardID: key.ID, ShardCount: key.Count, SessionID: sess.ID, Sequence: sess.Sequence,
			ResumeURL: sess.ResumeURL, Guilds: sess.Guilds, UpdatedAt: time.Now()}
	case errors.Is(err, manager.ErrUnknownShard):
		// Not running here any more: hand over the last saved session.
	default:
		log.Warn("remove for hand-off failed; keeping the shard", "err", err)
		return
	}
	close(h.stop)
	delete(r.held, key)
	if err := h.lease.Release(ctx, &st); err != nil {
		log.Warn("release failed", "err", err)
		return
	}
	log.Info("shard handed over", "why", why, "seq", st.Sequence)
}

// onLost stops a shard whose lease was lost, without saving it.
func (r *Runner) onLost(m lostMsg) {
	h, ok := r.held[m.key]
	if !ok || h.lease != m.lease {
		return
	}
	close(h.stop)
	delete(r.held, m.key)
	r.count.Store(int32(len(r.held)))
	if op := h.split; op != nil {
		// The manager's split owns the shard: it cannot be removed now.
		// Its record is no longer this node's to delete either.
		r.log.Error("lease of a shard in a split lost; the split's shards write nothing more for it",
			"shard", m.key.String(), "split", op.parent.String(), "err", m.lease.Err())
		r.dropFromSplit(op, m.key)
		return
	}
	r.log.Warn("lease lost; stopping the shard", "shard", m.key.String(), "err", m.lease.Err())
	if _, err := r.mgr.RemoveShard(r.ctx, m.key.ID, false); err != nil && !errors.Is(err, manager.ErrUnknownShard) {
		r.log.Warn("remove of a lost shard failed", "shard", m.lease.Key().String(), "err", err)
	}
}

// leave hands every shard over and ends the heartbeat.
func (r *Runner) leave(ctx context.Context) error {
	// No heartbeat may land after the delete, or the others would count
	// this node live for another TTL and leave its share unrun.
	r.beatCancel()
	<-r.beatDone
	err := r.members.leave(ctx)
	for i, key := range sortedKeys(r.held) {
		if r.held[key].split != nil {
			continue // the manager's split owns it; its lease expires
		}
		if i > 0 && r.cfg.handoff > 0 {
			t := time.NewTimer(r.cfg.handoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return errors.Join(err, ctx.Err())
			}
		}
		r.handoff(ctx, key, "leaving")
	}
	r.count.Store(int32(len(r.held)))
	if n := len(r.held); n > 0 {
		err = errors.Join(err, fmt.Errorf("shardowner: node %s: %d shards not handed over", r.node, n))
	}
	return err
}
