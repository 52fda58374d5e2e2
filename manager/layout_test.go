package manager

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shardtop/shardtop/store"
)

func rec(id, count int) store.ShardState {
	return store.ShardState{ShardID: id, ShardCount: count, SessionID: fmt.Sprintf("s%d-%d", id, count), Sequence: 1}
}

func TestPlanLayout(t *testing.T) {
	tests := []struct {
		name      string
		count     int
		base      []int
		records   []store.ShardState
		keys      string
		saved     int
		staleKeys string
	}{
		{"nothing saved", 4, []int{0, 1, 2, 3}, nil, "[0/4 1/4 2/4 3/4]", 0, "[]"},
		{"own sessions", 2, []int{0, 1}, []store.ShardState{rec(0, 2), rec(1, 2)}, "[0/2 1/2]", 2, "[]"},
		{"one split", 2, []int{0, 1}, []store.ShardState{rec(0, 2), rec(1, 4), rec(3, 4)}, "[0/2 1/4 3/4]", 3, "[]"},
		{"repeated split", 2, []int{0, 1}, []store.ShardState{rec(1, 4), rec(3, 8), rec(7, 8)}, "[0/2 1/4 3/8 7/8]", 3, "[]"},
		{"split beside its old session", 2, []int{0, 1}, []store.ShardState{rec(1, 2), rec(1, 4), rec(3, 4)}, "[0/2 1/4 3/4]", 2, "[1/2]"},
		{"partial split falls back", 2, []int{0, 1}, []store.ShardState{rec(1, 2), rec(3, 4)}, "[0/2 1/2]", 1, "[3/4]"},
		{"overlapping split falls back", 2, []int{0, 1}, []store.ShardState{rec(1, 4), rec(3, 4), rec(3, 8)}, "[0/2 1/2]", 0, "[1/4 3/4 3/8]"},
		{"whole re-shard to a multiple", 2, []int{0, 1}, []store.ShardState{rec(0, 4), rec(1, 4), rec(2, 4), rec(3, 4)}, "[0/4 1/4 2/4 3/4]", 4, "[]"},
		{"other count is stale", 2, []int{0, 1}, []store.ShardState{rec(1, 3), rec(0, 2)}, "[0/2 1/2]", 1, "[1/3]"},
		{"shard not configured is stale", 4, []int{0, 1}, []store.ShardState{rec(2, 4), rec(1, 8), rec(5, 8)}, "[0/4 1/8 5/8]", 2, "[2/4]"},
		{"out of range record is stale", 2, []int{0, 1}, []store.ShardState{{ShardID: 5, ShardCount: 4, SessionID: "x"}}, "[0/2 1/2]", 0, "[5/4]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := planLayout(tt.count, tt.base, false, tt.records)
			if got := fmt.Sprint(l.keys); got != tt.keys {
				t.Errorf("keys %s, want %s", got, tt.keys)
			}
			if len(l.saved) != tt.saved {
				t.Errorf("%d saved sessions used, want %d", len(l.saved), tt.saved)
			}
			var stale []ShardKey
			for _, r := range l.stale {
				stale = append(stale, ShardKey{r.ShardID, r.ShardCount})
			}
			sortKeys(stale)
			if got := fmt.Sprint(stale); got != tt.staleKeys {
				t.Errorf("stale %s, want %s", got, tt.staleKeys)
			}
			for k := range l.saved {
				if !containsKey(l.keys, k) {
					t.Errorf("saved session %s is not started", k)
				}
			}
		})
	}
}

