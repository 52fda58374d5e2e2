package gateway

import "time"

// State is where one shard stands in its connection life cycle. Every change
// goes through Shard.transition, which checks it against allowedTransitions.
type State uint8

// The shard states. A shard starts Idle and ends Closed (Close/End) or Failed
// (a fatal close code, see CloseCodeInfo).
const (
	// StateIdle: created, not started.
	StateIdle State = iota
	// StateQueued: waiting for the identify gate (Approach) before dialing.
	StateQueued
	// StateConnecting: dialing, waiting for Hello, and (identify) waiting in Acquire.
	StateConnecting
	// StateIdentifying: Identify sent, waiting for READY.
	StateIdentifying
	// StateResuming: Resume sent, waiting for RESUMED (replayed events arrive meanwhile).
	StateResuming
	// StateReady: a live session; dispatches flow.
	StateReady
	// StateReconnecting: the connection ended; waiting out the backoff before the next dial.
	StateReconnecting
	// StateClosed: stopped by Close or End; the run loop has ended.
	StateClosed
	// StateFailed: stopped by a fatal close code or error; the run loop has ended.
	StateFailed

	numStates
)

var stateNames = [numStates]string{"idle", "queued", "connecting", "identifying", "resuming", "ready", "reconnecting", "closed", "failed"}

// String returns the lower-case state name, e.g. "ready".
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "state(" + itoa(int64(s)) + ")"
}

// Terminal reports whether the state ends the shard's run loop.
func (s State) Terminal() bool { return s == StateClosed || s == StateFailed }

func bit(states ...State) uint16 {
	var m uint16
	for _, s := range states {
		m |= 1 << s
	}
	return m
}

// allowedTransitions is the shard state machine: allowedTransitions[from]
// has bit `to` set when from -> to is legal. Closed and Failed are reachable
// from every live state; nothing leaves them.
var allowedTransitions = [numStates]uint16{
	StateIdle:         bit(StateQueued, StateConnecting, StateClosed, StateFailed),
	StateQueued:       bit(StateConnecting, StateReconnecting, StateClosed, StateFailed),
	StateConnecting:   bit(StateIdentifying, StateResuming, StateReconnecting, StateClosed, StateFailed),
	StateIdentifying:  bit(StateReady, StateReconnecting, StateClosed, StateFailed),
	StateResuming:     bit(StateReady, StateReconnecting, StateClosed, StateFailed),
	StateReady:        bit(StateReconnecting, StateClosed, StateFailed),
	StateReconnecting: bit(StateQueued, StateConnecting, StateClosed, StateFailed),
	StateClosed:       0,
	StateFailed:       0,
}

// ValidTransition reports whether the shard state machine allows from -> to.
func ValidTransition(from, to State) bool {
	return from < numStates && to < numStates && allowedTransitions[from]&(1<<to) != 0
}

// StateChange describes one transition, as given to the state handler.
type StateChange struct {
	ShardID, ShardCount int
	From, To            State
	// Reason is short human text, e.g. "op 7 reconnect: resuming".
	Reason string
	// CloseCode is the close code involved, 0 if none.
	CloseCode int
	// Err is the error that caused the change, if any (a *CloseError when To is StateFailed by a close code).
	Err error
	At  time.Time
}

func itoa(v int64) string {
	var b [20]byte
	return string(appendInt(b[:0], v))
}

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		b = append(b, '-')
		if v == -1<<63 {
			return append(b, "9223372036854775808"...)
		}
		v = -v
	}
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
