package metrics

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running, such as
// a metrics server not closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
