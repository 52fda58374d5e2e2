package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/store"
)

// cleanupTimeout bounds ending shards after a swap or an abort.
const cleanupTimeout = 10 * time.Second

// Phase is where a split or re-shard stands.
type Phase uint8

// The phases of a split or re-shard: joining until every new shard is READY
// (or one fails: aborting), then retiring the old shards after the swap.
const (
	// PhaseJoining: the new shards identify; their dispatches are held back.
	PhaseJoining Phase = iota + 1
	// PhaseRetiring: swapped in; the old shards are being ended.
	PhaseRetiring
	// PhaseAborting: a new shard failed (or ctx ended): the new shards are
	// being ended and the old ones keep serving.
	PhaseAborting
)

// String names the phase.
func (p Phase) String() string {
	switch p {
	case PhaseJoining:
		return "joining"
	case PhaseRetiring:
		return "retiring"
	case PhaseAborting:
		return "aborting"
	}
	return "phase(?)"
}

// Operation is a split or re-shard in progress, in a Snapshot.
type Operation struct {
	// Reshard tells a whole re-shard (to Key.Count shards) from a split
	// of Key; Auto an automatic split (after a 4011).
	Reshard, Auto bool
	Key           ShardKey
	Phase         Phase
	New           []ShardKey // the shards it brings
	Started       time.Time
}

// replaceOp is a split or re-shard: new shards started beside old ones,
// swapped in once all are READY. The loop owns it.
type replaceOp struct {
	reshard bool
	auto    bool
	k       int      // a split's factor (automatic splits widen it on 4011)
	key     ShardKey // the shard split, or {0, count} for a re-shard
	olds    []*entry
	news    []*entry
	keys    []ShardKey        // the new shards' keys, known before they start
	keep    map[ShardKey]bool // a re-shard's shards already at the new count
	flag    *atomic.Bool
	phase   Phase
	started time.Time
	reply   func(error) // nil for an automatic split
	// cancelHook ends the keys hook's context, while it runs.
	cancelHook func()
}

func (op *replaceOp) describe() Operation {
	o := Operation{Reshard: op.reshard, Auto: op.auto, Key: op.key, Phase: op.phase, Started: op.started}
	o.New = slices.Clone(op.keys) // known before they start (see WithShardKeysHook)
	return o
}

// split starts the split of shard id into k shards, claiming it.
func (l *loop) split(ctx context.Context, id, k int, auto bool, reply func(error)) *replaceOp {
	e, err := l.claim(id)
	if err != nil {
		reply(err)
		return nil
	}
	if k > store.MaxShardCount/e.key.Count {
		l.unclaim(id)
		reply(&ShardError{Key: e.key, Op: "split", Err: fmt.Errorf("%w: into %d would make more than %d shards, the largest shard count supported", ErrInvalidOption, k, store.MaxShardCount)})
		return nil
	}
	return l.startSplit(ctx, e, k, auto, reply)
}

// startSplit replaces old, claimed, by k shards id, id+c, ... of count c*k.
func (l *loop) startSplit(ctx context.Context, old *entry, k int, auto bool, reply func(error)) *replaceOp {
	c := old.key.Count
	keys := make([]ShardKey, k)
	for i := range keys {
		keys[i] = ShardKey{old.key.ID + i*c, c * k}
	}
	l.m.subs.publish(Event{Type: EventSplitStarted, Key: old.key, Role: RoleActive, At: time.Now(), Reason: fmt.Sprintf("split into %d shards of %d", k, c*k)})
	l.m.log.Info("split started", "shard", old.key.ID, "shards", c, "into", k)
	op := &replaceOp{auto: auto, k: k, key: old.key, olds: []*entry{old}, reply: reply}
	l.start(ctx, op, keys)
	return op
}

// reshard starts the re-shard of the whole bot to count shards.
func (l *loop) reshard(ctx context.Context, count int, reply func(error)) *replaceOp {
	if l.life != stateOpen {
		reply(ErrClosed)
		return nil
	}
	if l.resh != nil || len(l.busy) > 0 {
		reply(fmt.Errorf("manager: reshard to %d: %w", count, ErrBusy))
		return nil
	}
	// Shards already at the new count stay as they are: starting a second
	// shard with the same [id, count] would waste an identify and make two
	// shards share one key (one saved session, one metrics series).
	keep := make(map[ShardKey]bool)
	var olds []*entry
	for _, e := range l.active {
		if e.key.Count == count {
			keep[e.key] = true
		} else {
			olds = append(olds, e)
		}
	}
	if len(olds) == 0 {
		reply(nil)
		return nil
	}
	slices.SortFunc(olds, func(a, b *entry) int { return a.key.ID - b.key.ID })
	var keys []ShardKey
	for i := range count {
		if k := (ShardKey{i, count}); !keep[k] {
			keys = append(keys, k)
		}
	}
	op := &replaceOp{reshard: true, key: ShardKey{0, count}, olds: olds, keep: keep, reply: reply}
	l.resh = op
	l.m.subs.publish(Event{Type: EventReshardStarted, Key: op.key, At: time.Now()})
	l.m.log.Info("re-shard started", "shards", count)
	l.start(ctx, op, keys)
	return op
}

