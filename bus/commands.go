package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// Sender is what ServeCommands needs to send a command; *manager.Manager
// has it.
type Sender interface {
	Send(ctx context.Context, shardID, op int, d any) error
	SendToGuild(ctx context.Context, guildID uint64, op int, d any) error
}

// The gateway commands workers may send: presence update, voice state
// update, request guild members, request soundboard sounds.
var commandOps = map[int]bool{3: true, 4: true, 8: true, 31: true}

// The error codes of a command's reply (see the package doc).
const (
	CodeUnknownShard = "unknown_shard"
	CodeNotReady     = "not_ready"
	CodeTooLarge     = "too_large"
	CodeInvalidJSON  = "invalid_json"
	CodeRefusedOp    = "refused_op"
	CodeRateLimited  = "rate_limited"
	// CodeInvalidPayload is a "d" that lacks a field its op requires, has
	// one of the wrong type, or names a guild other than the subject's;
	// Discord would close the shard's connection (4001) over it.
	CodeInvalidPayload = "invalid_payload"
	// CodeFailed is any other failure; the message says what.
	CodeFailed = "failed"
)

// Reply is the answer to a command.
type Reply struct {
	OK bool `json:"ok"`
	// Error is the code of a refused or failed command (CodeInvalidPayload
	// and the others); Message says what, naming the field at fault.
	Error        string `json:"error,omitempty"`
	Message      string `json:"message,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`

	notHere bool // the manager runs no such shard or guild (not sent)
}

// command is a command's body.
type command struct {
	Op *int            `json:"op"`
	D  json.RawMessage `json:"d"`
}

