package discordsim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// identifyWith identifies shard/count with intents and reads READY and the
// GUILD_CREATEs; it returns the session and the guild IDs of the shard.
func (c *client) identifyWith(shard, count int, intents int64) (string, []uint64) {
	c.t.Helper()
	c.send(identifyPayload("sim-token", shard, count, intents))
	f := c.read()
	if f.event() != "READY" {
		c.t.Fatalf("after identify got %v (%s), want READY", f, f.Raw)
	}
	var r readyData
	if err := json.Unmarshal(f.D, &r); err != nil {
		c.t.Fatal(err)
	}
	ids := make([]uint64, len(r.Guilds))
	for i, g := range r.Guilds {
		ids[i], _ = strconv.ParseUint(g.ID, 10, 64)
		if g := c.read(); g.event() != "GUILD_CREATE" {
			c.t.Fatalf("guild %d: got %v, want GUILD_CREATE", i, g)
		}
	}
	return r.SessionID, ids
}

// answers sends a heartbeat and returns every payload before its ACK: what
// the server sent in answer to the commands before it.
func (c *client) answers() []frame {
	c.t.Helper()
	c.send(map[string]any{"op": 1, "d": nil})
	var out []frame
	for {
		f := c.read()
		if f.Op == 11 {
			return out
		}
		out = append(out, f)
	}
}

func guildIndexOf(id uint64) int { return int(id>>22) - guildBaseTimestamp }

// otherShardGuild is a simulated guild that shard/count does not hold.
func otherShardGuild(t *testing.T, shard, count int) uint64 {
	for i := range 1000 {
		if GuildShard(GuildID(i), count) != shard {
			return GuildID(i)
		}
	}
	t.Fatal("no guild on another shard")
	return 0
}

type membersChunk struct {
	GuildID string `json:"guild_id"`
	Members []struct {
		User struct {
			ID       string `json:"id"`
			Username string `json:"username"`
			Bot      bool   `json:"bot"`
		} `json:"user"`
		JoinedAt string `json:"joined_at"`
	} `json:"members"`
	ChunkIndex int               `json:"chunk_index"`
	ChunkCount int               `json:"chunk_count"`
	NotFound   []json.RawMessage `json:"not_found"`
	Presences  []struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		Status string `json:"status"`
	} `json:"presences"`
	Nonce *string `json:"nonce"`
	Raw   json.RawMessage
}

// chunks decodes frames that must all be GUILD_MEMBERS_CHUNK.
func chunks(t *testing.T, fs []frame) []membersChunk {
	t.Helper()
	out := make([]membersChunk, len(fs))
	for i, f := range fs {
		if f.event() != "GUILD_MEMBERS_CHUNK" || f.Op != 0 {
			t.Fatalf("answer %d: %v (%.200s), want GUILD_MEMBERS_CHUNK", i, f, f.Raw)
		}
		if err := json.Unmarshal(f.D, &out[i]); err != nil {
			t.Fatalf("GUILD_MEMBERS_CHUNK %.300s: %v", f.D, err)
		}
		out[i].Raw = f.D
	}
	return out
}

