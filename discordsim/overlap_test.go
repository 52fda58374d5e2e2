package discordsim

import (
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/shardtop/shardtop/internal/poll"
)

// resumeOn opens a connection to url, resumes r at seq and reads up to
// RESUMED (after the replay, if any).
func resumeOn(t *testing.T, url string, r readyData, seq int64) *client {
	t.Helper()
	c := dial(t, url, "")
	c.hello()
	c.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": seq}})
	for {
		f := c.read()
		if f.event() == "RESUMED" {
			return c
		}
		if f.Op != 0 {
			t.Fatalf("resume of %s: got %v (%s), want the replay and RESUMED", r.SessionID, f, f.Raw)
		}
	}
}

func sorted(ids ...string) []string { slices.Sort(ids); return ids }

// lastSeq is the seq of the last dispatch identify read: READY and one
// GUILD_CREATE per guild.
func lastSeq(r readyData) int64 { return 1 + int64(len(r.Guilds)) }

// wantLive checks the overlap counters, through the methods and the
// /_sim/stats JSON end-to-end tests read.
func wantLive(t *testing.T, s *Server, overlaps, maxLive int) {
	t.Helper()
	if n, m := s.Stats().ShardOverlaps, s.MaxLivePerShard(); n != overlaps || m != maxLive || len(s.ShardOverlaps()) != overlaps {
		t.Fatalf("Stats.ShardOverlaps %d, MaxLivePerShard %d; want %d, %d; overlaps %+v", n, m, overlaps, maxLive, s.ShardOverlaps())
	}
	var st struct {
		ShardOverlaps, MaxLivePerShard *int
		Overlaps                       []Overlap
	}
	getJSON(t, "http://"+s.Addr()+"/_sim/stats", "", &st)
	if st.ShardOverlaps == nil || st.MaxLivePerShard == nil {
		t.Fatalf("/_sim/stats lacks ShardOverlaps or MaxLivePerShard")
	}
	if *st.ShardOverlaps != overlaps || *st.MaxLivePerShard != maxLive || len(st.Overlaps) != min(overlaps, maxOverlapsKept) {
		t.Fatalf("/_sim/stats: ShardOverlaps %d, MaxLivePerShard %d, %d overlaps described; want %d, %d",
			*st.ShardOverlaps, *st.MaxLivePerShard, len(st.Overlaps), overlaps, maxLive)
	}
}

func TestTwoIdentifiesOfOneShardOverlap(t *testing.T) {
	s := startSim(t, Config{Guilds: 8, IdentifyWindow: time.Nanosecond})
	wantLive(t, s, 0, 0)
	c1 := dial(t, s.GatewayURL(), "")
	c1.hello()
	r1 := c1.identify("sim-token", 1, 2)
	wantLive(t, s, 0, 1)

	// Other shards, including shard 1 of another count (a re-shard runs
	// both), are not the same shard.
	for _, sh := range [][2]int{{0, 2}, {1, 4}} {
		c := dial(t, s.GatewayURL(), "")
		c.hello()
		c.identify("sim-token", sh[0], sh[1])
	}
	wantLive(t, s, 0, 1)

	before := time.Now()
	c2 := dial(t, s.GatewayURL(), "")
	c2.hello()
	r2 := c2.identify("sim-token", 1, 2)
	wantLive(t, s, 1, 2)
	o := s.ShardOverlaps()[0]
	if o.Shard != (ShardKey{1, 2}) || !slices.Equal(o.Sessions, sorted(r1.SessionID, r2.SessionID)) ||
		o.At.Before(before) || o.At.After(time.Now()) {
		t.Fatalf("overlap %+v, want shard 1/2, sessions %s and %s, at %v or later", o, r1.SessionID, r2.SessionID, before)
	}
	if perShard, perSession := s.MaxLiveSessions(); perShard[ShardKey{1, 2}] != 2 || perShard[ShardKey{0, 2}] != 1 ||
		perShard[ShardKey{1, 4}] != 1 || perSession[r1.SessionID] != 1 || perSession[r2.SessionID] != 1 {
		t.Fatalf("MaxLiveSessions: per shard %v, per session %v", perShard, perSession)
	}

	// A third one overlaps again; the count is of connections.
	c3 := dial(t, s.GatewayURL(), "")
	c3.hello()
	c3.identify("sim-token", 1, 2)
	wantLive(t, s, 2, 3)

	// Once they are gone, identifying the shard again overlaps nothing:
	// the counters are history (the maximum stays).
	c1.closeWith(1000)
	c2.closeWith(4000)
	c3.closeWith(1001)
	c4 := dial(t, s.GatewayURL(), "")
	c4.hello()
	c4.identify("sim-token", 1, 2)
	wantLive(t, s, 2, 3)
}

