// Package workernode_test runs the Node.js worker example's tests (node
// --test) against a real NATS server started here, as `go test ./...`
// does in CI. They skip, saying why, when node or the example's
// node_modules (npm ci) are missing.
package workernode_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shardtop/shardtop/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// nodeTimeout bounds the whole node --test run.
const nodeTimeout = 3 * time.Minute

func TestNodeWorker(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the Node.js worker example is not tested")
	}
	if _, err := os.Stat("node_modules/@nats-io/jetstream/package.json"); err != nil {
		t.Skip("examples/worker-node/node_modules is missing: run npm ci there to test the Node.js worker (.ci/run does when node is present)")
	}
	s := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap")
	cmd.Env = append(os.Environ(), "NATS_URL="+s.ClientURL())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	// Passed, and ran: a test that skipped (no NATS_URL) is no pass.
	for _, want := range []string{`(?m)^# pass [1-9]`, `(?m)^# fail 0$`, `(?m)^# skipped 0$`} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("node --test output does not match %s:\n%s", want, out)
		}
	}
	t.Logf("node --test:\n%s", out)
}
