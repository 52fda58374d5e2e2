package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCloseCodeTable(t *testing.T) {
	want := map[int]CloseAction{
		4000: ActionResume, 4001: ActionResume, 4002: ActionResume, 4003: ActionResume,
		4004: ActionStop, 4005: ActionResume, 4007: ActionIdentify, 4008: ActionResume,
		4009: ActionIdentify, 4010: ActionStop, 4011: ActionReshard, 4012: ActionStop,
		4013: ActionStop, 4014: ActionStop, 4999: ActionResume, 1006: ActionResume, 0: ActionResume,
	}
	for code, action := range want {
		if _, got := CloseCodeInfo(code); got != action {
			t.Errorf("code %d: action %v, want %v", code, got, action)
		}
	}
	err := error(&CloseError{Code: 4004, Reason: "Authentication failed."})
	if !errors.Is(err, ErrAuthenticationFailed) || errors.Is(err, ErrInvalidShard) {
		t.Fatal("CloseError.Is does not match its sentinel")
	}
	if !errors.Is(fmt.Errorf("wrapped: %w", &CloseError{Code: 4011}), ErrShardingRequired) {
		t.Fatal("wrapped 4011 does not match ErrShardingRequired")
	}
}

func TestStateMachine(t *testing.T) {
	if !ValidTransition(StateIdle, StateQueued) || ValidTransition(StateClosed, StateReady) || ValidTransition(StateQueued, StateReady) {
		t.Fatal("transition table wrong")
	}
	for s := StateIdle; s < numStates; s++ {
		if strings.HasPrefix(s.String(), "state(") {
			t.Errorf("state %d has no name", s)
		}
	}
}

func TestSendWindow(t *testing.T) {
	w := makeSendWindow(10, time.Second)
	now := time.Duration(0)
	for i := range 7 {
		if d := w.wait(now, 7); d != 0 {
			t.Fatalf("send %d waits %v", i, d)
		}
		w.record(now)
		now += time.Millisecond
	}
	if d := w.wait(now, 7); d <= 0 {
		t.Fatal("8th user payload in the window does not wait")
	}
	if d := w.wait(now, 10); d != 0 {
		t.Fatal("reserved room not available to the shard itself")
	}
	if d := w.wait(now+2*time.Second, 7); d != 0 {
		t.Fatal("window does not slide")
	}
	if r := reserveFor(120, 60*time.Second, 41250*time.Millisecond); r < 4 || r > 10 {
		t.Fatalf("reserve %d", r)
	}
}

// The ring keeps only what is inside the window, growing as needed: its
// waits are those of a list of every send time, at any density of sends.
func TestSendWindowMatchesEverySendTime(t *testing.T) {
	const limit, window = 20, time.Second
	w := makeSendWindow(limit, window)
	margin := window + window/20
	var all []time.Duration
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Duration(0)
	for i := range 5000 {
		// Bursts and lulls: gaps from 0 to 2 windows.
		switch rng.IntN(4) {
		case 0:
			now += time.Duration(rng.Int64N(int64(2 * window)))
		default:
			now += time.Duration(rng.Int64N(int64(window / 50)))
		}
		for _, allowed := range []int{1, 7, limit - 3, limit} {
			want := time.Duration(0)
			if len(all) >= allowed {
				want = max(all[len(all)-allowed]+margin-now, 0)
			}
			if got := w.wait(now, allowed); got != want {
				t.Fatalf("send %d at %v: wait(%d) = %v, want %v", i, now, allowed, got, want)
			}
		}
		w.record(now)
		all = append(all, now)
		if len(w.times) > limit {
			t.Fatalf("ring of %d times for a limit of %d", len(w.times), limit)
		}
	}
	idle := makeSendWindow(120, 60*time.Second)
	for i := range 100 { // a heartbeat every 41.25 s
		idle.record(time.Duration(i) * 41250 * time.Millisecond)
	}
	if len(idle.times) > minSendWindowRing {
		t.Fatalf("an idle connection's ring holds %d times", len(idle.times))
	}
}

