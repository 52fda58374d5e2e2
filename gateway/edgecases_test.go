package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/shardtop/shardtop/internal/poll"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/shardtop/shardtop/discordsim"
)

// expiredCtx is a context that has already ended.
func expiredCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// End after a Close that already closed (4000) cannot end the session: it
// says so and keeps the session.
func TestEndAfterCloseKeepsSession(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	ts := newShard(t, sim)
	ts.open(t)
	if _, err := ts.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	id := ts.Session().ID
	if err := ts.End(ctxT(t)); !errors.Is(err, ErrSessionKept) {
		t.Fatalf("End after Close: %v, want ErrSessionKept", err)
	}
	if ts.Session().ID != id || id == "" {
		t.Fatalf("session %q after End, want %q kept", ts.Session().ID, id)
	}
	poll.Until(t, poll.Timeout, "sim saw 4000", func() bool { return sim.Stats().ClientCloses[4000] == 1 })
	if c := sim.Stats().ClientCloses[1000]; c != 0 {
		t.Fatalf("sim saw %d closes 1000", c)
	}
}

// End after a Close whose ctx had expired: whichever close frame went out,
// End's answer must match it: nil and 1000 (session ended), or
// ErrSessionKept and 4000 (session kept).
func TestEndAfterExpiredClose(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	ts := newShard(t, sim)
	ts.open(t)
	_, _ = ts.Close(expiredCtx())
	err := ts.End(ctxT(t))
	poll.Until(t, poll.Timeout, "sim saw the close", func() bool {
		st := sim.Stats()
		return st.ClientCloses[1000]+st.ClientCloses[4000] == 1
	})
	st := sim.Stats()
	switch {
	case err == nil:
		if st.ClientCloses[1000] != 1 || ts.Session().Resumable() {
			t.Fatalf("End returned nil but the sim saw %v, session %+v", st.ClientCloses, ts.Session())
		}
	case errors.Is(err, ErrSessionKept):
		if st.ClientCloses[4000] != 1 || !ts.Session().Resumable() {
			t.Fatalf("End kept the session but the sim saw %v, session %+v", st.ClientCloses, ts.Session())
		}
	default:
		t.Fatalf("End: %v", err)
	}
}

// stuckGate holds Approach until release is closed, whatever its ctx.
type stuckGate struct {
	entered chan struct{}
	release chan struct{}
}

func (g *stuckGate) Enqueue(int) (uint64, error) { return 1, nil }
func (g *stuckGate) Approach(context.Context, uint64, time.Duration) error {
	close(g.entered)
	<-g.release
	return nil
}
func (g *stuckGate) Acquire(ctx context.Context, _ uint64) error { return ctx.Err() }
func (g *stuckGate) Release(uint64, bool)                        {}

// End while a Close is pending (its code not yet used) upgrades it to 1000.
func TestEndUpgradesPendingClose(t *testing.T) {
	g := &stuckGate{entered: make(chan struct{}), release: make(chan struct{})}
	rec := &recorder{t: t}
	s := New(testToken, 0, 1, WithURL("ws://127.0.0.1:1"), WithIdentifyGate(g), WithStateHandler(rec.handle))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	if _, err := s.Close(expiredCtx()); err == nil {
		t.Fatal("Close with an expired ctx returned nil while the loop was stuck")
	}
	endErr := make(chan error, 1)
	go func() { endErr <- s.End(context.Background()) }()
	poll.Until(t, poll.Timeout, "End upgrading the close code", func() bool {
		s.lifeMu.Lock()
		defer s.lifeMu.Unlock()
		return s.stopCode == websocket.CloseNormalClosure
	})
	close(g.release)
	if err := <-endErr; err != nil {
		t.Fatalf("End: %v", err)
	}
	if ch, ok := rec.find(StateClosed); !ok || ch.CloseCode != websocket.CloseNormalClosure || !strings.Contains(ch.Reason, "ended") {
		t.Fatalf("closed with %d %q, want 1000 (ended)", ch.CloseCode, ch.Reason)
	}
}

// The state handler of a Close before Start runs without lifeMu: it may
// call Start (which must say ErrClosed, not deadlock).
func TestCloseBeforeStartHandlerOutsideLock(t *testing.T) {
	var s *Shard
	startErr := make(chan error, 1)
	s = New(testToken, 0, 1, WithStateHandler(func(c StateChange) {
		if c.To == StateClosed {
			startErr <- s.Start()
		}
	}))
	done := make(chan error, 1)
	go func() { _, err := s.Close(context.Background()); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close before Start deadlocked: state handler ran under lifeMu")
	}
	if err := <-startErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Start from the handler: %v", err)
	}
	if err := s.End(ctxT(t)); err != nil {
		t.Fatalf("End after Close before Start (no session): %v", err)
	}
}

