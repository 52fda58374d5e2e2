//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"github.com/shardtop/shardtop/internal/regularfile"
)

// fileLock is an exclusive flock on a lock file. flock locks belong to the
// open file description, so a second open in the same process conflicts
// too, and the kernel drops the lock when the holder dies (even by SIGKILL).
type fileLock struct{ f *os.File }

// lockFile takes the lock on lockPath without waiting and records our PID in
// it. statePath is only for the error message. lockPath must be a regular
// file or missing: the PID is written into it, so a symbolic link there
// would have us overwrite whatever file it points to.
func lockFile(statePath, lockPath string, mode fs.FileMode) (*fileLock, error) {
	// Lstat first so a device is never even opened; O_NOFOLLOW and the
	// Stat of the opened file close the gap to a swap in between.
	// O_NONBLOCK keeps a named pipe from blocking the open.
	if fi, err := os.Lstat(lockPath); err == nil {
		if err := regularfile.Check(lockPath, fi); err != nil {
			return nil, fmt.Errorf("store: lock file: %w", err)
		}
	}
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, mode)
	if errors.Is(err, syscall.ELOOP) {
		err = &fs.PathError{Op: "open", Path: lockPath, Err: fmt.Errorf("%w: it is a symbolic link", ErrNotRegular)}
	}
	if err != nil {
		return nil, fmt.Errorf("store: lock file: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = regularfile.Check(lockPath, fi)
		}
		return nil, fmt.Errorf("store: lock file: %w", err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid := readPID(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: statePath, PID: pid}
		}
		return nil, fmt.Errorf("store: lock %s: %w", lockPath, err)
	}
	// The PID is informational (for the holder's error message), so a
	// failure to record it is not fatal.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &fileLock{f: f}, nil
}

// release drops the lock. The lock file stays: removing it would let a
// process that opened the old inode and one that creates a new one both
// think they hold the lock.
func (l *fileLock) release() error {
	return l.f.Close()
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// readPID returns the PID written by the lock's holder, 0 if none.
func readPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(string(bytes.TrimSpace(buf[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// syncDir fsyncs a directory so a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
