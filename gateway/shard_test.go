package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/shardtop/shardtop/internal/poll"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
)

func TestOpenReadyGuildsHeartbeats(t *testing.T) {
	sim := startSim(t, discordsim.Config{Guilds: 20})
	ts := newShard(t, sim, WithHeartbeatJitter(func() float64 { return 0.01 }))
	ts.open(t)
	st := ts.Stats()
	if st.SessionID == "" || st.Identifies != 1 || ts.gate.readyReleases.Load() != 1 || ts.gate.acquires.Load() != 1 {
		t.Fatalf("after Open: %+v gate acquires=%d ready releases=%d", st, ts.gate.acquires.Load(), ts.gate.readyReleases.Load())
	}
	poll.Until(t, poll.Timeout, "all GUILD_CREATE", func() bool { return ts.Stats().Guilds == 20 && ts.Stats().Events >= 21 })
	poll.Until(t, poll.Timeout, "a heartbeat round trip", func() bool { return ts.Stats().Latency > 0 && ts.Stats().SmoothedLatency > 0 })
	if s := ts.Session(); s.ID != st.SessionID || s.ResumeURL != sim.ResumeURL() || s.Sequence < 21 {
		t.Fatalf("session %+v (resume url want %s)", s, sim.ResumeURL())
	}
	if ts.Start() != ErrAlreadyStarted {
		t.Fatal("second Start did not return ErrAlreadyStarted")
	}
}

// TestCloseCodes drives every row of the close code table through the simulator.
func TestCloseCodes(t *testing.T) {
	for _, code := range []int{4000, 4001, 4002, 4003, 4004, 4005, 4007, 4008, 4009, 4010, 4011, 4012, 4013, 4014} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, discordsim.Config{})
			ts := newShard(t, sim)
			ts.open(t)
			if sim.CloseShard(0, code) != 1 {
				t.Fatal("sim hit no connection")
			}
			_, action := CloseCodeInfo(code)
			switch action {
			case ActionResume:
				poll.Until(t, poll.Timeout, "resume", func() bool { return sim.Stats().Resumes == 1 && ts.State() == StateReady })
				if st := sim.Stats(); st.Identifies != 1 || ts.Stats().Resumes != 1 {
					t.Fatalf("identifies %d, client resumes %d", st.Identifies, ts.Stats().Resumes)
				}
			case ActionIdentify:
				poll.Until(t, poll.Timeout, "identify anew", func() bool { return sim.Stats().Identifies == 2 && ts.State() == StateReady })
				if sim.Stats().Resumes != 0 || ts.gate.acquires.Load() != 2 {
					t.Fatalf("resumes %d, gate acquires %d", sim.Stats().Resumes, ts.gate.acquires.Load())
				}
			default:
				// The recorder hears of a change after the state is published.
				poll.Until(t, poll.Timeout, "Failed", func() bool { _, ok := ts.rec.find(StateFailed); return ok })
				err := ts.Open(ctxT(t))
				var ce *CloseError
				if !errors.As(err, &ce) || ce.Code != code {
					t.Fatalf("Open after fatal close: %v", err)
				}
				ch, _ := ts.rec.find(StateFailed)
				if ch.CloseCode != code || !errors.As(ch.Err, &ce) {
					t.Fatalf("state change %+v", ch)
				}
				if n := sim.Stats().Connections; n != 1 {
					t.Fatalf("fatal code looped: %d connections", n)
				}
			}
		})
	}
}

