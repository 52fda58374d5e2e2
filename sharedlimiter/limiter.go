package sharedlimiter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Errors returned by the Limiter's methods, besides ctx.Err().
var (
	// ErrReleased is returned by Approach or Acquire for a ticket that was
	// released (or never handed out), also while they wait.
	ErrReleased = errors.New("sharedlimiter: ticket released")
	// ErrInvalidShard is returned by Enqueue for a negative shard ID.
	ErrInvalidShard = errors.New("sharedlimiter: invalid shard ID")
	// ErrBusy is returned when a ticket already has a call blocked.
	ErrBusy = errors.New("sharedlimiter: ticket already has a call waiting")
	// ErrClosed is returned by calls on, or blocked in, a closed Limiter.
	ErrClosed = errors.New("sharedlimiter: closed")
	// ErrMalformed matches every *MalformedError.
	ErrMalformed = errors.New("malformed KV value")
)

// MalformedError is a KV value that does not parse: Key names it. A
// bucket whose key is malformed grants nothing until the key is rewritten;
// Approach and Acquire of its head return this error.
type MalformedError struct {
	Key string
	Err error
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("sharedlimiter: key %s: %v: %v", e.Key, ErrMalformed, e.Err)
}

// Unwrap gives ErrMalformed and the parse error.
func (e *MalformedError) Unwrap() []error { return []error{ErrMalformed, e.Err} }

// kvTimeout bounds one KV operation made without a caller's ctx.
const kvTimeout = 5 * time.Second

// Limiter is an identify limiter shared by every process of one bot over
// a JetStream KV bucket (see doc.go). It satisfies gateway.IdentifyGate and
// has the methods of *limiter.Limiter the manager uses. Make one with New;
// Close it.
type Limiter struct {
	window, margin, holdLimit time.Duration
	reserve                   int
	node, id                  string
	log                       *slog.Logger
	js                        jetstream.JetStream
	kv                        jetstream.KeyValue
	subjectPrefix             string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	buckets []*bucket
	tickets map[uint64]*ticket
	last    uint64
	budget  budgetEntry
	pending int // approached tickets of this process: budget units held
	// clockServer at clockLocal is the latest sample of the KV server's
	// clock (an entry this process wrote, at the local time of the ack).
	clockServer, clockLocal time.Time
	closed                  bool
	budgetWarned            bool // a budget wait was logged since the budget last changed

	grants, ready, failed, expired uint64
	waiting                        int
}

// budgetEntry is the budget key as last seen.
type budgetEntry struct {
	rev   uint64
	known bool
	val   budgetVal
	err   error
}

// ticket is one identify turn of a shard of this process.
type ticket struct {
	id         uint64
	shardID    int
	b          *bucket
	enq        time.Time // wall clock: compared across processes, roughly
	state      uint8
	approached bool
	acquiring  bool // Acquire is blocked on it: the worker may claim for it
	waiting    bool
	wake       chan struct{}
	err        error // set by the worker: Acquire returns it
}

const (
	tQueued uint8 = iota
	tGranted
	tGone
)

