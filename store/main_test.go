package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Environment variables that turn the test binary into a helper process.
const (
	envHelper = "STORE_TEST_HELPER" // "hold-lock" or "churn"
	envPath   = "STORE_TEST_PATH"
	envShards = "STORE_TEST_SHARDS"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envHelper) {
	case "":
		goleak.VerifyTestMain(m)
	case "hold-lock":
		os.Exit(helperHoldLock(os.Getenv(envPath)))
	case "churn":
		n, _ := strconv.Atoi(os.Getenv(envShards))
		os.Exit(helperChurn(os.Getenv(envPath), n))
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(envHelper))
		os.Exit(2)
	}
}

// helperHoldLock opens path, says "locked" on stdout and holds the lock
// until stdin is closed.
func helperHoldLock(path string) int {
	f, err := OpenFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helperChurn rewrites n shards generation after generation until killed:
// generation g sets every shard's sequence to g, in shard order, and the
// background writer (zero interval) and explicit Flushes write concurrently.
func helperChurn(path string, n int) int {
	f, err := OpenFile(path, WithFlushInterval(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var g int64
	for _, s := range f.Load() {
		g = max(g, s.Sequence)
	}
	for {
		g++
		for id := range n {
			if err := f.Put(churnState(id, n, g)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if err := f.Flush(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
}

// churnState is shard id's record in generation g; every field depends on
// g so a torn record is detectable.
func churnState(id, n int, g int64) ShardState {
	return ShardState{
		ShardID: id, ShardCount: n,
		SessionID: fmt.Sprintf("session-%d-%d-%s", id, g, "0123456789abcdef0123456789abcdef"),
		Sequence:  g,
		ResumeURL: fmt.Sprintf("wss://gateway-%d.example.test/?gen=%d", id, g),
		UpdatedAt: time.Unix(1_700_000_000+g, 0).UTC(),
	}
}

// writeLog records write attempts through the afterWrite hook.
type writeLog struct {
	mu     sync.Mutex
	events []writeEvent
	times  []time.Time
}

func (w *writeLog) option() Option {
	return withAfterWrite(func(e writeEvent) {
		w.mu.Lock()
		w.events = append(w.events, e)
		w.times = append(w.times, time.Now())
		w.mu.Unlock()
	})
}

func (w *writeLog) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

func (w *writeLog) snapshot() ([]writeEvent, []time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]writeEvent(nil), w.events...), append([]time.Time(nil), w.times...)
}