// Send refuses the ops the shard sends itself, before sending anything.
func TestSendRejectsReservedOps(t *testing.T) {
	sim := startSim(t, discordsim.Config{HeartbeatInterval: 20 * time.Second})
	ts := newShard(t, sim, WithHeartbeatJitter(func() float64 { return 0.99 }))
	ts.open(t)
	before := sim.Stats()
	for _, p := range []string{
		`{"op":1,"d":null}`,
		`{"d":{"token":"x","intents":0,"properties":{}},"op":2}`,
		`{"op":6,"d":{"token":"x","session_id":"y","seq":1}}`,
	} {
		err := ts.Send(ctxT(t), []byte(p))
		if !errors.Is(err, ErrReservedOp) {
			t.Fatalf("Send(%s): %v, want ErrReservedOp", p, err)
		}
	}
	if err := ts.Send(ctxT(t), []byte(`{"op":4,"d":{"guild_id":"1","channel_id":null,"self_mute":false,"self_deaf":false}}`)); err != nil {
		t.Fatalf("op 4: %v", err)
	}
	poll.Until(t, poll.Timeout, "the op 4", func() bool { return sim.Stats().PayloadsByOp[4] == before.PayloadsByOp[4]+1 })
	st := sim.Stats()
	if st.Identifies != 1 || ts.State() != StateReady {
		t.Fatalf("sim %+v state %v", st, ts.State())
	}
	for _, op := range []int{1, 2, 6} { // no beat is due for 20 s
		if st.PayloadsByOp[op] != before.PayloadsByOp[op] {
			t.Fatalf("op %d sent through Send reached the sim: %d -> %d", op, before.PayloadsByOp[op], st.PayloadsByOp[op])
		}
	}
}

// Presence updates keep to their own limit, waiting for it, so the sim
// (which closes 4008 over it) never closes.
func TestPresenceLimitWaits(t *testing.T) {
	const n, window = 2, 300 * time.Millisecond
	sim := startSim(t, discordsim.Config{PresenceLimit: n, PresenceWindow: window})
	ts := newShard(t, sim, WithPresenceLimit(n, window))
	ts.open(t)
	presence := []byte(`{"op":3,"d":{"since":null,"activities":[],"status":"online","afk":false}}`)
	start := time.Now()
	for i := range 2 * n {
		if err := ts.Send(ctxT(t), presence); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if took := time.Since(start); took < window {
		t.Fatalf("%d presences in %v, want at least %v", 2*n, took, window)
	}
	ctx, cancel := context.WithTimeout(context.Background(), window/4)
	defer cancel()
	if err := ts.Send(ctx, presence); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("over the limit with a short ctx: %v", err)
	}
	if st := sim.Stats(); st.Closes[4008] != 0 || st.Connections != 1 || ts.State() != StateReady {
		t.Fatalf("closes %v connections %d state %v", st.Closes, st.Connections, ts.State())
	}
	if DefaultPresenceLimit != 5 || DefaultPresenceWindow != 20*time.Second {
		t.Fatal("presence defaults are not Discord's 5 per 20 s")
	}
}

// The default gate holds the next identify until the previous one's
// outcome, then spaces it a window after READY, or a window and
// DefaultIdentifyMargin after a failure. Virtual time: the waits are exact.
func TestLocalGateSpacing(t *testing.T) {
	for _, ready := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			const window, held = 10 * time.Millisecond, 300 * time.Millisecond
			g := NewLocalGate(window)
			a, _ := g.Enqueue(0)
			b, _ := g.Enqueue(0)
			if err := g.Acquire(t.Context(), a); err != nil {
				t.Fatal(err)
			}
			if err := g.Acquire(t.Context(), a); err != nil { // idempotent
				t.Fatal(err)
			}
			start := time.Now()
			go func() {
				time.Sleep(held) // the identify awaits READY this long
				g.Release(a, ready)
			}()
			if err := g.Approach(t.Context(), b, time.Hour); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got != held {
				t.Fatalf("approached %v after the grant, want when the outcome came (%v)", got, held)
			}
			if err := g.Acquire(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			want := held + window
			if !ready {
				want += DefaultIdentifyMargin
			}
			if got := time.Since(start); got != want {
				t.Fatalf("ready=%v: second identify %v after the first, want %v", ready, got, want)
			}
		})
	}
	if DefaultIdentifyMargin != 50*time.Millisecond {
		t.Fatal("margin is not limiter.DefaultMargin's 50 ms")
	}
}

