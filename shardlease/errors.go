package shardlease

import (
	"errors"
	"fmt"
)

var (
	// ErrHeld means another live process holds the shard's lease. The error
	// is a *[HeldError].
	ErrHeld = errors.New("lease is held")

	// ErrLost means the lease is no longer this process's: the record's
	// revision moved (another process took it over), or renewal did not
	// succeed before the local deadline. The shard must not run any more.
	ErrLost = errors.New("lease lost")

	// ErrNotHeld means a [Store] write named a shard whose lease this Table
	// does not hold.
	ErrNotHeld = errors.New("lease not held by this process")

	// ErrReleased means the lease was released or deleted by its holder.
	ErrReleased = errors.New("lease already released")

	// ErrMalformed means a record read from the bucket is not a valid lease
	// record. The error is a *[MalformedError]. Such a record is treated as
	// held by an unknown owner: nobody overwrites what it cannot read.
	ErrMalformed = errors.New("malformed lease record")

	// ErrClosed means the Table has been closed.
	ErrClosed = errors.New("shardlease: table closed")
)

// HeldError is returned by Acquire when another live owner holds the lease.
// errors.Is(err, ErrHeld) reports true for it.
type HeldError struct {
	Key   Key
	Owner string // node holding it; this Table's own node if it holds it itself
}

// Error implements error.
func (e *HeldError) Error() string {
	return fmt.Sprintf("shardlease: shard %s: %v by %q", e.Key, ErrHeld, e.Owner)
}

// Unwrap returns ErrHeld.
func (e *HeldError) Unwrap() error { return ErrHeld }

// MalformedError says which bucket key holds a record that could not be
// read, and why. errors.Is(err, ErrMalformed) reports true for it.
type MalformedError struct {
	Bucket, Key string
	Revision    uint64
	Err         error // what is wrong
}

// Error implements error.
func (e *MalformedError) Error() string {
	return fmt.Sprintf("shardlease: bucket %s key %q revision %d: %v: %v", e.Bucket, e.Key, e.Revision, ErrMalformed, e.Err)
}

// Unwrap returns ErrMalformed and the cause.
func (e *MalformedError) Unwrap() []error { return []error{ErrMalformed, e.Err} }
