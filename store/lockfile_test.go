//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// openWithin runs OpenFile in a goroutine and fails the test if it has not
// returned within the deadline: before the fix a named pipe blocked it
// forever.
func openWithin(t *testing.T, path string, opts ...Option) (*File, error) {
	t.Helper()
	type result struct {
		f   *File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := OpenFile(path, opts...)
		done <- result{f, err}
	}()
	select {
	case r := <-done:
		return r.f, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("OpenFile(%s) still blocks after 10 s", path)
		return nil, nil
	}
}

// assertRefused checks that err says path is not a regular file.
func assertRefused(t *testing.T, f *File, err error, path, kind string) {
	t.Helper()
	if err == nil {
		f.Close()
		t.Fatalf("OpenFile accepted %s (%s)", path, kind)
	}
	if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), kind) {
		t.Fatalf("OpenFile: %v; want ErrNotRegular naming %s as %s", err, path, kind)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Errorf("a file that is not regular is reported as corrupt content: %v", err)
	}
}

// assertLink checks that link is still a symbolic link to target.
func assertLink(t *testing.T, link, target string) {
	t.Helper()
	got, err := os.Readlink(link)
	if err != nil || got != target {
		t.Fatalf("%s is no longer a link to %s: %q, %v", link, target, got, err)
	}
}

// TestLockFileSymlinkNotFollowed: `ln -s SOMEFILE state.toml.lock` made
// OpenFile truncate SOMEFILE and write a PID into it. The lock file must
// not be followed: refused with the lock path named, the target untouched.
func TestLockFileSymlinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.toml")
	victim := filepath.Join(dir, "SOMEFILE")
	const content = "precious data\n"
	writeRaw(t, victim, content)
	if err := os.Symlink(victim, path+".lock"); err != nil {
		t.Fatal(err)
	}
	f, err := openWithin(t, path)
	assertRefused(t, f, err, path+".lock", "symbolic link")
	assertRaw(t, victim, content)
	assertLink(t, path+".lock", victim)

	// A dangling link: OpenFile must not create its target either.
	missing := filepath.Join(dir, "created-through-the-link")
	path2 := filepath.Join(dir, "other.toml")
	if err := os.Symlink(missing, path2+".lock"); err != nil {
		t.Fatal(err)
	}
	f, err = openWithin(t, path2)
	assertRefused(t, f, err, path2+".lock", "symbolic link")
	if _, err := os.Lstat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dangling lock link's target was created: %v", err)
	}
}

// TestLockFileNotRegular: a lock path that is a named pipe or a directory
// is refused, naming it.
func TestLockFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifoState := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifoState+".lock", 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := openWithin(t, fifoState)
	assertRefused(t, f, err, fifoState+".lock", "named pipe")

	dirState := filepath.Join(dir, "dir.toml")
	if err := os.Mkdir(dirState+".lock", 0o700); err != nil {
		t.Fatal(err)
	}
	f, err = openWithin(t, dirState)
	assertRefused(t, f, err, dirState+".lock", "directory")
}
