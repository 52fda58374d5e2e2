package natstest_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a server or connection
// running. A shut-down nats-server ends some goroutines (its file store's
// flush loop, the account resolver) a little after WaitForShutdown; on a
// loaded machine that takes longer than goleak's own retries, so the check
// is repeated for up to ten seconds. Each goroutine must still end.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		err := goleak.Find()
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond) // goleak.Find has no wait of its own to give
			err = goleak.Find()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
