package shardlease

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/store"
)

// Short lease times for the tests; the program keeps the defaults.
const (
	testTTL    = 1500 * time.Millisecond
	testMargin = 300 * time.Millisecond
	testRenew  = 300 * time.Millisecond
)

// ctxT is a context ending with the test, bounded by d.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// process is one shardtop process's view: its own connection and Table.
func process(t testing.TB, s *server.Server, node string, opts ...Option) *Table {
	t.Helper()
	js := natstest.JetStream(t, s.ClientURL())
	return openTable(t, js, node, opts...)
}

func openTable(t testing.TB, js jetstream.JetStream, node string, opts ...Option) *Table {
	t.Helper()
	base := []Option{WithTTL(testTTL), WithSafetyMargin(testMargin), WithRenewInterval(testRenew), WithFlushInterval(10 * time.Millisecond)}
	if testing.Verbose() {
		base = append(base, WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	tb, err := Open(ctxT(t, 20*time.Second), js, node, append(base, opts...)...)
	if err != nil {
		t.Fatalf("open table %s: %v", node, err)
	}
	t.Cleanup(tb.Close)
	return tb
}

// session is a valid session of k whose fields depend on tag.
func session(k Key, tag string, seq int64) store.ShardState {
	return store.ShardState{ShardID: k.ID, ShardCount: k.Count, SessionID: "sess-" + tag, Sequence: seq,
		ResumeURL: "wss://resume.example.test/" + tag, Guilds: 7, UpdatedAt: time.Unix(1_700_000_000, int64(seq)).UTC()}
}

// recordOf returns the Table's view of k.
func recordOf(tb *Table, k Key) (Record, bool) {
	for _, r := range tb.Records() {
		if r.Key == k {
			return r, true
		}
	}
	return Record{}, false
}

// bucketRecord reads k's record from the bucket itself.
func bucketRecord(t testing.TB, tb *Table, k Key) value {
	t.Helper()
	e, err := tb.kv.Get(ctxT(t, 10*time.Second), k.String())
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	v, err := decode(k, e.Value())
	if err != nil {
		t.Fatalf("decode %s: %v", k, err)
	}
	return v
}

// sameSession compares sessions, times as instants.
func sameSession(a, b store.ShardState) bool {
	return a.ShardID == b.ShardID && a.ShardCount == b.ShardCount && a.SessionID == b.SessionID &&
		a.Sequence == b.Sequence && a.ResumeURL == b.ResumeURL && a.Guilds == b.Guilds && a.UpdatedAt.Equal(b.UpdatedAt)
}

// suspend makes l believe it still holds its lease with time to spare, as
// a process whose monotonic clock stood still (a suspended VM: Linux's
// CLOCK_MONOTONIC does not count suspend) would: only the fence protects
// the new owner from its next write.
func suspend(l *Lease) {
	l.mu.Lock()
	l.ended = nil
	l.lost = make(chan struct{})
	l.deadline = time.Now().Add(time.Hour)
	l.timer.Reset(time.Hour)
	l.mu.Unlock()
	l.t.mu.Lock() // never inside l.mu: the renewer takes t.mu then l.mu
	l.t.leases[l.key] = l
	l.t.mu.Unlock()
}

func isHeld(err error) bool { return errors.Is(err, ErrHeld) }
func isLost(err error) bool { return errors.Is(err, ErrLost) }
