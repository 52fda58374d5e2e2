//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"
)

// errNoLocking is returned by OpenFile where this package has no flock.
var errNoLocking = fmt.Errorf("store: file locking is not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)

type fileLock struct{}

func lockFile(statePath, lockPath string, mode fs.FileMode) (*fileLock, error) {
	return nil, errNoLocking
}

func (l *fileLock) release() error { return nil }

func syncDir(dir string) error { return errors.ErrUnsupported }
