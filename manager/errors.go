package manager

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors returned by the Manager, testable with errors.Is.
var (
	// ErrUnknownShard: no active shard has that ID.
	ErrUnknownShard = errors.New("manager: unknown shard")
	// ErrNoSession: ResumeShard found no saved session for the shard.
	ErrNoSession = errors.New("manager: no saved session")
	// ErrBusy: another action (split, re-shard, open, close) runs for that shard.
	ErrBusy = errors.New("manager: an action is already running for the shard")
	// ErrRunning: the shard runs; stop it first (or use RestartShard).
	ErrRunning = errors.New("manager: shard is running")
	// ErrUnauthorized: Discord answered 401 to GET /gateway/bot or GET /users/@me: the token is bad.
	ErrUnauthorized = errors.New("manager: unauthorized (401): bad bot token")
	// ErrClosed: the manager was closed.
	ErrClosed = errors.New("manager: closed")
	// ErrNotOpen: the action needs Open first.
	ErrNotOpen = errors.New("manager: not open")
	// ErrAlreadyOpen: Open was called twice.
	ErrAlreadyOpen = errors.New("manager: already open")
	// ErrReshardRefused: Reshard on a manager that runs only some of the
	// bot's shards (WithShardIDs, or WithNoInitialShards: a cluster's node);
	// the error says what to do instead.
	ErrReshardRefused = errors.New("manager: this manager does not re-shard the whole bot")
	// ErrInvalidOption: an option given to New is invalid (the error names it).
	ErrInvalidOption = errors.New("manager: invalid option")
	// ErrShardConflict: AddShard was given a shard whose guilds a shard of
	// this manager already serves (the same ID at another count, or an
	// overlapping key), or that a split in progress brings.
	ErrShardConflict = errors.New("manager: another shard of this manager serves some of the shard's guilds")
	// ErrAborted: a split or re-shard was abandoned (a new shard failed, or ctx ended).
	ErrAborted = errors.New("manager: split or re-shard aborted")
)

// ShardKey names a shard: its ID and the shard count it was identified with.
type ShardKey struct{ ID, Count int }

// String returns "id/count", e.g. "3/16".
func (k ShardKey) String() string {
	return strconv.Itoa(k.ID) + "/" + strconv.Itoa(k.Count)
}

// ShardError is an error concerning one shard.
type ShardError struct {
	Key ShardKey
	Op  string // the action, e.g. "split", "open"; may be empty
	Err error
}

// Error names the shard and the action.
func (e *ShardError) Error() string {
	if e.Op == "" {
		return fmt.Sprintf("manager: shard %s: %v", e.Key, e.Err)
	}
	return fmt.Sprintf("manager: %s shard %s: %v", e.Op, e.Key, e.Err)
}

// Unwrap returns the cause.
func (e *ShardError) Unwrap() error { return e.Err }

// HTTPError is an unexpected answer from Discord's REST API.
type HTTPError struct {
	Path   string // the route asked, e.g. "/gateway/bot" or "/users/@me"
	Status int
	Body   string // the start of the body, for the message (never holds the token)
}

// Error describes the answer.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("manager: GET %s: HTTP %d: %s", e.Path, e.Status, e.Body)
}

// Is makes errors.Is(err, ErrUnauthorized) true for a 401.
func (e *HTTPError) Is(target error) bool { return target == ErrUnauthorized && e.Status == 401 }