// TestCommandsRecorded: every command is recorded with its op, its d as
// sent, its session's shard and session, and the close code it earned; one
// before Identify has no shard and earned 4003.
func TestCommandsRecorded(t *testing.T) {
	s := startSim(t, Config{Guilds: 8, IdentifyWindow: time.Nanosecond})
	pre := dial(t, s.GatewayURL(), "")
	pre.hello()
	pre.sendRaw([]byte(`{"op":4,"d":{"guild_id":"1","channel_id":null}}`))
	pre.expectClose(4003)

	c := dial(t, s.GatewayURL(), "")
	c.hello()
	sess, guilds := c.identifyWith(1, 2, 513)
	sent := []string{
		`{"since":null,"activities":[],"status":"idle","afk":true}`,
		fmt.Sprintf(`{"guild_id":"%d","channel_id":null,"self_mute":false,"self_deaf":false}`, guilds[0]),
		fmt.Sprintf(`{"guild_id":"%d","user_ids":["%d"],"nonce":"n1"}`, guilds[0], botUserID),
		fmt.Sprintf(`{"guild_ids": ["%d"]}`, guilds[1]),
	}
	for i, op := range []int{3, 4, 8, 31} {
		c.sendRaw([]byte(`{"op":` + strconv.Itoa(op) + `,"d":` + sent[i] + `}`))
	}
	got := c.answers()
	if len(got) != 3 { // VOICE_STATE_UPDATE, GUILD_MEMBERS_CHUNK, SOUNDBOARD_SOUNDS
		t.Fatalf("answers %v, want 3", got)
	}
	cmds := s.Commands()
	if len(cmds) != 5 {
		t.Fatalf("Commands() = %+v, want 5", cmds)
	}
	if p := cmds[0]; p.Op != 4 || p.ShardID != -1 || p.SessionID != "" || p.CloseCode != 4003 {
		t.Errorf("command before identify recorded as %+v", p)
	}
	for i, op := range []int{3, 4, 8, 31} {
		cm := cmds[i+1]
		if cm.Op != op || string(cm.D) != sent[i] || cm.ShardID != 1 || cm.ShardCount != 2 || cm.SessionID != sess || cm.CloseCode != 0 || cm.At.IsZero() {
			t.Errorf("command %d recorded as %+v (d %s), want op %d d %s on shard [1 2] session %s", i, cm, cm.D, op, sent[i], sess)
		}
	}
	if st := s.Stats(); st.PayloadsByOp[31] != 1 || st.PayloadsByOp[8] != 1 {
		t.Errorf("PayloadsByOp %v, want one op 8 and one op 31", st.PayloadsByOp)
	}
	cmds[1].D[0] = 'X' // a copy: the record is not changed through it
	if s.Commands()[1].D[0] != '{' {
		t.Error("Commands returns the record itself, not a copy")
	}
}

