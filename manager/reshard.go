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

// cleanupTimeout bounds ending shards after a swap or an abort, which must
// happen even when the caller's context has ended.
const cleanupTimeout = 10 * time.Second

// SplitShard splits the active shard id of count c into k shards id, id+c,
// ..., id+(k-1)c of count c*k with zero downtime: the new shards identify
// through the limiter while the old one keeps serving, their dispatches are
// held back until all are READY, then delivery switches to them in one step
// and the old shard is ended (1000) and its record deleted. If a new shard
// fails, the split is aborted: the new shards are ended and the old one
// keeps serving. Repeated splits use each shard's own count.
func (m *Manager) SplitShard(ctx context.Context, id, k int) error {
	if k < 2 {
		return fmt.Errorf("manager: split shard %d: k = %d, must be at least 2", id, k)
	}
	e, err := m.claim(id)
	if err != nil {
		return err
	}
	if k > store.MaxShardCount/e.key.Count {
		m.unclaim(id)
		return &ShardError{Key: e.key, Op: "split", Err: fmt.Errorf("%w: into %d would make more than %d shards, the largest shard count supported", ErrInvalidOption, k, store.MaxShardCount)}
	}
	end, err := m.split(ctx, e, k)
	m.unclaim(id)
	m.publish(end)
	return err
}

// split replaces old by k shards. It returns the event that ends the split
// (done or aborted) for the caller to publish once it has given up its
// claim on the ID, so that a subscriber acting on that event finds the
// shard free.
func (m *Manager) split(ctx context.Context, old *entry, k int) (Event, error) {
	c := old.key.Count
	keys := make([]ShardKey, k)
	for i := range keys {
		keys[i] = ShardKey{old.key.ID + i*c, c * k}
	}
	m.publish(Event{Type: EventSplitStarted, Key: old.key, Role: RoleActive, At: time.Now(), Reason: fmt.Sprintf("split into %d shards of %d", k, c*k)})
	m.log.Info("split started", "shard", old.key.ID, "shards", c, "into", k)
	if err := m.replace(ctx, []*entry{old}, keys); err != nil {
		// Info: the EventSplitAborted published for it is the warning.
		m.log.Info("split aborted", "shard", old.key.ID, "shards", c, "err", err)
		return Event{Type: EventSplitAborted, Key: old.key, Role: RoleActive, At: time.Now(), Err: err, Reason: err.Error()},
			&ShardError{Key: old.key, Op: "split", Err: errors.Join(ErrAborted, err)}
	}
	m.log.Info("split done", "shard", old.key.ID, "shards", c, "into", k)
	return Event{Type: EventSplitDone, Key: old.key, Role: RoleRetiring, At: time.Now()}, nil
}

// Reshard moves the whole bot to count shards (0 = Discord's current
// recommendation) with zero downtime: a new set identifies beside the old
// one, its dispatches held back, and is swapped in in one step once every
// new shard is READY; the old shards are then ended (1000) and their records
// deleted. A manager limited by WithShardIDs cannot re-shard the whole bot.
func (m *Manager) Reshard(ctx context.Context, count int) error {
	if count < 0 || count > store.MaxShardCount {
		return fmt.Errorf("manager: reshard: %w: count %d is outside [0, %d]", ErrInvalidOption, count, store.MaxShardCount)
	}
	if count == 0 {
		gb, err := m.refreshGatewayBot(ctx)
		if err != nil {
			return fmt.Errorf("manager: reshard: %w", err)
		}
		count = gb.Shards
	}
	m.mu.Lock()
	if err := m.openLocked(); err != nil {
		m.mu.Unlock()
		return err
	}
	if m.explicitIDs {
		m.mu.Unlock()
		return fmt.Errorf("manager: reshard: this manager runs only some shard IDs (WithShardIDs); re-shard every process instead")
	}
	if m.resharding || len(m.busy) > 0 {
		m.mu.Unlock()
		return fmt.Errorf("manager: reshard to %d: %w", count, ErrBusy)
	}
	// Shards already at the new count stay as they are: starting a second
	// shard with the same [id, count] would waste an identify and make two
	// shards share one key (one saved session, one metrics series).
	keep := make(map[ShardKey]bool)
	olds := make([]*entry, 0, len(m.active))
	for _, e := range m.view {
		if e.roleOf() != RoleActive {
			continue
		}
		if e.key.Count == count {
			keep[e.key] = true
		} else {
			olds = append(olds, e)
		}
	}
	if len(olds) == 0 {
		m.mu.Unlock()
		return nil
	}
	m.resharding = true
	m.actions.Add(1)
	m.mu.Unlock()

	end, err := m.reshard(ctx, olds, keep, count)
	m.mu.Lock()
	m.resharding = false
	m.mu.Unlock()
	m.actions.Done()
	m.notify()
	// After the flag is down: a subscriber acting on the event may re-shard.
	m.publish(end)
	return err
}

