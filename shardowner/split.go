package shardowner

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/shardlease"
)

// prepareSplit is the keys hook (through Hooks): the loop acquires the
// leases of keys, the new shards of a split of a shard this node holds. It
// runs on a goroutine of the manager's.
func (r *Runner) prepareSplit(ctx context.Context, keys []manager.ShardKey) error {
	if !r.started.Load() {
		return fmt.Errorf("shardowner: node %s: split: %w: %w", r.node, ErrSplitRefused, ErrClosed)
	}
	req := splitReq{ctx: ctx, keys: slices.Clone(keys), reply: make(chan error, 1)}
	select {
	case r.splitCh <- req:
	case <-r.done:
		return fmt.Errorf("shardowner: node %s: split: %w: %w", r.node, ErrSplitRefused, ErrClosed)
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-req.reply // the loop answers every request it took
}

// splitParent returns the shard keys are the split of: keys are k shards
// id, id+c, …, id+(k-1)c of count c·k, in that order, as the manager
// makes them.
func splitParent(keys []manager.ShardKey) (shardlease.Key, bool) {
	k := len(keys)
	if k < 2 || keys[0].Count%k != 0 {
		return shardlease.Key{}, false
	}
	c := keys[0].Count / k
	parent := shardlease.Key{ID: keys[0].ID, Count: c}
	if parent.ID < 0 || parent.ID >= c {
		return shardlease.Key{}, false
	}
	for i, key := range keys {
		if key.ID != parent.ID+i*c || key.Count != c*k {
			return shardlease.Key{}, false
		}
	}
	return parent, true
}

// startSplit acquires the leases of a split's new shards and tracks the
// split until the manager tells how it ended. A key held by another live
// node refuses the split; the leases taken meanwhile are deleted (their
// records never had a session).
func (r *Runner) startSplit(ctx context.Context, mkeys []manager.ShardKey) error {
	parent, ok := splitParent(mkeys)
	if !ok {
		return fmt.Errorf("shardowner: node %s: new shards %v: %w: %w", r.node, mkeys, ErrSplitRefused, ErrReshardInCluster)
	}
	ph := r.held[parent]
	if ph == nil {
		return fmt.Errorf("shardowner: node %s: split of shard %s: %w: this node does not hold its lease", r.node, slash(parent), ErrSplitRefused)
	}
	if old := ph.split; old != nil {
		// The manager splits a shard again only once its last split of it
		// aborted (an automatic split widening after 4011): the new shards
		// of that one go, whether or not their deletes arrived yet.
		for _, k := range slices.Clone(old.children) {
			if h := r.held[k]; h != nil && h.split == old {
				close(h.stop)
				delete(r.held, k)
				r.deleteRecord(ctx, k, h.lease, "split aborted")
			}
			r.dropFromSplit(old, k)
		}
	}
	log := r.log.With("split", parent.String(), "into", len(mkeys))
	children := make([]shardlease.Key, len(mkeys))
	leases := make([]*shardlease.Lease, 0, len(mkeys))
	for i, mk := range mkeys {
		key := shardlease.Key{ID: mk.ID, Count: mk.Count}
		children[i] = key
		var err error
		var l *shardlease.Lease
		if _, mine := r.held[key]; mine {
			err = &shardlease.HeldError{Key: key, Owner: r.node}
		} else {
			l, err = r.leases.Acquire(ctx, key)
		}
		if err != nil {
			for j, l := range leases {
				r.deleteRecord(ctx, children[j], l, "split refused")
			}
			log.Warn("split refused: a new shard's lease is not to be had", "shard", key.String(), "err", err)
			return fmt.Errorf("shardowner: node %s: split of shard %s: %w: new shard %s: %w", r.node, slash(parent), ErrSplitRefused, mk, err)
		}
		leases = append(leases, l)
	}
	op := &splitOp{parent: parent, children: children}
	r.splits[parent] = op
	ph.split = op
	for _, l := range leases {
		r.hold(l).split = op
	}
	r.cfg.hooks.track(true, append([]shardlease.Key{parent}, children...)...)
	r.count.Store(int32(len(r.held)))
	log.Info("split's new shards leased", "shards", fmt.Sprint(children))
	return nil
}

// onRetired handles the manager's delete of a split's shard: the shard
// split has ended (the split is done: its record goes, its new shards are
// this node's like any other), or a new shard has (the split aborted: its
// record goes).
func (r *Runner) onRetired(ctx context.Context, key shardlease.Key) {
	hooks := r.cfg.hooks
	if op := r.splits[key]; op != nil {
		delete(r.splits, key)
		hooks.track(false, key)
		for _, k := range op.children {
			if h := r.held[k]; h != nil && h.split == op {
				h.split = nil
			}
			hooks.track(false, k)
		}
		if h := r.held[key]; h != nil && h.split == op {
			close(h.stop)
			delete(r.held, key)
			r.deleteRecord(ctx, key, h.lease, "split done")
		}
		r.count.Store(int32(len(r.held)))
		r.log.Info("split done", "split", key.String(), "shards", fmt.Sprint(op.children))
		return
	}
	for _, op := range r.splits {
		if !slices.Contains(op.children, key) {
			continue
		}
		if h := r.held[key]; h != nil && h.split == op {
			close(h.stop)
			delete(r.held, key)
			r.deleteRecord(ctx, key, h.lease, "split aborted")
		}
		r.dropFromSplit(op, key)
		r.count.Store(int32(len(r.held)))
		return
	}
	hooks.track(false, key)
}

// dropFromSplit takes key out of op; once none of its new shards is left,
// op is over (aborted) and the shard split is an ordinary one again.
func (r *Runner) dropFromSplit(op *splitOp, key shardlease.Key) {
	op.children = slices.DeleteFunc(op.children, func(k shardlease.Key) bool { return k == key })
	r.cfg.hooks.track(false, key)
	if len(op.children) > 0 {
		return
	}
	if r.splits[op.parent] == op {
		delete(r.splits, op.parent)
	}
	if h := r.held[op.parent]; h != nil && h.split == op {
		h.split = nil
	}
	r.cfg.hooks.track(false, op.parent)
	r.log.Info("split over without taking the shard's place", "split", op.parent.String())
}

// retireLeftover deletes a record a split left behind (see classify), once
// this node can take its lease.
func (r *Runner) retireLeftover(ctx context.Context, key shardlease.Key) {
	l, err := r.leases.Acquire(ctx, key)
	if err != nil {
		if !errors.Is(err, shardlease.ErrHeld) && ctx.Err() == nil {
			r.log.Warn("acquire of a split's leftover record failed", "shard", key.String(), "err", err)
		}
		return
	}
	r.deleteRecord(ctx, key, l, "left over by a split")
}

// deleteRecord deletes key's record with its lease l; a failure other than
// a lost lease is retried at each reconcile (the table renews l meanwhile).
func (r *Runner) deleteRecord(ctx context.Context, key shardlease.Key, l *shardlease.Lease, why string) {
	log := r.log.With("shard", key.String(), "why", why)
	if h := r.cfg.hooks; h != nil {
		// Sessions the manager queued before (the last of a shard just
		// ended) are written while the lease is held, not after.
		fctx, cancel := context.WithTimeout(ctx, r.cfg.ttl)
		if err := h.inner.Flush(fctx); err != nil {
			log.Debug("flush before the delete", "err", err)
		}
		cancel()
	}
	err := r.leases.Delete(ctx, key, l)
	switch {
	case err == nil:
		delete(r.doomed, key)
		log.Info("record deleted")
	case errors.Is(err, shardlease.ErrLost) || errors.Is(err, shardlease.ErrReleased):
		delete(r.doomed, key)
		log.Warn("record not deleted: its lease is gone", "err", err)
	default:
		r.doomed[key] = l
		if ctx.Err() == nil {
			log.Warn("delete of the record failed; retrying", "err", err)
		}
	}
}

// retryDoomed retries the deletes that failed.
func (r *Runner) retryDoomed(ctx context.Context) {
	for key, l := range r.doomed {
		r.deleteRecord(ctx, key, l, "retry")
	}
}

// slash writes key as the manager and the TUI do: "5/8".
func slash(key shardlease.Key) string { return manager.ShardKey{ID: key.ID, Count: key.Count}.String() }
