//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// TestStateFileNotRegular: a named pipe as the state file hung OpenFile; a
// device was read (/dev/zero until out of memory) and, with
// WithStartFresh, moved aside and replaced by a regular file (as root,
// --state-file /dev/null replaced /dev/null). Now each is refused, with or
// without WithStartFresh, left where it is, and no lock file is made
// beside it.
func TestStateFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	linkToFifo := filepath.Join(dir, "link.toml")
	if err := os.Symlink(fifo, linkToFifo); err != nil {
		t.Fatal(err)
	}
	subdir := filepath.Join(dir, "dir.toml")
	if err := os.Mkdir(subdir, 0o700); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ path, shown, kind string }{
		{fifo, fifo, "named pipe"},
		{linkToFifo, fifo, "named pipe"},
		{subdir, subdir, "directory"},
	}
	// A device node like /dev/null, made here so that nothing outside the
	// test directory is at stake (only root may make one).
	device := filepath.Join(dir, "null.toml")
	if runtime.GOOS != "linux" {
		t.Logf("no device node test on %s", runtime.GOOS)
	} else if err := syscall.Mknod(device, syscall.S_IFCHR|0o600, linuxDevNull); err != nil {
		t.Logf("no device node test: mknod: %v", err)
	} else {
		cases = append(cases, struct{ path, shown, kind string }{device, device, "character device"})
	}
	for _, tc := range cases {
		for _, opts := range [][]Option{nil, {WithStartFresh()}} {
			before, err := os.Lstat(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := openWithin(t, tc.path, opts...)
			assertRefused(t, f, err, tc.shown, tc.kind)
			after, err := os.Lstat(tc.path)
			if err != nil || after.Mode() != before.Mode() || !os.SameFile(before, after) {
				t.Fatalf("%s was replaced or moved: %v %v", tc.path, after, err)
			}
			if m, _ := filepath.Glob(tc.shown + ".corrupt-*"); len(m) > 0 {
				t.Fatalf("%s was moved aside: %v", tc.shown, m)
			}
			if _, err := os.Lstat(tc.shown + ".lock"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a lock file was made beside %s: %v", tc.shown, err)
			}
		}
	}
}

// linuxDevNull is /dev/null's device number on Linux (major 1, minor 3).
const linuxDevNull = 1<<8 | 3

// TestStateFileTooLarge: a state file is read up to MaxFileSize; a larger
// one is refused as invalid content, naming the file and the limit, and
// left untouched.
func TestStateFileTooLarge(t *testing.T) {
	path := statePath(t)
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: costs no disk.
	if err := fh.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	_, err = OpenFile(path)
	var fe *FileError
	if !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) || fe.Path != path ||
		!strings.Contains(err.Error(), "64 MiB") || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenFile of a %d-byte file: %v; want a *FileError naming it and the 64 MiB limit", MaxFileSize+1, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != MaxFileSize+1 {
		t.Fatalf("the file was changed: %v %v", fi, err)
	}
	assertNoCorruptFiles(t, path)
}

// TestStateFileSymlink: users symlink files into place. A state file that
// is a link is read through it, and every write replaces the file it
// points to (the link stays a link; before, the atomic rename replaced the
// link by a regular file and the target went stale). The lock sits beside
// the target, so two spellings of one state file share it.
func TestStateFileSymlink(t *testing.T) {
	dir := t.TempDir()
	realDir := filepath.Join(dir, "persistent")
	if err := os.Mkdir(realDir, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(realDir, "state.toml")
	link := filepath.Join(dir, "state.toml")
	if err := os.Symlink("persistent/state.toml", link); err != nil {
		t.Fatal(err)
	}
	old := ShardState{ShardID: 0, ShardCount: 2, SessionID: "old", Sequence: 1}
	g := mustOpen(t, target)
	mustPut(t, g, old)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	f := mustOpen(t, link)
	if f.Path() != target {
		t.Errorf("Path() = %s, want the link's target %s", f.Path(), target)
	}
	assertStates(t, f.Load(), []ShardState{old})
	if _, err := OpenFile(target); !errors.Is(err, ErrLocked) {
		t.Errorf("OpenFile of the target while the link is open: %v, want ErrLocked", err)
	}
	s := ShardState{ShardID: 1, ShardCount: 2, SessionID: "new", Sequence: 2}
	mustPut(t, f, s)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	assertLink(t, link, "persistent/state.toml")
	if _, err := os.Lstat(link + ".lock"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file made beside the link, not the target: %v", err)
	}
	g = mustOpen(t, target)
	assertStates(t, g.Load(), []ShardState{old, s})
	g.Close()

	// WithStartFresh sets the target aside, beside itself; the link stays.
	writeRaw(t, target, "version = 99\n")
	f = mustOpen(t, link, WithStartFresh())
	moved, _ := f.MovedAside()
	if filepath.Dir(moved) != realDir {
		t.Errorf("moved to %s, want beside %s", moved, target)
	}
	assertRaw(t, moved, "version = 99\n")
	f.Close()
	assertLink(t, link, "persistent/state.toml")
}

// TestStateFileDanglingSymlink: a link to a file that does not exist yet
// is an error naming it; nothing is created and the link stays.
func TestStateFileDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "state.toml")
	target := filepath.Join(dir, "not-yet.toml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	_, err := OpenFile(link)
	var fe *FileError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("OpenFile of a dangling link: %v; want a *FileError naming %s", err, link)
	}
	assertLink(t, link, target)
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 1 {
		t.Errorf("files were created: %v", m)
	}
}