func TestFatalCodesFromRealCauses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  discordsim.Config
		opts []Option
		tok  string
		want error
	}{
		{"bad token", discordsim.Config{}, nil, "wrong", ErrAuthenticationFailed},
		{"invalid intents", discordsim.Config{}, []Option{WithIntents(1 << 40)}, testToken, ErrInvalidIntents},
		{"disallowed intents", discordsim.Config{AllowedIntents: discordsim.IntentsNonPrivileged}, []Option{WithIntents(1 << 1)}, testToken, ErrDisallowedIntents},
		{"sharding required", discordsim.Config{Guilds: 30, MaxGuildsPerShard: 10}, nil, testToken, ErrShardingRequired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := startSim(t, c.cfg)
			rec := &recorder{t: t}
			s := New(c.tok, 0, 1, append([]Option{WithURL(sim.GatewayURL()), WithCompression(CompressionNone),
				WithIdentifyGate(&testGate{}), WithStateHandler(rec.handle)}, c.opts...)...)
			defer func() { _, _ = s.Close(ctxT(t)) }()
			err := s.Open(ctxT(t))
			if !errors.Is(err, c.want) {
				t.Fatalf("Open: %v, want %v", err, c.want)
			}
			if s.State() != StateFailed || sim.Stats().Connections != 1 {
				t.Fatalf("state %v, connections %d", s.State(), sim.Stats().Connections)
			}
		})
	}
}

func TestOp7Resumes(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	ts := newShard(t, sim)
	ts.open(t)
	sim.Reconnect(0)
	poll.Until(t, poll.Timeout, "resume after op 7", func() bool { return sim.Stats().Resumes == 1 && ts.State() == StateReady })
	if ch, _ := ts.rec.find(StateReconnecting); ch.Reason != "op 7 reconnect: resuming" {
		t.Fatalf("reason %q", ch.Reason)
	}
	if sim.Stats().Identifies != 1 || ts.Stats().SequenceGaps != 0 {
		t.Fatal("op 7 re-identified or left a gap")
	}
}

func TestOp9(t *testing.T) {
	t.Run("resumable", func(t *testing.T) {
		sim := startSim(t, discordsim.Config{})
		ts := newShard(t, sim)
		ts.open(t)
		sim.InvalidateSession(0, true)
		poll.Until(t, poll.Timeout, "resume", func() bool { return sim.Stats().Resumes == 1 && ts.State() == StateReady })
		if sim.Stats().Identifies != 1 {
			t.Fatal("re-identified")
		}
	})
	t.Run("not resumable", func(t *testing.T) {
		sim := startSim(t, discordsim.Config{})
		ts := newShard(t, sim)
		ts.open(t)
		old := ts.Session().ID
		sim.InvalidateSession(0, false)
		poll.Until(t, poll.Timeout, "identify anew", func() bool { return sim.Stats().Identifies == 2 && ts.State() == StateReady })
		if ts.gate.acquires.Load() != 2 || ts.gate.approaches.Load() != 2 || sim.Stats().Resumes != 0 {
			t.Fatalf("identify did not go through the gate: approaches %d acquires %d", ts.gate.approaches.Load(), ts.gate.acquires.Load())
		}
		if ts.Session().ID == old {
			t.Fatal("old session kept")
		}
	})
}

// TestZombieResumes: the sim stops sending (no ACKs); the client must notice
// within two heartbeat intervals, close non-1000 and resume with replay.
func TestZombieResumes(t *testing.T) {
	const interval = 200 * time.Millisecond
	sim := startSim(t, discordsim.Config{HeartbeatInterval: interval, EventRate: 200})
	ts := newShard(t, sim)
	ts.open(t)
	poll.Until(t, poll.Timeout, "traffic", func() bool { return ts.events.Load() > 30 })
	start := time.Now()
	sim.Zombie(0)
	poll.Until(t, poll.Timeout, "zombie detected", func() bool { return ts.rec.count(StateReconnecting) == 1 })
	if took := time.Since(start); took > 2*interval+100*time.Millisecond {
		t.Fatalf("zombie detected after %v, want within two heartbeats (%v)", took, 2*interval)
	}
	ch, _ := ts.rec.find(StateReconnecting)
	if ch.Reason != "zombie: no ACK in 200ms" {
		t.Fatalf("reason %q", ch.Reason)
	}
	poll.Until(t, poll.Timeout, "resume with replay", func() bool { return sim.Stats().Resumes == 1 && ts.State() == StateReady })
	if sim.Stats().Replayed == 0 {
		t.Fatal("nothing replayed")
	}
	if st := sim.Stats(); st.ClientCloses[1000] != 0 || st.ClientCloses[1001] != 0 || st.Identifies != 1 {
		t.Fatalf("client closes %v identifies %d", st.ClientCloses, st.Identifies)
	}
	seqNow := ts.Stats().Sequence
	poll.Until(t, poll.Timeout, "traffic after resume", func() bool { return ts.Stats().Sequence > seqNow+10 })
	if g := ts.Stats().SequenceGaps; g != 0 {
		t.Fatalf("%d sequence gaps after resume", g)
	}
}

func TestDropTCPResumesWithoutGap(t *testing.T) {
	sim := startSim(t, discordsim.Config{EventRate: 300})
	ts := newShard(t, sim)
	ts.open(t)
	poll.Until(t, poll.Timeout, "traffic", func() bool { return ts.events.Load() > 30 })
	sim.DropTCP(0)
	poll.Until(t, poll.Timeout, "resume", func() bool { return sim.Stats().Resumes == 1 && ts.State() == StateReady })
	seqNow := ts.Stats().Sequence
	poll.Until(t, poll.Timeout, "traffic after resume", func() bool { return ts.Stats().Sequence > seqNow+20 })
	st := ts.Stats()
	if st.SequenceGaps != 0 || st.Reconnects != 1 || st.ReconnectAttempts != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Every seq arrived exactly once in order: events seen == last seq.
	if got, want := ts.events.Load(), ts.maxSeq.Load(); got != want {
		t.Fatalf("saw %d dispatches, last seq %d", got, want)
	}
}

func TestServerRequestedHeartbeat(t *testing.T) {
	sim := startSim(t, discordsim.Config{HeartbeatInterval: 20 * time.Second})
	ts := newShard(t, sim, WithHeartbeatJitter(func() float64 { return 0.99 }))
	ts.open(t)
	before := sim.Stats().HeartbeatsReceived
	sim.RequestHeartbeat(0)
	poll.Until(t, poll.Timeout, "heartbeat answering op 1", func() bool { return sim.Stats().HeartbeatsReceived == before+1 })
	poll.Until(t, poll.Timeout, "its ACK", func() bool { return ts.Stats().Latency > 0 })
}

func TestCompressionEndToEnd(t *testing.T) {
	for _, comp := range []Compression{CompressionZlibStream, CompressionZstdStream} {
		t.Run(string(comp), func(t *testing.T) {
			t.Parallel()
			// A long interval: under -race an ACK queued behind the burst
			// could otherwise (correctly) look like a zombie.
			sim := startSim(t, discordsim.Config{HeartbeatInterval: 5 * time.Second})
			var bad, msgs atomic.Int64
			var mu sync.Mutex
			var lastMsg []byte
			ts := newShard(t, sim, WithCompression(comp), WithDispatchHandler(func(d Dispatch) {
				if !json.Valid(d.Data) {
					bad.Add(1)
				}
				if d.Event == "MESSAGE_CREATE" {
					msgs.Add(1)
					mu.Lock()
					lastMsg = append(lastMsg[:0], d.Data...)
					mu.Unlock()
				}
			}))
			ts.open(t)
			// READY alone makes Guilds 12; wait for its GUILD_CREATEs too
			// (READY + 12 dispatches) so none lands inside the burst count.
			poll.Until(t, poll.Timeout, "guilds", func() bool { st := ts.Stats(); return st.Guilds == 12 && st.Events == 13 })
			// Count the messages, not all events: on a loaded machine the
			// sim may drop a client that reads too slowly (as Discord does),
			// and the resume that follows adds a RESUMED of its own.
			// 1000 messages of ~1 KB: the compressor's 32 KiB window wraps
			// some 30 times, and -race on a loaded machine still gets through
			// them well within the wait.
			sim.Burst(0, 1000)
			poll.Until(t, poll.Timeout, "burst", func() bool { return msgs.Load() == 1000 && ts.State() == StateReady })
			resumes := sim.Stats().Resumes
			sim.Reconnect(0) // new connection, new decoder context
			poll.Until(t, poll.Timeout, "resume", func() bool { return sim.Stats().Resumes == resumes+1 && ts.State() == StateReady })
			sim.Burst(0, 300)
			poll.Until(t, poll.Timeout, "burst after resume", func() bool { return msgs.Load() == 1300 })
			if bad.Load() != 0 || ts.Stats().SequenceGaps != 0 {
				t.Fatalf("%d invalid payloads, %d gaps", bad.Load(), ts.Stats().SequenceGaps)
			}
			mu.Lock()
			defer mu.Unlock()
			var m struct {
				ChannelID string `json:"channel_id"`
			}
			if err := json.Unmarshal(lastMsg, &m); err != nil || m.ChannelID == "" {
				t.Fatalf("MESSAGE_CREATE data: %v %q", err, lastMsg)
			}
		})
	}
}

