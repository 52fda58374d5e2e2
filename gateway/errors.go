package gateway

import (
	"errors"
	"fmt"
)

// Errors returned by Shard methods.
var (
	// ErrPayloadTooLarge: Send was given more than MaxPayloadSize bytes; nothing was sent.
	ErrPayloadTooLarge = errors.New("gateway: payload larger than 4096 bytes")
	// ErrAlreadyStarted: Start on a shard whose run loop is already running.
	ErrAlreadyStarted = errors.New("gateway: shard already started")
	// ErrClosed: the shard was closed (Close/End) or has failed; it does not run again.
	ErrClosed = errors.New("gateway: shard closed")
	// ErrReservedOp: Send was given an op the shard sends itself (1
	// heartbeat, 2 identify, 6 resume); nothing was sent.
	ErrReservedOp = errors.New("gateway: op is sent by the shard itself (heartbeat, identify, resume)")
	// ErrSessionKept: End came after a Close whose resumable close (4000)
	// had already gone out, or after the connection was gone, so the
	// session could not be ended; the shard keeps it (Session) as Close would.
	ErrSessionKept = errors.New("gateway: session not ended: the connection had already closed resumably")
	// ErrConnectionLost: a Send was accepted but the connection ended before it could be written.
	ErrConnectionLost = errors.New("gateway: connection lost before the payload was written")
)

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
