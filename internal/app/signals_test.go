package app

import (
	"io"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/internal/syncbuf"
)

// fakeSignalClock makes signalContext read its time from the returned
// clock, which moves only when the test moves it.
func fakeSignalClock(t *testing.T) *atomic.Int64 {
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC).UnixNano())
	orig := signalClock
	signalClock = func() time.Time { return time.Unix(0, now.Load()) }
	t.Cleanup(func() { signalClock = orig })
	return &now
}

// TestSecondSignalExitsAtOnce: the first SIGTERM ends the context (graceful
// shutdown), the second exits with exitFailure without waiting for it.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	exited := make(chan int, 1)
	orig := exitNow
	defer func() { exitNow = orig }()
	exitNow = func(code int) { exited <- code }

	clock := fakeSignalClock(t)

	ctx, stop := signalContext(io.Discard)
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("first SIGTERM did not end the context")
	}
	select {
	case code := <-exited:
		t.Fatalf("first signal exited (%d)", code)
	default:
	}
	clock.Add(int64(sameStop)) // an operator's second Ctrl-C, not the same stop
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != exitFailure {
			t.Errorf("second signal exit status %d, want %d", code, exitFailure)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second signal did not exit")
	}
}

// TestSignalsAtOnceAreOneStop: a supervisor that signals the process and
// its group (GNU timeout) delivers one stop as two signals at once; the
// second must not exit without saving. A signal after sameStop still does.
func TestSignalsAtOnceAreOneStop(t *testing.T) {
	exited := make(chan int, 1)
	orig := exitNow
	defer func() { exitNow = orig }()
	exitNow = func(code int) { exited <- code }
	clock := fakeSignalClock(t)

	var stderr syncbuf.Buffer
	ctx, stop := signalContext(&stderr)
	defer stop()
	// Two different signals: the kernel merges a pending signal with the
	// same one arriving again, and then there is nothing to tell apart.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		if err := syscall.Kill(syscall.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
	}
	<-ctx.Done()
	poll.UntilState(t, poll.Timeout, "the second signal heard", func() (bool, string) {
		return strings.Contains(stderr.String(), "the same stop"), stderr.String()
	})
	select {
	case code := <-exited:
		t.Fatalf("two signals at once exited (%d): the graceful save is lost", code)
	default:
	}
	clock.Add(int64(sameStop - time.Millisecond))
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	poll.UntilState(t, poll.Timeout, "the third signal heard", func() (bool, string) {
		return strings.Count(stderr.String(), "the same stop") == 2, stderr.String()
	})
	clock.Add(int64(time.Millisecond))
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != exitFailure {
			t.Errorf("exit status %d, want %d", code, exitFailure)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a signal after the same-stop window did not exit")
	}
}