func TestSendLimitFlood(t *testing.T) {
	const limit, window = 20, time.Second
	sim := startSim(t, discordsim.Config{SendLimit: limit, SendWindow: window, HeartbeatInterval: 250 * time.Millisecond})
	ts := newShard(t, sim, WithSendLimit(limit, window))
	ts.open(t)
	// Op 4 (voice state): presence updates (op 3) have a tighter limit of their own.
	presence := []byte(`{"op":4,"d":{"guild_id":"1","channel_id":null,"self_mute":false,"self_deaf":false}}`)
	userRoom := limit - reserveFor(limit, window, 250*time.Millisecond)
	var times []time.Duration
	start := time.Now()
	for i := range limit + 5 {
		if err := ts.Send(ctxT(t), presence); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		times = append(times, time.Since(start))
	}
	// The user's room (limit minus the reserve, less the identify and
	// heartbeats already in the window) goes out at once; the next waits.
	fast := 0
	for _, d := range times {
		if d < window/2 {
			fast++
		}
	}
	if fast > userRoom || fast < userRoom-4 {
		t.Fatalf("%d payloads went out at once, user room %d (times %v)", fast, userRoom, times)
	}
	if times[len(times)-1] < 2*window {
		t.Fatalf("%d payloads took only %v", len(times), times[len(times)-1])
	}
	st := sim.Stats()
	if st.Closes[4008] != 0 || st.Connections != 1 || ts.State() != StateReady {
		t.Fatalf("sim closes %v connections %d state %v", st.Closes, st.Connections, ts.State())
	}
}

func TestSendRefusals(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	ts := newShard(t, sim)
	big := []byte(`{"op":3,"d":"` + string(make([]byte, 0)) + fmt.Sprintf("%04097d", 0) + `"}`)
	if err := ts.Send(ctxT(t), big); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("too large before start: %v", err)
	}
	ts.open(t)
	before := sim.Stats()
	if err := ts.Send(ctxT(t), big); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if err := ts.Send(ctxT(t), []byte(`{"op":3,`)); err == nil {
		t.Fatal("invalid JSON accepted")
	}
	// A marker sent after the refused payloads: once it arrived, anything
	// the shard wrongly sent before it has arrived too.
	if err := ts.Send(ctxT(t), []byte(`{"op":4,"d":{"guild_id":"1","channel_id":null,"self_mute":false,"self_deaf":false}}`)); err != nil {
		t.Fatalf("op 4: %v", err)
	}
	poll.Until(t, poll.Timeout, "the op 4 marker", func() bool { return sim.Stats().PayloadsByOp[4] == before.PayloadsByOp[4]+1 })
	if st := sim.Stats(); st.PayloadsByOp[3] != before.PayloadsByOp[3] || st.Closes[4002] != 0 || ts.State() != StateReady {
		t.Fatalf("refused payloads reached the sim: op 3 %d -> %d, 4002 closes %d, state %v",
			before.PayloadsByOp[3], st.PayloadsByOp[3], st.Closes[4002], ts.State())
	}
	if _, err := ts.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := ts.Send(ctxT(t), []byte(`{"op":3,"d":{}}`)); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestIdentifyWaitsForGate(t *testing.T) {
	sim := startSim(t, discordsim.Config{HeartbeatInterval: 100 * time.Millisecond})
	ts := newShard(t, sim, WithHeartbeatJitter(func() float64 { return 0 }))
	ts.gate.hold = make(chan struct{})
	if err := ts.Start(); err != nil {
		t.Fatal(err)
	}
	// Connected, heartbeating, but no identify until the gate says so.
	poll.Until(t, poll.Timeout, "heartbeats while waiting", func() bool { return sim.Stats().HeartbeatsReceived >= 3 })
	st := sim.Stats()
	if st.Identifies != 0 || ts.State() != StateConnecting {
		t.Fatalf("identified before the gate: sim %+v state %v", st, ts.State())
	}
	for op, n := range st.PayloadsByOp {
		if op != 1 {
			t.Fatalf("the shard sent %d payloads of op %d before the gate opened; only heartbeats allowed", n, op)
		}
	}
	close(ts.gate.hold)
	ts.open(t)
	if sim.Stats().Identifies != 1 || sim.Stats().Closes[4009] != 0 {
		t.Fatal("identify after gate")
	}
}