// Beats go out on a few instants per interval shared by every shard:
// never after they are due, early by less than a slot.
func TestBeatDelaySharesSlots(t *testing.T) {
	const interval = 41250 * time.Millisecond
	slot := int64(interval / heartbeatSlots)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		now := time.Now().UnixNano() + rng.Int64N(int64(time.Hour))
		d := time.Duration(rng.Int64N(int64(interval)))
		w := beatDelay(now, d, interval)
		at := now + int64(w)
		switch {
		case w > d:
			t.Fatalf("beat due in %v waits %v: late", d, w)
		case w < 0:
			t.Fatalf("beat due in %v waits %v", d, w)
		case w > 0 && (int64(d-w) >= slot || at%slot != 0):
			t.Fatalf("beat due in %v at %d waits %v: not until the slot instant before it", d, now, w)
		}
		// Another shard's beat due in the same slot goes out at the same instant.
		due := now + int64(d)
		other := due - due%slot + rng.Int64N(slot)
		otherNow := now - rng.Int64N(slot) // it computes its wait a little earlier
		if ow := beatDelay(otherNow, time.Duration(other-otherNow), interval); w > 0 && ow > 0 && otherNow+int64(ow) != at {
			t.Fatalf("beats due at %d and %d go out apart", due, other)
		}
	}
	// Before 1970 it floors too: with 3 ns slots a beat due at -2 goes out
	// at -3 (truncating toward zero would make it 0, late).
	if w := beatDelay(-10, 8, 32*3); w != 7 {
		t.Fatalf("beat due at -2 waits %v from -10, want 7 (the instant -3)", w)
	}
	if beatDelay(5, 17, 0) != 17 {
		t.Fatal("an interval too short for slots changes the beat")
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	s := New("t", 0, 1, WithBackoff(100*time.Millisecond, time.Second), WithBackoffJitter(func() float64 { return 1 }))
	var got []time.Duration
	for n := int64(1); n <= 6; n++ {
		got = append(got, s.backoff(n))
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff %v, want %v ms", got, want)
		}
	}
	s2 := New("t", 0, 1, WithBackoff(100*time.Millisecond, time.Second), WithBackoffJitter(func() float64 { return 0 }))
	if s2.backoff(5) != 100*time.Millisecond {
		t.Fatal("backoff floor not min")
	}
}

func TestTokenNeverPrinted(t *testing.T) {
	const token = "super-secret-token-value"
	var logs bytes.Buffer
	s := New(token, 0, 1, WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	out := fmt.Sprintf("%v %+v %#v %s", s, s, s, s)
	out += fmt.Sprintf("%v %+v %#v", s.token, &s.token, s.cfg)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "shard", s, "token", s.token)
	if strings.Contains(out, token) || strings.Contains(logs.String(), token) {
		t.Fatalf("token leaked: %s %s", out, logs.String())
	}
}

func TestGatewayURL(t *testing.T) {
	u, err := gatewayURL("wss://gateway.discord.gg", CompressionZstdStream)
	if err != nil || u != "wss://gateway.discord.gg/?compress=zstd-stream&encoding=json&v=10" {
		t.Fatalf("%q %v", u, err)
	}
	u, _ = gatewayURL("ws://127.0.0.1:5/gateway-resume?v=9", CompressionNone)
	if u != "ws://127.0.0.1:5/gateway-resume?encoding=json&v=10" {
		t.Fatalf("%q", u)
	}
	// Without a query of its own, the same URL as through url.Values.
	for _, c := range []Compression{CompressionNone, CompressionZlibStream, CompressionZstdStream} {
		u, _ = gatewayURL("ws://127.0.0.1:5/gateway", c)
		v := url.Values{"v": {"10"}, "encoding": {"json"}}
		if c != CompressionNone {
			v.Set("compress", string(c))
		}
		if want := "ws://127.0.0.1:5/gateway?" + v.Encode(); u != want {
			t.Fatalf("%s: %q, want %q", c, u, want)
		}
	}
	if _, err := gatewayURL("http://x", CompressionNone); err == nil {
		t.Fatal("http scheme accepted")
	}
}

