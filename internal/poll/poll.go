// Package poll is the tests' one way to wait for something that happens on
// another goroutine or in another process, over real sockets and files:
// re-check an observable condition until it holds or a deadline passes.
// It never sleeps to synchronise: the pause between checks is a polling
// interval, and the deadline only bounds a test that would otherwise hang.
// Logic that is pure (timers and channels only) is tested in virtual time
// with testing/synctest instead.
//
// It is test support: import it from _test.go files only.
package poll

import (
	"testing"
	"time"
)

// Timeout is the deadline the tests use unless they need another: long
// enough for a loaded machine running the suite under -race.
const Timeout = 10 * time.Second

// The pause between two checks starts at firstInterval and doubles up to
// maxInterval: a condition that holds soon is seen soon, and one that
// takes long (a screen captured by a child process) costs little.
const (
	firstInterval = time.Millisecond
	maxInterval   = 20 * time.Millisecond
)

// Until re-checks cond until it holds, or fails tb once timeout has passed,
// saying what it waited for.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	UntilState(tb, timeout, what, func() (bool, string) { return cond(), "" })
}

// UntilState is Until for a condition that also describes the state it saw
// (a screen, a log): the failure shows the last one.
func UntilState(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	pause := firstInterval
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if state != "" {
				tb.Fatalf("timed out after %v waiting for %s; last state:\n%s", timeout, what, state)
			} else {
				tb.Fatalf("timed out after %v waiting for %s", timeout, what)
			}
			return // a TB whose Fatalf returns (a test's own)
		}
		time.Sleep(pause) // a polling interval, not synchronisation
		pause = min(2*pause, maxInterval)
	}
}
