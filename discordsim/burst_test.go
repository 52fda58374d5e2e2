package discordsim

import (
	"bytes"
	"cmp"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/poll"
)

// onlySession returns the server's single session.
func onlySession(t *testing.T, s *Server) *session {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(s.sessions))
	}
	for _, ss := range s.sessions {
		return ss
	}
	return nil
}

// heldAfter renders the dispatches the session holds after seq, as the
// server sends them.
func heldAfter(ss *session, seq int64) [][]byte {
	ss.mu.Lock()
	es := ss.sinceLocked(seq)
	ss.mu.Unlock()
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = appendDispatch(nil, e)
	}
	return out
}

// readBurst reads n MESSAGE_CREATE following seq from, skipping heartbeat
// ACKs, and returns the raw payloads and how many ACKs came in between.
func readBurst(t *testing.T, c *client, from int64, n int) (msgs [][]byte, acks int) {
	t.Helper()
	for len(msgs) < n {
		f := c.read()
		if f.Op == 11 {
			acks++
			continue
		}
		want := from + int64(len(msgs)) + 1
		if f.event() != "MESSAGE_CREATE" || f.seq() != want {
			t.Fatalf("message %d: got %v, want MESSAGE_CREATE s=%d", len(msgs), f, want)
		}
		msgs = append(msgs, f.Raw)
	}
	return msgs, acks
}

// TestBurstPrepared: a burst many chunks long (chunks shrunk to 300, cut
// short by a heartbeat arriving mid-burst) arrives complete, in seq order,
// each payload byte for byte what the replay buffer holds, with the
// heartbeat's ACK decodable in the same compressed stream.
func TestBurstPrepared(t *testing.T) {
	for _, mode := range []string{"", "zlib-stream", "zstd-stream"} {
		name := mode
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			const n, chunk = 2000, 300
			s := startSim(t, Config{Guilds: 10, HeartbeatInterval: time.Minute, ReplayBuffer: n + 100, burstChunk: chunk})
			c := dial(t, s.GatewayURL(), mode)
			c.hello()
			r := c.identify("sim-token", 0, 1)
			first := int64(1 + len(r.Guilds))
			if s.Burst(0, n) != 1 {
				t.Fatal("burst missed the shard")
			}
			c.send(map[string]any{"op": 1, "d": nil})
			msgs, acks := readBurst(t, c, first, n)
			if acks == 0 { // the whole burst may have been out before the heartbeat arrived
				if f := c.read(); f.Op != 11 {
					t.Fatalf("no ACK, got %v", f)
				}
				acks++
			}
			if acks != 1 {
				t.Fatalf("%d ACKs for one heartbeat", acks)
			}
			held := heldAfter(onlySession(t, s), first)
			if len(held) != n {
				t.Fatalf("replay buffer holds %d after the burst, want %d", len(held), n)
			}
			for i := range held {
				if !bytes.Equal(msgs[i], held[i]) {
					t.Fatalf("message %d:\n got %s\nwant %s", i, msgs[i], held[i])
				}
			}
			if d := s.Stats().Dispatches; d != uint64(first)+n {
				t.Fatalf("Stats.Dispatches %d, want %d", d, uint64(first)+n)
			}
			// The stream goes on coherently after the burst.
			s.Burst(0, 3)
			readMessages(t, c, first+n, 3)
		})
	}
}

// TestBurstPreparedResume: a compressed connection dropped mid-burst leaves
// every dispatch it numbered, sent or still prepared, in the replay buffer:
// a resume from the last seq read replays exactly those, in order, then
// RESUMED, then the rest of the burst (Discord goes on producing a
// session's events while its client is away), then new traffic.
func TestBurstPreparedResume(t *testing.T) {
	for _, mode := range []string{"", "zlib-stream", "zstd-stream"} {
		t.Run(cmp.Or(mode, "none"), func(t *testing.T) {
			// Uncompressed, n is more than loopback's socket buffers
			// hold: the drop comes before the burst is numbered, and the
			// rest is carried over to the resume.
			n, chunk, before := int64(2000), 300, int64(600)
			if mode == "" {
				n = 30000
			}
			s := startSim(t, Config{Guilds: 4, HeartbeatInterval: time.Minute, burstChunk: chunk,
				IdentifyWindow: time.Nanosecond, ReplayBuffer: int(n) + 100})
			c := dial(t, s.GatewayURL(), mode)
			c.hello()
			r := c.identify("sim-token", 0, 1)
			first := int64(1 + len(r.Guilds))
			s.Burst(0, int(n))
			readBurst(t, c, first, int(before))
			last := first + before
			if s.DropTCP(0) != 1 {
				t.Fatal("drop missed the shard")
			}
			var numbered int64
			poll.Until(t, poll.Timeout, "detached", func() bool {
				ss := s.Sessions()
				if len(ss) == 1 && !ss[0].Connected {
					numbered = ss[0].Seq
					return true
				}
				return false
			})
			if numbered < last || numbered > first+n {
				t.Fatalf("session seq %d after the drop, want %d..%d", numbered, last, first+n)
			}
			held := heldAfter(onlySession(t, s), last)
			c2 := dial(t, r.ResumeGatewayURL, mode)
			c2.hello()
			c2.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": last}})
			replay, _ := readBurst(t, c2, last, int(numbered-last))
			for i := range replay {
				if !bytes.Equal(replay[i], held[i]) {
					t.Fatalf("replayed %d:\n got %s\nwant %s", i, replay[i], held[i])
				}
			}
			if f := c2.read(); f.event() != "RESUMED" || f.seq() != numbered+1 {
				t.Fatalf("got %v, want RESUMED s=%d", f, numbered+1)
			}
			rest := int(first + n - numbered) // 0 if the socket buffers took the whole burst
			if mode == "" && rest == 0 {
				t.Fatalf("the whole burst was numbered before the drop: the test tests no carry-over")
			}

			readMessages(t, c2, numbered+1, rest)
			s.Burst(0, 50)
			readMessages(t, c2, numbered+1+int64(rest), 50)
			if sn := s.Sessions()[0].Seq; sn != first+n+1+50 {
				t.Fatalf("session seq %d, want %d: the burst sent more or less than asked", sn, first+n+1+50)
			}
		})
	}
}
