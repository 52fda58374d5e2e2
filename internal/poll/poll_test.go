package poll

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTB records a Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	failed atomic.Bool
	msg    string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed.Store(true)
	f.msg = fmt.Sprintf(format, args...)
}

func TestUntilReturnsWhenTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	Until(t, Timeout, "three increments", func() bool { return n.Load() == 3 })
}

func TestUntilFailsAtTheDeadline(t *testing.T) {
	f := &fakeTB{TB: t}
	start := time.Now()
	UntilState(f, 30*time.Millisecond, "nothing", func() (bool, string) { return false, "the state" })
	if !f.failed.Load() || time.Since(start) < 30*time.Millisecond || !strings.Contains(f.msg, "nothing") || !strings.Contains(f.msg, "the state") {
		t.Fatalf("failed=%v after %v (%q), want a failure after the 30ms deadline naming what and the state", f.failed.Load(), time.Since(start), f.msg)
	}
}
