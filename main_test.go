package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// shardtopBin is the shardtop binary built once by TestMain for the tests
// that run it as a real process (with -race when the tests have it).
var shardtopBin string

// linkedVersion is the version TestMain links in as README says to stamp one,
// with -ldflags "-X main.version=...": TestVersion checks that it shows.
const linkedVersion = "v0.0.0-linked.by.tests"

func TestMain(m *testing.M) {
	// A developer's control token would make the sims these tests start
	// demand it of the tests' own control requests; the tests that want
	// one set it themselves.
	os.Unsetenv(controlTokenEnvName)
	dir, err := os.MkdirTemp("", "shardtop-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shardtopBin = filepath.Join(dir, "shardtop")
	args := []string{"build", "-o", shardtopBin, "-ldflags", "-X main.version=" + linkedVersion}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building shardtop: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
