package discordsim

import (
	"errors"
	"fmt"
	"github.com/shardtop/shardtop/internal/poll"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestControlParamRanges: every /_sim/ parameter out of its range is a 400
// naming it, and nothing is done. A close code is one a websocket may carry:
// 99999 was sent as 34463 and -1 as 65535 (the uint16 on the wire).
func TestControlParamRanges(t *testing.T) {
	s := startSim(t, Config{Guilds: 4, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identify("sim-token", 2, 4)
	base := "http://" + s.Addr() + "/_sim"
	for _, tc := range []struct{ path, param string }{
		{"/close?shard=2&code=99999", "code"},
		{"/close?shard=2&code=-1", "code"},
		{"/close?shard=2&code=0", "code"},
		{"/close?shard=2&code=999", "code"},
		{"/close?shard=2&code=1004", "code"}, // reserved
		{"/close?shard=2&code=1005", "code"}, // no status: never on the wire
		{"/close?shard=2&code=1006", "code"}, // abnormal closure: never on the wire
		{"/close?shard=2&code=1014", "code"}, // gorilla/websocket refuses it
		{"/close?shard=2&code=1015", "code"}, // TLS handshake: never on the wire
		{"/close?shard=2&code=2999", "code"}, // reserved for the protocol
		{"/close?shard=2&code=5000", "code"},
		{"/close?shard=-1&code=4000", "shard"},
		{"/reconnect?shard=-2", "shard"},
		{"/reconnect?shard=99999999999999999999", "shard"},
		{"/reconnect?shard=2&shrad=3", "shrad"},
		{"/reconnect?shard=2&shard=3", "shard"},
		{"/invalidate?shard=-1&resumable=true", "shard"},
		{"/zombie?shard=-1", "shard"},
		{"/drop?shard=-1", "shard"},
		{"/heartbeat?shard=-1", "shard"},
		{"/burst?shard=2&n=0", "n"},
		{"/burst?shard=2&n=-5", "n"},
		{"/burst?shard=2&n=10000001", "n"},
		{"/burst?shard=2&n=99999999999999999999", "n"},
		{"/burst?shard=-1&n=5", "shard"},
		{"/rate?per_shard=1e30", "per_shard"},
		{"/rate?per_shard=100001", "per_shard"},
		{"/rate?per_shard=NaN", "per_shard"},
		{"/rate?per_shard=Inf", "per_shard"},
		{"/rate?per_shard=-Inf", "per_shard"},
		{"/faults?per_conn=1e30", "per_conn"},
		{"/faults?per_conn=1001", "per_conn"},
		{"/faults?per_conn=NaN", "per_conn"},
		{"/faults?per_conn=+Inf", "per_conn"},
	} {
		var bad map[string]any // {"error": "..."}, or {"hit": N} when accepted
		if code := postJSON(t, base+tc.path, &bad); code != 400 || !strings.Contains(fmt.Sprint(bad["error"]), tc.param) {
			t.Errorf("POST %s: %d %v, want 400 naming %s", tc.path, code, bad, tc.param)
		}
	}
	// Nothing was done: no close, no fault, no traffic reached the client.
	if st := s.Stats(); len(st.Closes) != 0 || len(st.Faults) != 0 || st.Dispatches != 1+1 {
		t.Fatalf("a refused request acted: %+v", st)
	}
	if f, err := c.next(100 * time.Millisecond); err == nil {
		t.Fatalf("a refused request reached the client: %v", f)
	}
	// The limits themselves are accepted (with no connection to act on).
	c.closeWith(4000)
	poll.Until(t, poll.Timeout, "no connection", func() bool { return s.Stats().ActiveConnections == 0 })
	var hit map[string]int
	for _, path := range []string{"/rate?per_shard=100000", "/rate?per_shard=0", "/faults?per_conn=1000", "/faults?per_conn=0",
		"/burst?shard=2&n=10000000", "/close?shard=0&code=1000", "/close?shard=0&code=1013", "/close?shard=0&code=3000"} {
		if code := postJSON(t, base+path, &hit); code != 200 {
			t.Fatalf("POST %s: %d", path, code)
		}
	}
	c = dial(t, s.GatewayURL(), "")
	c.hello()
	c.identify("sim-token", 2, 4)
	if code := postJSON(t, base+"/close?shard=2&code=4999", &hit); code != 200 || hit["hit"] != 1 {
		t.Fatalf("close 4999: %d %v", code, hit)
	}
	c.expectClose(4999)
}

// drainCount reads c in the background, counting MESSAGE_CREATEs and
// keeping the last seq, until the connection ends.
func drainCount(t *testing.T, c *client) (count, lastSeq *atomic.Int64) {
	count, lastSeq = new(atomic.Int64), new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			f, err := c.next(time.Hour)
			if err != nil {
				return
			}
			if f.event() == "MESSAGE_CREATE" {
				count.Add(1)
				lastSeq.Store(f.seq())
			}
		}
	}()
	t.Cleanup(func() { c.ws.Close(); <-done })
	return count, lastSeq
}

// TestEventRateHugeChange: a huge rate, then a normal one. The event credit
// overflowed int64 at 1e30 per second and stayed huge, so no session got an
// event again. SetEventRate now caps the rate (MaxEventRate), and the
// scheduler keeps only a fraction of an event as credit, so any rate it is
// given leaves the next one working.
func TestEventRateHugeChange(t *testing.T) {
	// A small backlog bound: the client drains what a huge rate owed it in
	// milliseconds, not the seconds 16384 events take under -race on a
	// loaded machine. The bound itself is TestEventRateBacklogBounded's.
	// The client sends no heartbeats: a minute's interval keeps the
	// simulator from closing it 4009 while a loaded machine runs the loop.
	s := startSim(t, Config{Guilds: 4, ReplayBuffer: 100, IdentifyWindow: time.Nanosecond, rateBacklog: 256,
		HeartbeatInterval: time.Minute})
	attached := dial(t, s.GatewayURL(), "")
	attached.hello()
	attached.identify("sim-token", 0, 2)
	count, lastSeq := drainCount(t, attached)
	// A detached session takes events straight into its replay buffer.
	gone := dial(t, s.GatewayURL(), "")
	gone.hello()
	r := gone.identify("sim-token", 1, 2)
	gone.closeWith(4000)
	detachedSeq := func() int64 {
		for _, si := range s.Sessions() {
			if si.ID == r.SessionID && !si.Connected {
				return si.Seq
			}
		}
		return -1
	}
	poll.Until(t, poll.Timeout, "detached", func() bool { return detachedSeq() > 0 })

	for _, huge := range []float64{1e30, math.Inf(1), math.MaxFloat64} {
		s.SetEventRate(huge)
		n0, d0 := count.Load(), detachedSeq()
		poll.Until(t, poll.Timeout, "traffic at a huge rate", func() bool { return count.Load() > n0 && detachedSeq() > d0 })
		s.SetEventRate(0)
		// Everything produced reaches the client: the backlog is bounded.
		poll.Until(t, poll.Timeout, "the backlog drained", func() bool {
			ss := s.Sessions()
			for _, si := range ss {
				if si.Connected && si.Seq == lastSeq.Load() {
					return true
				}
			}
			return false
		})
		s.SetEventRate(10)
		n1, d1 := count.Load(), detachedSeq()
		poll.Until(t, poll.Timeout, "traffic at 10 per second", func() bool { return count.Load() > n1 && detachedSeq() > d1 })
		s.SetEventRate(0)
	}
}

// TestEventRateBacklogBounded: a client that cannot keep up with the rate
// (here: it stops reading) falls at most maxRateBacklog events behind, so
// lowering the rate takes effect at once instead of after a backlog of
// everything a huge rate produced meanwhile.
func TestEventRateBacklogBounded(t *testing.T) {
	s := startSim(t, Config{Guilds: 4, ReplayBuffer: 100, IdentifyWindow: time.Nanosecond,
		EventRate: MaxEventRate, HeartbeatInterval: time.Minute, WriteTimeout: time.Minute})
	stalled := dial(t, s.GatewayURL(), "")
	stalled.hello()
	stalled.identify("sim-token", 0, 2) // and reads no more
	// A detached session shows the scheduler ticking.
	gone := dial(t, s.GatewayURL(), "")
	gone.hello()
	gone.identify("sim-token", 1, 2)
	gone.closeWith(4000)
	poll.Until(t, poll.Timeout, "one connection left", func() bool { return s.Stats().ActiveConnections == 1 })
	ts := s.targets(0)
	if len(ts) != 1 {
		t.Fatalf("%d connections of shard 0", len(ts))
	}
	c := ts[0]
	poll.Until(t, poll.Timeout, "a full backlog", func() bool { return c.pending.Load() >= maxRateBacklog })
	// Ten more ticks' worth of events at the full rate.
	d0 := s.Stats().Dispatches
	perTick := int64(MaxEventRate * schedTick.Seconds())
	poll.Until(t, poll.Timeout, "ten more ticks", func() bool { return s.Stats().Dispatches >= d0+uint64(10*perTick) })
	if p := c.pending.Load(); p > maxRateBacklog {
		t.Fatalf("backlog %d events, want at most %d", p, maxRateBacklog)
	}
}

// TestStartRejectsBadConfig: Start refuses a Config field out of its range
// with an error naming the field, instead of overflowing or misbehaving.
func TestStartRejectsBadConfig(t *testing.T) {
	year := 366 * 24 * time.Hour
	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"EventRate", Config{EventRate: math.NaN()}},
		{"EventRate", Config{EventRate: math.Inf(1)}},
		{"EventRate", Config{EventRate: 1e30}},
		{"EventRate", Config{EventRate: MaxEventRate + 1}},
		{"EventRate", Config{EventRate: -1}},
		{"FaultRate", Config{FaultRate: math.NaN()}},
		{"FaultRate", Config{FaultRate: math.Inf(1)}},
		{"FaultRate", Config{FaultRate: MaxFaultRate * 2}},
		{"HeartbeatInterval", Config{HeartbeatInterval: time.Microsecond}}, // Hello would say 0 ms
		{"HeartbeatInterval", Config{HeartbeatInterval: math.MaxInt64}},    // the timeout overflowed
		{"HeartbeatTimeout", Config{HeartbeatTimeout: year}},
		{"WriteTimeout", Config{WriteTimeout: math.MaxInt64}}, // a deadline in the past
		{"SessionTTL", Config{SessionTTL: year}},
		{"SendLimit", Config{SendLimit: 1 << 30}}, // a ring of that many instants per connection
		{"PresenceLimit", Config{PresenceLimit: 1 << 30}},
		{"IdentifyWindow", Config{IdentifyWindow: -time.Second}},
	} {
		s, err := Start(tc.cfg)
		if err == nil {
			s.Close()
			t.Errorf("Start(%s) accepted %+v", tc.field, tc.cfg)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Start: %v, want ErrInvalidConfig naming %s", err, tc.field)
		}
	}
	// The limits themselves are accepted.
	s := startSim(t, Config{EventRate: MaxEventRate, FaultRate: MaxFaultRate, HeartbeatInterval: time.Millisecond,
		SendLimit: maxSlidingLimit, SessionTTL: maxConfigDuration})
	s.SetEventRate(0)
	s.SetFaultRate(0)
}
