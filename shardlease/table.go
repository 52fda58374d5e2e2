package shardlease

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardtop/shardtop/store"
)

// Record is one shard's record as a Table last saw it.
type Record struct {
	Key Key
	// Owner is the node holding the lease, "" when it is free (released or
	// never acquired).
	Owner string
	// Epoch counts the acquisitions of the lease.
	Epoch uint64
	// Session is the shard's session (SessionID "" when it has none).
	Session store.ShardState
	// Revision is the KV revision of the record: the fencing token.
	Revision uint64
	// Updated is when the server stored this revision (server time, shown
	// to people; expiry never uses it).
	Updated time.Time
	// Expired reports that Owner is set and this Table has seen Revision
	// unchanged for the TTL of its own clock: the owner is gone.
	Expired bool
	// Err is a *MalformedError when the value could not be read. Such a
	// record counts as held by an unknown owner and never expires.
	Err error
}

// entry is a record in the view, with when this Table first saw its
// revision (monotonic clock).
type entry struct {
	rec  Record
	seen time.Time
}

// expiry is a revision of a record that will be expired at at unless a
// newer one arrives first.
type expiry struct {
	key Key
	rev uint64
	at  time.Time
}

// Table is one process's view of the shard leases in a KV bucket, and the
// leases it holds. It watches the bucket, renews its leases from one
// goroutine and hands out [Lease]s. Its methods are safe for concurrent use.
type Table struct {
	cfg  config
	node string
	kv   jetstream.KeyValue
	log  *slog.Logger
	st   *Store

	w      jetstream.KeyWatcher
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{} // closed once the watch delivered the bucket's contents

	// mu guards the fields below; it is never held across I/O.
	mu     sync.Mutex
	view   map[Key]*entry
	leases map[Key]*Lease
	subs   []chan struct{}
	closed bool
}

// Open creates or updates the bucket, starts watching it and returns once
// the Table's view holds the bucket's contents. node names this process to
// the others; it must be unique among the bot's processes and non-empty.
func Open(ctx context.Context, js jetstream.JetStream, node string, opts ...Option) (*Table, error) {
	if err := checkNode(node); err != nil {
		return nil, fmt.Errorf("shardlease: %w", err)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	kcfg := jetstream.KeyValueConfig{
		Bucket:      cfg.bucket,
		Description: "shardtop shard leases and sessions",
		History:     1,
		Replicas:    cfg.replicas,
		Storage:     jetstream.FileStorage,
	}
	// Create, and update only what exists: concurrent CreateOrUpdate calls
	// of one new replicated bucket all time out (nats-server 2.15), which
	// is what a cluster's processes do when they start together.
	kv, err := js.CreateKeyValue(ctx, kcfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.UpdateKeyValue(ctx, kcfg)
	}
	if err != nil {
		return nil, fmt.Errorf("shardlease: open bucket %s: %w", cfg.bucket, err)
	}
	t := &Table{
		cfg: cfg, node: node, kv: kv,
		log:    cfg.log.With("bucket", cfg.bucket, "node", node),
		ready:  make(chan struct{}),
		view:   map[Key]*entry{},
		leases: map[Key]*Lease{},
	}
	// The watcher keeps the context it was made with for re-creating its
	// consumer after a reconnect, so it gets the Table's; ctx only bounds
	// Open.
	t.ctx, t.cancel = context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, t.cancel)
	defer stop()
	if t.w, err = kv.WatchAll(t.ctx); err != nil {
		t.cancel()
		return nil, fmt.Errorf("shardlease: watch bucket %s: %w", cfg.bucket, err)
	}
	t.st = newStore(t)
	t.wg.Add(3)
	go t.watch()
	go t.renewer()
	go t.st.writer()
	select {
	case <-t.ready:
	case <-t.ctx.Done():
		t.Close()
		return nil, fmt.Errorf("shardlease: read bucket %s: %w", cfg.bucket, ctx.Err())
	}
	return t, nil
}

// Node returns the node name the Table owns leases as.
func (t *Table) Node() string { return t.node }

// Store returns the adapter that saves the sessions of the shards whose
// leases the Table holds; it satisfies the manager's Store interface.
func (t *Table) Store() *Store { return t.st }

// Close stops the watcher, the renewer and the Store's writer. It does not
// release the leases, as a crash would not: each held lease is lost at once
// (its Lost channel closes), since nothing renews it any more, and the
// others take it over after it expires. Close closes the Changes channels.
func (t *Table) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	held := make([]*Lease, 0, len(t.leases))
	for _, l := range t.leases {
		held = append(held, l)
	}
	t.mu.Unlock()
	t.cancel()
	if err := t.w.Stop(); err != nil {
		t.log.Debug("stop watch", "err", err)
	}
	t.wg.Wait()
	for _, l := range held {
		l.end(ErrLost, "table closed")
	}
	t.mu.Lock()
	for _, c := range t.subs {
		close(c)
	}
	t.subs = nil
	t.mu.Unlock()
}

// Changes returns a channel that receives a value (coalesced, never
// blocking the Table) when the ownership of a record changes: a record
// appears, disappears, changes owner or epoch, becomes malformed, expires
// in this Table's view, or a lease of this Table is lost. Renewals and
// session saves alone do not signal. Each call makes a new channel, kept
// until Close closes it: call it once per consumer.
func (t *Table) Changes() <-chan struct{} {
	c := make(chan struct{}, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		close(c)
		return c
	}
	t.subs = append(t.subs, c)
	return c
}

