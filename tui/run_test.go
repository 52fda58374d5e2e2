package tui

import (
	"context"
	"errors"
	"github.com/shardtop/shardtop/internal/poll"
	"io"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// runAsync runs Run in a goroutine and returns its result channel.
func runAsync(ctx context.Context, f *fakeManager, opts ...Option) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Run(ctx, f, opts...) }()
	return done
}

func waitErr(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func TestRunQuitsOnQ(t *testing.T) {
	f := newFake(fixture())
	in, inW := io.Pipe()
	defer inW.Close()
	quit := make(chan struct{})
	done := runAsync(context.Background(), f,
		WithRefresh(time.Millisecond),
		WithQuitHandler(func() { close(quit) }),
		WithProgramOptions(tea.WithInput(in), tea.WithOutput(io.Discard), tea.WithoutSignalHandler()))
	poll.Until(t, poll.Timeout, "ticks", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.pulls >= 3 })
	if _, err := inW.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, done); err != nil {
		t.Fatalf("Run = %v", err)
	}
	select {
	case <-quit:
	default:
		t.Fatal("the quit handler was not called")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unsubscribed != 1 {
		t.Fatalf("unsubscribed %d", f.unsubscribed)
	}
}

func TestRunEndsWithContext(t *testing.T) {
	f := newFake(fixture())
	in, inW := io.Pipe()
	defer inW.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, f, WithRefresh(time.Millisecond),
		WithProgramOptions(tea.WithInput(in), tea.WithOutput(io.Discard), tea.WithoutSignalHandler()))
	poll.Until(t, poll.Timeout, "ticks", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.pulls >= 3 })
	cancel()
	if err := waitErr(t, done); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unsubscribed != 1 {
		t.Fatalf("unsubscribed %d", f.unsubscribed)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	f := newFake(fixture())
	if err := Run(context.Background(), f, WithRefresh(-1)); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("Run = %v", err)
	}
}
