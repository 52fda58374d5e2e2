package shardlease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shardtop/shardtop/store"
)

// Store is the session store of the shards whose leases a Table holds: the
// manager's Store interface over the leases. Put and Delete only record
// the change and return; a writer goroutine of the Table writes each
// shard's latest session through its lease (a compare-and-set) after the
// flush interval, or at once on Flush. Its methods are safe for
// concurrent use.
type Store struct {
	t    *Table
	kick chan struct{}     // a put arrived (cap 1)
	reqs chan flushRequest // Flush

	mu      sync.Mutex
	pending map[Key]store.ShardState // latest unwritten session per shard ("" SessionID: delete)
}

// flushRequest asks the writer to write now and answer on done.
type flushRequest struct {
	ctx  context.Context
	done chan error
}

func newStore(t *Table) *Store {
	return &Store{t: t, kick: make(chan struct{}, 1), reqs: make(chan flushRequest), pending: map[Key]store.ShardState{}}
}

// Load returns the sessions of the leases held now (normally none right
// after Open: the ownership code acquires leases later, and a shard it
// adopts gets its session from [Lease.Session]).
func (s *Store) Load() []store.ShardState {
	var out []store.ShardState
	for _, l := range s.t.Leases() {
		if st := l.Session(); st.SessionID != "" {
			out = append(out, st)
		}
	}
	return out
}

// Put records st as its shard's session, to be written through the
// shard's lease. It returns an error wrapping ErrNotHeld, naming the shard,
// when the Table holds no lease of it, and store.ErrInvalidState for a
// state that cannot be stored.
func (s *Store) Put(st store.ShardState) error {
	if err := checkState(st); err != nil {
		return fmt.Errorf("shardlease: put shard %d/%d: %w: %w", st.ShardID, st.ShardCount, store.ErrInvalidState, err)
	}
	if st.SessionID == "" {
		return fmt.Errorf("shardlease: put shard %d/%d: %w: session ID must not be empty", st.ShardID, st.ShardCount, store.ErrInvalidState)
	}
	return s.set(keyOf(st), st)
}

// Delete records that the shard has no session any more; the lease itself
// stays (the record of a retired shard goes with [Table.Delete]).
func (s *Store) Delete(shardID, shardCount int) error {
	k := Key{shardID, shardCount}
	if err := k.valid(); err != nil {
		return fmt.Errorf("shardlease: delete shard %s: %w: %w", k, store.ErrInvalidState, err)
	}
	return s.set(k, store.ShardState{ShardID: shardID, ShardCount: shardCount})
}

// set queues st for k.
func (s *Store) set(k Key, st store.ShardState) error {
	t := s.t
	t.mu.Lock()
	closed, held := t.closed, t.leases[k] != nil
	t.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("shardlease: shard %s: %w", k, store.ErrClosed)
	case !held:
		return fmt.Errorf("shardlease: shard %s: %w", k, ErrNotHeld)
	}
	s.mu.Lock()
	s.pending[k] = st
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// Flush writes every queued session now and returns when they are written,
// with the errors of those that could not be (joined; a lease lost meanwhile
// gives ErrLost naming its shard).
func (s *Store) Flush(ctx context.Context) error {
	r := flushRequest{ctx: ctx, done: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return fmt.Errorf("shardlease: flush: %w", ctx.Err())
	case <-s.t.ctx.Done():
		return fmt.Errorf("shardlease: flush: %w", store.ErrClosed)
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("shardlease: flush: %w", ctx.Err())
	}
}

// writer writes the queued sessions a flush interval after the first put
// of a batch, or at once on Flush, until the Table closes.
func (s *Store) writer() {
	t := s.t
	defer t.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-s.kick:
			if !armed {
				timer.Reset(t.cfg.flushInterval)
				armed = true
			}
		case <-timer.C:
			armed = false
			ctx, cancel := context.WithTimeout(t.ctx, t.cfg.ttl)
			if err := s.writeAll(ctx); err != nil && t.ctx.Err() == nil {
				t.log.Warn("store: save sessions", "err", err)
			}
			cancel()
		case r := <-s.reqs:
			r.done <- s.writeAll(r.ctx)
		}
	}
}

// writeAll writes every queued session through its lease. One that failed
// for a reason other than a lost lease is queued again unless a newer one
// came meanwhile.
func (s *Store) writeAll(ctx context.Context) error {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return nil
	}
	batch := s.pending
	s.pending = make(map[Key]store.ShardState, len(batch))
	s.mu.Unlock()
	var errs []error
	for k, st := range batch {
		l := s.t.lease(k)
		if l == nil {
			errs = append(errs, fmt.Errorf("shardlease: save shard %s: %w (lost or released before the write)", k, ErrNotHeld))
			continue
		}
		err := l.Save(ctx, st)
		if err == nil {
			continue
		}
		errs = append(errs, err)
		if !errors.Is(err, ErrLost) && !errors.Is(err, ErrReleased) && !errors.Is(err, store.ErrInvalidState) {
			s.requeue(k, st)
		}
	}
	return errors.Join(errs...)
}

// take removes and returns the queued session of k, if any.
func (s *Store) take(k Key) (store.ShardState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.pending[k]
	delete(s.pending, k)
	return st, ok
}

// requeue queues st for k again unless a newer one came meanwhile.
func (s *Store) requeue(k Key, st store.ShardState) {
	s.mu.Lock()
	if _, newer := s.pending[k]; !newer {
		s.pending[k] = st
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}