// TestRequestGuildMembersByID: user_ids found come back as members,
// the others in not_found; the nonce is echoed; the answer is a dispatch of
// the session, numbered after what came before.
func TestRequestGuildMembersByID(t *testing.T) {
	s := startSim(t, Config{Guilds: 4, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	_, guilds := c.identifyWith(0, 1, 513)
	g := guilds[3]
	member2 := memberUserID(3, 2)
	stranger := memberUserID(2, 1) // a member of another guild
	c.send(map[string]any{"op": 8, "d": map[string]any{"guild_id": strconv.FormatUint(g, 10),
		"user_ids": []string{strconv.FormatUint(member2, 10), strconv.FormatUint(botUserID, 10), strconv.FormatUint(stranger, 10)},
		"nonce":    "abc"}})
	fs := c.answers()
	cs := chunks(t, fs)
	if len(cs) != 1 {
		t.Fatalf("%d chunks, want 1", len(cs))
	}
	ch := cs[0]
	if ch.GuildID != strconv.FormatUint(g, 10) || ch.ChunkIndex != 0 || ch.ChunkCount != 1 || ch.Nonce == nil || *ch.Nonce != "abc" {
		t.Errorf("chunk %s: want guild %d, chunk 0 of 1, nonce abc", ch.Raw, g)
	}
	var ids []string
	for _, m := range ch.Members {
		ids = append(ids, m.User.ID)
	}
	if want := []string{strconv.FormatUint(member2, 10), strconv.FormatUint(botUserID, 10)}; !slices.Equal(ids, want) {
		t.Errorf("members %v, want %v", ids, want)
	}
	if len(ch.Members) == 2 && (!ch.Members[1].User.Bot || ch.Members[0].User.Username != "member2" || ch.Members[0].JoinedAt == "") {
		t.Errorf("member objects %s", ch.Raw)
	}
	if len(ch.NotFound) != 1 || string(ch.NotFound[0]) != `"`+strconv.FormatUint(stranger, 10)+`"` {
		t.Errorf("not_found %s, want [%d]", ch.NotFound, stranger)
	}
	if ch.Presences != nil {
		t.Errorf("presences %s without asking", ch.Raw)
	}
	if want := int64(2 + len(guilds)); fs[0].seq() != want {
		t.Errorf("chunk has s=%d, want %d (after READY and the GUILD_CREATEs)", fs[0].seq(), want)
	}

	// A single user ID as a number (Discord takes snowflakes either way),
	// and a nonce over 32 bytes, which Discord ignores.
	c.sendRaw(fmt.Appendf(nil, `{"op":8,"d":{"guild_id":%d,"user_ids":%d,"nonce":"%033d"}}`, g, member2, 0))
	cs = chunks(t, c.answers())
	if len(cs) != 1 || len(cs[0].Members) != 1 || cs[0].Nonce != nil || cs[0].NotFound == nil || len(cs[0].NotFound) != 0 {
		t.Errorf("answer %s: want member2, not_found [] and no nonce", cs[0].Raw)
	}
}

// TestRequestGuildMembersQuery: a prefix query returns the members whose
// username starts with it, at most limit and at most 100; the whole list
// (query "", limit 0) comes in chunks of 1000 with chunk_index and
// chunk_count, and a second such request within MemberRequestWindow gets
// RATE_LIMITED; presences come only with GUILD_PRESENCES.
func TestRequestGuildMembersQuery(t *testing.T) {
	const big = 2100 // member_count 2105: three chunks
	s := startSim(t, Config{Guilds: big + 1, MemberRequestWindow: time.Hour, IdentifyWindow: time.Nanosecond})
	count := 16
	shard := GuildShard(GuildID(big), count)
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identifyWith(shard, count, 513|intentPresences)
	g := strconv.FormatUint(GuildID(big), 10)

	c.send(map[string]any{"op": 8, "d": map[string]any{"guild_id": g, "query": "MEMBER1", "limit": 5}})
	cs := chunks(t, c.answers())
	var names []string
	for _, m := range cs[0].Members {
		names = append(names, m.User.Username)
	}
	if want := []string{"member1", "member10", "member11", "member12", "member13"}; len(cs) != 1 || !slices.Equal(names, want) {
		t.Errorf("query member1 limit 5: %v, want %v", names, want)
	}
	c.send(map[string]any{"op": 8, "d": map[string]any{"guild_id": g, "query": "m", "limit": 0}})
	if cs := chunks(t, c.answers()); len(cs) != 1 || len(cs[0].Members) != 100 {
		t.Errorf("query m limit 0: %d chunks, %d members, want 100 in one", len(cs), len(cs[0].Members))
	}
	c.send(map[string]any{"op": 8, "d": map[string]any{"guild_id": g, "query": "nobody", "limit": 10, "nonce": "z"}})
	if cs := chunks(t, c.answers()); len(cs) != 1 || len(cs[0].Members) != 0 || cs[0].ChunkCount != 1 || cs[0].Nonce == nil {
		t.Errorf("a query matching no one: %s, want one empty chunk with the nonce", cs[0].Raw)
	}

	c.send(map[string]any{"op": 8, "d": map[string]any{"guild_id": g, "query": "", "limit": 0, "presences": true, "nonce": "all"}})
	cs = chunks(t, c.answers())
	if len(cs) != 3 {
		t.Fatalf("whole list of %d members: %d chunks, want 3", memberCount(big), len(cs))
	}
	seen := map[string]bool{}
	for i, ch := range cs {
		if ch.ChunkIndex != i || ch.ChunkCount != 3 || ch.Nonce == nil || *ch.Nonce != "all" || len(ch.Presences) != len(ch.Members) {
			t.Errorf("chunk %d: index %d count %d nonce %v, %d presences for %d members", i, ch.ChunkIndex, ch.ChunkCount, ch.Nonce, len(ch.Presences), len(ch.Members))
		}
		if len(ch.Members) > 1000 {
			t.Errorf("chunk %d has %d members, more than 1000", i, len(ch.Members))
		}
		for _, m := range ch.Members {
			seen[m.User.ID] = true
		}
	}
	if len(seen) != memberCount(big) {
		t.Errorf("%d distinct members in the chunks, want %d", len(seen), memberCount(big))
	}

	c.send(map[string]any{"op": 8, "d": map[string]any{"guild_id": g, "query": "", "limit": 0, "nonce": "again"}})
	fs := c.answers()
	if len(fs) != 1 || fs[0].event() != "RATE_LIMITED" {
		t.Fatalf("a second whole-list request: %v, want one RATE_LIMITED", fs)
	}
	var rl struct {
		Opcode     int     `json:"opcode"`
		RetryAfter float64 `json:"retry_after"`
		Meta       struct {
			GuildID string `json:"guild_id"`
			Nonce   string `json:"nonce"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(fs[0].D, &rl); err != nil || rl.Opcode != 8 || rl.RetryAfter <= 3000 || rl.RetryAfter > 3600 || rl.Meta.GuildID != g || rl.Meta.Nonce != "again" {
		t.Errorf("RATE_LIMITED %s (%v): want opcode 8, retry_after near 3600 s, the guild and nonce", fs[0].D, err)
	}

	// Without GUILD_PRESENCES, presences=true is ignored.
	c2 := dial(t, s.GatewayURL(), "")
	c2.hello()
	c2.identifyWith(shard, count, 513)
	c2.send(map[string]any{"op": 8, "d": map[string]any{"guild_id": g, "query": "member2", "limit": 1, "presences": true}})
	if cs := chunks(t, c2.answers()); cs[0].Presences != nil {
		t.Errorf("presences without the intent: %s", cs[0].Raw)
	}
}

// TestCommandsForOtherGuilds: a command about a guild the shard does not
// hold (another shard's, or none of the bot's) is accepted and answered
// with nothing.
func TestCommandsForOtherGuilds(t *testing.T) {
	s := startSim(t, Config{Guilds: 8, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identifyWith(0, 2, 513)
	for _, g := range []uint64{otherShardGuild(t, 0, 2), 41771983423143937} {
		c.sendRaw(fmt.Appendf(nil, `{"op":8,"d":{"guild_id":"%d","query":"","limit":0}}`, g))
		c.sendRaw(fmt.Appendf(nil, `{"op":31,"d":{"guild_ids":["%d"]}}`, g))
		c.sendRaw(fmt.Appendf(nil, `{"op":4,"d":{"guild_id":"%d","channel_id":"%d"}}`, g, g+2))
		if fs := c.answers(); len(fs) != 0 {
			t.Errorf("guild %d: answers %v, want none", g, fs)
		}
	}
	for _, cm := range s.Commands() {
		if cm.CloseCode != 0 {
			t.Errorf("%+v refused", cm)
		}
	}
}

// TestSoundboardSounds: op 31 gets one SOUNDBOARD_SOUNDS per guild of the
// shard named (once each), nothing for the others.
func TestSoundboardSounds(t *testing.T) {
	s := startSim(t, Config{Guilds: 8, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	_, guilds := c.identifyWith(1, 2, 513)
	other := otherShardGuild(t, 1, 2)
	c.sendRaw(fmt.Appendf(nil, `{"op":31,"d":{"guild_ids":["%d","%d",%d,"%d"]}}`, guilds[2], other, guilds[0], guilds[2]))
	fs := c.answers()
	var got []string
	for _, f := range fs {
		var d struct {
			GuildID string            `json:"guild_id"`
			Sounds  []json.RawMessage `json:"soundboard_sounds"`
		}
		if f.event() != "SOUNDBOARD_SOUNDS" || json.Unmarshal(f.D, &d) != nil || d.Sounds == nil {
			t.Fatalf("answer %v %s, want SOUNDBOARD_SOUNDS with soundboard_sounds []", f, f.D)
		}
		got = append(got, d.GuildID)
	}
	if want := []string{strconv.FormatUint(guilds[2], 10), strconv.FormatUint(guilds[0], 10)}; !slices.Equal(got, want) {
		t.Errorf("SOUNDBOARD_SOUNDS for %v, want %v", got, want)
	}
}

// TestVoiceStateUpdate: joining the guild's voice channel gets
// VOICE_STATE_UPDATE then VOICE_SERVER_UPDATE; leaving (channel_id null)
// gets VOICE_STATE_UPDATE alone; a channel that is not the guild's voice
// channel gets nothing.
func TestVoiceStateUpdate(t *testing.T) {
	s := startSim(t, Config{Guilds: 4, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	sess, guilds := c.identifyWith(0, 1, 513)
	g := guilds[1]
	voice := voiceChannelID(guildIndexOf(g))
	c.sendRaw(fmt.Appendf(nil, `{"op":4,"d":{"guild_id":"%d","channel_id":"%d","self_mute":true,"self_deaf":false}}`, g, voice))
	fs := c.answers()
	if len(fs) != 2 || fs[0].event() != "VOICE_STATE_UPDATE" || fs[1].event() != "VOICE_SERVER_UPDATE" {
		t.Fatalf("joining: %v, want VOICE_STATE_UPDATE, VOICE_SERVER_UPDATE", fs)
	}
	type voiceState struct {
		GuildID   string  `json:"guild_id"`
		ChannelID *string `json:"channel_id"`
		UserID    string  `json:"user_id"`
		SessionID string  `json:"session_id"`
		SelfMute  bool    `json:"self_mute"`
		SelfDeaf  bool    `json:"self_deaf"`
	}
	var vs voiceState
	if err := json.Unmarshal(fs[0].D, &vs); err != nil || vs.GuildID != strconv.FormatUint(g, 10) || vs.ChannelID == nil ||
		*vs.ChannelID != strconv.FormatUint(voice, 10) || vs.UserID != strconv.FormatUint(botUserID, 10) || vs.SessionID != sess || !vs.SelfMute || vs.SelfDeaf {
		t.Errorf("VOICE_STATE_UPDATE %s (%v)", fs[0].D, err)
	}
	var srv struct {
		Token    string  `json:"token"`
		GuildID  string  `json:"guild_id"`
		Endpoint *string `json:"endpoint"`
	}
	if err := json.Unmarshal(fs[1].D, &srv); err != nil || srv.Token == "" || srv.GuildID != strconv.FormatUint(g, 10) || srv.Endpoint == nil {
		t.Errorf("VOICE_SERVER_UPDATE %s (%v)", fs[1].D, err)
	}

	c.sendRaw(fmt.Appendf(nil, `{"op":4,"d":{"guild_id":"%d","channel_id":null,"self_mute":false,"self_deaf":false}}`, g))
	fs = c.answers()
	vs = voiceState{}
	if len(fs) != 1 || fs[0].event() != "VOICE_STATE_UPDATE" || json.Unmarshal(fs[0].D, &vs) != nil || vs.ChannelID != nil {
		t.Fatalf("leaving: %v %s, want one VOICE_STATE_UPDATE with channel_id null", fs, fs[0].D)
	}

	c.sendRaw(fmt.Appendf(nil, `{"op":4,"d":{"guild_id":"%d","channel_id":"%d","self_mute":false,"self_deaf":false}}`, g, voice-1))
	if fs := c.answers(); len(fs) != 0 {
		t.Errorf("joining a text channel: %v, want nothing", fs)
	}
}

// TestPresenceUpdateAnswersNothing: a valid presence update is accepted
// and gets no answer.
func TestPresenceUpdateAnswersNothing(t *testing.T) {
	s := startSim(t, Config{Guilds: 2, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identifyWith(0, 1, 513)
	c.sendRaw([]byte(`{"op":3,"d":{"since":91879201,"activities":[{"name":"x","type":0}],"status":"dnd","afk":false}}`))
	if fs := c.answers(); len(fs) != 0 {
		t.Errorf("presence update answered with %v", fs)
	}
}

// TestInvalidCommands: a d that is not a valid payload for its op closes
// 4001 (Discord: "an invalid payload for an opcode"), recorded with it.
func TestInvalidCommands(t *testing.T) {
	s := startSim(t, Config{Guilds: 2, IdentifyWindow: time.Nanosecond})
	g := GuildID(0)
	userIDs := func(n int) string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = strconv.Quote(strconv.FormatUint(memberUserID(0, 1)+uint64(i), 10))
		}
		return "[" + strings.Join(ids, ",") + "]"
	}
	many := userIDs(101)
	cases := []struct{ name, payload string }{
		{"presence d not an object", `{"op":3,"d":"online"}`},
		{"presence without d", `{"op":3}`},
		{"presence unknown status", `{"op":3,"d":{"since":null,"activities":[],"status":"busy","afk":false}}`},
		{"presence activities not an array", `{"op":3,"d":{"since":null,"activities":{},"status":"online","afk":false}}`},
		{"presence afk not a boolean", `{"op":3,"d":{"since":null,"activities":[],"status":"online","afk":"no"}}`},
		{"voice without guild_id", `{"op":4,"d":{"channel_id":null,"self_mute":false,"self_deaf":false}}`},
		{"voice without channel_id", fmt.Sprintf(`{"op":4,"d":{"guild_id":"%d","self_mute":false,"self_deaf":false}}`, g)},
		{"voice guild_id not a snowflake", `{"op":4,"d":{"guild_id":"general","channel_id":null}}`},
		{"voice self_mute not a boolean", fmt.Sprintf(`{"op":4,"d":{"guild_id":"%d","channel_id":null,"self_mute":"yes"}}`, g)},
		{"members without guild_id", `{"op":8,"d":{"query":"","limit":0}}`},
		{"members for two guilds", fmt.Sprintf(`{"op":8,"d":{"guild_id":["%d","%d"],"query":"","limit":0}}`, g, GuildID(1))},
		{"members without query or user_ids", fmt.Sprintf(`{"op":8,"d":{"guild_id":"%d","limit":0}}`, g)},
		{"members query without limit", fmt.Sprintf(`{"op":8,"d":{"guild_id":"%d","query":"a"}}`, g)},
		{"members negative limit", fmt.Sprintf(`{"op":8,"d":{"guild_id":"%d","query":"a","limit":-1}}`, g)},
		{"members over 100 user_ids", fmt.Sprintf(`{"op":8,"d":{"guild_id":"%d","user_ids":%s}}`, g, many)},
		{"members user_ids not snowflakes", fmt.Sprintf(`{"op":8,"d":{"guild_id":"%d","user_ids":["me"]}}`, g)},
		{"members presences not a boolean", fmt.Sprintf(`{"op":8,"d":{"guild_id":"%d","query":"","limit":1,"presences":"yes"}}`, g)},
		{"soundboard without guild_ids", `{"op":31,"d":{}}`},
		{"soundboard guild_ids not an array", fmt.Sprintf(`{"op":31,"d":{"guild_ids":"%d"}}`, g)},
		{"soundboard d an array", fmt.Sprintf(`{"op":31,"d":["%d"]}`, g)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s.GatewayURL(), "")
			c.hello()
			c.identifyWith(0, 1, 513)
			c.sendRaw([]byte(tc.payload))
			c.expectClose(4001)
			cmds := s.Commands()
			if last := cmds[len(cmds)-1]; last.CloseCode != 4001 {
				t.Errorf("recorded %+v, want close code 4001", last)
			}
		})
	}
	t.Run("exactly 100 user_ids is fine", func(t *testing.T) {
		c := dial(t, s.GatewayURL(), "")
		c.hello()
		c.identifyWith(0, 1, 513)
		c.sendRaw(fmt.Appendf(nil, `{"op":8,"d":{"guild_id":"%d","user_ids":%s}}`, g, userIDs(100)))
		if cs := chunks(t, c.answers()); len(cs) != 1 || len(cs[0].Members)+len(cs[0].NotFound) != 100 {
			t.Errorf("100 user_ids: %d members + %d not found, want 100", len(cs[0].Members), len(cs[0].NotFound))
		}
	})
}

// TestCommandAnswersAfterReady: a command sent after Identify but before
// READY (ReadyDelay) is answered after READY and the GUILD_CREATEs, never
// before, and numbered after them.
func TestCommandAnswersAfterReady(t *testing.T) {
	s := startSim(t, Config{Guilds: 2, ReadyDelay: 200 * time.Millisecond, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.send(identifyPayload("sim-token", 0, 1, 513))
	c.sendRaw(fmt.Appendf(nil, `{"op":31,"d":{"guild_ids":["%d"]}}`, GuildID(1)))
	var names []string
	var seqs []int64
	for len(names) < 4 {
		f := c.read()
		names, seqs = append(names, f.event()), append(seqs, f.seq())
	}
	if want := []string{"READY", "GUILD_CREATE", "GUILD_CREATE", "SOUNDBOARD_SOUNDS"}; !slices.Equal(names, want) || !slices.Equal(seqs, []int64{1, 2, 3, 4}) {
		t.Errorf("got %v seqs %v, want %v numbered 1-4", names, seqs, want)
	}
}

// TestCommandAnswersReplayed: answers are dispatches of the session: a
// resume after them replays them.
func TestCommandAnswersReplayed(t *testing.T) {
	s := startSim(t, Config{Guilds: 2, IdentifyWindow: time.Nanosecond})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	sess, guilds := c.identifyWith(0, 1, 513)
	last := int64(1 + len(guilds))
	c.sendRaw(fmt.Appendf(nil, `{"op":31,"d":{"guild_ids":["%d"]}}`, guilds[0]))
	if fs := c.answers(); len(fs) != 1 {
		t.Fatalf("answers %v", fs)
	}
	c.closeWith(4000)
	r := dial(t, s.ResumeURL(), "")
	r.hello()
	r.send(map[string]any{"op": 6, "d": map[string]any{"token": "sim-token", "session_id": sess, "seq": last}})
	if f := r.read(); f.event() != "SOUNDBOARD_SOUNDS" || f.seq() != last+1 {
		t.Errorf("replay starts with %v, want SOUNDBOARD_SOUNDS s=%d", f, last+1)
	}
	if f := r.read(); f.event() != "RESUMED" {
		t.Errorf("then %v, want RESUMED", f)
	}
}