// ServeCommands answers the workers' commands on PREFIX.cmd.SHARD_ID and
// PREFIX.cmd.guild.GUILD_ID by sending them through s, until Close.
func (b *Bus) ServeCommands(s Sender) error {
	prefix := b.cfg.prefix + ".cmd."
	sub, err := b.nc.Subscribe(prefix+">", func(m *nats.Msg) {
		r := b.command(s, strings.TrimPrefix(m.Subject, prefix), m.Data)
		if b.cfg.clustered && r.notHere {
			return // another process of the cluster runs it and answers
		}
		if m.Reply == "" {
			if !r.OK {
				b.log.Debug("a command without a reply subject failed", "subject", m.Subject, "error", r.Error, "message", r.Message)
			}
			return
		}
		body, _ := json.Marshal(r)
		if err := m.Respond(body); err != nil {
			b.log.Debug("answering a command", "subject", m.Subject, "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("bus: subscribe %s>: %w", prefix, err)
	}
	b.mu.Lock()
	b.cmdSubs = append(b.cmdSubs, sub)
	b.mu.Unlock()
	return nil
}

// commandTimeout bounds a command's send; the manager does not wait for a
// limit, so this is a backstop.
const commandTimeout = 2 * time.Second

// command sends one command; target is the subject after PREFIX.cmd.
func (b *Bus) command(s Sender, target string, body []byte) Reply {
	var c command
	if err := json.Unmarshal(body, &c); err != nil {
		return Reply{Error: CodeInvalidJSON, Message: "the body is not a JSON object {\"op\": N, \"d\": {...}}: " + err.Error()}
	}
	switch {
	case c.Op == nil:
		return Reply{Error: CodeInvalidJSON, Message: `the body has no "op"`}
	case len(c.D) == 0:
		return Reply{Error: CodeInvalidJSON, Message: `the body has no "d"`}
	case !commandOps[*c.Op]:
		return Reply{Error: CodeRefusedOp, Message: fmt.Sprintf("op %d is not a command workers may send (3, 4, 8 and 31 are)", *c.Op)}
	case c.D[0] != '{':
		// Every command op takes an object; Discord closes the shard's
		// connection (4001) over anything else.
		return Reply{Error: CodeInvalidJSON, Message: fmt.Sprintf(`op %d: "d" must be a JSON object, got %.40s`, *c.Op, c.D)}
	}
	var guild uint64 // the subject's guild; 0 for a shard
	shard := -1
	if g, ok := strings.CutPrefix(target, "guild."); ok {
		id, err := strconv.ParseUint(g, 10, 64)
		if err != nil || id == 0 {
			return Reply{Error: CodeUnknownShard, Message: fmt.Sprintf("guild %q is not a snowflake", g)}
		}
		guild = id
	} else {
		id, err := strconv.Atoi(target)
		if err != nil || id < 0 {
			return Reply{Error: CodeUnknownShard, Message: fmt.Sprintf("%q is neither a shard ID nor guild.GUILD_ID", target)}
		}
		shard = id
	}
	if msg := checkPayload(*c.Op, c.D, guild); msg != "" {
		return Reply{Error: CodeInvalidPayload, Message: msg}
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var err error
	if shard < 0 {
		err = s.SendToGuild(ctx, guild, *c.Op, c.D)
	} else {
		err = s.Send(ctx, shard, *c.Op, c.D)
	}
	return replyFor(err)
}

// replyFor turns a send's error into a reply.
func replyFor(err error) Reply {
	if err == nil {
		return Reply{OK: true}
	}
	r := Reply{Message: err.Error()}
	var rl *gateway.RateLimitError
	switch {
	case errors.As(err, &rl):
		r.Error, r.RetryAfterMS = CodeRateLimited, max(rl.RetryAfter.Milliseconds(), 1)
	case errors.Is(err, manager.ErrUnknownShard):
		r.Error, r.notHere = CodeUnknownShard, true
	case errors.Is(err, gateway.ErrNotReady), errors.Is(err, gateway.ErrClosed):
		r.Error = CodeNotReady
	case errors.Is(err, gateway.ErrPayloadTooLarge):
		r.Error = CodeTooLarge
	case errors.Is(err, gateway.ErrInvalidJSON):
		r.Error = CodeInvalidJSON
	case errors.Is(err, gateway.ErrReservedOp):
		r.Error = CodeRefusedOp
	default:
		r.Error = CodeFailed
	}
	return r
}

// The limits of op 8 that Discord documents.
const (
	maxUserIDs = 100 // user_ids in one request
	maxNonce   = 32  // bytes of a nonce; Discord ignores a longer one
)

// presenceStatuses are the statuses an op 3 may set.
var presenceStatuses = map[string]bool{"online": true, "dnd": true, "idle": true, "invisible": true, "offline": true}

// checkPayload checks the fields of d, a JSON object, that Discord
// requires for op, and returns why d may not be sent ("" if it may).
// guild is the subject's guild (0 for a shard subject): a guild_id or
// guild_ids naming another guild is refused, as the subject routed the
// command to that guild's shard. Fields Discord does not document for op
// pass unchecked.
func checkPayload(op int, d json.RawMessage, guild uint64) string {
	// A map, not a struct: encoding/json matches struct fields without
	// regard to case, so a struct would take "Guild_ID" for guild_id, which
	// Discord does not.
	var f fields
	if err := json.Unmarshal(d, &f.m); err != nil {
		return fmt.Sprintf("op %d: \"d\" is not a JSON object: %v", op, err)
	}
	f.op = op
	switch op {
	case 3:
		return f.first(
			f.need("since", "an integer or null", orNull(isInt)),
			f.need("activities", "an array of activities", isArray),
			f.activities(),
			f.need("status", "one of online, dnd, idle, invisible, offline", isStatus),
			f.need("afk", "a boolean", isBool))
	case 4:
		return f.first(
			f.need("guild_id", "a snowflake string", isSnowflake),
			f.need("channel_id", "a snowflake string or null", orNull(isSnowflake)),
			f.need("self_mute", "a boolean", isBool),
			f.need("self_deaf", "a boolean", isBool),
			f.sameGuild("guild_id", guild))
	case 8:
		return f.members(guild)
	case 31:
		return f.first(
			f.need("guild_ids", "a non-empty array of snowflake strings", isSnowflakes(1, 0)),
			f.sameGuild("guild_ids", guild))
	}
	return ""
}

// members checks an op 8 d: guild_id, one of query (with limit) or
// user_ids, and the optional presences and nonce.
func (f fields) members(guild uint64) string {
	if msg := f.first(
		f.need("guild_id", "one snowflake string, one guild per request", isSnowflake),
		f.may("presences", "a boolean", isBool),
		f.may("nonce", "a string", isString),
		f.may("limit", "an integer ≥ 0", isCount),
	); msg != "" {
		return msg
	}
	_, hasQuery := f.m["query"]
	_, hasUsers := f.m["user_ids"]
	var msg string
	switch {
	case hasQuery && hasUsers:
		msg = f.fail("query and user_ids are exclusive: send one of them")
	case hasUsers:
		var ids []json.RawMessage
		if json.Unmarshal(f.m["user_ids"], &ids) == nil && len(ids) > maxUserIDs {
			msg = f.fail(fmt.Sprintf("user_ids has %d IDs, Discord takes at most %d", len(ids), maxUserIDs))
			break
		}
		msg = f.need("user_ids", "a snowflake string or an array of them",
			or(isSnowflake, isSnowflakes(0, maxUserIDs)))
	case hasQuery:
		msg = f.first(
			f.need("query", "a string (a username prefix, \"\" for all)", isString),
			f.need("limit", "an integer ≥ 0, with query; 0 with \"\" for all", isCount))
	default:
		msg = f.fail("query (with limit) or user_ids is required")
	}
	if msg != "" {
		return msg
	}
	if raw, ok := f.m["nonce"]; ok {
		var n string
		_ = json.Unmarshal(raw, &n) // a string: checked above
		if len(n) > maxNonce {
			return f.fail(fmt.Sprintf("nonce is %d bytes, Discord takes at most %d (it would ignore it)", len(n), maxNonce))
		}
	}
	return f.sameGuild("guild_id", guild)
}

// fields is a command's d, field by field.
type fields struct {
	op int
	m  map[string]json.RawMessage
}

func (f fields) fail(msg string) string { return fmt.Sprintf("op %d: %s", f.op, msg) }

// first returns the first non-empty of msgs.
func (fields) first(msgs ...string) string {
	for _, m := range msgs {
		if m != "" {
			return m
		}
	}
	return ""
}

// need checks that field name is there and valid (want says what valid is).
func (f fields) need(name, want string, valid func(json.RawMessage) bool) string {
	if _, ok := f.m[name]; !ok {
		return f.fail(fmt.Sprintf("%s is required (%s)", name, want))
	}
	return f.may(name, want, valid)
}

// may checks field name if it is there.
func (f fields) may(name, want string, valid func(json.RawMessage) bool) string {
	raw, ok := f.m[name]
	if !ok || valid(raw) {
		return ""
	}
	return f.fail(fmt.Sprintf("%s must be %s, got %s", name, want, clip(raw)))
}

// sameGuild checks that field name (a snowflake or an array of them,
// already valid) names only guild, unless guild is 0.
func (f fields) sameGuild(name string, guild uint64) string {
	raw, ok := f.m[name]
	if guild == 0 || !ok {
		return ""
	}
	var ids []string
	if json.Unmarshal(raw, &ids) != nil {
		ids = []string{""}
		_ = json.Unmarshal(raw, &ids[0])
	}
	for _, id := range ids {
		if v, _ := strconv.ParseUint(id, 10, 64); v != guild {
			return f.fail(fmt.Sprintf("%s names guild %s, but the subject is guild.%d: send it to guild.%s or to a shard",
				name, id, guild, id))
		}
	}
	return ""
}

// clip is raw for a message, cut at 40 bytes.
func clip(raw json.RawMessage) string {
	if len(raw) > 40 {
		cut := raw[:40]
		for !utf8.Valid(cut) { // not in the middle of a character
			cut = cut[:len(cut)-1]
		}
		return string(cut) + "…"
	}
	return string(raw)
}

func orNull(valid func(json.RawMessage) bool) func(json.RawMessage) bool {
	return or(func(raw json.RawMessage) bool { return string(raw) == "null" }, valid)
}

func or(a, b func(json.RawMessage) bool) func(json.RawMessage) bool {
	return func(raw json.RawMessage) bool { return a(raw) || b(raw) }
}

// decodes reports whether raw decodes into a *T. Only a JSON null
// decodes into a pointer without setting it, so null is refused too.
func decodes[T any](raw json.RawMessage) bool {
	var v *T
	return json.Unmarshal(raw, &v) == nil && v != nil
}

func isBool(raw json.RawMessage) bool   { return decodes[bool](raw) }
func isString(raw json.RawMessage) bool { return decodes[string](raw) }
func isInt(raw json.RawMessage) bool    { return decodes[int64](raw) }

func isCount(raw json.RawMessage) bool {
	var n *int64
	return json.Unmarshal(raw, &n) == nil && n != nil && *n >= 0
}

func isStatus(raw json.RawMessage) bool {
	var s string
	return isString(raw) && json.Unmarshal(raw, &s) == nil && presenceStatuses[s]
}

// isSnowflake: a string of decimal digits naming a non-zero uint64.
func isSnowflake(raw json.RawMessage) bool {
	var s *string
	if json.Unmarshal(raw, &s) != nil || s == nil {
		return false
	}
	v, err := strconv.ParseUint(*s, 10, 64)
	return err == nil && v != 0
}

// isSnowflakes: an array of at least least and (unless most is 0) at
// most most snowflake strings.
func isSnowflakes(least, most int) func(json.RawMessage) bool {
	return func(raw json.RawMessage) bool {
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil || items == nil || len(items) < least || (most > 0 && len(items) > most) {
			return false
		}
		for _, it := range items {
			if !isSnowflake(it) {
				return false
			}
		}
		return true
	}
}

func isArray(raw json.RawMessage) bool { return decodes[[]json.RawMessage](raw) }

// activities checks each of an op 3's activities (already an array, if
// there): an object with a name (a string) and a type (an integer), as
// Discord requires of a bot's.
func (f fields) activities() string {
	var items []json.RawMessage
	if json.Unmarshal(f.m["activities"], &items) != nil {
		return "" // missing or not an array: need says so
	}
	for i, raw := range items {
		var a map[string]json.RawMessage
		switch {
		case json.Unmarshal(raw, &a) != nil || a == nil:
			return f.fail(fmt.Sprintf("activities[%d] must be an activity object, got %s", i, clip(raw)))
		case !isString(a["name"]):
			return f.fail(fmt.Sprintf("activities[%d].name must be a string, got %s", i, clipOr(a["name"])))
		case !isInt(a["type"]):
			return f.fail(fmt.Sprintf("activities[%d].type must be an integer, got %s", i, clipOr(a["type"])))
		}
	}
	return ""
}

// clipOr is clip, or "nothing" for a field that is not there.
func clipOr(raw json.RawMessage) string {
	if raw == nil {
		return "nothing"
	}
	return clip(raw)
}
