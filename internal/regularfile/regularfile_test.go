//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package regularfile

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

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("1234"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(p, 4); err != nil || string(got) != "1234" {
		t.Errorf("Read at the limit: %q, %v", got, err)
	}
	_, err := Read(p, 3)
	var pe *fs.PathError
	if !errors.Is(err, ErrTooLarge) || !errors.As(err, &pe) || pe.Path != p || !strings.Contains(err.Error(), "3 bytes") {
		t.Errorf("Read over the limit: %v; want an *fs.PathError naming %s and the limit, matching ErrTooLarge", err, p)
	}
	// A symbolic link to a regular file is followed.
	link := filepath.Join(dir, "link")
	if err := os.Symlink("f", link); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(link, 4); err != nil || string(got) != "1234" {
		t.Errorf("Read through a link: %q, %v", got, err)
	}
	if _, err := Read(filepath.Join(dir, "missing"), 4); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestReadRefusesNonRegular: a FIFO would block the read forever and
// /dev/zero would be read until memory runs out; both, and a directory,
// are refused at once with the path and what it is.
func TestReadRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	linkToFifo := filepath.Join(dir, "link-to-fifo")
	if err := os.Symlink(fifo, linkToFifo); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, kind string }{
		{fifo, "named pipe"},
		{linkToFifo, "named pipe"},
		{"/dev/zero", "character device"},
		{"/dev/null", "character device"},
		{dir, "directory"},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := Read(tc.path, 1<<20)
			done <- err
		}()
		select {
		case err := <-done:
			var pe *fs.PathError
			if !errors.Is(err, ErrNotRegular) || !errors.As(err, &pe) || pe.Path != tc.path || !strings.Contains(err.Error(), tc.kind) {
				t.Errorf("Read(%s): %v; want an *fs.PathError naming it as a %s, matching ErrNotRegular", tc.path, err, tc.kind)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Read(%s) still blocks after 10 s", tc.path)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{1 << 20: "1 MiB", 64 << 20: "64 MiB", 4 << 10: "4 KiB", 1000: "1000 bytes", 1<<20 + 1: "1048577 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
