package clusterview

import (
	"errors"
	"fmt"
)

// Errors, testable with errors.Is.
var (
	// ErrInvalidOption: an option is invalid (the error names it).
	ErrInvalidOption = errors.New("clusterview: invalid option")
	// ErrBadRequest: an action request could not be decoded or validated.
	ErrBadRequest = errors.New("clusterview: bad action request")
	// ErrWatchOnly: the node runs no shards and cannot act on one.
	ErrWatchOnly = errors.New("clusterview: node is watch-only")
	// ErrNoNode: no live node can take a watch-only view's re-shard.
	ErrNoNode = errors.New("clusterview: no live node to take the action")
	// ErrBadReply: a node's reply to an action could not be decoded.
	ErrBadReply = errors.New("clusterview: bad action reply")
)

func optionError(msg string) error { return fmt.Errorf("%w: %s", ErrInvalidOption, msg) }

// RemoteError is an action that failed on another node: Msg is the node's
// error text; Unwrap gives the manager sentinel it matched (ErrUnknownShard,
// ErrBusy…) when the node named one.
type RemoteError struct {
	Node string
	Op   string
	ID   int // the shard, or the count of a re-shard
	Msg  string
	Err  error // the sentinel, may be nil
}

// Error names the node and the shard, e.g. "node n2: shard 5: ...".
func (e *RemoteError) Error() string {
	if e.Op == opReshard {
		return fmt.Sprintf("clusterview: node %s: reshard %d: %s", e.Node, e.ID, e.Msg)
	}
	return fmt.Sprintf("clusterview: node %s: shard %d: %s", e.Node, e.ID, e.Msg)
}

// Unwrap returns the sentinel the remote error matched, if any.
func (e *RemoteError) Unwrap() error { return e.Err }
