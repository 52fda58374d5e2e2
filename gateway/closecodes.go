package gateway

import (
	"errors"
	"fmt"
)

// CloseAction is what a shard does after Discord closes its connection with a code.
type CloseAction uint8

// The close actions.
const (
	// ActionResume: reconnect and resume the session.
	ActionResume CloseAction = iota
	// ActionIdentify: drop the session, identify anew through the gate.
	ActionIdentify
	// ActionStop: fatal; the shard fails with a *CloseError and does not reconnect.
	ActionStop
	// ActionReshard: fatal for this shard as configured (4011); the manager must re-shard.
	ActionReshard
)

// String names the action.
func (a CloseAction) String() string {
	switch a {
	case ActionResume:
		return "resume"
	case ActionIdentify:
		return "identify"
	case ActionStop:
		return "stop"
	case ActionReshard:
		return "reshard"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Fatal reports whether the action ends the shard (Failed).
func (a CloseAction) Fatal() bool { return a == ActionStop || a == ActionReshard }

// Sentinel errors matched by *CloseError.Is for the fatal codes.
var (
	ErrAuthenticationFailed = errors.New("gateway: authentication failed (4004)")
	ErrInvalidShard         = errors.New("gateway: invalid shard (4010)")
	ErrShardingRequired     = errors.New("gateway: sharding required (4011)")
	ErrInvalidAPIVersion    = errors.New("gateway: invalid API version (4012)")
	ErrInvalidIntents       = errors.New("gateway: invalid intents (4013)")
	ErrDisallowedIntents    = errors.New("gateway: disallowed intents (4014)")
)

type closeCode struct {
	name     string
	action   CloseAction
	sentinel error
}

// closeCodes is Discord's close code table (gateway-protocol.md). Codes not
// listed: other 4xxx codes and anything else (1000/1001 sent by the server,
// 1006 no close frame, a TCP drop) resume: the docs say to resume on a drop,
// and a resume Discord refuses costs only an op 9 and an identify.
var closeCodes = map[int]closeCode{
	4000: {"unknown error", ActionResume, nil},
	4001: {"unknown opcode", ActionResume, nil},
	4002: {"decode error", ActionResume, nil},
	4003: {"not authenticated", ActionResume, nil},
	4004: {"authentication failed", ActionStop, ErrAuthenticationFailed},
	4005: {"already authenticated", ActionResume, nil},
	4007: {"invalid seq", ActionIdentify, nil},
	4008: {"rate limited", ActionResume, nil},
	4009: {"session timed out", ActionIdentify, nil},
	4010: {"invalid shard", ActionStop, ErrInvalidShard},
	4011: {"sharding required", ActionReshard, ErrShardingRequired},
	4012: {"invalid API version", ActionStop, ErrInvalidAPIVersion},
	4013: {"invalid intents", ActionStop, ErrInvalidIntents},
	4014: {"disallowed intents", ActionStop, ErrDisallowedIntents},
}

// CloseCodeInfo names a close code received from Discord and says what the
// shard does about it. Unknown codes resume.
func CloseCodeInfo(code int) (name string, action CloseAction) {
	if c, ok := closeCodes[code]; ok {
		return c.name, c.action
	}
	switch code {
	case 0:
		return "no close code", ActionResume
	case 1000:
		return "normal closure", ActionResume
	case 1001:
		return "going away", ActionResume
	case 1006:
		return "abnormal closure", ActionResume
	}
	return "unknown close code", ActionResume
}

// CloseError is a close code Discord sent that stopped the shard. errors.Is
// matches it against the sentinel of its code (e.g. ErrAuthenticationFailed).
type CloseError struct {
	Code   int
	Reason string // the close frame's reason text from Discord
}

// Error describes the code.
func (e *CloseError) Error() string {
	name, _ := CloseCodeInfo(e.Code)
	if e.Reason == "" {
		return fmt.Sprintf("gateway: closed by Discord with %d (%s)", e.Code, name)
	}
	return fmt.Sprintf("gateway: closed by Discord with %d (%s): %s", e.Code, name, e.Reason)
}

// Is matches the sentinel error of the code.
func (e *CloseError) Is(target error) bool {
	c, ok := closeCodes[e.Code]
	return ok && c.sentinel != nil && c.sentinel == target
}
