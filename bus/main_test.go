package bus

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: an
// embedded server not shut down, a connection not closed, a publisher or
// command subscription that outlives Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
