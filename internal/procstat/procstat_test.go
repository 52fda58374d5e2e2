package procstat

import (
	"os"
	"testing"
	"time"
)

// TestSelfAndByPID: this process's figures, read as Self and by its pid,
// are plausible and agree; a process that does not exist is an error.
func TestSelfAndByPID(t *testing.T) {
	rss, err := RSS(Self)
	if err != nil || rss < 1<<20 {
		t.Fatalf("RSS(Self) = %d, %v", rss, err)
	}
	if r, err := RSS(os.Getpid()); err != nil || r < 1<<20 {
		t.Fatalf("RSS(pid) = %d, %v", r, err)
	}
	for x := 0; ; x++ { // burn a little CPU so that it shows in ticks
		c, err := CPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if c >= 10*time.Millisecond {
			break
		}
	}
	if _, err := CPU(1 << 30); err == nil {
		t.Error("CPU of no process: no error")
	}
	if _, err := RSS(1 << 30); err == nil {
		t.Error("RSS of no process: no error")
	}
}