// start registers op, joining, and starts its new shards: at once, or with
// a keys hook (WithShardKeysHook) once a worker has told it their keys. The
// loop goes on meanwhile; op can be aborted or abandoned while the hook
// runs, and the hook's context (ctx, the split's, or Close) then ends.
func (l *loop) start(ctx context.Context, op *replaceOp, keys []ShardKey) {
	op.flag, op.phase, op.started, op.keys = new(atomic.Bool), PhaseJoining, time.Now(), keys
	l.ops = append(l.ops, op)
	l.dirty = true
	hook := l.m.cfg.keysHook
	if hook == nil {
		l.startNews(op)
		return
	}
	hctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(l.m.runCtx, cancel)
	op.cancelHook = func() { stop(); cancel() }
	keys = slices.Clone(keys)
	l.m.work(func() {
		err := hook(hctx, keys)
		l.m.send(func(l *loop) { l.announced(op, err) })
	})
}

// announced continues op once the keys hook has answered: its new shards
// start, or it is aborted with the hook's error. An op aborted or abandoned
// meanwhile is left alone.
func (l *loop) announced(op *replaceOp, err error) {
	if op.cancelHook != nil {
		op.cancelHook()
		op.cancelHook = nil
	}
	if op.phase != PhaseJoining || !slices.Contains(l.ops, op) || op.news != nil {
		return
	}
	if err != nil {
		op.phase, l.dirty = PhaseAborting, true
		l.aborted(op, fmt.Errorf("shard keys hook: %w", err))
		return
	}
	l.startNews(op)
}

// startNews registers op's new shards, joining, and starts them in key
// order (they take their identify tickets in that order).
func (l *loop) startNews(op *replaceOp) {
	for _, k := range op.keys {
		n := l.m.newEntry(k, RoleJoining, gateway.Session{}, l)
		n.hold.Store(&holdRef{flag: op.flag, newSide: true})
		op.news = append(op.news, n)
	}
	for _, o := range op.olds {
		o.hold.Store(&holdRef{flag: op.flag, newSide: false})
	}
	l.others = append(l.others, op.news...)
	l.dirty = true
	for _, n := range op.news {
		if err := n.shard.Start(); err != nil {
			l.abort(op, &ShardError{Key: n.key, Op: "start", Err: err})
			return
		}
	}
}

// progress checks the joining operations e belongs to: all READY swaps,
// one failed or closed aborts.
func (l *loop) progress(e *entry) {
	for _, op := range slices.Clone(l.ops) {
		if op.phase != PhaseJoining || !slices.Contains(op.news, e) {
			continue
		}
		all := true // look at every shard: another one may have failed
		for _, n := range op.news {
			switch info := n.infoOf(); info.handled {
			case gateway.StateReady:
			case gateway.StateFailed:
				l.abort(op, &ShardError{Key: n.key, Err: info.failErr})
				return
			case gateway.StateClosed:
				l.abort(op, &ShardError{Key: n.key, Err: gateway.ErrClosed})
				return
			default:
				all = false
			}
		}
		if all {
			l.swap(op)
		}
	}
}

// swap puts op's new shards in the old ones' place in one step, with one
// atomic flip for delivery, and has the old ones ended.
func (l *loop) swap(op *replaceOp) {
	for _, o := range op.olds {
		if l.active[o.key.ID] == o {
			delete(l.active, o.key.ID)
		}
		o.update(func(i *entryInfo) { i.role, i.busy = RoleRetiring, false })
	}
	l.others = slices.DeleteFunc(l.others, func(e *entry) bool { return slices.Contains(op.news, e) })
	l.others = append(l.others, op.olds...)
	for _, n := range op.news {
		n.update(func(i *entryInfo) { i.role, i.busy = RoleActive, l.busy[n.key.ID] })
		l.active[n.key.ID] = n
	}
	op.flag.Store(true)
	for _, n := range op.news {
		n.hold.Store(nil)
	}
	op.phase, l.dirty = PhaseRetiring, true
	olds := op.olds
	l.m.work(func() {
		l.m.endAll(olds)
		l.m.send(func(l *loop) { l.oldsEnded(op) })
	})
}

// oldsEnded ends op once its old shards are ended.
func (l *loop) oldsEnded(op *replaceOp) {
	if !slices.Contains(l.ops, op) {
		return // abandoned at Close, which ends the shards itself
	}
	l.others = slices.DeleteFunc(l.others, func(e *entry) bool {
		if slices.Contains(op.olds, e) {
			l.retire(e)
			return true
		}
		return false
	})
	keep := make(map[ShardKey]bool, len(op.news))
	for _, n := range op.news {
		keep[n.key] = true
	}
	for _, o := range op.olds {
		if !keep[o.key] {
			l.forget(o.key)
		}
	}
	l.finish(op, nil)
}