// TestGuildCountSeededBySession walks the guild count of a shard that
// resumed a saved session (no READY, no guild IDs) through every rule of
// WithSession, then through the READY that rebuilds it.
func TestGuildCountSeededBySession(t *testing.T) {
	s := New("t", 0, 1, WithSession(Session{ID: "abc", Sequence: 5, Guilds: 4}))
	if got := s.Stats().Guilds; got != 4 {
		t.Fatalf("seeded count %d, want 4", got)
	}
	if got := s.Session().Guilds; got != 4 {
		t.Fatalf("Session().Guilds %d, want 4", got)
	}
	c := &conn{s: s}
	old := `"joined_at":"2020-01-02T03:04:05.000000+00:00"`
	recent := `"joined_at":"` + s.created.Add(time.Second).UTC().Format("2006-01-02T15:04:05.000000+00:00") + `"`
	steps := []struct {
		what   string
		create bool
		d      string
		want   int
	}{
		{"replayed/recovered guild (unseen ID, old joined_at)", true, `{"id":"10",` + old + `,"name":"a"}`, 4},
		{"same guild again", true, `{"id":"10",` + old + `}`, 4},
		{"no joined_at: one of the seeded guilds", true, `{"id":"11"}`, 4},
		{"bad joined_at: one of the seeded guilds", true, `{"id":"15","joined_at":"yesterday"}`, 4},
		{"newly joined guild", true, `{"id":"12",` + recent + `}`, 5},
		{"outage: unavailable delete keeps it", false, `{"id":"10","unavailable":true}`, 5},
		{"back from the outage", true, `{"id":"10",` + old + `}`, 5},
		{"leaving a known guild", false, `{"id":"12"}`, 4},
		{"leaving the last unseen seeded guild", false, `{"id":"99"}`, 3},
		{"every seeded guild accounted for: an unseen ID is new", true, `{"id":"13",` + old + `}`, 4},
		{"leaving an unknown guild with none unseen", false, `{"id":"98"}`, 4},
	}
	for _, st := range steps {
		c.trackGuild(st.create, []byte(st.d))
		if got := s.Stats().Guilds; got != st.want {
			t.Fatalf("%s: count %d, want %d", st.what, got, st.want)
		}
	}

	// A seeded shard with guilds outstanding meets a READY: it counts READY's guilds only.
	s2 := New("t", 0, 1, WithSession(Session{ID: "abc", Guilds: 7}))
	c2 := &conn{s: s2}
	if end := c2.onReady([]byte(`{"session_id":"new","resume_gateway_url":"ws://x","guilds":[{"id":"1","unavailable":true},{"id":"2","unavailable":true}]}`)); end != nil {
		t.Fatalf("READY refused: %+v", end)
	}
	if got := s2.Stats().Guilds; got != 2 {
		t.Fatalf("after READY: %d guilds, want 2", got)
	}
	c2.trackGuild(true, []byte(`{"id":"1",`+old+`}`))
	c2.trackGuild(true, []byte(`{"id":"3",`+old+`}`))
	if got := s2.Stats().Guilds; got != 3 {
		t.Fatalf("after READY and GUILD_CREATEs: %d guilds, want 3", got)
	}

	if got := New("t", 0, 1, WithSession(Session{ID: "abc", Guilds: -4})).Stats().Guilds; got != 0 {
		t.Fatalf("negative seed gave %d guilds", got)
	}
	if got := New("t", 0, 1, WithSession(Session{Guilds: 4})).Stats().Guilds; got != 0 {
		t.Fatalf("a count without a session seeded %d guilds", got)
	}
}
