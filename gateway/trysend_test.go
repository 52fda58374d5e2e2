package gateway

import (
	"errors"
	"fmt"
	"github.com/shardtop/shardtop/internal/poll"
	"strings"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
)

// voiceState is an op 4 payload: limited by the send limit only.
var voiceState = []byte(`{"op":4,"d":{"guild_id":"1","channel_id":null,"self_mute":false,"self_deaf":false}}`)

var presenceUpdate = []byte(`{"op":3,"d":{"since":null,"activities":[],"status":"online","afk":false}}`)

// rateLimited returns err's *RateLimitError, failing t unless err is one
// that errors.Is ErrRateLimited.
func rateLimited(t *testing.T, err error) *RateLimitError {
	t.Helper()
	var rl *RateLimitError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) {
		t.Fatalf("err %v, want a *RateLimitError", err)
	}
	return rl
}

// At Discord's send limit (120 per 60 s) TrySend refuses at once, with how
// long until the oldest payload counted leaves the window, and sends
// nothing: the connection never goes over the limit minus the room kept
// for heartbeats and Identify/Resume.
func TestTrySendAtTheSendLimit(t *testing.T) {
	const interval = 10 * time.Second // no beat during the test (jitter 0.99)
	sim := startSim(t, discordsim.Config{HeartbeatInterval: interval})
	ts := newShard(t, sim, WithHeartbeatJitter(func() float64 { return 0.99 }))
	opened := time.Now() // before the Identify, the oldest payload of the window
	ts.open(t)
	allowed := DefaultSendLimit - reserveFor(DefaultSendLimit, DefaultSendWindow, interval-interval/heartbeatSlots)
	sent := 0
	var err error
	for ; sent < DefaultSendLimit; sent++ {
		if err = ts.TrySend(voiceState); err != nil {
			break
		}
	}
	refused := time.Now()
	rl := rateLimited(t, err)
	if rl.Limit != LimitSend {
		t.Fatalf("limit %q, want %q", rl.Limit, LimitSend)
	}
	// The Identify and the sends fill the user's room of the window.
	if sent != allowed-1 {
		t.Fatalf("%d payloads sent before the refusal, want %d (limit %d less the reserve)", sent, allowed-1, DefaultSendLimit)
	}
	// The Identify leaves the window (with its 5% margin) RetryAfter from now.
	window := DefaultSendWindow + DefaultSendWindow/20
	if lo := window - refused.Sub(opened); rl.RetryAfter > window || rl.RetryAfter < lo {
		t.Fatalf("RetryAfter %v, want %v..%v", rl.RetryAfter, lo, window)
	}
	if !strings.Contains(err.Error(), "send limit") {
		t.Fatalf("error %q does not name the limit", err)
	}
	// Still refused, and still without waiting, a moment later.
	start := time.Now()
	if err := ts.TrySend(voiceState); !errors.Is(err, ErrRateLimited) || time.Since(start) > time.Second {
		t.Fatalf("second TrySend over the limit: %v after %v", err, time.Since(start))
	}
	poll.Until(t, poll.Timeout, "the sends at the sim", func() bool { return sim.Stats().PayloadsByOp[4] == uint64(sent) })
	st := sim.Stats()
	if st.PayloadsReceived != uint64(sent+1) || st.Closes[4008] != 0 || ts.State() != StateReady {
		t.Fatalf("sim got %d payloads (want %d: identify and sends), 4008 closes %d, state %v",
			st.PayloadsReceived, sent+1, st.Closes[4008], ts.State())
	}
}

// A 6th presence update within 20 s is refused with the presence limit's
// wait; other payloads still go, and nothing over the limit reaches the sim.
func TestTrySendAtThePresenceLimit(t *testing.T) {
	sim := startSim(t, discordsim.Config{HeartbeatInterval: 10 * time.Second})
	ts := newShard(t, sim, WithHeartbeatJitter(func() float64 { return 0.99 }))
	ts.open(t)
	first := time.Now()
	for i := range DefaultPresenceLimit {
		if err := ts.TrySend(presenceUpdate); err != nil {
			t.Fatalf("presence update %d: %v", i+1, err)
		}
	}
	err := ts.TrySend(presenceUpdate)
	refused := time.Now()
	rl := rateLimited(t, err)
	if rl.Limit != LimitPresence {
		t.Fatalf("limit %q, want %q", rl.Limit, LimitPresence)
	}
	window := DefaultPresenceWindow + DefaultPresenceWindow/20
	if lo := window - refused.Sub(first); rl.RetryAfter > window || rl.RetryAfter < lo {
		t.Fatalf("RetryAfter %v, want %v..%v", rl.RetryAfter, lo, window)
	}
	if err := ts.TrySend(voiceState); err != nil {
		t.Fatalf("op 4 after the presence limit: %v", err)
	}
	poll.Until(t, poll.Timeout, "the op 4 at the sim", func() bool { return sim.Stats().PayloadsByOp[4] == 1 })
	if st := sim.Stats(); st.PayloadsByOp[3] != DefaultPresenceLimit || st.Closes[4008] != 0 || ts.State() != StateReady {
		t.Fatalf("sim got %d presence updates (want %d), 4008 closes %d, state %v",
			st.PayloadsByOp[3], DefaultPresenceLimit, st.Closes[4008], ts.State())
	}
}

