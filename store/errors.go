package store

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

var (
	// ErrLocked means another process (or another File in this process)
	// holds the state file's lock. The error is a *[LockedError].
	ErrLocked = errors.New("state file is in use by another shardtop")

	// ErrCorrupt means the state file's content is not a valid state file:
	// bad TOML, wrong types, an unknown version or invalid values. The
	// error is a *[FileError] giving the line, entry and key.
	ErrCorrupt = errors.New("invalid state file")

	// ErrInvalidState means Put was given a state that cannot be stored
	// (for example count <= 0, or an ID outside [0, count)).
	ErrInvalidState = errors.New("invalid shard state")

	// ErrClosed means the File has been closed.
	ErrClosed = errors.New("store: file already closed")
)

// LockedError is returned by [OpenFile] when another holder has the lock.
// errors.Is(err, ErrLocked) reports true for it.
type LockedError struct {
	Path string // the state file
	PID  int    // process holding the lock, 0 if unknown
}

// Error implements error.
func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("store: %s: %v (lock %s.lock held by pid %d)", e.Path, ErrLocked, e.Path, e.PID)
	}
	return fmt.Sprintf("store: %s: %v (lock %s.lock is held)", e.Path, ErrLocked, e.Path)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// FileError is returned by [OpenFile] when the state file exists but cannot
// be read or is invalid. Content problems wrap [ErrCorrupt] (so does a file
// larger than [MaxFileSize]); TOML syntax errors also wrap the
// toml.ParseError; read failures wrap the *fs.PathError, which matches
// [ErrNotRegular] for a path that is not a regular file.
type FileError struct {
	Path  string // the state file
	Line  int    // 1-based line of the problem, 0 if unknown
	Entry int    // 1-based index of the [[shard]] (or Table) table at fault, 0 if none
	Table string // the array of tables Entry counts in: "" for [[shard]], "bucket"
	Key   string // TOML key at fault, "" if none
	Err   error  // what is wrong
}

// Error implements error, e.g.
// `store: /var/lib/shardtop/state.toml:12: [[shard]] #3: key "count": must be greater than 0, got 0`.
func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString("store: ")
	b.WriteString(e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Entry > 0 {
		fmt.Fprintf(&b, "[[%s]] #%d: ", cmp.Or(e.Table, "shard"), e.Entry)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "key %q: ", e.Key)
	}
	// Don't repeat the path of an fs error about the same file.
	var pe *fs.PathError
	if errors.As(e.Err, &pe) && pe.Path == e.Path {
		fmt.Fprintf(&b, "%s: %v", pe.Op, pe.Err)
	} else {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *FileError) Unwrap() error { return e.Err }

// corruptError is a content problem; it matches ErrCorrupt and, for syntax
// errors, the parser's error.
type corruptError struct {
	msg   string
	cause error // e.g. toml.ParseError; may be nil
}

func (e *corruptError) Error() string { return e.msg }

func (e *corruptError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrCorrupt}
	}
	return []error{ErrCorrupt, e.cause}
}
