package discordsim

import (
	"testing"

	"github.com/shardtop/shardtop/internal/poll"
)

// TestLiveSessionsCountsOverlapsNotTakeovers: a resume on a new
// connection while the old one is open drops the old one, as Discord
// does, and is no overlap; two identifies of one shard live at once are.
func TestLiveSessionsCountsOverlapsNotTakeovers(t *testing.T) {
	s := startSim(t, Config{IdentifyWindow: 1}) // 1 ns: identifies back to back
	shard0 := ShardKey{ID: 0, Count: 2}
	shard1 := ShardKey{ID: 1, Count: 2}

	old := dial(t, s.GatewayURL(), "")
	old.hello()
	r := old.identify("sim-token", 0, 2)
	taker := dial(t, r.ResumeGatewayURL, "")
	taker.hello()
	taker.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": 1}})
	for f := taker.read(); f.event() != "RESUMED"; f = taker.read() {
		if f.event() != "GUILD_CREATE" {
			t.Fatalf("after resume got %v (%s), want the replay then RESUMED", f, f.Raw)
		}
	}
	// The old connection is dropped: its reads end.
	for {
		if _, err := old.next(waitTimeout); err != nil {
			break
		}
	}
	perShard, perSession := s.MaxLiveSessions()
	if perShard[shard0] != 1 || perSession[r.SessionID] != 1 {
		t.Errorf("after a takeover: per shard %v, per session %v; want 1 and 1", perShard, perSession)
	}
	if o := s.ShardOverlaps(); len(o) != 0 {
		t.Errorf("a takeover counted as overlaps %+v", o)
	}

	a := dial(t, s.GatewayURL(), "")
	a.hello()
	ra := a.identify("sim-token", 1, 2)
	b := dial(t, s.GatewayURL(), "")
	b.hello()
	rb := b.identify("sim-token", 1, 2)
	perShard, perSession = s.MaxLiveSessions()
	if perShard[shard1] != 2 || perShard[shard0] != 1 || perSession[ra.SessionID] != 1 || perSession[rb.SessionID] != 1 {
		t.Errorf("two identifies of shard 1: per shard %v, per session %v; want shard 1 at 2", perShard, perSession)
	}
	o := s.ShardOverlaps()
	if len(o) != 1 || o[0].Shard != shard1 || len(o[0].Sessions) != 2 {
		t.Fatalf("overlaps %+v, want one of shard 1 with two sessions", o)
	}

	// Ending one leaves one live: a third identify overlaps once more,
	// with two sessions, not three.
	a.closeWith(1000)
	poll.Until(t, poll.Timeout, "shard 1's first session to end", func() bool { return s.Stats().ActiveSessions == 2 })
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identify("sim-token", 1, 2)
	if o := s.ShardOverlaps(); len(o) != 2 || len(o[1].Sessions) != 2 {
		t.Errorf("overlaps %+v, want a second one of two sessions", o)
	}
	if perShard, _ := s.MaxLiveSessions(); perShard[shard1] != 2 {
		t.Errorf("max live of shard 1 = %d, want 2", perShard[shard1])
	}
}
