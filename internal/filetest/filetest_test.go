package filetest

import (
	"os"
	"syscall"
	"testing"
)

// TestWriteKeepsTheMode: the file has the content and the very mode asked
// for, even under a umask that would narrow it.
func TestWriteKeepsTheMode(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	p := Write(t, t.TempDir(), "f", "content\n", 0o644)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %s, want -rw-r--r--", fi.Mode().Perm())
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "content\n" {
		t.Errorf("content %q, %v", b, err)
	}
}