// Op 1 requests keep coming but ACKs stopped: still a zombie, found within
// two intervals.
func TestRequestedHeartbeatsDoNotHideZombie(t *testing.T) {
	const interval = 200 * time.Millisecond
	sim := startSim(t, discordsim.Config{HeartbeatInterval: interval})
	ts := newShard(t, sim)
	ts.open(t)
	poll.Until(t, poll.Timeout, "an ACK", func() bool { return ts.Stats().Latency > 0 })
	start := time.Now()
	sim.WithholdACKs(0)
	stop := make(chan struct{})
	pokerDone := make(chan struct{})
	go func() { // Discord asking for a heartbeat every 50 ms
		defer close(pokerDone)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				sim.RequestHeartbeat(0)
			}
		}
	}()
	defer func() { close(stop); <-pokerDone }()
	poll.Until(t, poll.Timeout, "zombie detected", func() bool { return ts.rec.count(StateReconnecting) == 1 })
	if took := time.Since(start); took > 2*interval+150*time.Millisecond {
		t.Fatalf("zombie found after %v, want within two intervals", took)
	}
	if ch, _ := ts.rec.find(StateReconnecting); !strings.HasPrefix(ch.Reason, "zombie") {
		t.Fatalf("reason %q", ch.Reason)
	}
}

// A Hello whose heartbeat_interval is out of bounds is a bad Hello: the
// shard closes (non-1000) and reconnects.
func TestHelloIntervalBounds(t *testing.T) {
	for _, ms := range []string{"0.5", "0", "-1", "600001", "1e9"} {
		t.Run(ms, func(t *testing.T) {
			var conns atomic.Int64
			codes := make(chan int, 16)
			up := websocket.Upgrader{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				conns.Add(1)
				_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"op":10,"d":{"heartbeat_interval":`+ms+`},"s":null,"t":null}`))
				_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						var ce *websocket.CloseError
						if errors.As(err, &ce) {
							codes <- ce.Code
						}
						return
					}
				}
			}))
			defer srv.Close()
			rec := &recorder{t: t}
			s := New(testToken, 0, 1, WithURL("ws"+strings.TrimPrefix(srv.URL, "http")), WithCompression(CompressionNone),
				WithIdentifyGate(&testGate{}), WithBackoff(time.Millisecond, 5*time.Millisecond), WithStateHandler(rec.handle))
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, poll.Timeout, "a reconnect", func() bool { return rec.count(StateReconnecting) >= 1 && conns.Load() >= 2 })
			if _, err := s.Close(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			ch, _ := rec.find(StateReconnecting)
			var de *DecodeError
			if !errors.As(ch.Err, &de) || de.Stage != "hello" {
				t.Fatalf("reconnect for %v, want a hello DecodeError", ch.Err)
			}
			if c := <-codes; c == websocket.CloseNormalClosure {
				t.Fatalf("closed with %d", c)
			}
		})
	}
	t.Run("bounds accepted", func(t *testing.T) {
		sim := startSim(t, discordsim.Config{HeartbeatInterval: time.Millisecond})
		ts := newShard(t, sim)
		ts.open(t)
	})
}

// The shard's Identify always carries token, properties and intents (the
// sim, like Discord, requires them), even with intents 0 and empty properties.
func TestIdentifyCarriesRequiredFields(t *testing.T) {
	s := New(testToken, 1, 2, WithProperties("", "", ""))
	p, err := s.identifyPayload()
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Op int                        `json:"op"`
		D  map[string]json.RawMessage `json:"d"`
	}
	if err := json.Unmarshal(p, &m); err != nil || m.Op != 2 {
		t.Fatalf("%v op %d", err, m.Op)
	}
	for _, k := range []string{"token", "properties", "intents", "shard"} {
		if _, ok := m.D[k]; !ok {
			t.Fatalf("identify without %q", k)
		}
	}
	if string(m.D["intents"]) != "0" || m.D["properties"][0] != '{' {
		t.Fatalf("intents %s properties %s", m.D["intents"], m.D["properties"])
	}
}
