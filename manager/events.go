package manager

import (
	"slices"
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
	// EventShardAdded: AddShard brought shard Key into this manager.
	EventShardAdded
	// EventShardRemoved: RemoveShard took shard Key out of this manager
	// (Reason says whether its session was saved or the lease was lost).
	EventShardRemoved
)

var eventTypeNames = [...]string{"", "state", "split-started", "split-done", "split-aborted", "reshard-started", "reshard-done", "reshard-aborted", "shard-added", "shard-removed"}

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

// subscribers is the list of subscriptions. Its mutex guards the list and
// the channels' closing; events are published by the loop only, and a
// channel is closed only under the mutex, so a send never meets a closed
// channel.
type subscribers struct {
	mu      sync.Mutex // guards list and closed, and orders sends with closes
	list    []chan Event
	closed  bool
	dropped atomic.Uint64
}

// Subscribe returns a channel of lifecycle events and a function that ends
// the subscription (and closes the channel). A subscriber that does not keep
// up loses events (counted in Snapshot().Totals.DroppedEvents); shards never
// wait for it. Close ends every subscription.
func (m *Manager) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, max(buffer, 0))
	s := &m.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		close(ch)
		return ch, func() {}
	}
	s.list = append(s.list, ch)
	var once sync.Once
	return ch, func() { once.Do(func() { s.remove(ch) }) }
}

// remove ends one subscription.
func (s *subscribers) remove(ch chan Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.list, ch); i >= 0 {
		s.list = slices.Delete(s.list, i, i+1)
		close(ch)
	}
}

// publish hands ev to every subscriber without blocking.
func (s *subscribers) publish(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.list {
		select {
		case ch <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

// close ends every subscription (at Close).
func (s *subscribers) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, ch := range s.list {
		close(ch)
	}
	s.list = nil
}