func TestGateReleasedOnCloseWhileQueued(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	ts := newShard(t, sim)
	ts.gate.hold = make(chan struct{})
	if err := ts.Start(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, poll.Timeout, "waiting in Acquire", func() bool { return ts.State() == StateConnecting && sim.Stats().ActiveConnections == 1 })
	if _, err := ts.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if ts.gate.releases.Load() != 1 || ts.gate.readyReleases.Load() != 0 || ts.State() != StateClosed {
		t.Fatalf("releases %d state %v", ts.gate.releases.Load(), ts.State())
	}
}

func TestCloseKeepsSessionForNewShard(t *testing.T) {
	sim := startSim(t, discordsim.Config{EventRate: 100, Guilds: 12})
	ts := newShard(t, sim)
	ts.open(t)
	poll.Until(t, poll.Timeout, "traffic", func() bool { return ts.events.Load() > 10 && ts.Stats().Guilds == 12 })
	sess, err := ts.Close(ctxT(t))
	if err != nil || !sess.Resumable() || sess.Sequence == 0 || sess.ResumeURL == "" || sess.Guilds != 12 {
		t.Fatalf("Close: %+v %v", sess, err)
	}
	if ts.State() != StateClosed {
		t.Fatalf("state %v", ts.State())
	}
	poll.Until(t, poll.Timeout, "sim saw close 4000", func() bool { return sim.Stats().ClientCloses[4000] == 1 })
	again, err := ts.Close(ctxT(t))
	if err != nil || again != sess {
		t.Fatal("Close not idempotent")
	}
	ts2 := newShard(t, sim, WithSession(sess))
	ts2.open(t)
	st := sim.Stats()
	if st.Resumes != 1 || st.Identifies != 1 || ts2.gate.approaches.Load() != 0 {
		t.Fatalf("restart: resumes %d identifies %d gate %d", st.Resumes, st.Identifies, ts2.gate.approaches.Load())
	}
	if ts2.Session().ID != sess.ID || ts2.Stats().SequenceGaps != 0 {
		t.Fatal("resumed into another session or with a gap")
	}
	// No READY on a resume: the guild count comes with the session.
	poll.Until(t, poll.Timeout, "live traffic after the resume", func() bool { return ts2.Stats().Sequence > sess.Sequence+5 })
	if g, sg := ts2.Stats().Guilds, ts2.Session().Guilds; g != 12 || sg != 12 {
		t.Fatalf("resumed shard counts %d guilds (session %d), want 12", g, sg)
	}
	if first, _ := ts2.rec.find(StateConnecting); first.From != StateIdle {
		t.Fatalf("restart went through %v first", first.From)
	}
}

