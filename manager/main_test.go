package manager

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(simChildEnv); spec != "" {
		os.Exit(runSimChild(spec))
	}
	goleak.VerifyTestMain(m)
}