// notifyLocked signals every Changes channel; t.mu is held.
func (t *Table) notifyLocked() {
	for _, c := range t.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Records returns the Table's view of every record, sorted by shard count
// then ID. It does no I/O.
func (t *Table) Records() []Record {
	t.mu.Lock()
	now := time.Now()
	out := make([]Record, 0, len(t.view))
	for _, e := range t.view {
		r := e.rec
		r.Expired = t.expired(e, now)
		out = append(out, r)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Record) int {
		return cmp.Or(cmp.Compare(a.Key.Count, b.Key.Count), cmp.Compare(a.Key.ID, b.Key.ID))
	})
	return out
}

// Leases returns the leases the Table holds, in no particular order.
func (t *Table) Leases() []*Lease {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Lease, 0, len(t.leases))
	for _, l := range t.leases {
		out = append(out, l)
	}
	return out
}

// lease returns the held lease of k, or nil.
// Check reports whether this Table holds k's lease now: nil if it does and
// the lease's local deadline has not passed, else an error wrapping
// ErrNotHeld, ErrLost or ErrReleased. It does no I/O. A shard asks it
// before each dial: a process that was paused past its deadline (whose
// timers have not yet told it that the lease is lost) must not reconnect a
// shard another process may run by now.
func (t *Table) Check(k Key) error {
	l := t.lease(k)
	if l == nil {
		return fmt.Errorf("shardlease: shard %s: %w", k, ErrNotHeld)
	}
	l.mu.Lock()
	ended, deadline := l.ended, l.deadline
	l.mu.Unlock()
	switch {
	case ended != nil:
		return fmt.Errorf("shardlease: shard %s: %w", k, ended)
	case !time.Now().Before(deadline):
		return fmt.Errorf("shardlease: shard %s: %w: its renewal deadline has passed", k, ErrLost)
	}
	return nil
}

func (t *Table) lease(k Key) *Lease {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.leases[k]
}

// expired is the expiry rule: a record with an owner is expired once this
// Table has seen the same revision unchanged for the TTL of its own
// monotonic clock. Free and malformed records never expire.
func (t *Table) expired(e *entry, now time.Time) bool {
	return e.rec.Owner != "" && e.rec.Err == nil && now.Sub(e.seen) >= t.cfg.ttl
}

// watch applies the bucket's updates to the view until the watcher stops,
// and signals Changes when a record expires.
func (t *Table) watch() {
	defer t.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var queue []expiry
	updates := t.w.Updates()
	for {
		select {
		case e, ok := <-updates:
			if !ok {
				if t.ctx.Err() == nil {
					t.log.Error("watch of the bucket ended; the view is no longer updated")
				}
				return
			}
			if e == nil {
				select {
				case <-t.ready:
				default:
					close(t.ready)
				}
				continue
			}
			if x, ok := t.apply(e); ok {
				if len(queue) == 0 {
					timer.Reset(time.Until(x.at))
				}
				queue = append(queue, x)
			}
			continue
		case <-timer.C:
		}
		// Signal the revisions that have now been seen for the TTL.
		now := time.Now()
		fired := false
		t.mu.Lock()
		for len(queue) > 0 && !queue[0].at.After(now) {
			if e := t.view[queue[0].key]; e != nil && e.rec.Revision == queue[0].rev {
				fired = true
			}
			queue = queue[1:]
		}
		if fired {
			t.notifyLocked()
		}
		t.mu.Unlock()
		if len(queue) > 0 {
			timer.Reset(queue[0].at.Sub(now))
		}
	}
}

// apply puts a watched entry into the view. It returns when the new
// revision will expire, if it can.
func (t *Table) apply(e jetstream.KeyValueEntry) (expiry, bool) {
	k, err := parseKey(e.Key())
	if err != nil {
		t.log.Warn("bucket holds a key that is not a shard's; ignored", "key", e.Key(), "err", err)
		return expiry{}, false
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.view[k]
	if old != nil && old.rec.Revision >= e.Revision() {
		return expiry{}, false
	}
	if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
		if old != nil {
			delete(t.view, k)
			t.notifyLocked()
		}
		return expiry{}, false
	}
	rec := t.record(k, e)
	if rec.Err != nil {
		t.log.Warn("unreadable lease record; treated as held", "shard", k.ID, "shards", k.Count, "err", rec.Err)
	}
	t.view[k] = &entry{rec: rec, seen: now}
	if old == nil || old.rec.Owner != rec.Owner || old.rec.Epoch != rec.Epoch ||
		(old.rec.Err == nil) != (rec.Err == nil) || t.expired(old, now) {
		t.notifyLocked()
	}
	if rec.Owner == "" || rec.Err != nil {
		return expiry{}, false
	}
	return expiry{key: k, rev: rec.Revision, at: now.Add(t.cfg.ttl)}, true
}

// record decodes a KV entry of k.
func (t *Table) record(k Key, e jetstream.KeyValueEntry) Record {
	rec := Record{Key: k, Revision: e.Revision(), Updated: e.Created(),
		Session: store.ShardState{ShardID: k.ID, ShardCount: k.Count}}
	v, err := decode(k, e.Value())
	if err != nil {
		rec.Err = &MalformedError{Bucket: t.cfg.bucket, Key: e.Key(), Revision: e.Revision(), Err: err}
		return rec
	}
	rec.Owner, rec.Epoch, rec.Session = v.owner, v.epoch, v.session
	return rec
}

// isConflict reports whether err is a compare-and-set conflict.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}
