package app

import (
	"io"
	"syscall"
	"testing"
	"time"
)

// TestSecondSignalExitsAtOnce: the first SIGTERM ends the context (graceful
// shutdown), the second exits with exitFailure without waiting for it.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	exited := make(chan int, 1)
	orig := exitNow
	defer func() { exitNow = orig }()
	exitNow = func(code int) { exited <- code }

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
