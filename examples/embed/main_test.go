package main

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBotCountsAndSaves runs the example's wiring (everything but the TUI)
// against discordsim over loopback: the dispatch handler counts
// MESSAGE_CREATE, and closing saves every shard's session in the state file.
func TestBotCountsAndSaves(t *testing.T) {
	// Two buckets for two shards: both identify at once, no 5 s wait.
	sim, err := discordsim.Start(discordsim.Config{Shards: 2, MaxConcurrency: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	statePath := filepath.Join(t.TempDir(), "state.toml")

	b, err := newBot(discordsim.DefaultToken, sim.APIURL(), statePath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.shards.Open(ctx); err != nil {
		t.Fatal(errors.Join(err, b.close()))
	}
	if err := b.shards.WaitReady(ctx); err != nil {
		t.Fatal(errors.Join(err, b.close()))
	}

	const burst = 25
	if hit := sim.Burst(1, burst); hit != 1 {
		t.Errorf("burst hit %d connections of shard 1, want 1", hit)
	}
	for b.messages.Load() < burst && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond): // poll with the deadline of ctx
		}
	}
	if got := b.messages.Load(); got != burst {
		t.Errorf("counted %d MESSAGE_CREATE, want %d", got, burst)
	}
	if err := b.close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	st, err := store.OpenFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	saved := st.Load()
	if len(saved) != 2 {
		t.Fatalf("state file holds %d sessions, want 2: %+v", len(saved), saved)
	}
	for _, s := range saved {
		if s.ShardCount != 2 || s.SessionID == "" {
			t.Errorf("saved session %+v: want count 2 and a session ID", s)
		}
	}
}
