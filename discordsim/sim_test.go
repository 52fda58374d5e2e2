package discordsim

import (
	"encoding/json"
	"fmt"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/internal/syncbuf"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type gatewayBot struct {
	URL               string `json:"url"`
	Shards            int    `json:"shards"`
	SessionStartLimit struct {
		Total          int   `json:"total"`
		Remaining      int   `json:"remaining"`
		ResetAfter     int64 `json:"reset_after"`
		MaxConcurrency int   `json:"max_concurrency"`
	} `json:"session_start_limit"`
}

func TestRESTAuthAndBudget(t *testing.T) {
	// The period is short enough to wait for, long enough that a loaded
	// machine does the steps between its checks within it.
	const period = 2 * time.Second
	s := startSim(t, Config{Shards: 6, MaxConcurrency: 16, SessionStartTotal: 3,
		SessionStartResetAfter: period, IdentifyWindow: time.Nanosecond})

	var unauth map[string]any
	for _, auth := range []string{"", "Bot wrong", "sim-token", "Bearer sim-token"} {
		if code := getJSON(t, s.APIURL()+"/gateway/bot", auth, &unauth); code != 401 {
			t.Fatalf("auth %q: status %d, want 401", auth, code)
		}
		if unauth["message"] != "401: Unauthorized" || unauth["code"] != float64(0) {
			t.Fatalf("401 body %v", unauth)
		}
	}
	var gb gatewayBot
	if code := getJSON(t, s.APIURL()+"/gateway/bot", "Bot sim-token", &gb); code != 200 {
		t.Fatalf("status %d", code)
	}
	if gb.URL != s.GatewayURL() || gb.Shards != 6 || gb.SessionStartLimit.Total != 3 ||
		gb.SessionStartLimit.Remaining != 3 || gb.SessionStartLimit.MaxConcurrency != 16 ||
		gb.SessionStartLimit.ResetAfter != period.Milliseconds() {
		t.Fatalf("gateway/bot = %+v", gb)
	}
	var info map[string]string
	if code := getJSON(t, s.APIURL()+"/gateway", "", &info); code != 200 || info["url"] != s.GatewayURL() {
		t.Fatalf("gateway: %d %v", code, info)
	}

	// Each accepted identify spends one; the period starts with the first.
	for i := 0; i < 2; i++ {
		c := dial(t, s.GatewayURL(), "")
		c.hello()
		c.identify("sim-token", i, 6)
	}
	getJSON(t, s.APIURL()+"/gateway/bot", "Bot sim-token", &gb)
	if gb.SessionStartLimit.Remaining != 1 || gb.SessionStartLimit.ResetAfter > period.Milliseconds() || gb.SessionStartLimit.ResetAfter < 0 {
		t.Fatalf("after 2 identifies: %+v", gb.SessionStartLimit)
	}
	if st := s.Stats(); st.SessionStartRemaining != 1 || st.Identifies != 2 {
		t.Fatalf("stats %+v", st)
	}
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identify("sim-token", 2, 6)
	// Budget spent: the next identify fails authentication (Discord resets the token).
	c4 := dial(t, s.GatewayURL(), "")
	c4.hello()
	c4.send(identifyPayload("sim-token", 3, 6, 0))
	c4.expectClose(4004)
	// And it comes back after reset_after.
	poll.Until(t, poll.Timeout, "budget reset", func() bool {
		getJSON(t, s.APIURL()+"/gateway/bot", "Bot sim-token", &gb)
		return gb.SessionStartLimit.Remaining == 3
	})
	c5 := dial(t, s.GatewayURL(), "")
	c5.hello()
	c5.identify("sim-token", 3, 6)
	if st := s.Stats(); st.SessionStartRemaining != 2 || st.Identifies != 4 {
		t.Fatalf("after reset: %+v", st)
	}
}

// GET /users/@me answers the bot user READY carries, and 401 without the token.
func TestCurrentUser(t *testing.T) {
	s := startSim(t, Config{})
	for _, auth := range []string{"", "Bot wrong", "sim-token", "Bearer sim-token"} {
		var unauth map[string]any
		if code := getJSON(t, s.APIURL()+"/users/@me", auth, &unauth); code != 401 || unauth["message"] != "401: Unauthorized" {
			t.Fatalf("auth %q: status %d body %v, want 401", auth, code, unauth)
		}
	}
	var me map[string]any
	if code := getJSON(t, s.APIURL()+"/users/@me", "Bot sim-token", &me); code != 200 {
		t.Fatalf("status %d", code)
	}
	if me["id"] != strconv.FormatUint(botUserID, 10) || me["username"] != "shardtop-sim" || me["discriminator"] != "0" ||
		me["bot"] != true || me["global_name"] != nil || me["avatar"] != nil {
		t.Fatalf("users/@me = %v", me)
	}
	for _, k := range []string{"global_name", "avatar"} {
		if v, ok := me[k]; !ok || v != nil {
			t.Fatalf("users/@me %s = %v (present %v), want null", k, v, ok)
		}
	}
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	r := c.identify("sim-token", 0, 1)
	var readyUser map[string]any
	if err := json.Unmarshal(r.RawUser, &readyUser); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(readyUser) != fmt.Sprint(me) {
		t.Fatalf("READY user %v differs from users/@me %v", readyUser, me)
	}
}

