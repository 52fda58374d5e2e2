package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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
	// CodeFailed is any other failure; the message says what.
	CodeFailed = "failed"
)

// Reply is the answer to a command.
type Reply struct {
	OK           bool   `json:"ok"`
	Error        string `json:"error,omitempty"`
	Message      string `json:"message,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
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
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var err error
	if g, ok := strings.CutPrefix(target, "guild."); ok {
		id, perr := strconv.ParseUint(g, 10, 64)
		if perr != nil {
			return Reply{Error: CodeUnknownShard, Message: fmt.Sprintf("guild %q is not a snowflake", g)}
		}
		err = s.SendToGuild(ctx, id, *c.Op, c.D)
	} else {
		id, perr := strconv.Atoi(target)
		if perr != nil || id < 0 {
			return Reply{Error: CodeUnknownShard, Message: fmt.Sprintf("%q is neither a shard ID nor guild.GUILD_ID", target)}
		}
		err = s.Send(ctx, id, *c.Op, c.D)
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
		r.Error = CodeUnknownShard
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
