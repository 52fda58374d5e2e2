package shardowner

import (
	"context"
	"fmt"
	"sync"

	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/shardlease"
	"github.com/shardtop/shardtop/store"
)

// SessionStore is the manager's session store a Hooks wraps (the lease
// table's *shardlease.Store).
type SessionStore interface {
	Load() []store.ShardState
	Put(store.ShardState) error
	Delete(shardID, shardCount int) error
	Flush(ctx context.Context) error
}

// Hooks connects a manager, which is made before its Runner, to the
// Runner's splits: give the manager Store() as its Store
// (manager.WithStore) and KeysHook as its shard keys hook
// (manager.WithShardKeysHook), and the Runner WithHooks(h).
//
// Through KeysHook the Runner acquires the leases of a split's new shards
// before they start. Through the Store it learns how the split ended: the
// manager deletes the session of the shard split once it has ended (the
// split is done), or those of the new shards once they have ended (it
// aborted); the Runner then deletes those records with their leases.
// Both arrive in the manager's order and are never dropped.
type Hooks struct {
	inner SessionStore
	st    hooksStore

	mu      sync.Mutex
	runner  *Runner
	tracked map[shardlease.Key]bool // keys of splits in progress: their deletes are the Runner's
	retired []shardlease.Key        // deletes of tracked keys, not yet taken by the Runner
	notify  chan struct{}           // cap 1: retired grew
}

// NewHooks makes the Hooks of a manager whose sessions go to inner.
func NewHooks(inner SessionStore) *Hooks {
	h := &Hooks{inner: inner, tracked: map[shardlease.Key]bool{}, notify: make(chan struct{}, 1)}
	h.st = hooksStore{h}
	return h
}

// Store returns the manager's Store: inner's, but the delete of a split's
// shard goes to the Runner, which deletes its record.
func (h *Hooks) Store() manager.Store { return h.st }

// KeysHook is the manager's shard keys hook: it has the Runner acquire the
// leases of keys, the new shards of a split, before they start. An error
// (a key held by another live node, this node not owning the shard split,
// no Runner yet) refuses the split.
func (h *Hooks) KeysHook(ctx context.Context, keys []manager.ShardKey) error {
	h.mu.Lock()
	r := h.runner
	h.mu.Unlock()
	if r == nil {
		return fmt.Errorf("shardowner: split into %d shards: %w: no ownership runner on this node yet", len(keys), ErrSplitRefused)
	}
	return r.prepareSplit(ctx, keys)
}

// attach makes r the Runner the hooks serve.
func (h *Hooks) attach(r *Runner) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.runner != nil {
		return fmt.Errorf("%w: WithHooks: these hooks serve node %s already", ErrInvalidOption, h.runner.node)
	}
	h.runner = r
	return nil
}

// track marks keys as a split's, whose deletes go to the Runner (on) or
// not any more (off).
func (h *Hooks) track(on bool, keys ...shardlease.Key) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		if on {
			h.tracked[k] = true
		} else {
			delete(h.tracked, k)
		}
	}
}

// take returns the retired keys not yet taken.
func (h *Hooks) take() []shardlease.Key {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.retired
	h.retired = nil
	return out
}

// hooksStore is the Store of a Hooks.
type hooksStore struct{ h *Hooks }

func (s hooksStore) Load() []store.ShardState      { return s.h.inner.Load() }
func (s hooksStore) Put(st store.ShardState) error { return s.h.inner.Put(st) }
func (s hooksStore) Flush(ctx context.Context) error {
	return s.h.inner.Flush(ctx)
}

// Delete hands the delete of a split's shard to the Runner (it never
// blocks on it: the manager's store writer may be what the Runner waits
// for); others go to the inner store.
func (s hooksStore) Delete(id, count int) error {
	h := s.h
	k := shardlease.Key{ID: id, Count: count}
	h.mu.Lock()
	if !h.tracked[k] {
		h.mu.Unlock()
		return h.inner.Delete(id, count)
	}
	h.retired = append(h.retired, k)
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
	return nil
}