// reshard replaces olds by the shards of count not in keep. It returns the
// event that ends the re-shard, for Reshard to publish.
func (m *Manager) reshard(ctx context.Context, olds []*entry, keep map[ShardKey]bool, count int) (Event, error) {
	key := ShardKey{0, count}
	keys := make([]ShardKey, 0, count-len(keep))
	for i := range count {
		if k := (ShardKey{i, count}); !keep[k] {
			keys = append(keys, k)
		}
	}
	m.publish(Event{Type: EventReshardStarted, Key: key, At: time.Now()})
	m.log.Info("re-shard started", "shards", count)
	if err := m.replace(ctx, olds, keys); err != nil {
		return Event{Type: EventReshardAborted, Key: key, At: time.Now(), Err: err, Reason: err.Error()},
			fmt.Errorf("manager: reshard to %d: %w", count, errors.Join(ErrAborted, err))
	}
	m.log.Info("re-shard done", "shards", count)
	return Event{Type: EventReshardDone, Key: key, At: time.Now()}, nil
}

// replace starts shards for keys beside olds, holds their dispatches back
// until all are READY, then swaps them in and ends olds. On failure it ends
// the new shards and leaves olds serving.
func (m *Manager) replace(ctx context.Context, olds []*entry, keys []ShardKey) error {
	flag := new(atomic.Bool)
	m.mu.Lock()
	if err := m.openLocked(); err != nil {
		m.mu.Unlock()
		return err
	}
	lim, url := m.lim, m.gwURL
	news := make([]*entry, len(keys))
	for i, k := range keys {
		news[i] = m.newEntry(k, RoleJoining, gateway.Session{}, lim, url)
		news[i].hold.Store(&holdRef{flag: flag, newSide: true})
	}
	for _, o := range olds {
		o.hold.Store(&holdRef{flag: flag, newSide: false})
	}
	m.others = append(m.others, news...)
	m.rebuildLocked()
	m.mu.Unlock()

	if err := m.join(ctx, news); err != nil {
		m.endAll(ctx, news) // a ticket still queued is given back as the shard ends
		m.storeMu.Lock()
		defer m.storeMu.Unlock()
		m.mu.Lock()
		m.others = slices.DeleteFunc(m.others, func(e *entry) bool {
			if slices.Contains(news, e) {
				m.retireLocked(e)
				return true
			}
			return false
		})
		for _, n := range news {
			delete(m.saved, n.key)
		}
		for _, o := range olds {
			o.hold.Store(nil)
		}
		m.rebuildLocked()
		m.mu.Unlock()
		m.notify()
		for _, n := range news {
			m.storeDelete(n.key)
		}
		return err
	}

	// Swap: one step under the lock, one atomic flip for delivery.
	m.mu.Lock()
	for _, o := range olds {
		if m.active[o.key.ID] == o {
			delete(m.active, o.key.ID)
		}
		o.role.Store(uint32(RoleRetiring))
	}
	m.others = slices.DeleteFunc(m.others, func(e *entry) bool { return slices.Contains(news, e) })
	m.others = append(m.others, olds...)
	for _, n := range news {
		n.role.Store(uint32(RoleActive))
		m.active[n.key.ID] = n
	}
	flag.Store(true)
	m.rebuildLocked()
	m.mu.Unlock()
	for _, n := range news {
		n.hold.Store(nil)
	}
	m.notify()

	m.endAll(ctx, olds)
	keep := make(map[ShardKey]bool, len(news))
	for _, n := range news {
		keep[n.key] = true
	}
	m.storeMu.Lock()
	defer m.storeMu.Unlock()
	m.mu.Lock()
	m.others = slices.DeleteFunc(m.others, func(e *entry) bool {
		if slices.Contains(olds, e) {
			m.retireLocked(e)
			return true
		}
		return false
	})
	for _, o := range olds {
		if !keep[o.key] {
			delete(m.saved, o.key)
		}
	}
	m.rebuildLocked()
	m.mu.Unlock()
	for _, o := range olds {
		if !keep[o.key] {
			m.storeDelete(o.key)
		}
	}
	m.notify()
	return nil
}