func TestResumeTakesOverOpenConnection(t *testing.T) {
	s := startSim(t, Config{Guilds: 8})
	c1 := dial(t, s.GatewayURL(), "")
	c1.hello()
	r := c1.identify("sim-token", 1, 2)

	// The session's first connection is still open: resuming it elsewhere
	// ends that one, as Discord does. A replacement, not an overlap.
	c2 := resumeOn(t, r.ResumeGatewayURL, r, lastSeq(r))
	_, err := c1.next(waitTimeout)
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the taken over connection: got %v, want it closed by the simulator", err)
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("the taken over connection got close frame %d, want TCP closed with none", ce.Code)
	}
	poll.Until(t, poll.Timeout, "the old connection gone", func() bool { return s.Stats().ActiveConnections == 1 })
	wantLive(t, s, 0, 1)
	if _, perSession := s.MaxLiveSessions(); perSession[r.SessionID] != 1 {
		t.Fatalf("session %s live on %d connections at once, want 1", r.SessionID, perSession[r.SessionID])
	}
	if ss := s.Sessions(); len(ss) != 1 || !ss[0].Connected || ss[0].ID != r.SessionID {
		t.Fatalf("sessions %+v, want %s alone, connected", ss, r.SessionID)
	}

	// The new connection serves the session: traffic reaches it.
	if n := s.Burst(1, 3); n != 1 {
		t.Fatalf("Burst hit %d connections, want 1", n)
	}
	last := readMessages(t, c2, lastSeq(r)+1, 3) // after RESUMED

	// And taking it over once more from a third connection is still no overlap.
	resumeOn(t, r.ResumeGatewayURL, r, last)
	if _, err := c2.next(waitTimeout); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the second taken over connection: got %v, want it closed", err)
	}
	wantLive(t, s, 0, 1)
	if st := s.Stats(); st.Resumes != 2 || st.Identifies != 1 {
		t.Fatalf("stats %+v, want 2 resumes of 1 identify", st)
	}
}

func TestSuccessiveSessionsOfOneShardDoNotOverlap(t *testing.T) {
	s := startSim(t, Config{Guilds: 8, IdentifyWindow: time.Nanosecond})
	// Each case starts once the previous one's connections are gone: the
	// fault methods target every connection of shard 0 not yet torn down.
	run := func(name string, f func(t *testing.T)) {
		poll.Until(t, poll.Timeout, "no connection left before "+name, func() bool { return s.Stats().ActiveConnections == 0 })
		t.Run(name, f)
	}
	run("identify, close, identify", func(t *testing.T) {
		c1 := dial(t, s.GatewayURL(), "")
		c1.hello()
		c1.identify("sim-token", 0, 2)
		// closeWith returns once the simulator answered the close frame:
		// from then on it counts the connection live no longer.
		c1.closeWith(1000)
		c2 := dial(t, s.GatewayURL(), "")
		c2.hello()
		c2.identify("sim-token", 0, 2)
		wantLive(t, s, 0, 1)
		c2.closeWith(1000)
	})
	run("resume after close", func(t *testing.T) {
		c1 := dial(t, s.GatewayURL(), "")
		c1.hello()
		r := c1.identify("sim-token", 0, 2)
		c1.closeWith(4000) // keeps the session
		c2 := resumeOn(t, r.ResumeGatewayURL, r, lastSeq(r))
		wantLive(t, s, 0, 1)
		c2.closeWith(1000)
	})
	run("TCP dropped by the client, then identify", func(t *testing.T) {
		c1 := dial(t, s.GatewayURL(), "")
		c1.hello()
		c1.identify("sim-token", 0, 2)
		_ = c1.ws.UnderlyingConn().Close() // no close frame
		poll.Until(t, poll.Timeout, "the dropped connection gone", func() bool { return s.Stats().ActiveConnections == 0 })
		c2 := dial(t, s.GatewayURL(), "")
		c2.hello()
		c2.identify("sim-token", 0, 2)
		wantLive(t, s, 0, 1)
		c2.closeWith(1000)
	})
	run("server close, then identify", func(t *testing.T) {
		c1 := dial(t, s.GatewayURL(), "")
		c1.hello()
		c1.identify("sim-token", 0, 2)
		// The simulator closing the connection ends its service at once,
		// before the client answers.
		if n := s.CloseShard(0, 4009); n != 1 {
			t.Fatalf("CloseShard hit %d", n)
		}
		c2 := dial(t, s.GatewayURL(), "")
		c2.hello()
		c2.identify("sim-token", 0, 2)
		wantLive(t, s, 0, 1)
		c1.expectClose(4009)
		c2.closeWith(1000)
	})
	run("invalid session, identify on the same connection", func(t *testing.T) {
		c := dial(t, s.GatewayURL(), "")
		c.hello()
		c.identify("sim-token", 0, 2)
		if n := s.InvalidateSession(0, false); n != 1 {
			t.Fatalf("InvalidateSession hit %d", n)
		}
		if f := c.read(); f.Op != 9 {
			t.Fatalf("got %v, want op 9", f)
		}
		again := c.identify("sim-token", 0, 2)
		wantLive(t, s, 0, 1)
		// The connection serves its new session now, which a second one overlaps.
		c2 := dial(t, s.GatewayURL(), "")
		c2.hello()
		r2 := c2.identify("sim-token", 0, 2)
		wantLive(t, s, 1, 2)
		if o := s.ShardOverlaps()[0]; !slices.Equal(o.Sessions, sorted(again.SessionID, r2.SessionID)) {
			t.Fatalf("overlap %+v, want sessions [%s %s]", o, again.SessionID, r2.SessionID)
		}
	})
}
