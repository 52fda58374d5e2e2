package sharedlimiter

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: a
// Limiter not closed, a watcher not stopped, a NATS server not shut down.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