// Without a live session TrySend refuses with ErrNotReady (the shard will
// be Ready again) and, once the shard has stopped, with ErrClosed.
func TestTrySendNotReady(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	ts := newShard(t, sim)
	if err := ts.TrySend(voiceState); !errors.Is(err, ErrNotReady) || errors.Is(err, ErrClosed) {
		t.Fatalf("before Start: %v, want ErrNotReady", err)
	}
	ts.gate.hold = make(chan struct{}) // the identify waits for the gate
	if err := ts.Start(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, poll.Timeout, "Hello, waiting for the gate", func() bool { return ts.State() == StateConnecting && sim.Stats().ActiveConnections == 1 })
	err := ts.TrySend(voiceState)
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("waiting for the gate: %v, want ErrNotReady", err)
	}
	if !strings.Contains(err.Error(), StateConnecting.String()) {
		t.Fatalf("error %q does not say the state", err)
	}
	close(ts.gate.hold)
	ts.open(t)
	if err := ts.TrySend(voiceState); err != nil {
		t.Fatalf("once Ready: %v", err)
	}
	poll.Until(t, poll.Timeout, "the op 4 at the sim", func() bool { return sim.Stats().PayloadsByOp[4] == 1 })
	if _, err := ts.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := ts.TrySend(voiceState); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	if n := sim.Stats().PayloadsByOp[4]; n != 1 {
		t.Fatalf("%d op 4 at the sim, want the one sent while Ready", n)
	}
}

// TrySend refuses what Send refuses, before anything is sent.
func TestTrySendRefusals(t *testing.T) {
	sim := startSim(t, discordsim.Config{})
	ts := newShard(t, sim)
	ts.open(t)
	before := sim.Stats()
	big := []byte(`{"op":4,"d":"` + fmt.Sprintf("%04097d", 0) + `"}`)
	if err := ts.TrySend(big); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if err := ts.TrySend([]byte(`{"op":4,`)); !errors.Is(err, ErrInvalidJSON) {
		t.Fatalf("invalid JSON: %v", err)
	}
	for _, p := range []string{
		`{"op":1,"d":null}`,
		`{"d":{"token":"x","intents":0,"properties":{}},"op":2}`,
		`{"op":6,"d":{"token":"x","session_id":"y","seq":1}}`,
	} {
		if err := ts.TrySend([]byte(p)); !errors.Is(err, ErrReservedOp) {
			t.Fatalf("TrySend(%s): %v, want ErrReservedOp", p, err)
		}
	}
	// A marker sent after the refused payloads: once it arrived, anything
	// the shard wrongly sent before it has arrived too.
	if err := ts.TrySend(voiceState); err != nil {
		t.Fatalf("op 4: %v", err)
	}
	poll.Until(t, poll.Timeout, "the op 4 marker", func() bool { return sim.Stats().PayloadsByOp[4] == before.PayloadsByOp[4]+1 })
	st := sim.Stats()
	for _, op := range []int{2, 6} {
		if st.PayloadsByOp[op] != before.PayloadsByOp[op] {
			t.Fatalf("op %d sent through TrySend reached the sim", op)
		}
	}
	// Op 1 the shard sends itself: every payload but the marker is a heartbeat.
	if st.PayloadsReceived-before.PayloadsReceived != 1+(st.HeartbeatsReceived-before.HeartbeatsReceived) || st.Closes[4002] != 0 {
		t.Fatalf("refused payloads reached the sim: %d payloads (%d heartbeats), 4002 closes %d",
			st.PayloadsReceived-before.PayloadsReceived, st.HeartbeatsReceived-before.HeartbeatsReceived, st.Closes[4002])
	}
}
