package gateway

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned by Shard methods.
var (
	// ErrPayloadTooLarge: Send or TrySend was given more than MaxPayloadSize bytes; nothing was sent.
	ErrPayloadTooLarge = errors.New("gateway: payload larger than 4096 bytes")
	// ErrInvalidJSON: Send or TrySend was given a payload that is not
	// valid JSON; nothing was sent.
	ErrInvalidJSON = errors.New("gateway: payload is not valid JSON")
	// ErrAlreadyStarted: Start on a shard whose run loop is already running.
	ErrAlreadyStarted = errors.New("gateway: shard already started")
	// ErrClosed: the shard was closed (Close/End) or has failed; it does not run again.
	ErrClosed = errors.New("gateway: shard closed")
	// ErrReservedOp: Send or TrySend was given an op the shard sends itself (1
	// heartbeat, 2 identify, 6 resume); nothing was sent.
	ErrReservedOp = errors.New("gateway: op is sent by the shard itself (heartbeat, identify, resume)")
	// ErrSessionKept: End came after a Close whose resumable close (4000)
	// had already gone out, or after the connection was gone, so the
	// session could not be ended; the shard keeps it (Session) as Close would.
	ErrSessionKept = errors.New("gateway: session not ended: the connection had already closed resumably")
	// ErrConnectionLost: the connection failed while a Send or TrySend was
	// writing the payload, which may or may not have reached Discord.
	ErrConnectionLost = errors.New("gateway: connection lost while the payload was written")
	// ErrNotReady: TrySend found no live session to send on (the shard is
	// not Ready: connecting, identifying, resuming, waiting to reconnect,
	// or not started); nothing was sent. Unlike ErrClosed it passes: the
	// shard will be Ready again.
	ErrNotReady = errors.New("gateway: shard not ready")
	// ErrRateLimited: TrySend would have had to wait for the send limit or
	// the presence limit; nothing was sent. The error is a *RateLimitError
	// that says which limit and for how long.
	ErrRateLimited = errors.New("gateway: rate limited")

	// errNotLive: the connection a send was about to use has ended.
	errNotLive = errors.New("gateway: connection ended")
)

// The limits a RateLimitError names.
const (
	// LimitSend is Discord's limit per connection (120 payloads per 60 s,
	// WithSendLimit), less the room kept for heartbeats and Identify/Resume.
	LimitSend = "send"
	// LimitPresence is the limit on presence updates, op 3 (5 per 20 s,
	// WithPresenceLimit).
	LimitPresence = "presence"
)

// RateLimitError is a payload TrySend did not send because a limit is
// spent. errors.Is(err, ErrRateLimited) holds for it.
type RateLimitError struct {
	// RetryAfter is how long until the limit allows the payload, if
	// nothing else is sent meanwhile.
	RetryAfter time.Duration
	// Limit is the limit that is spent: LimitSend or LimitPresence.
	Limit string
}

// Error says which limit and how long to wait.
func (e *RateLimitError) Error() string {
	return fmt.Sprintf("gateway: %s limit: retry after %v", e.Limit, e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// MaxPayloadSize is the largest payload a client may send (Discord closes 4002 above it).
const MaxPayloadSize = 4096

// DecodeError is a frame from the network the shard could not read. The
// shard closes the connection (non-1000 code) and resumes.
type DecodeError struct {
	Stage  string // "zlib", "zstd", "envelope", "hello", "ready", ...
	Offset int    // byte offset in the decoded payload, -1 if not applicable
	Reason string
	Err    error // underlying error, if any
}

// Error describes the problem without echoing payload bytes.
func (e *DecodeError) Error() string {
	s := "gateway: decode " + e.Stage + ": " + e.Reason
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at byte %d", e.Offset)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }
