package store

import (
	"bufio"
	"bytes"
	"errors"
	"github.com/shardtop/shardtop/internal/poll"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperCmd re-runs the test binary as the named helper (see TestMain).
func helperCmd(t *testing.T, helper, path string, extraEnv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHelper+"="+helper, envPath+"="+path,
		// Under -race a process sleeps 1 s at exit by default.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Env = append(cmd.Env, extraEnv...)
	return cmd
}

func TestLockedSubprocess(t *testing.T) {
	path := statePath(t)
	cmd := helperCmd(t, "hold-lock", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("helper said %q; stderr: %s", line, stderr.String())
	}

	_, err = OpenFile(path)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Errorf("OpenFile while another process holds it: %v; want ErrLocked", err)
	} else if le.PID != cmd.Process.Pid || !strings.Contains(err.Error(), "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Errorf("error %q names pid %d, want the helper's %d", err, le.PID, cmd.Process.Pid)
	}

	stdin.Close() // the helper closes its File and exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v; stderr: %s", err, stderr.String())
	}
	f := mustOpen(t, path)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSIGKILL kills a process that rewrites the state file as fast as it
// can, at random points, and checks every time that the file is complete
// and consistent: all shards, each from one generation, and the snapshot
// taken at one moment (a prefix of shards at generation g, the rest at g-1).
func TestSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := statePath(t)
	const n = 64
	// Start from a complete generation 0 so every snapshot has all shards.
	f := mustOpen(t, path)
	for id := range n {
		mustPut(t, f, churnState(id, n, 0))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	var gen int64
	tempsSeen := 0
	const rounds = 6
	for round := range rounds {
		cmd := helperCmd(t, "churn", path, envShards+"="+strconv.Itoa(n))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it replace the file a few times.
		target := gen + 3 + rng.Int64N(5)
		poll.Until(t, 20*time.Second, "the helper's writes", func() bool {
			if cmd.ProcessState != nil {
				return true
			}
			states, _, err := read(path)
			if err != nil {
				t.Fatalf("round %d: reading while the helper writes: %v", round, err)
			}
			return len(states) > 0 && states[len(states)-1].Sequence >= target
		})
		// A random extra delay (up to ~2 ms, a few writes) picks the kill
		// point inside a write; it synchronises nothing.
		time.Sleep(time.Duration(rng.Int64N(int64(2 * time.Millisecond))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: helper ended with %v, not SIGKILL; stderr: %s", round, err, stderr.String())
		}
		temps, _ := filepath.Glob(path + ".tmp-*")
		if len(temps) > 0 {
			tempsSeen++
		}

		// The kernel dropped the lock; OpenFile also removes leftover temps.
		f := mustOpen(t, path)
		states := f.Load()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		assertNoTemps(t, filepath.Dir(path))
		if len(states) != n {
			t.Fatalf("round %d: %d shards in the file, want %d", round, len(states), n)
		}
		hi, lo := states[0].Sequence, states[n-1].Sequence
		for i, s := range states {
			if s.ShardID != i || !equalState(s, churnState(i, n, s.Sequence)) {
				t.Fatalf("round %d: record %d is not a record of its generation: %+v", round, i, s)
			}
			if i > 0 && s.Sequence > states[i-1].Sequence {
				t.Fatalf("round %d: shard %d at generation %d after shard %d at %d: not one snapshot",
					round, i, s.Sequence, i-1, states[i-1].Sequence)
			}
		}
		if hi-lo > 1 || hi < gen {
			t.Fatalf("round %d: generations %d..%d in one file (previous round ended at %d)", round, lo, hi, gen)
		}
		t.Logf("round %d: killed at generation %d (shards %d..%d), temporary file left: %v",
			round, hi, lo, hi, len(temps) > 0)
		gen = hi
	}
	t.Logf("%d of %d kills left a temporary file behind (killed mid-write)", tempsSeen, rounds)
}
