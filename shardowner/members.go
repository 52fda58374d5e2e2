package shardowner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// heartbeat is a node key's value.
type heartbeat struct {
	V    int    `json:"v"`
	Node string `json:"node"`
	Beat uint64 `json:"beat"` // counts the writes, so every one changes the value
}

// seen is a node key as a Runner last saw it.
type seen struct {
	rev uint64
	at  time.Time // local monotonic time the revision was first seen
}

// members watches the nodes bucket and keeps this node's heartbeat.
// mu guards nodes; it is never held across I/O.
type members struct {
	kv     jetstream.KeyValue
	self   string
	ttl    time.Duration
	log    *slog.Logger
	notify chan struct{} // capacity 1: membership may have changed

	mu    sync.Mutex
	nodes map[string]seen
}

func openMembers(ctx context.Context, js jetstream.JetStream, self string, cfg config) (*members, error) {
	// Create, and update only what exists: concurrent CreateOrUpdate calls
	// of one new replicated bucket all time out (nats-server 2.15).
	kcfg := jetstream.KeyValueConfig{Bucket: cfg.bucket, Replicas: cfg.replicas, History: 1}
	kv, err := js.CreateKeyValue(ctx, kcfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.UpdateKeyValue(ctx, kcfg)
	}
	if err != nil {
		return nil, fmt.Errorf("shardowner: nodes bucket %q: %w", cfg.bucket, err)
	}
	return &members{kv: kv, self: self, ttl: cfg.ttl, log: cfg.logger, notify: make(chan struct{}, 1), nodes: map[string]seen{}}, nil
}

func (m *members) signal() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// beat writes this node's heartbeat.
func (m *members) beat(ctx context.Context, n uint64) error {
	b, _ := json.Marshal(heartbeat{V: 1, Node: m.self, Beat: n})
	if _, err := m.kv.Put(ctx, m.self, b); err != nil {
		return fmt.Errorf("shardowner: heartbeat of node %q: %w", m.self, err)
	}
	return nil
}

// leave deletes this node's key.
func (m *members) leave(ctx context.Context) error {
	if err := m.kv.Delete(ctx, m.self); err != nil {
		return fmt.Errorf("shardowner: delete node key %q: %w", m.self, err)
	}
	return nil
}

// watch follows the bucket until ctx ends; loaded is closed once the
// initial values are in.
func (m *members) watch(ctx context.Context, loaded chan<- struct{}) error {
	w, err := m.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("shardowner: watch nodes: %w", err)
	}
	defer func() { _ = w.Stop() }()
	first := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				if first {
					first = false
					close(loaded)
				}
				m.signal()
				continue
			}
			m.apply(e)
			if !first {
				m.signal()
			}
		}
	}
}

func (m *members) apply(e jetstream.KeyValueEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(m.nodes, e.Key())
		return
	}
	var hb heartbeat
	if err := json.Unmarshal(e.Value(), &hb); err != nil || hb.V != 1 || hb.Node != e.Key() {
		m.log.Warn("ignoring malformed node heartbeat", "key", e.Key(), "revision", e.Revision(), "err", errors.Join(err))
		delete(m.nodes, e.Key())
		return
	}
	m.nodes[e.Key()] = seen{rev: e.Revision(), at: time.Now()}
}

// live returns the sorted live nodes at now, this node always among them,
// and the soonest time one of them may expire (zero when none can).
func (m *members) live(now time.Time) (nodes []string, next time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	nodes = append(nodes, m.self)
	for n, s := range m.nodes {
		if n == m.self {
			continue
		}
		exp := s.at.Add(m.ttl)
		if now.Before(exp) {
			nodes = append(nodes, n)
			if next.IsZero() || exp.Before(next) {
				next = exp
			}
		}
	}
	slices.Sort(nodes)
	return nodes, next
}