// join queues news in the limiter in order, starts them and waits until all
// are READY, one fails, ctx ends or the manager closes.
func (m *Manager) join(ctx context.Context, news []*entry) error {
	for _, n := range news { // in key order: they take their tickets in that order
		if err := n.shard.Start(); err != nil {
			return &ShardError{Key: n.key, Op: "start", Err: err}
		}
	}
	return m.waitUntil(ctx, func() (bool, error) {
		m.stateMu.RLock()
		defer m.stateMu.RUnlock()
		all := true // look at every shard: a later one may have failed
		for _, n := range news {
			// The handled state, not the live one: a Failed shard's error
			// is stored by onState, after the gateway publishes the state.
			switch gateway.State(n.handled.Load()) {
			case gateway.StateReady:
			case gateway.StateFailed:
				return false, &ShardError{Key: n.key, Err: n.err()}
			case gateway.StateClosed:
				return false, &ShardError{Key: n.key, Err: gateway.ErrClosed}
			default:
				all = false
			}
		}
		return all, nil
	})
}

// endAll ends shards (1000) concurrently, even if ctx has ended.
func (m *Manager) endAll(ctx context.Context, es []*entry) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, e := range es {
		wg.Go(func() {
			if err := e.shard.End(cctx); err != nil {
				m.log.Warn("end shard", "shard", e.key.ID, "shards", e.key.Count, "err", err)
			}
		})
	}
	wg.Wait()
}

// startAutoSplit splits e, which failed with 4011, on a manager goroutine.
// If a new shard is refused with 4011 too, it splits further (k times the
// split count) up to store.MaxShardCount.
func (m *Manager) startAutoSplit(e *entry) {
	id := e.key.ID
	m.mu.Lock()
	if m.life != stateOpen || m.active[id] != e || m.busy[id] || m.resharding {
		m.mu.Unlock()
		e.autoSplit.Store(false)
		m.notify()
		return
	}
	m.busy[id] = true
	m.actions.Add(1)
	m.mu.Unlock()
	go func() {
		k := m.cfg.splitCount
		for {
			end, err := m.split(m.ctx, e, k)
			if err != nil && errors.Is(err, gateway.ErrShardingRequired) && m.ctx.Err() == nil && e.key.Count*k*m.cfg.splitCount <= store.MaxShardCount {
				m.publish(end) // still claimed: the next, wider split follows
				k *= m.cfg.splitCount
				continue
			}
			if err != nil {
				m.log.Error("automatic split failed", "shard", id, "shards", e.key.Count, "err", err)
				e.autoSplit.Store(false)
			}
			m.unclaim(id) // notifies
			m.publish(end)
			return
		}
	}()
}
