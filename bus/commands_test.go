package bus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/manager"
)

// cmdRig is a bot answering commands: real NATS, the bus serving commands
// for a manager whose shards are connected to the simulator over loopback.
type cmdRig struct {
	t      *testing.T
	sim    *discordsim.Server
	m      *manager.Manager
	b      *Bus
	worker *nats.Conn // a worker's own connection
	events *collector
}

func newCmdRig(t *testing.T, shards int) *cmdRig {
	t.Helper()
	ns := startNATS(t)
	r := &cmdRig{t: t}
	r.b = newTestBus(t, ns.connect(t))
	r.sim = startSim(t, discordsim.Config{Shards: shards, MaxConcurrency: shards, Guilds: 64})
	r.m = newTestManager(t, r.sim, r.b)
	if err := r.b.ServeCommands(r.m); err != nil {
		t.Fatal(err)
	}
	r.worker = ns.connect(t)
	r.events = collect(t, ns.connect(t), "cmd-"+strings.ReplaceAll(t.Name(), "/", "-"))
	openReady(t, r.m)
	return r
}

// request sends body to PREFIX.cmd.target as a worker does and returns the reply.
func (r *cmdRig) request(target string, body []byte) Reply {
	r.t.Helper()
	msg, err := r.worker.Request("shardtop.cmd."+target, body, 10*time.Second)
	if err != nil {
		r.t.Fatalf("request to %s: %v", target, err)
	}
	var rep Reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		r.t.Fatalf("reply %q: %v", msg.Data, err)
	}
	if rep.OK == (rep.Error != "") {
		r.t.Fatalf("reply %s: ok and error disagree", msg.Data)
	}
	return rep
}

func (r *cmdRig) command(target string, op int, d string) Reply {
	r.t.Helper()
	return r.request(target, []byte(`{"op": `+strconv.Itoa(op)+`, "d": `+d+`}`))
}

// commandsAt waits until the simulator has recorded n commands and returns them.
func (r *cmdRig) commandsAt(n int) []discordsim.Command {
	r.t.Helper()
	var cmds []discordsim.Command
	poll.UntilState(r.t, poll.Timeout, fmt.Sprintf("%d commands at the simulator", n), func() (bool, string) {
		cmds = r.sim.Commands()
		return len(cmds) >= n, fmt.Sprintf("%d: %+v", len(cmds), cmds)
	})
	if len(cmds) != n {
		r.t.Fatalf("the simulator recorded %d commands, want %d: %+v", len(cmds), n, cmds)
	}
	return cmds
}

// expectNoCommand checks that nothing reached the simulator: a command
// sent afterwards on the same shard is the next one it recorded.
func (r *cmdRig) expectNoCommand(before int, shard int, why string) {
	r.t.Helper()
	marker := fmt.Sprintf(`{"since":null,"activities":[{"name":"marker %d","type":0}],"status":"online","afk":false}`, before)
	if rep := r.command(strconv.Itoa(shard), 3, marker); !rep.OK {
		r.t.Fatalf("marker presence: %+v", rep)
	}
	cmds := r.commandsAt(before + 1)
	if string(cmds[before].D) != marker {
		r.t.Errorf("%s: the simulator got %s (op %d)", why, cmds[before].D, cmds[before].Op)
	}
}

// guildOn returns the simulated guilds that shard/count holds.
func guildsOn(shard, count int) []uint64 {
	var out []uint64
	for i := range 64 {
		if g := discordsim.GuildID(i); discordsim.GuildShard(g, count) == shard {
			out = append(out, g)
		}
	}
	return out
}

func (r *cmdRig) sessionOf(shard int) string {
	for si := range r.m.Shards() {
		if si.Key.ID == shard && si.Role == manager.RoleActive {
			return si.SessionID
		}
	}
	return ""
}

