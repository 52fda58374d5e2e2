package gateway

import (
	"os"
	"testing"

	"github.com/shardtop/shardtop/internal/simproc"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if code, ok := simproc.RunIfChild(); ok {
		os.Exit(code)
	}
	if code, ok := runIdleClientIfChild(); ok {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}
