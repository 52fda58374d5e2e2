// Package simproc runs a discordsim simulator in a child process for
// benchmarks: the test binary re-executes itself with the simulator's config
// in an environment variable, and the child serves until its stdin closes.
//
// A child process, not a goroutine, so that a benchmark measures the client's
// CPU and memory alone (getrusage, runtime.MemStats) and client and simulator
// do not share a Go scheduler or garbage collector, as with the real Discord.
//
// It is test support: import it from _test.go files only.
package simproc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shardtop/shardtop/discordsim"
)

// configEnv holds the JSON-encoded discordsim.Config of a child; its presence
// is what makes the test binary a child. burnEnv makes it a CPU burner.
const (
	configEnv = "SHARDTOP_SIMPROC_CONFIG"
	burnEnv   = "SHARDTOP_SIMPROC_BURN"
)

// RunIfChild must be called first in TestMain. When this process is a child
// started by Start, it runs the simulator until stdin closes and reports
// isChild true with the exit code to pass to os.Exit; otherwise it does
// nothing and reports isChild false.
func RunIfChild() (exitCode int, isChild bool) {
	if _, ok := os.LookupEnv(burnEnv); ok {
		return burn(os.Stdin), true
	}
	spec, ok := os.LookupEnv(configEnv)
	if !ok {
		return 0, false
	}
	return run(spec, os.Stdin, os.Stdout, os.Stderr), true
}

// burn keeps one CPU busy until stdin is at EOF, as `yes >/dev/null` does.
func burn(stdin io.Reader) int {
	runtime.GOMAXPROCS(1)
	var stop atomic.Bool
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		stop.Store(true)
	}()
	x := uint64(1)
	for !stop.Load() {
		for range 1 << 16 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	if x == 0 { // never: keeps the loop from being optimised away
		fmt.Println(x)
	}
	return 0
}

// Burn starts n child processes that each keep a CPU busy, the load of n
// `yes >/dev/null` beside the benchmark, until tb's cleanup.
func Burn(tb testing.TB, n int) {
	tb.Helper()
	for range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), burnEnv+"=1")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			tb.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			_ = stdin.Close()
			_ = cmd.Wait()
		})
	}
}

// run starts a simulator for the JSON config spec, writes
// "APIURL GATEWAYURL http://ADDR" as the first line of stdout, and serves
// until stdin is at EOF.
func run(spec string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cfg discordsim.Config
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		fmt.Fprintf(stderr, "simproc child: bad %s: %v\n", configEnv, err)
		return 2
	}
	sim, err := discordsim.Start(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "simproc child:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s %s http://%s\n", sim.APIURL(), sim.GatewayURL(), sim.Addr())
	_, _ = io.Copy(io.Discard, stdin) // run until the parent closes stdin
	if err := sim.Close(); err != nil {
		fmt.Fprintln(stderr, "simproc child: close:", err)
		return 1
	}
	return 0
}

// Child is a simulator running in a child process.
type Child struct {
	API     string // REST base, discordsim's APIURL: "http://ADDR/api/v10"
	Gateway string // discordsim's GatewayURL: "ws://ADDR/gateway"
	Base    string // "http://ADDR", for the /_sim/ endpoints

	cmd    *exec.Cmd
	stdin  io.Closer
	closed bool
}

// Start runs a simulator for cfg in a child process (this test binary, whose
// TestMain calls RunIfChild) and returns once it serves. cfg travels as JSON:
// its Logger is dropped (the child logs nothing) and its unexported fields
// take their defaults. The child ends at tb's cleanup or at Close.
func Start(tb testing.TB, cfg discordsim.Config) *Child {
	tb.Helper()
	cfg.Logger = nil
	spec, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatalf("simproc: encode config: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), configEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &Child{cmd: cmd, stdin: stdin}
	tb.Cleanup(func() { c.Close(tb) })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("simproc child: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 {
		tb.Fatalf("simproc child printed %q", line)
	}
	c.API, c.Gateway, c.Base = f[0], f[1], f[2]
	return c
}

// Stats reads the child's counters from GET /_sim/stats.
func (c *Child) Stats(tb testing.TB) discordsim.Stats {
	tb.Helper()
	resp, err := http.Get(c.Base + "/_sim/stats")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("/_sim/stats: HTTP %d", resp.StatusCode)
	}
	var st discordsim.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		tb.Fatalf("/_sim/stats: %v", err)
	}
	return st
}

// Post sends POST path (e.g. "/_sim/burst?shard=0&n=100") to the child and
// fails tb unless it answers 200.
func (c *Child) Post(tb testing.TB, path string) {
	tb.Helper()
	resp, err := http.Post(c.Base+path, "", nil)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s: HTTP %d", path, resp.StatusCode)
	}
}

// Close ends the child (closes its stdin) and waits for it to exit, failing tb
// if it exits with an error. It is idempotent; Start also registers it as a
// cleanup.
func (c *Child) Close(tb testing.TB) {
	if c.closed {
		return
	}
	c.closed = true
	_ = c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		tb.Errorf("simproc child: %v", err)
	}
}