// abort gives op up, if it is still joining: its new shards are ended and
// the old ones keep serving.
func (l *loop) abort(op *replaceOp, err error) {
	if op == nil || op.phase != PhaseJoining || !slices.Contains(l.ops, op) {
		return
	}
	op.phase, l.dirty = PhaseAborting, true
	news := op.news
	l.m.work(func() {
		l.m.endAll(news)
		l.m.send(func(l *loop) { l.aborted(op, err) })
	})
}

// aborted ends op once its new shards are ended. An automatic split whose
// new shards were refused with 4011 too splits further (k times the split
// count) up to store.MaxShardCount, keeping its claim.
func (l *loop) aborted(op *replaceOp, err error) {
	if !slices.Contains(l.ops, op) {
		return // abandoned at Close, which ends the shards itself
	}
	l.dropNews(op)
	if op.auto && l.life == stateOpen && errors.Is(err, gateway.ErrShardingRequired) &&
		op.key.Count*op.k*l.m.cfg.splitCount <= store.MaxShardCount {
		l.m.subs.publish(l.endEvent(op, err)) // still claimed: the next, wider split follows
		l.ops = slices.DeleteFunc(l.ops, func(x *replaceOp) bool { return x == op })
		l.startSplit(l.m.runCtx, op.olds[0], op.k*l.m.cfg.splitCount, true, nil)
		return
	}
	if op.auto {
		l.m.log.Error("automatic split failed", "shard", op.key.ID, "shards", op.key.Count, "err", err)
		op.olds[0].update(func(i *entryInfo) { i.autoSplit = false })
		l.m.failures.Add(1)
	}
	l.finish(op, err)
}

// dropNews takes op's new shards out of the registry and the store, and
// lets the old ones deliver again.
func (l *loop) dropNews(op *replaceOp) {
	l.others = slices.DeleteFunc(l.others, func(e *entry) bool {
		if slices.Contains(op.news, e) {
			l.retire(e)
			return true
		}
		return false
	})
	// Every new key is forgotten, started or not (the keys hook may have
	// answered, or the op been aborted while it ran): a store keeping
	// records per key (a cluster's leases) learns they are not wanted.
	for _, k := range op.keys {
		if !op.keep[k] {
			l.forget(k)
		}
	}
	for _, o := range op.olds {
		o.hold.Store(nil)
	}
	l.dirty = true
}

// finish ends op: its claim is given back before its last event goes out,
// so a subscriber acting on that event finds the shard free.
func (l *loop) finish(op *replaceOp, err error) {
	if op.cancelHook != nil {
		op.cancelHook() // the keys hook's answer no longer matters
		op.cancelHook = nil
	}
	l.ops = slices.DeleteFunc(l.ops, func(x *replaceOp) bool { return x == op })
	if op.reshard {
		l.resh = nil
		l.m.failures.Add(1) // failures the re-shard covered are final now
	} else {
		l.unclaim(op.key.ID)
	}
	l.dirty = true
	ev := l.endEvent(op, err)
	if err != nil {
		if op.reshard {
			err = fmt.Errorf("manager: reshard to %d: %w", op.key.Count, errors.Join(ErrAborted, err))
		} else {
			err = &ShardError{Key: op.key, Op: "split", Err: errors.Join(ErrAborted, err)}
		}
		l.m.log.Info("split or re-shard aborted", "shard", op.key, "err", err) // the event is the warning
	} else {
		l.m.log.Info("split or re-shard done", "shard", op.key, "new", len(op.news))
	}
	l.m.subs.publish(ev)
	if op.reply != nil {
		op.reply(err)
	}
}

// endEvent is the event that ends op.
func (l *loop) endEvent(op *replaceOp, err error) Event {
	now := time.Now()
	switch {
	case op.reshard && err != nil:
		return Event{Type: EventReshardAborted, Key: op.key, At: now, Err: err, Reason: err.Error()}
	case op.reshard:
		return Event{Type: EventReshardDone, Key: op.key, At: now}
	case err != nil:
		return Event{Type: EventSplitAborted, Key: op.key, Role: RoleActive, At: now, Err: err, Reason: err.Error()}
	}
	return Event{Type: EventSplitDone, Key: op.key, Role: RoleRetiring, At: now}
}

// abandon gives op up at Close: the shutdown closes its old shards and
// ends its new ones; its caller is told at once.
func (l *loop) abandon(op *replaceOp) {
	if op.phase == PhaseRetiring {
		l.finish(op, nil) // swapped in: it did what was asked
		return
	}
	for _, o := range op.olds {
		o.hold.Store(nil)
	}
	op.phase = PhaseAborting
	l.finish(op, ErrClosed)
}

// endAll ends shards (1000) concurrently, within cleanupTimeout.
func (m *Manager) endAll(es []*entry) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, e := range es {
		wg.Go(func() {
			if err := e.shard.End(ctx); err != nil {
				m.log.Warn("end shard", "shard", e.key.ID, "shards", e.key.Count, "err", err)
			}
		})
	}
	wg.Wait()
}