// TestCommandRoundTrip: each command op, sent to a shard, is answered ok
// and reaches the simulator as exactly that op and d, on that shard and
// its session; what Discord answers comes back on the stream.
func TestCommandRoundTrip(t *testing.T) {
	r := newCmdRig(t, 2)
	g := guildsOn(1, 2)
	cases := []struct {
		op    int
		d     string
		event string // what the simulator answers with ("" nothing)
	}{
		{3, `{"since": null, "activities": [{"name": "shardtop", "type": 0}], "status": "dnd", "afk": false}`, ""},
		{4, fmt.Sprintf(`{"guild_id": "%d", "channel_id": "%d", "self_mute": false, "self_deaf": true}`, g[0], g[0]+2), "VOICE_SERVER_UPDATE"},
		{8, fmt.Sprintf(`{"guild_id": "%d", "user_ids": ["1100000000000000001", "123"], "nonce": "worker-7"}`, g[1]), "GUILD_MEMBERS_CHUNK"},
		{31, fmt.Sprintf(`{"guild_ids": ["%d", "%d"]}`, g[0], g[1]), "SOUNDBOARD_SOUNDS"},
	}
	for i, tc := range cases {
		if rep := r.command("1", tc.op, tc.d); !rep.OK {
			t.Fatalf("op %d: reply %+v, want ok", tc.op, rep)
		}
		cmds := r.commandsAt(i + 1)
		got := cmds[i]
		if got.Op != tc.op || string(got.D) != tc.d || got.ShardID != 1 || got.ShardCount != 2 || got.CloseCode != 0 {
			t.Errorf("op %d: the simulator recorded op %d d %s on shard %d/%d (close %d), want d %s on 1/2",
				tc.op, got.Op, got.D, got.ShardID, got.ShardCount, got.CloseCode, tc.d)
		}
		if s := r.sessionOf(1); got.SessionID != s {
			t.Errorf("op %d: session %s, want shard 1's %s", tc.op, got.SessionID, s)
		}
	}
	poll.UntilState(t, poll.Timeout, "the answers on the stream", func() (bool, string) {
		return r.events.count("GUILD_MEMBERS_CHUNK") >= 1 && r.events.count("SOUNDBOARD_SOUNDS") >= 2 &&
			r.events.count("VOICE_SERVER_UPDATE") >= 1, describe(r.events.all())
	})
	var chunk *event
	for _, e := range r.events.all() {
		if e.name == "GUILD_MEMBERS_CHUNK" {
			chunk = &e
		}
	}
	var d struct {
		GuildID  string   `json:"guild_id"`
		Nonce    string   `json:"nonce"`
		NotFound []string `json:"not_found"`
		Members  []struct {
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"members"`
	}
	if err := json.Unmarshal(chunk.data, &d); err != nil {
		t.Fatal(err)
	}
	gid := strconv.FormatUint(g[1], 10)
	if d.Nonce != "worker-7" || d.GuildID != gid || len(d.Members) != 1 || d.Members[0].User.ID != "1100000000000000001" ||
		len(d.NotFound) != 1 || d.NotFound[0] != "123" {
		t.Errorf("GUILD_MEMBERS_CHUNK on the stream: %s", chunk.data)
	}
	if chunk.shard != "1/2" || chunk.guild != gid || chunk.subject != "shardtop.ev.GUILD_MEMBERS_CHUNK.1" {
		t.Errorf("GUILD_MEMBERS_CHUNK on %s with shard %q guild %q", chunk.subject, chunk.shard, chunk.guild)
	}
	if n := r.events.count("GUILD_MEMBERS_CHUNK"); n != 1 {
		t.Errorf("%d GUILD_MEMBERS_CHUNK, want 1", n)
	}
}

// presenceOK is a valid op 3 d.
const presenceOK = `{"since":null,"activities":[],"status":"online","afk":false}`

// TestCommandRefused: what may not be sent, or not as it is, is refused
// with the reply's code and never reaches Discord.
func TestCommandRefused(t *testing.T) {
	r := newCmdRig(t, 2)
	pad := func(total int) string {
		// {"op":4,"d":D} is the payload: 13 bytes around d.
		head := `{"guild_id":"1","channel_id":null,"self_mute":false,"self_deaf":false,"pad":"`
		return head + strings.Repeat("x", total-13-len(head)-2) + `"}`
	}
	cases := []struct {
		name, target, body, code string
	}{
		{"heartbeat", "0", `{"op":1,"d":null}`, CodeRefusedOp},
		{"identify", "0", `{"op":2,"d":{"token":"x"}}`, CodeRefusedOp},
		{"resume", "0", `{"op":6,"d":{}}`, CodeRefusedOp},
		{"an op Discord has not", "0", `{"op":99,"d":{}}`, CodeRefusedOp},
		{"request channel info", "0", `{"op":43,"d":{}}`, CodeRefusedOp},
		{"not JSON", "0", `presence please`, CodeInvalidJSON},
		{"cut short", "0", `{"op":3,"d":{"status":`, CodeInvalidJSON},
		{"an array", "0", `[3,{}]`, CodeInvalidJSON},
		{"no op", "0", `{"d":{}}`, CodeInvalidJSON},
		{"op a string", "0", `{"op":"3","d":{}}`, CodeInvalidJSON},
		{"no d", "0", `{"op":3}`, CodeInvalidJSON},
		{"d null", "0", `{"op":3,"d":null}`, CodeInvalidJSON},
		{"d a string", "1", `{"op":4,"d":"leave"}`, CodeInvalidJSON},
		{"d an array", "1", `{"op":31,"d":["1"]}`, CodeInvalidJSON},
		{"payload of 4097 bytes", "0", `{"op":4,"d":` + pad(4097) + `}`, CodeTooLarge},
		{"shard ID = count", "2", `{"op":3,"d":` + presenceOK + `}`, CodeUnknownShard},
		{"shard ID far out", "99999", `{"op":3,"d":` + presenceOK + `}`, CodeUnknownShard},
		{"negative shard ID", "-1", `{"op":3,"d":` + presenceOK + `}`, CodeUnknownShard},
		{"shard not a number", "zero", `{"op":3,"d":` + presenceOK + `}`, CodeUnknownShard},
		{"guild not a snowflake", "guild.general", `{"op":3,"d":` + presenceOK + `}`, CodeUnknownShard},
		{"guild and more", "guild.1.2", `{"op":3,"d":` + presenceOK + `}`, CodeUnknownShard},
		{"guild 0", "guild.0", `{"op":3,"d":` + presenceOK + `}`, CodeUnknownShard},
		{"bad target before bad d", "zero", `{"op":3,"d":{}}`, CodeUnknownShard},
		{"a d lacking fields", "0", `{"op":3,"d":{}}`, CodeInvalidPayload},
	}
	for _, tc := range cases {
		rep := r.request(tc.target, []byte(tc.body))
		if rep.OK || rep.Error != tc.code || rep.Message == "" {
			t.Errorf("%s: reply %+v, want %s with a message", tc.name, rep, tc.code)
		}
	}
	r.expectNoCommand(0, 0, "after the refused commands")
	// The boundary: 4096 bytes go out.
	if rep := r.command("0", 4, pad(4096)); !rep.OK {
		t.Fatalf("a payload of 4096 bytes: %+v, want ok", rep)
	}
	if cmds := r.commandsAt(2); string(cmds[1].D) != pad(4096) {
		t.Errorf("4096 bytes: the simulator got %.100s", cmds[1].D)
	}
	if st := r.sim.Stats(); len(st.Closes) != 0 {
		t.Errorf("the simulator closed connections: %v", st.Closes)
	}
}

// TestCommandNotReady: a shard that is closed answers not_ready, and
// nothing reaches Discord; the other shard still takes commands.
func TestCommandNotReady(t *testing.T) {
	r := newCmdRig(t, 2)
	if err := r.m.CloseShard(ctxT(t, 10*time.Second), 0); err != nil {
		t.Fatal(err)
	}
	rep := r.command("0", 3, `{"since":null,"activities":[],"status":"online","afk":false}`)
	if rep.OK || rep.Error != CodeNotReady {
		t.Errorf("a command to a closed shard: %+v, want %s", rep, CodeNotReady)
	}
	g := guildsOn(0, 2)[0]
	rep = r.command("guild."+strconv.FormatUint(g, 10), 31, fmt.Sprintf(`{"guild_ids":["%d"]}`, g))
	if rep.OK || rep.Error != CodeNotReady {
		t.Errorf("a command to a closed shard's guild: %+v, want %s", rep, CodeNotReady)
	}
	r.expectNoCommand(0, 1, "commands to a closed shard")
	if cmds := r.sim.Commands(); cmds[0].ShardID != 1 {
		t.Errorf("the marker went to shard %d", cmds[0].ShardID)
	}
}

// TestCommandRateLimited: a shard's send limit is its own: commands over
// its budget (120 per 60 s less what the shard keeps for heartbeats and
// resumes) are answered rate_limited with retry_after_ms, and Discord
// never sees one too many (no 4008: the shard stays connected, same
// session). Presence updates have their own limit, 5 per 20 s.
func TestCommandRateLimited(t *testing.T) {
	r := newCmdRig(t, 2)
	g := guildsOn(1, 2)[0]
	leave := fmt.Sprintf(`{"guild_id":"%d","channel_id":null,"self_mute":false,"self_deaf":false}`, g)
	ok := 0
	var limited Reply
	for range gateway.DefaultSendLimit + 1 {
		rep := r.command("1", 4, leave)
		if !rep.OK {
			limited = rep
			break
		}
		ok++
	}
	if limited.Error != CodeRateLimited || limited.RetryAfterMS <= 0 || limited.RetryAfterMS > 63_000 {
		t.Fatalf("after %d commands: %+v, want %s with retry_after_ms in (0, 63000]", ok, limited, CodeRateLimited)
	}
	// Another shard's budget is untouched.
	if rep := r.command("0", 4, fmt.Sprintf(`{"guild_id":"%d","channel_id":null,"self_mute":false,"self_deaf":false}`, guildsOn(0, 2)[0])); !rep.OK {
		t.Errorf("shard 0 after shard 1 spent its budget: %+v", rep)
	}

	// Presence: 5 per 20 s, on shard 0.
	presence := `{"since":null,"activities":[],"status":"idle","afk":true}`
	for i := range gateway.DefaultPresenceLimit {
		if rep := r.command("0", 3, presence); !rep.OK {
			t.Fatalf("presence %d: %+v", i+1, rep)
		}
	}
	rep := r.command("0", 3, presence)
	if rep.Error != CodeRateLimited || rep.RetryAfterMS <= 0 || rep.RetryAfterMS > 21_000 {
		t.Errorf("presence %d: %+v, want %s with retry_after_ms in (0, 21000]", gateway.DefaultPresenceLimit+1, rep, CodeRateLimited)
	}

	want := ok + 1 + gateway.DefaultPresenceLimit
	var cmds []discordsim.Command
	poll.UntilState(t, poll.Timeout, "every command sent at the simulator, or a 4008", func() (bool, string) {
		cmds = r.sim.Commands()
		return len(cmds) >= want || r.sim.Stats().Closes[4008] > 0, fmt.Sprintf("%d commands", len(cmds))
	})
	if st := r.sim.Stats(); len(st.Closes) != 0 || len(cmds) != want {
		t.Fatalf("the simulator closed %v and recorded %d commands, want no close and %d", st.Closes, len(cmds), want)
	}
	// Heartbeats every 5 s (beats may go a little early) and a resume or
	// identify need room in any 63 s: the shard keeps at least 3+13 of the
	// 120 (at most 20), and its identify and heartbeats count against the
	// rest.
	most := gateway.DefaultSendLimit - 16 - 1
	if hb := int(r.sim.Stats().HeartbeatsReceived); ok > most || ok < most-4-hb {
		t.Errorf("%d commands went out before rate_limited, want from %d to %d (heartbeats: %d)", ok, most-4-hb, most, hb)
	}
	for _, s := range r.sim.Sessions() {
		if !s.Connected {
			t.Errorf("session of shard %d not connected", s.ShardID)
		}
	}
	if n := r.sim.Stats().Identifies; n != 2 {
		t.Errorf("%d identifies, want 2: a shard reconnected", n)
	}
	if !allReady(r.m) {
		t.Error("a shard is not Ready after the limits")
	}
}

// TestCommandGuildRouting: PREFIX.cmd.guild.GUILD_ID reaches the shard
// (guild_id >> 22) % count, and after that shard is split, the new shard
// that holds the guild.
func TestCommandGuildRouting(t *testing.T) {
	r := newCmdRig(t, 2)
	soundboard := func(g uint64) Reply {
		return r.command("guild."+strconv.FormatUint(g, 10), 31, fmt.Sprintf(`{"guild_ids":["%d"]}`, g))
	}
	// Guilds of shard 1/2 that stay on 1/4 and move to 3/4 in a split, and
	// one of shard 0/2.
	var stay, move uint64
	for _, g := range guildsOn(1, 2) {
		switch discordsim.GuildShard(g, 4) {
		case 1:
			stay = g
		case 3:
			move = g
		}
	}
	other := guildsOn(0, 2)[0]
	check := func(i int, what string, shard, count int) {
		t.Helper()
		cmds := r.commandsAt(i + 1)
		if c := cmds[i]; c.ShardID != shard || c.ShardCount != count {
			t.Errorf("%s: reached shard %d/%d, want %d/%d", what, c.ShardID, c.ShardCount, shard, count)
		}
	}
	for i, g := range []uint64{stay, move, other} {
		if rep := soundboard(g); !rep.OK {
			t.Fatalf("guild %d: %+v", g, rep)
		}
		check(i, fmt.Sprintf("guild %d before the split", g), discordsim.GuildShard(g, 2), 2)
	}
	if err := r.m.SplitShard(ctxT(t, 30*time.Second), 1, 2); err != nil {
		t.Fatalf("SplitShard: %v", err)
	}
	poll.Until(t, 30*time.Second, "every shard Ready after the split", func() bool { return allReady(r.m) })
	for i, want := range []struct {
		g            uint64
		shard, count int
	}{{stay, 1, 4}, {move, 3, 4}, {other, 0, 2}} {
		if rep := soundboard(want.g); !rep.OK {
			t.Fatalf("guild %d after the split: %+v", want.g, rep)
		}
		check(3+i, fmt.Sprintf("guild %d after the split", want.g), want.shard, want.count)
	}
	// The answers came back as events of the shards that hold the guilds.
	poll.UntilState(t, poll.Timeout, "6 SOUNDBOARD_SOUNDS on the stream", func() (bool, string) {
		return r.events.count("SOUNDBOARD_SOUNDS") >= 6, describe(r.events.all())
	})
	from := map[string][]string{} // guild -> shards its answers came from
	for _, e := range r.events.all() {
		if e.name == "SOUNDBOARD_SOUNDS" {
			if !bytes.Contains(e.data, []byte(`"guild_id":"`+e.guild+`"`)) {
				t.Errorf("SOUNDBOARD_SOUNDS %s with guild header %q", e.data, e.guild)
			}
			from[e.guild] = append(from[e.guild], e.shard)
		}
	}
	for g, want := range map[uint64]string{stay: "1/2 1/4", move: "1/2 3/4", other: "0/2 0/2"} {
		if got := strings.Join(from[strconv.FormatUint(g, 10)], " "); got != want {
			t.Errorf("SOUNDBOARD_SOUNDS of guild %d from shards %s, want %s", g, got, want)
		}
	}
	// Shard IDs are of the shards that run: 5 is none of 0/2, 1/4, 3/4.
	if rep := r.command("5", 3, presenceOK); rep.Error != CodeUnknownShard {
		t.Errorf("shard 5 of 4: %+v, want %s", rep, CodeUnknownShard)
	}
}

// TestCommandInvalidPayload: a d that lacks a field its op requires, has
// one of the wrong type, or names a guild other than its subject's is
// answered invalid_payload with a message naming the field, and never
// reaches Discord, which would close the shard's connection (4001).
func TestCommandInvalidPayload(t *testing.T) {
	r := newCmdRig(t, 2)
	gC := guildsOn(0, 2)[0]                        // a guild of shard 0
	gA, gB := guildsOn(1, 2)[0], guildsOn(1, 2)[1] // two of shard 1
	q := func(g uint64) string { return `"` + strconv.FormatUint(g, 10) + `"` }
	voice := func(fields string) string { return `{"guild_id":` + q(gC) + `,` + fields + `}` }
	members := func(fields string) string { return `{"guild_id":` + q(gC) + `,` + fields + `}` }
	var many []string
	for i := range 101 {
		many = append(many, `"`+strconv.Itoa(1000+i)+`"`)
	}
	cases := []struct {
		name, target string
		op           int
		d, field     string // field: what the message must name
	}{
		{"presence without since", "0", 3, `{"activities":[],"status":"online","afk":false}`, "since"},
		{"presence since a string", "0", 3, `{"since":"now","activities":[],"status":"online","afk":false}`, "since"},
		{"presence since a fraction", "0", 3, `{"since":1.5,"activities":[],"status":"online","afk":false}`, "since"},
		{"presence without activities", "0", 3, `{"since":null,"status":"online","afk":false}`, "activities"},
		{"presence activities an object", "0", 3, `{"since":null,"activities":{},"status":"online","afk":false}`, "activities"},
		{"presence activities null", "0", 3, `{"since":null,"activities":null,"status":"online","afk":false}`, "activities"},
		{"presence activity without a name", "0", 3, `{"since":null,"activities":[{"type":0}],"status":"online","afk":false}`, "activities[0].name"},
		{"presence activity type a string", "0", 3, `{"since":null,"activities":[{"name":"x","type":0},{"name":"y","type":"0"}],"status":"online","afk":false}`, "activities[1].type"},
		{"presence activity a string", "0", 3, `{"since":null,"activities":["x"],"status":"online","afk":false}`, "activities[0]"},
		{"presence without status", "0", 3, `{"since":null,"activities":[],"afk":false}`, "status"},
		{"presence status unknown", "0", 3, `{"since":null,"activities":[],"status":"away","afk":false}`, "status"},
		{"presence status a number", "0", 3, `{"since":null,"activities":[],"status":1,"afk":false}`, "status"},
		{"presence without afk", "0", 3, `{"since":null,"activities":[],"status":"online"}`, "afk"},
		{"presence afk a string", "0", 3, `{"since":null,"activities":[],"status":"online","afk":"false"}`, "afk"},
		{"presence afk null", "0", 3, `{"since":null,"activities":[],"status":"online","afk":null}`, "afk"},

		{"voice without guild_id", "0", 4, `{"channel_id":null,"self_mute":false,"self_deaf":false}`, "guild_id"},
		{"voice Guild_ID", "0", 4, `{"Guild_ID":` + q(gC) + `,"channel_id":null,"self_mute":false,"self_deaf":false}`, "guild_id"},
		{"voice guild_id a number", "0", 4, fmt.Sprintf(`{"guild_id":%d,"channel_id":null,"self_mute":false,"self_deaf":false}`, gC), "guild_id"},
		{"voice guild_id letters", "0", 4, `{"guild_id":"abc","channel_id":null,"self_mute":false,"self_deaf":false}`, "guild_id"},
		{"voice guild_id empty", "0", 4, `{"guild_id":"","channel_id":null,"self_mute":false,"self_deaf":false}`, "guild_id"},
		{"voice guild_id 0", "0", 4, `{"guild_id":"0","channel_id":null,"self_mute":false,"self_deaf":false}`, "guild_id"},
		{"voice guild_id negative", "0", 4, `{"guild_id":"-1","channel_id":null,"self_mute":false,"self_deaf":false}`, "guild_id"},
		{"voice guild_id over 64 bits", "0", 4, `{"guild_id":"18446744073709551616","channel_id":null,"self_mute":false,"self_deaf":false}`, "guild_id"},
		{"voice without channel_id", "0", 4, voice(`"self_mute":false,"self_deaf":false`), "channel_id"},
		{"voice channel_id a number", "0", 4, voice(`"channel_id":123,"self_mute":false,"self_deaf":false`), "channel_id"},
		{"voice without self_mute", "0", 4, voice(`"channel_id":null,"self_deaf":false`), "self_mute"},
		{"voice self_deaf 0", "0", 4, voice(`"channel_id":null,"self_mute":false,"self_deaf":0`), "self_deaf"},

		{"members without guild_id", "0", 8, `{"query":"","limit":0}`, "guild_id"},
		{"members of two guilds", "0", 8, `{"guild_id":[` + q(gC) + `,` + q(gA) + `],"query":"","limit":0}`, "guild_id"},
		{"members with neither query nor user_ids", "0", 8, members(`"limit":0`), "query (with limit) or user_ids"},
		{"members with query and user_ids", "0", 8, members(`"query":"","limit":0,"user_ids":["1"]`), "query and user_ids"},
		{"members query without limit", "0", 8, members(`"query":"a"`), "limit"},
		{"members query a number", "0", 8, members(`"query":5,"limit":1`), "query"},
		{"members query null", "0", 8, members(`"query":null,"limit":1`), "query"},
		{"members limit negative", "0", 8, members(`"query":"a","limit":-1`), "limit"},
		{"members limit a fraction", "0", 8, members(`"query":"a","limit":2.5`), "limit"},
		{"members limit a string", "0", 8, members(`"query":"a","limit":"10"`), "limit"},
		{"members limit a string with user_ids", "0", 8, members(`"user_ids":["1"],"limit":"10"`), "limit"},
		{"members 101 user_ids", "0", 8, members(`"user_ids":[` + strings.Join(many, ",") + `]`), "user_ids has 101 IDs"},
		{"members user_ids numbers", "0", 8, members(`"user_ids":[123]`), "user_ids"},
		{"members user_ids null", "0", 8, members(`"user_ids":null`), "user_ids"},
		{"members user_ids letters", "0", 8, members(`"user_ids":"x"`), "user_ids"},
		{"members presences a string", "0", 8, members(`"query":"","limit":0,"presences":"yes"`), "presences"},
		{"members nonce of 33 bytes", "0", 8, members(`"query":"","limit":0,"nonce":"` + strings.Repeat("n", 33) + `"`), "nonce is 33 bytes"},
		{"members nonce a number", "0", 8, members(`"query":"","limit":0,"nonce":7`), "nonce"},

		{"soundboard without guild_ids", "0", 31, `{"guild_id":` + q(gC) + `}`, "guild_ids"},
		{"soundboard guild_ids empty", "0", 31, `{"guild_ids":[]}`, "guild_ids"},
		{"soundboard guild_ids a string", "0", 31, `{"guild_ids":` + q(gC) + `}`, "guild_ids"},
		{"soundboard guild_ids numbers", "0", 31, fmt.Sprintf(`{"guild_ids":[%d]}`, gC), "guild_ids"},
		{"soundboard guild_ids null", "0", 31, `{"guild_ids":null}`, "guild_ids"},

		// The subject chose the shard: d may not name another guild.
		{"voice for another guild", "guild." + strconv.FormatUint(gA, 10), 4,
			`{"guild_id":` + q(gB) + `,"channel_id":null,"self_mute":false,"self_deaf":false}`, "guild_id names guild " + strconv.FormatUint(gB, 10)},
		{"members of another shard's guild", "guild." + strconv.FormatUint(gA, 10), 8,
			`{"guild_id":` + q(gC) + `,"query":"","limit":0}`, "guild_id names guild " + strconv.FormatUint(gC, 10)},
		{"soundboard of the guild and another", "guild." + strconv.FormatUint(gA, 10), 31,
			`{"guild_ids":[` + q(gA) + `,` + q(gB) + `]}`, "guild_ids names guild " + strconv.FormatUint(gB, 10)},
		{"soundboard of another shard's guild", "guild." + strconv.FormatUint(gA, 10), 31,
			`{"guild_ids":[` + q(gC) + `]}`, "guild_ids names guild " + strconv.FormatUint(gC, 10)},
	}
	for _, tc := range cases {
		rep := r.command(tc.target, tc.op, tc.d)
		prefix := fmt.Sprintf("op %d: ", tc.op)
		if rep.OK || rep.Error != CodeInvalidPayload || !strings.HasPrefix(rep.Message, prefix) || !strings.Contains(rep.Message, tc.field) {
			t.Errorf("%s: reply %+v, want %s with a message %q… naming %q", tc.name, rep, CodeInvalidPayload, prefix, tc.field)
		}
	}
	r.expectNoCommand(0, 0, "after the invalid payloads")
	if st := r.sim.Stats(); len(st.Closes) != 0 || st.Identifies != 2 {
		t.Errorf("the simulator closed %v and saw %d identifies, want no close and 2", st.Closes, st.Identifies)
	}
	for _, s := range r.sim.Sessions() {
		if !s.Connected {
			t.Errorf("session of shard %d not connected", s.ShardID)
		}
	}
}

// TestCommandValidPayloads: payloads at the edges of what Discord takes
// pass the checks and reach the simulator byte for byte, which accepts
// them (no close).
func TestCommandValidPayloads(t *testing.T) {
	r := newCmdRig(t, 2)
	gC := guildsOn(0, 2)[0]
	gA := guildsOn(1, 2)[0]
	q := func(g uint64) string { return `"` + strconv.FormatUint(g, 10) + `"` }
	toA := "guild." + strconv.FormatUint(gA, 10)
	var hundred []string
	for i := range 100 {
		hundred = append(hundred, `"`+strconv.Itoa(1000+i)+`"`)
	}
	cases := []struct {
		name, target string
		op           int
		d            string
	}{
		{"presence idle since a time", "1", 3, `{"since":1700000000000,"activities":[{"name":"x","type":0,"url":null}],"status":"invisible","afk":true}`},
		{"presence with fields Discord does not list", "1", 3, `{ "since" : null , "activities" : [ {"name":"a","type":2}, {"name":"b","type":4,"state":"hi"} ], "status" : "offline", "afk" : false, "extra": 1 }`},
		{"voice join by guild", toA, 4, `{"guild_id":` + q(gA) + `,"channel_id":` + q(gA+2) + `,"self_mute":true,"self_deaf":true}`},
		{"voice leave", "0", 4, `{"guild_id":` + q(gC) + `,"channel_id":null,"self_mute":false,"self_deaf":false}`},
		{"members by query with a 32-byte nonce", toA, 8, `{"guild_id":` + q(gA) + `,"query":"member","limit":5,"presences":true,"nonce":"` + strings.Repeat("n", 32) + `"}`},
		{"members all", "0", 8, `{"guild_id":` + q(gC) + `,"query":"","limit":0}`},
		{"members one user_id", "0", 8, `{"guild_id":` + q(gC) + `,"user_ids":"123","presences":false}`},
		{"members 100 user_ids", "1", 8, `{"guild_id":` + q(gA) + `,"user_ids":[` + strings.Join(hundred, ",") + `],"limit":0}`},
		{"soundboard by guild, named twice", toA, 31, `{"guild_ids":[` + q(gA) + `,` + q(gA) + `]}`},
		{"soundboard of two shards' guilds by shard", "1", 31, `{"guild_ids":[` + q(gA) + `,` + q(gC) + `]}`},
	}
	for i, tc := range cases {
		if rep := r.command(tc.target, tc.op, tc.d); !rep.OK {
			t.Fatalf("%s: reply %+v, want ok", tc.name, rep)
		}
		if got := r.commandsAt(i + 1)[i]; got.Op != tc.op || string(got.D) != tc.d || got.CloseCode != 0 {
			t.Errorf("%s: the simulator recorded op %d d %s (close %d), want op %d d %s", tc.name, got.Op, got.D, got.CloseCode, tc.op, tc.d)
		}
	}
	if st := r.sim.Stats(); len(st.Closes) != 0 {
		t.Errorf("the simulator closed connections: %v", st.Closes)
	}
}

// TestClusteredCommandsOnlyTheOwnerAnswers: two processes of one bot serve
// one prefix, each running one of two shards. A command reaches both; only
// the one that runs its shard answers, so the worker never gets the other's
// unknown_shard first. Without WithClustered a lone process still says
// unknown_shard.
func TestClusteredCommandsOnlyTheOwnerAnswers(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, discordsim.Config{Shards: 2, MaxConcurrency: 2, Guilds: 8})
	for id := range 2 {
		b := newTestBus(t, ns.connect(t), WithClustered())
		m := newTestManager(t, sim, b, manager.WithShardCount(2), manager.WithShardIDs(id))
		if err := b.ServeCommands(m); err != nil {
			t.Fatal(err)
		}
		openReady(t, m)
	}
	worker := ns.connect(t)
	replies, err := worker.SubscribeSync("_INBOX.cluster-test.>")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"op":3,"d":` + presenceOK + `}`)
	// Both buses hear both commands, in order: when the second answer has
	// come, either bus would have answered the first before it, on the same
	// connection, so a reply from the process that does not run the shard
	// would be here already.
	for _, target := range []string{"0", "1", "0", "1"} {
		if err := worker.PublishRequest("shardtop.cmd."+target, "_INBOX.cluster-test."+target, body); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		msg, err := replies.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("reply %d of 4: %v", i+1, err)
		}
		var rep Reply
		if err := json.Unmarshal(msg.Data, &rep); err != nil || !rep.OK {
			t.Errorf("reply to %s: %s (%v), want ok: only the shard's owner answers", msg.Subject, msg.Data, err)
		}
	}
	// Nothing else came: a round trip through the server after the last
	// answer, then an empty queue.
	if err := worker.Flush(); err != nil {
		t.Fatal(err)
	}
	if msg, err := replies.NextMsg(0); err == nil {
		t.Errorf("a fifth reply %s: %s", msg.Subject, msg.Data)
	}
	// A command for a shard no process runs gets no answer (the other
	// commands after it do): the worker's request times out.
	for _, target := range []string{"7", "1"} {
		if err := worker.PublishRequest("shardtop.cmd."+target, "_INBOX.cluster-test."+target, body); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := replies.NextMsg(10 * time.Second)
	if err != nil || msg.Subject != "_INBOX.cluster-test.1" {
		t.Errorf("first reply after a command for shard 7: %v %v, want shard 1's answer alone", msg, err)
	}
}
