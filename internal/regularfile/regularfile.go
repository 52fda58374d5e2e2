// Package regularfile reads the files a user names to shardtop (the config
// file, the token file, the state file) safely: only a regular file is
// read, and only up to a size limit. A named pipe would block the reader
// forever, a device such as /dev/zero would be read until memory runs out,
// and a directory or socket is a mistake; all are refused with an error
// naming the path, before anything is read.
package regularfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

var (
	// ErrNotRegular means the path exists but is not a regular file (a
	// directory, named pipe, device, socket, or, where links are not
	// followed, a symbolic link).
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge means the file is larger than the limit given to [Read].
	ErrTooLarge = errors.New("file too large")
)

// Read returns the content of the regular file at path, following symbolic
// links. Errors are *fs.PathError naming path: one wrapping [ErrNotRegular]
// if path is not a regular file, one wrapping [ErrTooLarge] if it holds more
// than limit bytes, and those of os.Open and Read otherwise (a missing file
// matches fs.ErrNotExist).
func Read(path string, limit int64) ([]byte, error) {
	// Stat before opening: opening a device can have effects of its own
	// (a tape rewinds, a terminal becomes ours).
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := Check(path, fi); err != nil {
		return nil, err
	}
	// O_NONBLOCK: if path became a named pipe since the Stat, open must
	// not wait for a writer. It changes nothing for a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file opened is the one that counts: check it again.
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := Check(path, fi); err != nil {
		return nil, err
	}
	tooLarge := &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: more than %s, the limit for this file", ErrTooLarge, Size(limit))}
	if fi.Size() > limit {
		return nil, tooLarge
	}
	// The file may grow while it is read: the limit holds anyway.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	if int64(len(data)) > limit {
		return nil, tooLarge
	}
	return data, nil
}

// Check returns nil if fi, the FileInfo of path, is a regular file, and
// else an *fs.PathError naming path and what it is, wrapping [ErrNotRegular].
func Check(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: it is %s", ErrNotRegular, Kind(fi.Mode()))}
}

// Kind names the type of file of mode, e.g. "a directory", for messages.
func Kind(mode fs.FileMode) string {
	switch {
	case mode.IsRegular():
		return "a regular file"
	case mode&fs.ModeDir != 0:
		return "a directory"
	case mode&fs.ModeSymlink != 0:
		return "a symbolic link"
	case mode&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeCharDevice != 0:
		return "a character device"
	case mode&fs.ModeDevice != 0:
		return "a block device"
	}
	return "an irregular file (mode " + mode.String() + ")"
}

// Size formats a byte count for messages: "4 KiB", "1 MiB", or bytes.
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
