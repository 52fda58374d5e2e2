package natstest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a server or connection running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
