package manager

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardtop/shardtop/gateway"
)

// EventType says what an Event reports.
type EventType uint8

// The lifecycle events.
const (
	// EventState: a shard changed state (From, To, Reason, CloseCode, Err).
	EventState EventType = iota + 1
	// EventSplitStarted, EventSplitDone, EventSplitAborted: a split of Key.
	EventSplitStarted
	EventSplitDone
	EventSplitAborted
	// EventReshardStarted, EventReshardDone, EventReshardAborted: a whole
	// re-shard to Key.Count shards.
	EventReshardStarted
	EventReshardDone
	EventReshardAborted
)

var eventTypeNames = [...]string{"", "state", "split-started", "split-done", "split-aborted", "reshard-started", "reshard-done", "reshard-aborted"}

// String names the event type, e.g. "split-done".
func (t EventType) String() string {
	if int(t) < len(eventTypeNames) && t != 0 {
		return eventTypeNames[t]
	}
	return "event(?)"
}

// Event is one lifecycle event, as delivered to subscribers.
type Event struct {
	Type EventType
	Key  ShardKey
	// Role is the shard's role when the event happened.
	Role      Role
	From, To  gateway.State
	Reason    string
	CloseCode int
	Err       error
	At        time.Time
}

type subscriber struct {
	mu     sync.Mutex
	ch     chan Event
	closed bool
}

// subscribers is a copy-on-write list so publishing takes no shared lock.
type subscribers struct {
	mu      sync.Mutex // serializes writers of list
	list    atomic.Pointer[[]*subscriber]
	dropped atomic.Uint64
	closed  bool // guarded by mu
}

// Subscribe returns a channel of lifecycle events and a function that ends
// the subscription (and closes the channel). A subscriber that does not keep
// up loses events (counted in Snapshot().Totals.DroppedEvents); shards never
// wait for it. Close ends every subscription.
func (m *Manager) Subscribe(buffer int) (<-chan Event, func()) {
	sub := &subscriber{ch: make(chan Event, max(buffer, 0))}
	s := &m.subs
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		close(sub.ch)
		return sub.ch, func() {}
	}
	old := s.list.Load()
	var next []*subscriber
	if old != nil {
		next = append(next, *old...)
	}
	next = append(next, sub)
	s.list.Store(&next)
	s.mu.Unlock()
	var once sync.Once
	return sub.ch, func() { once.Do(func() { m.unsubscribe(sub) }) }
}

func (m *Manager) unsubscribe(sub *subscriber) {
	s := &m.subs
	s.mu.Lock()
	if old := s.list.Load(); old != nil {
		next := make([]*subscriber, 0, len(*old))
		for _, x := range *old {
			if x != sub {
				next = append(next, x)
			}
		}
		s.list.Store(&next)
	}
	s.mu.Unlock()
	sub.close()
}

func (sub *subscriber) close() {
	sub.mu.Lock()
	if !sub.closed {
		sub.closed = true
		close(sub.ch)
	}
	sub.mu.Unlock()
}

// publish hands ev to every subscriber without blocking.
func (m *Manager) publish(ev Event) {
	list := m.subs.list.Load()
	if list == nil {
		return
	}
	for _, sub := range *list {
		sub.mu.Lock()
		if !sub.closed {
			select {
			case sub.ch <- ev:
			default:
				m.subs.dropped.Add(1)
			}
		}
		sub.mu.Unlock()
	}
}

// closeSubscribers ends every subscription (at Close).
func (m *Manager) closeSubscribers() {
	s := &m.subs
	s.mu.Lock()
	s.closed = true
	list := s.list.Load()
	s.list.Store(nil)
	s.mu.Unlock()
	if list != nil {
		for _, sub := range *list {
			sub.close()
		}
	}
}