func TestEndEndsSession(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	ts := newShard(t, sim)
	ts.open(t)
	id := ts.Session().ID
	if err := ts.End(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if ts.Session().Resumable() || ts.State() != StateClosed {
		t.Fatal("End kept the session")
	}
	poll.Until(t, poll.Timeout, "sim session gone", func() bool {
		for _, s := range sim.Sessions() {
			if s.ID == id {
				return false
			}
		}
		return true
	})
	poll.Until(t, poll.Timeout, "sim saw close 1000", func() bool { return sim.Stats().ClientCloses[1000] == 1 })
	ts2 := newShard(t, sim, WithSession(Session{ID: id, Sequence: 1, ResumeURL: sim.ResumeURL()}))
	ts2.open(t)
	if sim.Stats().Identifies != 2 || sim.Stats().ResumesRejected != 1 {
		t.Fatalf("stale resume: %+v", sim.Stats())
	}
}

func TestLifecycleEdges(t *testing.T) {
	s := New(testToken, 0, 1)
	if _, err := s.Close(ctxT(t)); err != nil || s.State() != StateClosed {
		t.Fatal("Close before Start")
	}
	if s.Start() != ErrClosed {
		t.Fatal("Start after Close")
	}
	if err := New(testToken, 3, 2).Start(); err == nil {
		t.Fatal("invalid shard accepted")
	}
	if err := New(testToken, 0, 1, WithPresence(json.RawMessage(`{bad`))).Start(); err == nil {
		t.Fatal("invalid presence accepted")
	}
	if err := New(testToken, 0, 1, WithCompression("gzip")).Start(); err == nil {
		t.Fatal("unknown compression accepted")
	}
}

// A session saved right after READY resumes with its GUILD_CREATEs still to
// come: they are replayed, and must not be counted on top of the saved count.
func TestResumeReplayDoesNotDoubleCountGuilds(t *testing.T) {
	sim := startSim(t, discordsim.Config{Guilds: 9})
	ts := newShard(t, sim)
	ts.open(t)
	poll.Until(t, poll.Timeout, "all GUILD_CREATE", func() bool { return ts.Stats().Guilds == 9 })
	sess, err := ts.Close(ctxT(t))
	if err != nil || sess.Guilds != 9 {
		t.Fatalf("Close: %+v %v", sess, err)
	}
	sess.Sequence = 1 // as if saved right after READY
	ts2 := newShard(t, sim, WithSession(sess))
	ts2.open(t)
	poll.Until(t, poll.Timeout, "the replayed GUILD_CREATEs", func() bool { return ts2.maxSeq.Load() >= 10 })
	if st := sim.Stats(); st.Resumes != 1 || st.Replayed < 9 {
		t.Fatalf("sim: %d resumes, %d replayed; want 1 and at least 9", st.Resumes, st.Replayed)
	}
	if g := ts2.Stats().Guilds; g != 9 {
		t.Fatalf("after replaying 9 GUILD_CREATEs onto a saved count of 9: %d guilds, want 9", g)
	}
}

// TestDialGuard: a shard asks its dial guard before every dial. Once the
// guard refuses (a cluster process lost the shard's lease), a reconnect
// that would otherwise resume at once does not dial: the shard fails with
// the guard's error, and Discord sees no new connection.
func TestDialGuard(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	errLeaseGone := errors.New("lease lost")
	var refuse atomic.Bool
	ts := newShard(t, sim, WithDialGuard(func() error {
		if refuse.Load() {
			return errLeaseGone
		}
		return nil
	}))
	ts.open(t)
	refuse.Store(true)
	conns := sim.Stats().Connections
	sim.Reconnect(0) // op 7: the shard would resume at once
	poll.Until(t, poll.Timeout, "the shard failed by its guard", func() bool { return ts.State() == StateFailed })
	if last := ts.Stats().LastError; last != "gateway: may not connect: lease lost" {
		t.Fatalf("shard's last error %q, want the guard's", last)
	}
	if st := sim.Stats(); st.Connections != conns || st.Resumes != 0 {
		t.Fatalf("sim saw %d connections (had %d) and %d resumes: the guard let it dial", st.Connections, conns, st.Resumes)
	}
}
