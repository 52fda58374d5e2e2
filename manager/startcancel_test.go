package manager

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/store"
)

// TestOpenCancelledDuringStart: a signal during a large start-up (Open's
// context ending while the shards are being started) stops it: Open
// returns the context's error, no shard dials, and Close keeps every saved
// session for the next run.
func TestOpenCancelledDuringStart(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 4, 4
	sim := startSim(t, cfg)
	path := filepath.Join(t.TempDir(), "state.toml")

	f1 := openStore(t, path, store.WithFlushInterval(50*time.Millisecond))
	m1 := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f1))
	openReady(t, m1)
	if err := m1.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f1.Close(); err != nil {
		t.Fatal(err)
	}
	saved := map[int]string{}
	f2 := openStore(t, path)
	for _, r := range f2.Load() {
		saved[r.ShardID] = r.SessionID
	}
	if len(saved) != 4 {
		t.Fatalf("the first run saved %d sessions, want 4", len(saved))
	}
	before := sim.Stats()

	m2 := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f2))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hook := func(m *Manager) {
		if m == m2 {
			cancel() // the signal, once the shards are about to start
		}
	}
	testHookBeforeStart.Store(&hook)
	defer testHookBeforeStart.Store(nil)
	if err := m2.Open(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open cancelled during start-up: %v, want context.Canceled", err)
	}
	for si := range m2.Shards() {
		if si.State != gateway.StateIdle {
			t.Errorf("shard %s is %s after a cancelled start-up, want idle (never started)", si.Key, si.State)
		}
	}
	if err := m2.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("Close after a cancelled start-up: %v", err)
	}
	if err := f2.Close(); err != nil {
		t.Fatal(err)
	}
	if after := sim.Stats(); after.Identifies != before.Identifies || after.Resumes != before.Resumes {
		t.Errorf("a cancelled start-up dialed: %d identifies, %d resumes",
			after.Identifies-before.Identifies, after.Resumes-before.Resumes)
	}
	f3 := openStore(t, path)
	defer f3.Close()
	for _, r := range f3.Load() {
		if saved[r.ShardID] != r.SessionID || r.SessionID == "" {
			t.Errorf("shard %d: session %q after the cancelled start-up, saved %q", r.ShardID, r.SessionID, saved[r.ShardID])
		}
		delete(saved, r.ShardID)
	}
	if len(saved) != 0 {
		t.Errorf("sessions lost by the cancelled start-up: %v", saved)
	}
}