func (t *ticket) signal() {
	if t.wake == nil {
		return
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// New opens (creating it if need be) the KV bucket and returns a Limiter
// for maxConcurrency buckets. A maxConcurrency below 1 counts as 1. It
// starts one watcher goroutine and one goroutine per bucket; Close stops
// them. Every process of the bot must pass the same maxConcurrency,
// window and margin.
func New(ctx context.Context, js jetstream.JetStream, maxConcurrency int, opts ...Option) (*Limiter, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if maxConcurrency < 1 {
		cfg.logger.Warn("sharedlimiter: max_concurrency below 1, using 1", "max_concurrency", maxConcurrency)
		maxConcurrency = 1
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	id := hex.EncodeToString(rnd[:])
	if cfg.node == "" {
		cfg.node = "pid-" + strconv.Itoa(os.Getpid())
	}
	gap := cfg.window + cfg.margin
	kcfg := jetstream.KeyValueConfig{
		Bucket:   cfg.bucket,
		History:  1,
		Replicas: cfg.replicas,
		// A TTL marker (a crashed holder's claim expiring) must outlive
		// the gap after it, or the key would look never used.
		LimitMarkerTTL: ttlSeconds(gap) + time.Second,
		Description:    "shardtop shared identify limiter",
	}
	// Create, and update only what exists: concurrent CreateOrUpdate calls
	// of one new replicated bucket all time out (nats-server 2.15), which
	// is what a cluster's processes do when they start together.
	kv, err := js.CreateKeyValue(ctx, kcfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.UpdateKeyValue(ctx, kcfg)
	}
	if err != nil {
		return nil, fmt.Errorf("sharedlimiter: KV bucket %s: %w", cfg.bucket, err)
	}
	l := &Limiter{
		window:        cfg.window,
		margin:        cfg.margin,
		holdLimit:     ttlSeconds(max(cfg.holdLimit, cfg.window)),
		reserve:       cfg.reserve,
		node:          cfg.node,
		id:            id,
		log:           cfg.logger.With("kv_bucket", cfg.bucket, "node", cfg.node),
		js:            js,
		kv:            kv,
		subjectPrefix: "$KV." + cfg.bucket + ".",
		buckets:       make([]*bucket, maxConcurrency),
		tickets:       make(map[uint64]*ticket),
	}
	for i := range l.buckets {
		l.buckets[i] = &bucket{index: i, key: bucketKey(i), kick: make(chan struct{}, 1), waiters: map[string]waiterVal{}}
	}
	// A first sample of the server's clock: write this node's presence.
	if err := l.sampleClock(ctx); err != nil {
		return nil, err
	}
	// The watcher lives as long as the Limiter, not as New's ctx.
	l.ctx, l.cancel = context.WithCancel(context.Background())
	w, err := kv.WatchAll(l.ctx)
	if err != nil {
		l.cancel()
		return nil, fmt.Errorf("sharedlimiter: watch KV bucket %s: %w", cfg.bucket, err)
	}
	initial := make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.watch(w, initial)
	}()
	select {
	case <-initial:
	case <-ctx.Done():
		l.Close()
		return nil, fmt.Errorf("sharedlimiter: initial KV values: %w", ctx.Err())
	}
	for _, b := range l.buckets {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.work(b)
		}()
	}
	return l, nil
}

// sampleClock writes this node's presence key and reads back its server
// timestamp: the server's clock at (before) the local time of the ack.
func (l *Limiter) sampleClock(ctx context.Context) error {
	key := nodePrefix + l.id
	rev, err := l.put(ctx, key, []byte(`{"node":`+strconv.Quote(l.node)+`}`), time.Second)
	if err != nil {
		return fmt.Errorf("sharedlimiter: %w", err)
	}
	local := time.Now()
	// On a replicated bucket the read may reach a replica that has not
	// applied the write yet (KV reads are direct gets): read again for a
	// moment. Without a sample the local clock stands in for the server's
	// until the first claim's read-back gives one.
	for try := 0; ; try++ {
		e, err := l.kv.GetRevision(ctx, key, rev)
		if err == nil {
			l.noteClock(e.Created(), local)
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) || try == 10 || ctx.Err() != nil {
			l.log.Warn("sharedlimiter: no sample of the server's clock yet; the local clock stands in", "key", key, "err", err)
			l.noteClock(local, local)
			return nil
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// noteClock records that the server's clock read server no later than the
// local instant local.
func (l *Limiter) noteClock(server, local time.Time) {
	l.mu.Lock()
	l.clockServer, l.clockLocal = server, local
	l.mu.Unlock()
}

// serverNowLocked estimates the server's clock now, never ahead of it by
// more than clock drift since the sample.
func (l *Limiter) serverNowLocked() time.Time {
	return l.clockServer.Add(time.Since(l.clockLocal))
}

// Close stops the Limiter's goroutines and wakes every blocked call with
// ErrClosed. It withdraws this process's waiters keys; a claim it holds
// stays until released by its TTL (the hold limit). It does not close js.
func (l *Limiter) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	for _, t := range l.tickets {
		t.signal()
	}
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	for _, b := range l.buckets {
		if b.advertised {
			_ = l.kv.Purge(ctx, waiterKey(b.index, l.id), jetstream.PurgeTTL(time.Second))
		}
	}
}

// Enqueue gives shardID a ticket at the end of its bucket's local queue.
// It never blocks.
func (l *Limiter) Enqueue(shardID int) (uint64, error) {
	if shardID < 0 {
		return 0, fmt.Errorf("shard %d: %w", shardID, ErrInvalidShard)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last++
	b := l.buckets[shardID%len(l.buckets)]
	t := &ticket{id: l.last, shardID: shardID, b: b, enq: time.Now()}
	b.q = append(b.q, t)
	l.tickets[t.id] = t
	l.waiting++
	if len(b.q) == 1 {
		b.kickWorker()
	}
	return t.id, nil
}

// Position reports where ticket waits in this process's queue of its
// bucket (0 = head). ok is false if the ticket is not queued.
func (l *Limiter) Position(ticket uint64) (bucket, pos int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tickets[ticket]
	if t == nil || t.state != tQueued {
		return 0, 0, false
	}
	for i, q := range t.b.q {
		if q == t {
			return t.b.index, i, true
		}
	}
	return 0, 0, false
}

// Approach blocks until ticket heads its bucket's local queue and its slot
// is at most lead away as far as this process can tell (the bucket key's
// last outcome plus the gap, or while another identify is in flight a
// window after it), and the budget allows. It returns ctx.Err() if ctx
// ends first, ErrReleased if the ticket is released; the ticket then
// leaves. Approach of an approached or granted ticket returns at once.
func (l *Limiter) Approach(ctx context.Context, ticket uint64, lead time.Duration) error {
	return l.wait(ctx, ticket, true, max(lead, 0))
}

// Acquire blocks until this process's bucket worker has claimed the
// bucket in KV for ticket, waited out the rest of the gap since the
// bucket's previous outcome (in server time), and spent one session start
// from the shared budget. Errors as Approach, and a *MalformedError if the
// bucket's or the budget's KV value does not parse. Acquire of a granted
// ticket returns nil at once.
func (l *Limiter) Acquire(ctx context.Context, ticket uint64) error {
	return l.wait(ctx, ticket, false, 0)
}

// Release ends ticket's turn: after Acquire its outcome is written to the
// bucket key (by the bucket's worker, without blocking the caller); before,
// the ticket leaves its queue. Releasing again does nothing.
func (l *Limiter) Release(ticket uint64, ready bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tickets[ticket]
	if t == nil {
		return
	}
	switch t.state {
	case tGranted:
		if ready {
			l.ready++
		} else {
			l.failed++
		}
		delete(l.tickets, t.id)
		t.state = tGone
		b := t.b
		if b.held == t {
			b.held = nil
			b.release = &release{rev: b.heldRev, ready: ready, shard: t.shardID}
			b.kickWorker()
		}
	case tQueued:
		l.leaveLocked(t)
		t.signal()
	}
}

// leaveLocked takes a queued t out of its queue.
func (l *Limiter) leaveLocked(t *ticket) {
	if t.state != tQueued {
		return
	}
	b := t.b
	wasHead := b.head() == t
	for i, q := range b.q {
		if q == t {
			b.q = append(b.q[:i], b.q[i+1:]...)
			break
		}
	}
	l.waiting--
	t.state = tGone
	t.acquiring = false
	delete(l.tickets, t.id)
	if t.approached {
		t.approached = false
		l.pending--
		l.kickHeadsLocked()
	}
	if wasHead {
		b.kickWorker()
		if h := b.head(); h != nil {
			h.signal()
		}
	}
}

func (l *Limiter) kickHeadsLocked() {
	for _, b := range l.buckets {
		if h := b.head(); h != nil {
			h.signal()
		}
		b.kickWorker()
	}
}

// wait is Approach (approach true) and Acquire.
func (l *Limiter) wait(ctx context.Context, id uint64, approach bool, lead time.Duration) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	l.mu.Lock()
	t := l.tickets[id]
	switch {
	case t == nil:
		l.mu.Unlock()
		return fmt.Errorf("ticket %d: %w", id, ErrReleased)
	case t.state == tGranted:
		l.mu.Unlock()
		return nil
	case t.waiting:
		l.mu.Unlock()
		return fmt.Errorf("ticket %d (shard %d): %w", id, t.shardID, ErrBusy)
	}
	t.waiting = true
	if t.wake == nil {
		t.wake = make(chan struct{}, 1)
	}
	if !approach {
		t.acquiring = true
		t.b.kickWorker()
	}
	for {
		if t.state != tQueued || l.closed || ctx.Err() != nil || t.err != nil {
			t.waiting, t.acquiring = false, false
		}
		switch {
		case t.state == tGranted:
			l.mu.Unlock()
			return nil
		case t.state == tGone:
			l.mu.Unlock()
			return fmt.Errorf("ticket %d (shard %d): %w", id, t.shardID, ErrReleased)
		case l.closed:
			l.leaveLocked(t)
			l.mu.Unlock()
			return fmt.Errorf("ticket %d (shard %d): %w", id, t.shardID, ErrClosed)
		case ctx.Err() != nil:
			l.leaveLocked(t)
			l.mu.Unlock()
			return ctx.Err()
		case t.err != nil:
			err := t.err
			t.err = nil
			l.leaveLocked(t)
			l.mu.Unlock()
			return fmt.Errorf("ticket %d (shard %d): %w", id, t.shardID, err)
		}
		var at time.Time
		budgetWait := false
		if approach {
			ok, when, bw, err := l.approachableLocked(t, lead, time.Now())
			budgetWait = bw
			if err != nil {
				t.waiting = false
				l.leaveLocked(t)
				l.mu.Unlock()
				return fmt.Errorf("ticket %d (shard %d): %w", id, t.shardID, err)
			}
			if err == nil && ok {
				t.waiting = false
				if !t.approached {
					t.approached = true
					l.pending++
				}
				l.mu.Unlock()
				return nil
			}
			at = when
		}
		var warn *budgetVal
		if budgetWait && !l.budgetWarned {
			l.budgetWarned = true
			v := l.budget.val
			warn = &v
		}
		l.mu.Unlock()
		if warn != nil {
			l.log.WarnContext(ctx, "session start budget at reserve: identifies wait for the reset",
				"shard", t.shardID, "remaining", warn.Remaining, "reserve", l.effectiveReserve(warn.Total))
		}
		var fire <-chan time.Time
		if !at.IsZero() {
			d := time.Until(at)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			fire = timer.C
		}
		select {
		case <-t.wake:
		case <-fire:
		case <-ctx.Done():
		}
		l.mu.Lock()
	}
}

// approachableLocked reports whether t may approach now; if not, when to
// look again (zero: on a wake-up) and whether the budget holds it back.
func (l *Limiter) approachableLocked(t *ticket, lead time.Duration, now time.Time) (ok bool, at time.Time, budgetWait bool, err error) {
	b := t.b
	if b.head() != t {
		return false, time.Time{}, false, nil
	}
	if t.approached {
		return true, time.Time{}, false, nil
	}
	if b.curErr != nil {
		return false, time.Time{}, false, b.curErr
	}
	if l.budget.err != nil {
		return false, time.Time{}, false, l.budget.err
	}
	slot := b.notBefore
	if b.held != nil {
		// This process's identify awaits its outcome: the next slot is a
		// window after it at the earliest, as package limiter estimates
		// it, so the next shard dials in time for it rather than after
		// the READY (a dial and a Hello lost every window).
		if s := b.lastGrant.Add(l.window); s.After(slot) {
			slot = s
		}
	}
	if b.cur.present {
		gap := l.gapAfter(b.cur)
		if b.cur.val.State == stateHeld {
			gap = l.window
		}
		if s := b.cur.seen.Add(gap); s.After(slot) {
			slot = s
		}
	}
	if ok, resetAt := l.budgetAllowsLocked(false); !ok {
		budgetWait = true
		if r := l.localTimeLocked(resetAt); r.After(slot) {
			slot = r
		}
	}
	if at := slot.Add(-lead); now.Before(at) {
		return false, at, budgetWait, nil
	}
	return true, time.Time{}, false, nil
}

// localTimeLocked maps a server instant to a local one (by the clock sample).
func (l *Limiter) localTimeLocked(server time.Time) time.Time {
	return l.clockLocal.Add(server.Sub(l.clockServer))
}

// gapAfter is how long after entry e was written the bucket's next
// identify may go: a window after a READY, a window and the margin after a
// failure or an expired claim, nothing if the key was never written.
func (l *Limiter) gapAfter(e bucketEntry) time.Duration {
	switch {
	case !e.present:
		return 0
	case e.op == jetstream.KeyValuePut && e.val.State == stateFree && e.val.Ready:
		return l.window
	default:
		return l.window + l.margin
	}
}

// watch keeps the local view of the KV bucket (bucket keys, budget,
// waiters) current and wakes whoever a change concerns.
func (l *Limiter) watch(w jetstream.KeyWatcher, initial chan struct{}) {
	defer func() { _ = w.Stop() }()
	first := true
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case e, ok = <-w.Updates():
		case <-l.ctx.Done():
			return
		}
		if !ok {
			l.log.Error("sharedlimiter: KV watcher ended")
			return
		}
		if e == nil {
			if first {
				first = false
				close(initial)
			}
			continue
		}
		l.apply(e, time.Now())
	}
}

// apply takes one KV entry into the local view.
func (l *Limiter) apply(e jetstream.KeyValueEntry, seen time.Time) {
	key := e.Key()
	put := e.Operation() == jetstream.KeyValuePut
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case key == budgetKey:
		be := budgetEntry{rev: e.Revision()}
		if put {
			be.val, be.err = parseBudget(key, e.Value())
			be.known = be.err == nil
			if be.err != nil {
				l.log.Error("sharedlimiter: malformed budget", "key", key, "err", be.err)
			}
		}
		l.budget = be
		l.budgetWarned = false
		l.kickHeadsLocked()
	case strings.HasPrefix(key, bucketPrefix):
		n, err := strconv.Atoi(key[len(bucketPrefix):])
		if err != nil || n < 0 || n >= len(l.buckets) {
			return // another max_concurrency, or not ours
		}
		b := l.buckets[n]
		be := bucketEntry{present: true, rev: e.Revision(), created: e.Created(), op: e.Operation(), seen: seen}
		b.curErr = nil
		if put {
			be.val, b.curErr = parseBucket(key, e.Value())
			if b.curErr != nil {
				l.log.Error("sharedlimiter: malformed bucket key", "key", key, "err", b.curErr)
			}
		}
		if be.rev >= b.cur.rev {
			b.cur = be
		}
		b.kickWorker()
		if h := b.head(); h != nil {
			h.signal()
		}
	case strings.HasPrefix(key, waiterPrefix):
		n, id, ok := parseWaiterKey(key)
		if !ok || n >= len(l.buckets) || id == l.id {
			return
		}
		b := l.buckets[n]
		if !put {
			delete(b.waiters, id)
		} else if v, err := parseWaiter(key, e.Value()); err != nil {
			l.log.Warn("sharedlimiter: malformed waiters key ignored", "key", key, "err", err)
			delete(b.waiters, id)
		} else {
			b.waiters[id] = v
		}
		b.kickWorker()
	}
}
