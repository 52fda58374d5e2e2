package app

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running, such as
// a signal handler not stopped or a demo simulator not closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
