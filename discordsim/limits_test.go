package discordsim

import (
	"encoding/json"
	"github.com/shardtop/shardtop/internal/poll"
	"testing"
	"time"
)

func presencePayload() map[string]any {
	return map[string]any{"op": 3, "d": map[string]any{"since": nil, "activities": []any{}, "status": "online", "afk": false}}
}

// expectACK sends a heartbeat and reads until its ACK: the connection is alive.
func (c *client) expectACK() {
	c.t.Helper()
	c.send(map[string]any{"op": 1, "d": nil})
	for {
		if f := c.read(); f.Op == 11 {
			return
		}
	}
}

// TestPresenceLimit: PresenceLimit op 3 per PresenceWindow are fine; one
// more within the window closes 4008; after the window they are fine again.
func TestPresenceLimit(t *testing.T) {
	const window = time.Second
	s := startSim(t, Config{Guilds: 1, PresenceLimit: 3, PresenceWindow: window, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identify("sim-token", 0, 1)
	start := time.Now()
	for range 3 {
		c.send(presencePayload())
	}
	c.expectACK()
	if time.Since(start) >= window {
		t.Fatalf("3 presences and a heartbeat took %v, more than the %v window", time.Since(start), window)
	}
	c.send(presencePayload())
	c.expectClose(4008)

	c2 := dial(t, s.GatewayURL(), "")
	c2.hello()
	c2.identify("sim-token", 0, 1)
	for range 3 {
		c2.send(presencePayload())
	}
	c2.expectACK()
	at := time.Now()
	poll.Until(t, poll.Timeout, "the window to pass", func() bool { return time.Since(at) > window })
	for range 3 {
		c2.send(presencePayload())
	}
	c2.expectACK()
	if st := s.Stats(); st.Closes[4008] != 1 {
		t.Fatalf("closes %v, want one 4008", st.Closes)
	}
	if DefaultPresenceLimit != 5 || DefaultPresenceWindow != 20*time.Second {
		t.Fatal("defaults are not Discord's 5 per 20 s")
	}
}

// TestIdentifyRequiredFields: token, properties and intents are required
// (4002 without them); shard is optional and defaults to [0, 1].
func TestIdentifyRequiredFields(t *testing.T) {
	s := startSim(t, Config{Guilds: 3, MaxConcurrency: 16, IdentifyWindow: time.Nanosecond})
	without := func(key string) map[string]any {
		p := identifyPayload("sim-token", 0, 1, 513)
		delete(p["d"].(map[string]any), key)
		return p
	}
	nullProps := identifyPayload("sim-token", 0, 1, 513)
	nullProps["d"].(map[string]any)["properties"] = nil
	for name, p := range map[string]map[string]any{
		"no token": without("token"), "no properties": without("properties"),
		"null properties": nullProps, "no intents": without("intents"),
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, s.GatewayURL(), "")
			c.hello()
			c.send(p)
			c.expectClose(4002)
		})
	}
	t.Run("no shard", func(t *testing.T) {
		c := dial(t, s.GatewayURL(), "")
		c.hello()
		c.send(without("shard"))
		f := c.read()
		if f.event() != "READY" {
			t.Fatalf("got %v, want READY", f)
		}
		var r readyData
		if err := json.Unmarshal(f.D, &r); err != nil || len(r.Shard) != 2 || r.Shard[0] != 0 || r.Shard[1] != 1 {
			t.Fatalf("READY shard %v (%v), want [0 1]", r.Shard, err)
		}
	})
	if st := s.Stats(); st.Closes[4002] != 4 || st.Identifies != 1 {
		t.Fatalf("closes %v identifies %d", st.Closes, st.Identifies)
	}
}

// TestClientThatStopsReading: a client that never reads must not freeze the
// server. Its writer blocks on a full socket; the random faults the single
// scheduler goroutine injects, and on-demand faults, pile up for it. The
// server must drop it (queue full, or write deadline) while another
// connection keeps getting rate traffic.
func TestClientThatStopsReading(t *testing.T) {
	cases := []struct {
		name      string
		cfg       Config
		faults    bool
		wantDrops bool // dropped for a full queue (else by the write deadline)
	}{
		{"queue full", Config{FaultRate: 400, FaultKinds: []FaultKind{FaultReconnect}}, true, true},
		{"write deadline", Config{WriteTimeout: 200 * time.Millisecond}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Guilds, cfg.EventRate, cfg.MessageVariety = 4, 200, 4
			cfg.MaxConcurrency, cfg.IdentifyWindow = 2, time.Nanosecond
			cfg.HeartbeatInterval = 30 * time.Second // no heartbeat timeout rescues the stalled client
			s := startSim(t, cfg)
			stalled := dial(t, s.GatewayURL(), "")
			stalled.send(identifyPayload("sim-token", 0, 2, 513)) // and never reads
			reader := dial(t, s.GatewayURL(), "")
			reader.hello()
			reader.identify("sim-token", 1, 2)
			poll.Until(t, poll.Timeout, "both live", func() bool { return len(s.targets(0)) == 1 && len(s.targets(1)) == 1 })
			s.Burst(0, 100000) // far more than the socket buffers hold
			if tc.faults {
				done := make(chan struct{})
				go func() { // on-demand faults must not block the caller either
					defer close(done)
					for range 2 * inboxSize {
						s.RequestHeartbeat(0)
					}
				}()
				select {
				case <-done:
				case <-time.After(waitTimeout):
					t.Fatal("RequestHeartbeat blocked on a client that does not read")
				}
			}
			poll.Until(t, poll.Timeout, "the stalled client dropped", func() bool { return s.Stats().ActiveConnections == 1 })
			if got := s.Stats().SlowClientDrops > 0; got != tc.wantDrops {
				t.Fatalf("SlowClientDrops %d, want drops: %v", s.Stats().SlowClientDrops, tc.wantDrops)
			}
			// The other connection still gets rate traffic (the scheduler runs).
			got := 0
			for got < 50 {
				f := reader.read()
				if f.event() == "MESSAGE_CREATE" {
					got++
				}
			}
		})
	}
}
