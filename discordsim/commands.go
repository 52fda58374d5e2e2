package discordsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Command is one gateway command a client sent (op 3 presence update, 4
// voice state update, 8 request guild members, 31 request soundboard
// sounds), as Server.Commands lists them.
type Command struct {
	Op int
	// D is the payload's d exactly as it came (nil if it had none).
	D json.RawMessage
	// ShardID and ShardCount are the session's shard ([-1, 0] for a
	// command sent before Identify or Resume); SessionID is its session.
	ShardID, ShardCount int
	SessionID           string
	// At is when the payload arrived.
	At time.Time
	// CloseCode is the close code the command earned (0: accepted):
	// 4001 for a payload Discord refuses for its op, 4003 before
	// Identify/Resume, 4008 over the presence limit.
	CloseCode int
}

// maxCommandLog bounds what Server.Commands keeps: the oldest go first.
const maxCommandLog = 10_000

// Commands returns the gateway commands (ops 3, 4, 8, 31) received so far,
// in arrival order: the latest 10000.
func (s *Server) Commands() []Command {
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	out := append([]Command(nil), s.cmds...)
	for i := range out {
		if out[i].D != nil {
			out[i].D = append(json.RawMessage(nil), out[i].D...)
		}
	}
	return out
}

func (s *Server) record(c Command) {
	s.cmdMu.Lock()
	if len(s.cmds) >= maxCommandLog {
		n := copy(s.cmds, s.cmds[len(s.cmds)-maxCommandLog/2:])
		clear(s.cmds[n:])
		s.cmds = s.cmds[:n]
	}
	s.cmds = append(s.cmds, c)
	s.cmdMu.Unlock()
}

// command handles a gateway command (op 3, 4, 8 or 31) that arrived at at:
// it records it, then closes the connection or queues the dispatches that
// answer it.
func (c *conn) command(op int, d json.RawMessage, at time.Time) {
	sess := c.owned()
	rec := Command{Op: op, ShardID: -1, At: at}
	if d != nil {
		rec.D = append(json.RawMessage(nil), d...)
	}
	var out []*dispatchBody
	switch {
	case sess == nil:
		rec.CloseCode = 4003
	case op == 3 && !c.presences.allow(at):
		rec.CloseCode = 4008
	default:
		var ok bool
		out, ok = c.srv.answer(sess, op, d, at)
		if !ok {
			rec.CloseCode = 4001
		}
	}
	if sess != nil {
		rec.ShardID, rec.ShardCount, rec.SessionID = sess.shardID, sess.shardCount, sess.id
	}
	c.srv.record(rec) // before the close: a test that sees the close sees the record
	if rec.CloseCode != 0 {
		c.log.Debug("command refused", "op", op, "code", rec.CloseCode)
		c.closeWith(rec.CloseCode, closeReason(rec.CloseCode))
		return
	}
	if len(out) > 0 {
		c.enqueue(command{kind: cmdDispatch, sess: sess, bodies: out})
	}
}

// answer checks a command's d as Discord does and returns the dispatches
// that answer it; ok is false if d is not a valid payload for op (4001:
// "an invalid payload for an opcode").
func (s *Server) answer(sess *session, op int, d json.RawMessage, at time.Time) (out []*dispatchBody, ok bool) {
	if kindOf(d) != 'o' {
		return nil, false
	}
	switch op {
	case 3:
		return nil, validPresence(d)
	case 4:
		return s.voiceState(sess, d)
	case 8:
		return s.requestMembers(sess, d, at)
	case 31:
		return s.requestSoundboard(sess, d)
	}
	return nil, false
}

// kindOf classifies a JSON value by its first byte: 'o' object, 'a' array,
// 's' string, 'n' null, 'b' boolean, '0' number, 0 absent.
func kindOf(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	switch raw[0] {
	case '{':
		return 'o'
	case '[':
		return 'a'
	case '"':
		return 's'
	case 'n':
		return 'n'
	case 't', 'f':
		return 'b'
	}
	return '0'
}

// presenceStatuses are the statuses a presence update may set.
var presenceStatuses = map[string]bool{"online": true, "dnd": true, "idle": true, "invisible": true, "offline": true}

// validPresence checks an op 3 d: since null or a number, activities an
// array, status a known status, afk a boolean. Discord lists all four; the
// simulator accepts a missing one (its docs do not say what that earns).
func validPresence(d json.RawMessage) bool {
	var p struct {
		Since      json.RawMessage `json:"since"`
		Activities json.RawMessage `json:"activities"`
		Status     json.RawMessage `json:"status"`
		AFK        json.RawMessage `json:"afk"`
	}
	if json.Unmarshal(d, &p) != nil {
		return false
	}
	if k := kindOf(p.Since); k != 0 && k != 'n' && k != '0' {
		return false
	}
	if k := kindOf(p.Activities); k != 0 && k != 'a' {
		return false
	}
	if k := kindOf(p.AFK); k != 0 && k != 'b' {
		return false
	}
	if p.Status != nil {
		var st string
		if json.Unmarshal(p.Status, &st) != nil || !presenceStatuses[st] {
			return false
		}
	}
	return true
}

// snowflake parses a snowflake given as a string of digits or a number.
func snowflake(raw json.RawMessage) (uint64, bool) {
	raw = bytes.TrimSpace(raw)
	if k := kindOf(raw); k == 's' {
		var str string
		if json.Unmarshal(raw, &str) != nil {
			return 0, false
		}
		raw = []byte(str)
	} else if k != '0' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	return v, err == nil
}

// snowflakes parses one snowflake or an array of them.
func snowflakes(raw json.RawMessage) ([]uint64, bool) {
	if kindOf(raw) != 'a' {
		id, ok := snowflake(raw)
		return []uint64{id}, ok
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, false
	}
	ids := make([]uint64, 0, len(items))
	for _, it := range items {
		id, ok := snowflake(it)
		if !ok {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

// guildIndex is the index of the simulated guild id on sess's shard (ok
// false if there is no such guild or another shard holds it).
func (s *Server) guildIndex(sess *session, id uint64) (int, bool) {
	ts := id >> 22
	if ts < guildBaseTimestamp || ts-guildBaseTimestamp >= uint64(s.cfg.Guilds) {
		return 0, false
	}
	g := int(ts - guildBaseTimestamp)
	if GuildID(g) != id || GuildShard(id, sess.shardCount) != sess.shardID {
		return 0, false
	}
	return g, true
}

// voiceChannelID is the voice channel of guild g (its GUILD_CREATE lists it).
func voiceChannelID(g int) uint64 { return GuildID(g) + 2 }

// voiceState answers op 4: guild_id (a snowflake) and channel_id (null or a
// snowflake) are required, self_mute and self_deaf are booleans. For a
// guild of this shard and its voice channel (or null: leaving) it answers
// VOICE_STATE_UPDATE, and on joining VOICE_SERVER_UPDATE after it. A guild
// the shard does not hold, or a channel that is not the guild's voice
// channel, gets no answer (Discord's docs say nothing of either).
func (s *Server) voiceState(sess *session, d json.RawMessage) ([]*dispatchBody, bool) {
	var v struct {
		GuildID   json.RawMessage `json:"guild_id"`
		ChannelID json.RawMessage `json:"channel_id"`
		SelfMute  json.RawMessage `json:"self_mute"`
		SelfDeaf  json.RawMessage `json:"self_deaf"`
	}
	if json.Unmarshal(d, &v) != nil {
		return nil, false
	}
	guild, ok := snowflake(v.GuildID)
	if !ok || v.ChannelID == nil {
		return nil, false
	}
	var channel uint64
	if kindOf(v.ChannelID) != 'n' {
		if channel, ok = snowflake(v.ChannelID); !ok {
			return nil, false
		}
	}
	var mute, deaf bool
	for _, f := range []struct {
		raw json.RawMessage
		dst *bool
	}{{v.SelfMute, &mute}, {v.SelfDeaf, &deaf}} {
		if f.raw != nil && json.Unmarshal(f.raw, f.dst) != nil {
			return nil, false
		}
	}
	g, ok := s.guildIndex(sess, guild)
	if !ok || (channel != 0 && channel != voiceChannelID(g)) {
		return nil, true
	}
	ch := "null"
	if channel != 0 {
		ch = `"` + strconv.FormatUint(channel, 10) + `"`
	}
	state := fmt.Sprintf(`{"member":{"user":%s,"roles":[],"nick":null,"avatar":null,"joined_at":"2024-03-01T12:00:00.000000+00:00",`+
		`"premium_since":null,"deaf":false,"mute":false,"flags":0,"pending":false},"user_id":"%d","suppress":false,`+
		`"session_id":"%s","self_video":false,"self_mute":%t,"self_deaf":%t,"request_to_speak_timestamp":null,`+
		`"mute":false,"guild_id":"%d","deaf":false,"channel_id":%s}`,
		botUserJSON, botUserID, sess.id, mute, deaf, guild, ch)
	out := []*dispatchBody{newBody("VOICE_STATE_UPDATE", []byte(state))}
	if channel != 0 {
		server := fmt.Sprintf(`{"token":"%.8s%x","guild_id":"%d","endpoint":"voice.discordsim.invalid:443"}`,
			sess.id, guild, guild)
		out = append(out, newBody("VOICE_SERVER_UPDATE", []byte(server)))
	}
	return out, true
}

// Discord's limits on op 8.
const (
	membersPerChunk = 1000 // members in one GUILD_MEMBERS_CHUNK
	maxQueryMembers = 100  // members a prefix query returns at most
	maxUserIDs      = 100  // user_ids one request may name
	maxNonce        = 32   // bytes of a nonce; a longer one is ignored
)

// intentPresences is GUILD_PRESENCES: without it presences=true is ignored.
const intentPresences = 1 << 8

// memberBaseID is the user ID of member 1 of guild 0; member k of guild g
// is memberBaseID + g*memberStride + k (member 0 is the bot).
const (
	memberBaseID uint64 = 500_000_000_000_000_000
	memberStride        = 10_000
)

// memberCount is guild g's member_count (as its GUILD_CREATE gives it).
func memberCount(g int) int { return 5 + g%9000 }

func memberUserID(g, k int) uint64 {
	if k == 0 {
		return botUserID
	}
	return memberBaseID + uint64(g)*memberStride + uint64(k)
}

// memberIndex is the index in guild g of user id (ok false if not a member).
func memberIndex(g int, id uint64) (int, bool) {
	if id == botUserID {
		return 0, true
	}
	base := memberBaseID + uint64(g)*memberStride
	if id <= base || id-base >= uint64(memberCount(g)) {
		return 0, false
	}
	return int(id - base), true
}

func memberName(k int) string {
	if k == 0 {
		return "shardtop-sim"
	}
	return "member" + strconv.Itoa(k)
}

func appendMember(b []byte, g, k int) []byte {
	b = append(b, `{"user":`...)
	if k == 0 {
		b = append(b, botUserJSON...)
	} else {
		b = fmt.Appendf(b, `{"id":"%d","username":"%s","global_name":null,"avatar":null,"discriminator":"0",`+
			`"public_flags":0,"bot":false}`, memberUserID(g, k), memberName(k))
	}
	return append(b, `,"roles":[],"nick":null,"avatar":null,"joined_at":"2024-03-01T12:00:00.000000+00:00",`+
		`"premium_since":null,"deaf":false,"mute":false,"flags":0,"pending":false}`...)
}

// requestMembers answers op 8. guild_id (one snowflake: Discord allows one
// guild per request) and one of query (with limit) or user_ids (at most
// 100) are required; presences is a boolean, honoured only with the
// GUILD_PRESENCES intent; nonce is echoed if it is a string of at most 32
// bytes, and otherwise ignored. A guild the shard does not hold gets no
// answer. The answer is GUILD_MEMBERS_CHUNK dispatches of at most 1000
// members each (at least one, maybe empty): for user_ids the members found
// and not_found the IDs that are not; for a query the members whose
// username starts with it (case-insensitive), at most limit and at most
// 100, or, for query "" with limit 0, all of them. That whole-list request
// is limited to one per guild per MemberRequestWindow; one more is answered
// with RATE_LIMITED instead. Given both, user_ids wins over query (the
// docs say "one of"). The GUILD_MEMBERS intent is not checked: the docs
// say it is required but not what happens without it.
func (s *Server) requestMembers(sess *session, d json.RawMessage, at time.Time) ([]*dispatchBody, bool) {
	var r struct {
		GuildID   json.RawMessage `json:"guild_id"`
		Query     *string         `json:"query"`
		Limit     *int            `json:"limit"`
		Presences *bool           `json:"presences"`
		UserIDs   json.RawMessage `json:"user_ids"`
		Nonce     json.RawMessage `json:"nonce"`
	}
	if json.Unmarshal(d, &r) != nil {
		return nil, false
	}
	guild, ok := snowflake(r.GuildID)
	if !ok {
		return nil, false
	}
	var users []uint64
	if r.UserIDs != nil {
		if users, ok = snowflakes(r.UserIDs); !ok || len(users) > maxUserIDs {
			return nil, false
		}
	} else if r.Query == nil || r.Limit == nil || *r.Limit < 0 {
		return nil, false
	}
	nonce := ""
	if kindOf(r.Nonce) == 's' {
		var n string
		if json.Unmarshal(r.Nonce, &n) == nil && len(n) <= maxNonce {
			nonce = n
		}
	}
	g, ok := s.guildIndex(sess, guild)
	if !ok {
		return nil, true
	}
	presences := r.Presences != nil && *r.Presences && sess.intents&intentPresences != 0

	var found []int
	var notFound []uint64
	switch {
	case r.UserIDs != nil:
		for _, u := range users {
			if k, ok := memberIndex(g, u); ok {
				found = append(found, k)
			} else {
				notFound = append(notFound, u)
			}
		}
	case *r.Query == "" && *r.Limit == 0:
		if wait := s.memberRequestWait(guild, at); wait > 0 {
			return []*dispatchBody{rateLimitedBody(8, wait, guild, nonce)}, true
		}
		found = make([]int, memberCount(g))
		for k := range found {
			found[k] = k
		}
	default:
		limit := *r.Limit
		if *r.Query != "" && (limit == 0 || limit > maxQueryMembers) {
			limit = maxQueryMembers
		}
		q := strings.ToLower(*r.Query)
		for k := 0; k < memberCount(g) && len(found) < limit; k++ {
			if strings.HasPrefix(memberName(k), q) {
				found = append(found, k)
			}
		}
	}
	chunks := max(1, (len(found)+membersPerChunk-1)/membersPerChunk)
	out := make([]*dispatchBody, 0, chunks)
	for i := range chunks {
		part := found[min(i*membersPerChunk, len(found)):min((i+1)*membersPerChunk, len(found))]
		b := fmt.Appendf(nil, `{"guild_id":"%d","members":[`, guild)
		for j, k := range part {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendMember(b, g, k)
		}
		b = fmt.Appendf(b, `],"chunk_index":%d,"chunk_count":%d`, i, chunks)
		if r.UserIDs != nil {
			b = append(b, `,"not_found":[`...)
			if i == 0 {
				for j, u := range notFound {
					if j > 0 {
						b = append(b, ',')
					}
					b = fmt.Appendf(b, `"%d"`, u)
				}
			}
			b = append(b, ']')
		}
		if presences {
			b = append(b, `,"presences":[`...)
			for j, k := range part {
				if j > 0 {
					b = append(b, ',')
				}
				b = fmt.Appendf(b, `{"user":{"id":"%d"},"status":"online","activities":[],"client_status":{"web":"online"}}`, memberUserID(g, k))
			}
			b = append(b, ']')
		}
		if nonce != "" {
			nb, _ := json.Marshal(nonce)
			b = append(append(b, `,"nonce":`...), nb...)
		}
		out = append(out, newBody("GUILD_MEMBERS_CHUNK", append(b, '}')))
	}
	return out, true
}

// memberRequestWait is how long until guild's whole member list may be
// requested again (0: now, and the request is counted).
func (s *Server) memberRequestWait(guild uint64, at time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.memberRequests[guild]; ok {
		if wait := last.Add(s.cfg.MemberRequestWindow).Sub(at); wait > 0 {
			return wait
		}
	}
	s.memberRequests[guild] = at
	return 0
}

// rateLimitedBody is RATE_LIMITED for a request of op on guild.
func rateLimitedBody(op int, wait time.Duration, guild uint64, nonce string) *dispatchBody {
	b := fmt.Appendf(nil, `{"retry_after":%.3f,"opcode":%d,"meta":{"guild_id":"%d"`, wait.Seconds(), op, guild)
	if nonce != "" {
		nb, _ := json.Marshal(nonce)
		b = append(append(b, `,"nonce":`...), nb...)
	}
	return newBody("RATE_LIMITED", append(b, "}}"...))
}

// requestSoundboard answers op 31: guild_ids (an array of snowflakes) is
// required; each guild of this shard named gets one SOUNDBOARD_SOUNDS (the
// simulated guilds have no sounds), once however often it is named. Guilds
// the shard does not hold get nothing.
func (s *Server) requestSoundboard(sess *session, d json.RawMessage) ([]*dispatchBody, bool) {
	var r struct {
		GuildIDs json.RawMessage `json:"guild_ids"`
	}
	if json.Unmarshal(d, &r) != nil || kindOf(r.GuildIDs) != 'a' {
		return nil, false
	}
	ids, ok := snowflakes(r.GuildIDs)
	if !ok {
		return nil, false
	}
	var out []*dispatchBody
	seen := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		if _, mine := s.guildIndex(sess, id); !mine || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, newBody("SOUNDBOARD_SOUNDS", fmt.Appendf(nil, `{"soundboard_sounds":[],"guild_id":"%d"}`, id)))
	}
	return out, true
}

// produceDispatches numbers bodies in sess and writes them (writer only).
// Before the session is live (READY or RESUMED written) they are held and
// written right after it, so they never come before READY.
func (c *conn) produceDispatches(sess *session, bodies []*dispatchBody) bool {
	c.mu.Lock()
	mine, live := c.sess == sess, c.live
	c.mu.Unlock()
	if !mine {
		return true // the session is no longer this connection's
	}
	if !live {
		c.held = append(c.held, bodies...)
		return true
	}
	sess.mu.Lock()
	if sess.conn != c || sess.ended {
		sess.mu.Unlock()
		return true
	}
	entries := make([]entry, 0, len(bodies))
	for _, b := range bodies {
		entries = append(entries, sess.appendLocked(b, 0, 0, c.srv.cfg.ReplayBuffer))
	}
	sess.mu.Unlock()
	c.srv.dispatches.Add(uint64(len(entries)))
	return c.writeEntries(entries)
}

// flushHeld writes the dispatches held until the session went live.
func (c *conn) flushHeld(sess *session) bool {
	if len(c.held) == 0 {
		return true
	}
	h := c.held
	c.held = nil
	return c.produceDispatches(sess, h)
}