// With every shard configured, a saved layout that covers every guild once
// is resumed whatever its counts, e.g. after a re-shard from 4 to 6.
func TestPlanLayoutWholeBot(t *testing.T) {
	six := []store.ShardState{rec(0, 6), rec(1, 6), rec(2, 6), rec(3, 6), rec(4, 6), rec(5, 6)}
	l := planLayout(4, []int{0, 1, 2, 3}, true, six)
	if got := fmt.Sprint(l.keys); got != "[0/6 1/6 2/6 3/6 4/6 5/6]" || len(l.saved) != 6 || len(l.stale) != 0 {
		t.Fatalf("keys %s, %d saved, %d stale", got, len(l.saved), len(l.stale))
	}
	// Not when this process runs only some shards, nor when a guild is
	// missing (a shard's session was not saved).
	if l := planLayout(4, []int{0, 1, 2, 3}, false, six); fmt.Sprint(l.keys) != "[0/4 1/4 2/4 3/4]" || len(l.stale) != 6 {
		t.Fatalf("with shard IDs: keys %v, %d stale", l.keys, len(l.stale))
	}
	if l := planLayout(4, []int{0, 1, 2, 3}, true, six[1:]); fmt.Sprint(l.keys) != "[0/4 1/4 2/4 3/4]" || len(l.stale) != 5 {
		t.Fatalf("with a hole: keys %v, %d stale", l.keys, len(l.stale))
	}
}

// A re-shard to a count that is not a multiple of the configured one
// survives a restart.
func TestRestartResumesReshardedLayout(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 2, 2
	sim := startSim(t, cfg)
	path := filepath.Join(t.TempDir(), "state.toml")
	f1 := openStore(t, path, store.WithFlushInterval(10*time.Millisecond))
	m1 := newTestManager(t, sim, cfg.IdentifyWindow, WithShardCount(2), WithStore(f1))
	openReady(t, m1)
	ctx := ctxT(t, 20*time.Second)
	if err := m1.Reshard(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f1.Close(); err != nil {
		t.Fatal(err)
	}
	before := sim.Stats()
	f2 := openStore(t, path)
	defer f2.Close()
	m2 := newTestManager(t, sim, cfg.IdentifyWindow, WithShardCount(2), WithStore(f2))
	openReady(t, m2)
	if got := fmt.Sprint(activeKeys(m2)); got != "[0/3 1/3 2/3]" {
		t.Fatalf("after restart: %s, want the re-sharded layout", got)
	}
	after := sim.Stats()
	if n := after.Identifies - before.Identifies; n != 0 {
		t.Fatalf("restart identified %d times, want 0", n)
	}
	checkRouting(t, m2, cfg.Guilds)
}

func containsKey(keys []ShardKey, k ShardKey) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// A split layout survives a restart: the split shards resume, nothing
// identifies, and routing follows the split.
func TestRestartResumesSplitLayout(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency, cfg.EventRate = 2, 2, 20
	sim := startSim(t, cfg)
	path := filepath.Join(t.TempDir(), "state.toml")

	f1 := openStore(t, path, store.WithFlushInterval(10*time.Millisecond))
	m1 := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f1))
	openReady(t, m1)
	ctx := ctxT(t, 20*time.Second)
	if err := m1.SplitShard(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := m1.SplitShard(ctx, 3, 2); err != nil {
		t.Fatal(err)
	}
	want := "[0/2 1/4 3/8 7/8]"
	if got := fmt.Sprint(activeKeys(m1)); got != want {
		t.Fatalf("after splits: %s, want %s", got, want)
	}
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f1.Close(); err != nil {
		t.Fatal(err)
	}
	before := sim.Stats()

	f2 := openStore(t, path)
	defer f2.Close()
	m2 := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f2))
	openReady(t, m2)
	if got := fmt.Sprint(activeKeys(m2)); got != want {
		t.Fatalf("after restart: %s, want %s", got, want)
	}
	after := sim.Stats()
	if n := after.Identifies - before.Identifies; n != 0 {
		t.Fatalf("restart identified %d times, want 0", n)
	}
	if n := after.Resumes - before.Resumes; n != 4 {
		t.Fatalf("restart resumed %d shards, want 4", n)
	}
	// No READY after the restart: the guild counts came with the sessions.
	checkRouting(t, m2, cfg.Guilds)
}
