package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Send sends a gateway command, op with its data d, to the active shard
// shardID now, or says at once why it did not: the shard's send limit (120
// payloads per 60 s, heartbeats counted) or presence limit (op 3, 5 per
// 20 s) is spent (a *gateway.RateLimitError, errors.Is
// gateway.ErrRateLimited, with how long to wait), the shard is not ready
// (gateway.ErrNotReady) or stopped (gateway.ErrClosed), the payload is
// over 4096 bytes or not JSON, or op is one the shard sends itself
// (heartbeat, identify, resume: gateway.ErrReservedOp). An unknown shard is
// ErrUnknownShard. d is marshalled with encoding/json; a json.RawMessage
// or []byte is used as it is (it must be valid JSON). Errors about the
// shard are a *ShardError naming it.
func (m *Manager) Send(ctx context.Context, shardID, op int, d any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := m.view.Load().active[shardID]
	if e == nil {
		return fmt.Errorf("manager: send: %w: %d", ErrUnknownShard, shardID)
	}
	return m.sendTo(e, op, d)
}

// SendToGuild is Send to the active shard serving guildID (splits
// included): ErrUnknownShard if this manager runs no shard for it.
func (m *Manager) SendToGuild(ctx context.Context, guildID uint64, op int, d any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := m.view.Load().byGuild(guildID)
	if e == nil {
		return fmt.Errorf("manager: send to guild %d: %w", guildID, ErrUnknownShard)
	}
	return m.sendTo(e, op, d)
}

// UpdatePresence sends a presence update (op 3 with d as its data) to every
// active shard. It returns the errors of the shards it could not send to,
// joined, each a *ShardError naming the shard (say one rate limited or not
// ready); the others got it.
func (m *Manager) UpdatePresence(ctx context.Context, d any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	payload, err := commandPayload(opPresenceUpdate, d)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range m.view.Load().entries {
		if e.infoOf().role != RoleActive {
			continue
		}
		if err := e.shard.TrySend(payload); err != nil {
			errs = append(errs, &ShardError{Key: e.key, Op: "send", Err: err})
		}
	}
	return errors.Join(errs...)
}

const opPresenceUpdate = 3

func (m *Manager) sendTo(e *entry, op int, d any) error {
	payload, err := commandPayload(op, d)
	if err != nil {
		return &ShardError{Key: e.key, Op: "send", Err: err}
	}
	if err := e.shard.TrySend(payload); err != nil {
		return &ShardError{Key: e.key, Op: "send", Err: err}
	}
	return nil
}

// commandPayload builds {"op":op,"d":d}.
func commandPayload(op int, d any) ([]byte, error) {
	var raw []byte
	switch v := d.(type) {
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("op %d: encode d: %w", op, err)
		}
		raw = b
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("op %d: d is not valid JSON", op)
	}
	var b bytes.Buffer
	b.Grow(len(raw) + 16)
	b.WriteString(`{"op":`)
	b.WriteString(strconv.Itoa(op))
	b.WriteString(`,"d":`)
	b.Write(raw)
	b.WriteByte('}')
	return b.Bytes(), nil
}