func TestHelloHeartbeatAck(t *testing.T) {
	s := startSim(t, Config{HeartbeatInterval: 1234 * time.Millisecond})
	c := dial(t, s.GatewayURL(), "")
	if iv := c.hello(); iv != 1234 {
		t.Fatalf("heartbeat_interval %d", iv)
	}
	for i := 0; i < 3; i++ {
		c.send(map[string]any{"op": 1, "d": nil})
		if f := c.read(); f.Op != 11 || f.S != nil || f.T != nil {
			t.Fatalf("got %v, want op 11", f)
		}
	}
	if got := s.Stats().HeartbeatsReceived; got != 3 {
		t.Fatalf("HeartbeatsReceived %d", got)
	}
}

func TestHeartbeatTimeout(t *testing.T) {
	s := startSim(t, Config{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 150 * time.Millisecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	r := c.identify("sim-token", 0, 4)
	start := time.Now()
	ce := c.expectClose(4009)
	if ce.Text != "Session timed out." {
		t.Fatalf("reason %q", ce.Text)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v", el)
	}
	// 4009: the session is gone.
	poll.Until(t, poll.Timeout, "session ended", func() bool { return s.Stats().ActiveSessions == 0 })
	c2 := dial(t, r.ResumeGatewayURL, "")
	c2.hello()
	c2.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": 1}})
	if f := c2.read(); f.Op != 9 || string(f.D) != "false" {
		t.Fatalf("got %v %s, want op 9 false", f, f.D)
	}
}

func TestIdentifyRejections(t *testing.T) {
	s := startSim(t, Config{Guilds: 100, MaxGuildsPerShard: 30, AllowedIntents: IntentsNonPrivileged,
		MaxConcurrency: 64, IdentifyWindow: time.Nanosecond})
	cases := []struct {
		name    string
		payload map[string]any
		code    int
	}{
		{"bad token", identifyPayload("nope", 0, 4, 0), 4004},
		{"shard id = count", identifyPayload("sim-token", 4, 4, 0), 4010},
		{"negative shard", identifyPayload("sim-token", -1, 4, 0), 4010},
		{"zero count", identifyPayload("sim-token", 0, 0, 0), 4010},
		{"invalid intent bit", identifyPayload("sim-token", 0, 4, 1<<30), 4013},
		{"privileged not approved", identifyPayload("sim-token", 0, 4, 1<<15), 4014},
		{"too many guilds for one shard", identifyPayload("sim-token", 0, 3, 0), 4011},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s.GatewayURL(), "")
			c.hello()
			c.send(tc.payload)
			ce := c.expectClose(tc.code)
			if ce.Text != closeReason(tc.code) {
				t.Fatalf("reason %q", ce.Text)
			}
		})
	}
	t.Run("already authenticated", func(t *testing.T) {
		c := dial(t, s.GatewayURL(), "")
		c.hello()
		c.identify("sim-token", 1, 4)
		c.send(identifyPayload("sim-token", 1, 4, 0))
		c.expectClose(4005)
	})
	st := s.Stats()
	for _, code := range []int{4004, 4010, 4013, 4014, 4011, 4005} {
		if st.Closes[code] == 0 {
			t.Fatalf("Closes[%d] = 0: %v", code, st.Closes)
		}
	}
	if st.Closes[4010] != 3 || st.Identifies != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestClientErrors(t *testing.T) {
	s := startSim(t, Config{SendLimit: 5, SendWindow: time.Minute})
	cases := []struct {
		name string
		send func(c *client)
		code int
	}{
		{"payload over 4096 bytes", func(c *client) {
			c.sendRaw([]byte(`{"op":1,"d":"` + strings.Repeat("x", 4100) + `"}`))
		}, 4002},
		{"invalid json", func(c *client) { c.sendRaw([]byte(`{"op":1,`)) }, 4002},
		{"no op", func(c *client) { c.sendRaw([]byte(`{"d":1}`)) }, 4002},
		{"binary message", func(c *client) { _ = c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"op":1}`)) }, 4002},
		{"unknown opcode", func(c *client) { c.send(map[string]any{"op": 99, "d": nil}) }, 4001},
		{"presence before identify", func(c *client) { c.send(map[string]any{"op": 3, "d": map[string]any{}}) }, 4003},
		{"request members before identify", func(c *client) { c.send(map[string]any{"op": 8, "d": map[string]any{}}) }, 4003},
		{"send limit", func(c *client) {
			for i := 0; i < 6; i++ {
				c.send(map[string]any{"op": 1, "d": nil})
			}
		}, 4008},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s.GatewayURL(), "")
			c.hello()
			tc.send(c)
			c.expectClose(tc.code)
		})
	}
	t.Run("exactly 4096 bytes is fine", func(t *testing.T) {
		c := dial(t, s.GatewayURL(), "")
		c.hello()
		p := `{"op":1,"d":null,"x":"`
		p += strings.Repeat("x", 4096-len(p)-2) + `"}`
		if len(p) != 4096 {
			t.Fatalf("len %d", len(p))
		}
		c.sendRaw([]byte(p))
		if f := c.read(); f.Op != 11 {
			t.Fatalf("got %v", f)
		}
	})
	t.Run("bad api version", func(t *testing.T) {
		ws, _, err := websocket.DefaultDialer.Dial(s.GatewayURL()+"/?v=9&encoding=json", nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &client{t: t, ws: ws}
		defer ws.Close()
		c.expectClose(4012)
	})
	t.Run("unsupported encoding", func(t *testing.T) {
		ws, _, err := websocket.DefaultDialer.Dial(s.GatewayURL()+"/?v=10&encoding=etf", nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &client{t: t, ws: ws}
		defer ws.Close()
		if ce := c.expectClose(4000); !strings.Contains(ce.Text, "encoding") {
			t.Fatalf("reason %q", ce.Text)
		}
	})
}

func TestIdentifyWindowViolation(t *testing.T) {
	const window = 300 * time.Millisecond
	s := startSim(t, Config{MaxConcurrency: 2, IdentifyWindow: window})
	a := dial(t, s.GatewayURL(), "")
	a.hello()
	a.identify("sim-token", 0, 4)
	accepted := time.Now()
	// Shard 1 is bucket 1: free.
	b := dial(t, s.GatewayURL(), "")
	b.hello()
	b.identify("sim-token", 1, 4)
	// Shard 2 is bucket 0, inside the window: op 9 d=false, no READY.
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.send(identifyPayload("sim-token", 2, 4, 0))
	if f := c.read(); f.Op != 9 || string(f.D) != "false" {
		t.Fatalf("got %v %s, want op 9 false", f, f.D)
	}
	st := s.Stats()
	if st.IdentifyViolations != 1 || st.Identifies != 2 || st.IdentifiesByBucket[0] != 1 || st.IdentifiesByBucket[1] != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The connection stays usable: once the window has passed, identify again on it.
	<-time.After(time.Until(accepted.Add(window)))
	c.identify("sim-token", 2, 4)
	if st := s.Stats(); st.Identifies != 3 || st.IdentifiesByBucket[0] != 2 || st.IdentifyViolations != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReadyGuildsTwoShardCounts(t *testing.T) {
	const guilds = 100
	s := startSim(t, Config{Guilds: guilds, IdentifyWindow: time.Nanosecond})
	for _, count := range []int{3, 7} {
		for id := 0; id < count; id++ {
			_ = id
		}
	}
	type shardKey struct{ id, count int }
	seen := map[int]map[uint64]bool{3: {}, 7: {}}
	var clients []*client
	for _, count := range []int{3, 7} {
		for id := 0; id < count; id++ {
			c := dial(t, s.GatewayURL(), "")
			clients = append(clients, c)
			c.hello()
			r := c.identify("sim-token", id, count)
			if len(r.Shard) != 2 || r.Shard[0] != id || r.Shard[1] != count || !r.User.Bot {
				t.Fatalf("READY shard %v user %+v", r.Shard, r.User)
			}
			if r.ResumeGatewayURL != s.ResumeURL() || r.ResumeGatewayURL == s.GatewayURL() || len(r.SessionID) != 32 {
				t.Fatalf("READY resume url %q session %q", r.ResumeGatewayURL, r.SessionID)
			}
			for _, g := range r.Guilds {
				gid, err := strconv.ParseUint(g.ID, 10, 64)
				if err != nil || !g.Unavailable {
					t.Fatalf("guild %+v: %v", g, err)
				}
				if got := int((gid >> 22) % uint64(count)); got != id {
					t.Fatalf("guild %d on shard [%d,%d], formula says %d", gid, id, count, got)
				}
				if seen[count][gid] {
					t.Fatalf("guild %d twice for count %d", gid, count)
				}
				seen[count][gid] = true
			}
		}
	}
	for count, ids := range seen {
		if len(ids) != guilds {
			t.Fatalf("count %d: %d guilds over all shards, want %d", count, len(ids), guilds)
		}
	}
	// The two sets are the same guilds.
	for gid := range seen[3] {
		if !seen[7][gid] {
			t.Fatalf("guild %d in count 3 only", gid)
		}
	}
	sessions := s.Sessions()
	if len(sessions) != 10 {
		t.Fatalf("%d sessions", len(sessions))
	}
	keys := map[shardKey]bool{}
	for _, si := range sessions {
		keys[shardKey{si.ShardID, si.ShardCount}] = true
		if !si.Connected {
			t.Fatalf("session %+v not connected", si)
		}
	}
	if len(keys) != 10 {
		t.Fatalf("sessions %v", sessions)
	}
	// A fault aimed at shard 0 hits both shard 0s (counts 3 and 7).
	if n := s.Reconnect(0); n != 2 {
		t.Fatalf("Reconnect(0) hit %d", n)
	}
	if f := clients[0].read(); f.Op != 7 {
		t.Fatalf("got %v", f)
	}
	if f := clients[3].read(); f.Op != 7 {
		t.Fatalf("got %v", f)
	}
}

// readMessages reads n MESSAGE_CREATE and checks their seqs follow from.
func readMessages(t *testing.T, c *client, from int64, n int) int64 {
	t.Helper()
	seq := from
	for i := 0; i < n; i++ {
		f := c.read()
		if f.event() != "MESSAGE_CREATE" {
			t.Fatalf("message %d: got %v", i, f)
		}
		if f.seq() != seq+1 {
			t.Fatalf("message %d: seq %d, want %d", i, f.seq(), seq+1)
		}
		seq++
	}
	return seq
}

func TestResumeReplay(t *testing.T) {
	s := startSim(t, Config{Guilds: 8, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	r := c.identify("sim-token", 1, 4) // 2 guilds: seq 1 READY, 2-3 GUILD_CREATE
	first := int64(1 + len(r.Guilds))
	if n := s.Burst(1, 40); n != 1 {
		t.Fatalf("Burst hit %d", n)
	}
	last := readMessages(t, c, first, 40)
	c.closeWith(4000) // keeps the session
	poll.Until(t, poll.Timeout, "detached", func() bool {
		ss := s.Sessions()
		return len(ss) == 1 && !ss[0].Connected && ss[0].Seq == last
	})

	from := first + 10
	c2 := dial(t, r.ResumeGatewayURL, "")
	c2.hello()
	c2.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": from}})
	got := readMessages(t, c2, from, int(last-from))
	if got != last {
		t.Fatalf("replayed up to %d, want %d", got, last)
	}
	f := c2.read()
	if f.event() != "RESUMED" || f.seq() != last+1 {
		t.Fatalf("got %v, want RESUMED s=%d", f, last+1)
	}
	st := s.Stats()
	if st.Resumes != 1 || st.Replayed != int(last-from) || st.Identifies != 1 {
		t.Fatalf("stats %+v", st)
	}
	// New traffic follows RESUMED.
	s.Burst(1, 3)
	readMessages(t, c2, last+1, 3)

	t.Run("seq ahead of the session closes 4007", func(t *testing.T) {
		c2.closeWith(4000)
		c3 := dial(t, s.GatewayURL(), "") // the plain URL works too
		c3.hello()
		c3.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": last + 100}})
		c3.expectClose(4007)
	})
	t.Run("unknown session gets op 9 false", func(t *testing.T) {
		c4 := dial(t, s.GatewayURL(), "")
		c4.hello()
		c4.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": "nope", "seq": 1}})
		if f := c4.read(); f.Op != 9 || string(f.D) != "false" {
			t.Fatalf("got %v %s", f, f.D)
		}
		// and the connection may identify after it
		c4.identify("sim-token", 2, 4)
	})
}

func TestResumeOutsideReplayBuffer(t *testing.T) {
	s := startSim(t, Config{Guilds: 4, ReplayBuffer: 10})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	r := c.identify("sim-token", 0, 4)
	s.Burst(0, 30)
	last := readMessages(t, c, 1+int64(len(r.Guilds)), 30)
	c.closeWith(4000)
	poll.Until(t, poll.Timeout, "detached", func() bool { ss := s.Sessions(); return len(ss) == 1 && !ss[0].Connected })
	c2 := dial(t, r.ResumeGatewayURL, "")
	c2.hello()
	c2.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": last - 15}})
	c2.expectClose(4007)
	// The last 10 are still there.
	c3 := dial(t, r.ResumeGatewayURL, "")
	c3.hello()
	c3.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": last - 10}})
	readMessages(t, c3, last-10, 10)
	if f := c3.read(); f.event() != "RESUMED" {
		t.Fatalf("got %v", f)
	}
}

func TestSessionEnds(t *testing.T) {
	s := startSim(t, Config{SessionTTL: 100 * time.Millisecond})
	resume := func(r readyData) frame {
		c := dial(t, r.ResumeGatewayURL, "")
		c.hello()
		c.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": 1}})
		return c.read()
	}
	t.Run("close 1000 ends the session", func(t *testing.T) {
		c := dial(t, s.GatewayURL(), "")
		c.hello()
		r := c.identify("sim-token", 0, 1)
		c.closeWith(1000)
		poll.Until(t, poll.Timeout, "session gone", func() bool { return s.Stats().ActiveSessions == 0 })
		if f := resume(r); f.Op != 9 || string(f.D) != "false" {
			t.Fatalf("got %v %s", f, f.D)
		}
	})
	t.Run("expired session gets op 9 false", func(t *testing.T) {
		s2 := startSim(t, Config{SessionTTL: 100 * time.Millisecond, IdentifyWindow: time.Nanosecond})
		c := dial(t, s2.GatewayURL(), "")
		c.hello()
		r := c.identify("sim-token", 0, 1)
		c.closeWith(4000)
		poll.Until(t, poll.Timeout, "session expired", func() bool { return s2.Stats().ActiveSessions == 0 })
		c2 := dial(t, r.ResumeGatewayURL, "")
		c2.hello()
		c2.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": 1}})
		if f := c2.read(); f.Op != 9 || string(f.D) != "false" {
			t.Fatalf("got %v %s", f, f.D)
		}
		if st := s2.Stats(); st.ResumesRejected != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestCompression(t *testing.T) {
	for _, mode := range []string{"zlib-stream", "zstd-stream"} {
		t.Run(mode, func(t *testing.T) {
			s := startSim(t, Config{Guilds: 40})
			c := dial(t, s.GatewayURL(), mode)
			c.hello()
			c.send(map[string]any{"op": 1, "d": nil})
			if f := c.read(); f.Op != 11 {
				t.Fatalf("got %v", f)
			}
			r := c.identify("sim-token", 0, 1)
			if len(r.Guilds) != 40 {
				t.Fatalf("%d guilds", len(r.Guilds))
			}
			s.Burst(0, 300)
			readMessages(t, c, 41, 300)
			var in, out int
			for _, m := range c.raw {
				in += len(m)
			}
			out = int(s.Stats().Dispatches) * 900
			t.Logf("%s: %d messages, %d compressed bytes (~%d uncompressed)", mode, len(c.raw), in, out)
			if in*2 > out {
				t.Fatalf("compression ratio too low: %d bytes for ~%d", in, out)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	var logbuf syncbuf.Buffer
	s := startSim(t, Config{Guilds: 4, IdentifyWindow: time.Nanosecond, Logger: slog.New(slog.NewTextHandler(&logbuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	defer func() {
		if t.Failed() {
			t.Log(logbuf.String())
		}
	}()
	open := func(shard int) (*client, readyData) {
		c := dial(t, s.GatewayURL(), "")
		c.hello()
		return c, c.identify("sim-token", shard, 4)
	}
	t.Run("CloseShard keeps the session for 4000", func(t *testing.T) {
		c, r := open(0)
		if n := s.CloseShard(0, 4000); n != 1 {
			t.Fatalf("hit %d", n)
		}
		if ce := c.expectClose(4000); ce.Text != "Unknown error." {
			t.Fatalf("reason %q", ce.Text)
		}
		poll.Until(t, poll.Timeout, "detached", func() bool {
			for _, si := range s.Sessions() {
				if si.ID == r.SessionID {
					return !si.Connected
				}
			}
			return false
		})
		if s.CloseShard(0, 4000) != 0 {
			t.Fatal("closed connection still targeted")
		}
	})
	t.Run("CloseShard 4007 ends the session", func(t *testing.T) {
		c, r := open(1)
		s.CloseShard(1, 4007)
		c.expectClose(4007)
		poll.Until(t, poll.Timeout, "ended", func() bool {
			for _, si := range s.Sessions() {
				if si.ID == r.SessionID {
					return false
				}
			}
			return true
		})
	})
	t.Run("Reconnect", func(t *testing.T) {
		c, _ := open(2)
		s.Reconnect(2)
		if f := c.read(); f.Op != 7 || f.S != nil {
			t.Fatalf("got %v", f)
		}
		c.closeWith(4000)
		// The server notices the close a moment later; the next subtest
		// counts hits on shard 2.
		poll.Until(t, poll.Timeout, "shard 2 connection gone", func() bool { return len(s.targets(2)) == 0 })
	})
	t.Run("RequestHeartbeat", func(t *testing.T) {
		c, _ := open(2)
		if s.RequestHeartbeat(2) != 1 {
			t.Fatal("no hit")
		}
		if f := c.read(); f.Op != 1 {
			t.Fatalf("got %v", f)
		}
		c.closeWith(4000)
		poll.Until(t, poll.Timeout, "shard 2 connection gone", func() bool { return len(s.targets(2)) == 0 })
	})
	t.Run("InvalidateSession resumable", func(t *testing.T) {
		c, r := open(3)
		s.InvalidateSession(3, true)
		if f := c.read(); f.Op != 9 || string(f.D) != "true" {
			t.Fatalf("got %v %s", f, f.D)
		}
		c.closeWith(4000)
		c2 := dial(t, r.ResumeGatewayURL, "")
		c2.hello()
		c2.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": 1 + len(r.Guilds)}})
		if f := c2.read(); f.event() != "RESUMED" {
			t.Fatalf("got %v", f)
		}
		c2.closeWith(1000)
	})
	t.Run("InvalidateSession not resumable", func(t *testing.T) {
		c, r := open(3)
		s.InvalidateSession(3, false)
		if f := c.read(); f.Op != 9 || string(f.D) != "false" {
			t.Fatalf("got %v %s", f, f.D)
		}
		for _, si := range s.Sessions() {
			if si.ID == r.SessionID {
				t.Fatal("session survived op 9 false")
			}
		}
		// Same connection identifies anew.
		r2 := c.identify("sim-token", 3, 4)
		if r2.SessionID == r.SessionID {
			t.Fatal("same session id")
		}
		c.closeWith(1000)
	})
	t.Run("Zombie then resume replays what was lost", func(t *testing.T) {
		c, r := open(1)
		if s.Zombie(1) != 1 {
			t.Fatal("no hit")
		}
		c.send(map[string]any{"op": 1, "d": nil})
		s.Burst(1, 5)
		poll.Until(t, poll.Timeout, "events numbered", func() bool {
			for _, si := range s.Sessions() {
				if si.ID == r.SessionID {
					return si.Seq == int64(1+len(r.Guilds)+5)
				}
			}
			return false
		})
		if f, err := c.next(150 * time.Millisecond); err == nil {
			t.Fatalf("zombie sent %v", f)
		}
		c2 := dial(t, r.ResumeGatewayURL, "")
		c2.hello()
		c2.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": 1 + len(r.Guilds)}})
		readMessages(t, c2, int64(1+len(r.Guilds)), 5)
		if f := c2.read(); f.event() != "RESUMED" {
			t.Fatalf("got %v", f)
		}
		// The zombie connection was dropped when its session moved.
		poll.Until(t, poll.Timeout, "zombie dropped", func() bool { return s.Stats().ActiveConnections == 1 })
		c2.closeWith(1000)
	})
	t.Run("DropTCP", func(t *testing.T) {
		c, r := open(2)
		if s.DropTCP(2) != 1 {
			t.Fatal("no hit")
		}
		_, err := c.next(waitTimeout)
		if ce, ok := err.(*websocket.CloseError); err == nil || ok && ce.Code != websocket.CloseAbnormalClosure {
			t.Fatalf("want a drop without close frame, got %v", err)
		}
		poll.Until(t, poll.Timeout, "session detached, kept", func() bool {
			for _, si := range s.Sessions() {
				if si.ID == r.SessionID {
					return !si.Connected
				}
			}
			return false
		})
	})
	st := s.Stats()
	for _, k := range []string{"reconnect", "zombie", "drop-tcp", "invalidate-fresh", "invalidate-resumable", "close-4000"} {
		if st.Faults[k] == 0 {
			t.Fatalf("Faults[%s] = 0: %v", k, st.Faults)
		}
	}
}

func TestEventRate(t *testing.T) {
	s := startSim(t, Config{Guilds: 12, EventRate: 500, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	r := c.identify("sim-token", 1, 3)
	mine := map[string]bool{}
	for _, g := range r.Guilds {
		mine[g.ID] = true
	}
	seq := int64(1 + len(r.Guilds))
	for i := 0; i < 50; i++ {
		f := c.read()
		if f.event() != "MESSAGE_CREATE" || f.seq() != seq+1 {
			t.Fatalf("got %v after seq %d", f, seq)
		}
		seq++
		var m struct {
			ID        string `json:"id"`
			GuildID   string `json:"guild_id"`
			ChannelID string `json:"channel_id"`
			Content   string `json:"content"`
			Author    struct {
				ID string `json:"id"`
			} `json:"author"`
		}
		if err := json.Unmarshal(f.D, &m); err != nil {
			t.Fatal(err)
		}
		if !mine[m.GuildID] || m.ID == "" || m.Author.ID == "" || m.Content == "" {
			t.Fatalf("message %+v not for shard 1's guilds", m)
		}
		if len(f.Raw) < 700 || len(f.Raw) > 1600 {
			t.Fatalf("message of %d bytes, want ~1 KB", len(f.Raw))
		}
	}
	// A detached session keeps receiving into its replay buffer.
	c.closeWith(4000)
	var before int64
	poll.Until(t, poll.Timeout, "detached", func() bool {
		ss := s.Sessions()
		if len(ss) == 1 && !ss[0].Connected {
			before = ss[0].Seq
			return true
		}
		return false
	})
	var queued int64
	poll.Until(t, poll.Timeout, "queued while detached", func() bool { queued = s.Sessions()[0].Seq; return queued >= before+20 })
	c2 := dial(t, r.ResumeGatewayURL, "")
	c2.hello()
	c2.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": r.SessionID, "seq": seq}})
	// Everything after seq comes back in order, then RESUMED, then live traffic.
	for {
		f := c2.read()
		if f.seq() != seq+1 {
			t.Fatalf("got %v after seq %d", f, seq)
		}
		seq++
		if f.event() == "RESUMED" {
			break
		}
		if f.event() != "MESSAGE_CREATE" {
			t.Fatalf("got %v", f)
		}
	}
	if seq <= queued {
		t.Fatalf("RESUMED at seq %d, but %d dispatches were queued while detached", seq, queued)
	}
	readMessages(t, c2, seq, 5)
}

func TestBurstLarge(t *testing.T) {
	s := startSim(t, Config{Guilds: 10, HeartbeatInterval: time.Minute})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identify("sim-token", 0, 1)
	const n = 5000
	if s.Burst(0, n) != 1 || s.Burst(5, n) != 0 {
		t.Fatal("burst targets")
	}
	// A heartbeat during the burst is ACKed within it.
	c.send(map[string]any{"op": 1, "d": nil})
	seq, acked := int64(11), false
	for seq < 11+n {
		f := c.read()
		if f.Op == 11 {
			acked = true
			continue
		}
		if f.seq() != seq+1 {
			t.Fatalf("seq %d after %d", f.seq(), seq)
		}
		seq++
	}
	if !acked {
		if f := c.read(); f.Op != 11 {
			t.Fatalf("no ACK, got %v", f)
		}
	}
}

func TestRandomFaults(t *testing.T) {
	s := startSim(t, Config{FaultRate: 100, FaultKinds: []FaultKind{FaultReconnect}, Seed: 7})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identify("sim-token", 0, 4)
	if f := c.read(); f.Op != 7 {
		t.Fatalf("got %v", f)
	}
	if s.Stats().Faults["reconnect"] == 0 {
		t.Fatal("fault not counted")
	}
	if _, err := Start(Config{FaultKinds: []FaultKind{99}}); err == nil {
		t.Fatal("bad fault kind accepted")
	}
}

// SetFaultRate (and POST /_sim/faults) turns random faults on and off
// while the simulator runs.
func TestSetFaultRate(t *testing.T) {
	s := startSim(t, Config{FaultKinds: []FaultKind{FaultReconnect}, Seed: 7})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identify("sim-token", 0, 4)
	var hit map[string]int
	if code := postJSON(t, "http://"+s.Addr()+"/_sim/faults?per_conn=1000", &hit); code != 200 {
		t.Fatalf("POST /_sim/faults: %d", code)
	}
	for {
		if f := c.read(); f.Op == 7 {
			break
		}
	}
	s.SetFaultRate(0)
	if s.Stats().Faults["reconnect"] == 0 {
		t.Fatal("fault not counted")
	}
}

func TestSimHTTP(t *testing.T) {
	s := startSim(t, Config{Guilds: 4})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identify("sim-token", 2, 4)
	base := "http://" + s.Addr() + "/_sim"
	var hit map[string]int
	if code := postJSON(t, base+"/burst?shard=2&n=7", &hit); code != 200 || hit["hit"] != 1 {
		t.Fatalf("burst: %d %v", code, hit)
	}
	readMessages(t, c, 2, 7)
	if code := postJSON(t, base+"/heartbeat?shard=2", &hit); code != 200 || hit["hit"] != 1 {
		t.Fatalf("heartbeat: %d %v", code, hit)
	}
	if f := c.read(); f.Op != 1 {
		t.Fatalf("got %v", f)
	}
	for _, path := range []string{"/reconnect?shard=2", "/invalidate?shard=2&resumable=true"} {
		if code := postJSON(t, base+path, &hit); code != 200 || hit["hit"] != 1 {
			t.Fatalf("%s: %d %v", path, code, hit)
		}
		c.read()
	}
	var bad map[string]string
	for _, path := range []string{"/burst?shard=x&n=1", "/rate?per_shard=-1", "/invalidate?shard=2&resumable=maybe", "/close?shard=2"} {
		if code := postJSON(t, base+path, &bad); code != 400 || bad["error"] == "" {
			t.Fatalf("%s: %d %v", path, code, bad)
		}
	}
	if code := postJSON(t, base+"/rate?per_shard=0", &hit); code != 200 {
		t.Fatalf("rate: %d", code)
	}
	if code := postJSON(t, base+"/zombie?shard=2", &hit); code != 200 || hit["hit"] != 1 {
		t.Fatalf("zombie: %d %v", code, hit)
	}
	if code := postJSON(t, base+"/close?shard=2&code=4000", &hit); code != 200 || hit["hit"] != 1 {
		t.Fatalf("close: %d %v", code, hit)
	}
	c.expectClose(4000)
	c2 := dial(t, s.GatewayURL(), "")
	c2.hello()
	c2.send(identifyPayload("sim-token", 1, 4, 0))
	var st Stats
	poll.Until(t, poll.Timeout, "second identify refused", func() bool {
		getJSON(t, base+"/stats", "", &st)
		return st.IdentifyViolations == 1
	})
	if st.Identifies != 1 || st.Closes[4000] != 1 || st.Connections != 2 || st.Dispatches != 2+7 {
		t.Fatalf("stats over HTTP %+v", st)
	}
	if code := postJSON(t, base+"/drop?shard=2", &hit); code != 200 || hit["hit"] != 0 {
		t.Fatalf("drop: %d %v", code, hit)
	}
	if code := getJSON(t, base+"/stats", "", nil); code != 200 {
		t.Fatal(code)
	}
	var sessions []SessionInfo
	getJSON(t, base+"/sessions", "", &sessions)
	if len(sessions) != 1 || sessions[0].ShardID != 2 {
		t.Fatalf("sessions %+v", sessions)
	}
}

func TestCloseWithLiveConnections(t *testing.T) {
	s, err := Start(Config{Guilds: 4, EventRate: 1000, IdentifyWindow: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		c := dial(t, s.GatewayURL(), []string{"", "zlib-stream", "zstd-stream", ""}[i])
		c.hello()
		c.identify("sim-token", i, 4)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := c.ws.NextReader(); err != nil {
					return
				}
			}
		}()
	}
	s.Burst(0, 100000)
	s.Zombie(3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestConfigRedactsToken(t *testing.T) {
	cfg := Config{Token: "super-secret-token"}
	for _, out := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
		cfg.LogValue().String()} {
		if strings.Contains(out, "super-secret") {
			t.Fatalf("token leaked: %s", out)
		}
	}
	if _, err := Start(Config{Shards: -1}); err == nil || !strings.Contains(err.Error(), "Shards") {
		t.Fatalf("want an error naming Shards, got %v", err)
	}
}

func TestGuildFormula(t *testing.T) {
	for _, count := range []int{1, 2, 3, 16, 7, 160} {
		total := 0
		for id := 0; id < count; id++ {
			gs := guildsFor(1000, id, count)
			if len(gs) != guildCountFor(1000, id, count) {
				t.Fatalf("count mismatch [%d,%d]", id, count)
			}
			for _, g := range gs {
				if GuildShard(GuildID(g), count) != id {
					t.Fatalf("guild %d not on [%d,%d]", g, id, count)
				}
			}
			total += len(gs)
		}
		if total != 1000 {
			t.Fatalf("count %d: %d guilds", count, total)
		}
	}
}
