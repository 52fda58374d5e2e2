package shardowner

import "errors"

var (
	// ErrInvalidOption means an option or mode is out of range.
	ErrInvalidOption = errors.New("shardowner: invalid option")
	// ErrClosed means the Runner has stopped (Close or Leave).
	ErrClosed = errors.New("shardowner: runner closed")
)
