package main

import (
	"fmt"
	"github.com/shardtop/shardtop/internal/poll"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/filetest"
)

// The TUI without a terminal (a service, a pipe, CI) says what to do
// instead, before it connects anything: bad usage, exit 2.
func TestTUIWithoutTerminalSuggestsHeadless(t *testing.T) {
	sim := startSimProc(t, "--shards", "1", "--token", e2eToken)
	cfgPath, _ := writeSimConfig(t, t.TempDir(), sim.api, "")
	code, out, errOut := runProc(t, "-config", cfgPath) // stdout is a pipe
	if code != exitUsage || !strings.Contains(errOut, "needs a terminal") || !strings.Contains(errOut, "--headless") {
		t.Fatalf("exit %d, want %d naming --headless; stdout %q stderr:\n%s", code, exitUsage, out, errOut)
	}
	if st := sim.stats(t); st.Identifies != 0 {
		t.Errorf("the sim saw %d identifies: shards were started before the terminal was checked", st.Identifies)
	}
}

// A saved resume_url that nothing answers (edited by hand, or a region
// gone) is given up after a few dials: the shard resumes its session
// through the gateway URL, no identify. Each failed dial is logged once.
func TestUnreachableResumeURLResumesThroughGateway(t *testing.T) {
	sim := startSimProc(t, "--shards", "2", "--window", "100ms", "--heartbeat", "5s", "--token", e2eToken)
	cfgPath, statePath := writeSimConfig(t, t.TempDir(), sim.api, "")
	first := startProc(t, "-config", cfgPath, "--headless", "--log-format", "json")
	waitAllReady(t, first, 30*time.Second)
	first.signal(t, syscall.SIGTERM)
	if code := first.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, first.stderr)
	}
	saved := readFileString(t, statePath)
	edited := regexp.MustCompile(`resume_url = "[^"]*"`).ReplaceAllString(saved, `resume_url = "ws://127.0.0.1:1/x"`)
	if edited == saved {
		t.Fatalf("no resume_url in the state file:\n%s", saved)
	}
	if err := os.WriteFile(statePath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	before := sim.stats(t)

	second := startProc(t, "-config", cfgPath, "--headless", "--log-format", "json")
	ready := waitAllReady(t, second, 30*time.Second)
	if ready["identifies"] != float64(0) || ready["resumes"] != float64(2) {
		t.Errorf("ready line %v, want 2 resumes and no identify", ready)
	}
	if after := sim.stats(t); after.Identifies != before.Identifies || after.Resumes != before.Resumes+2 {
		t.Errorf("sim stats %+v (before %+v): want 2 more resumes, no identify", after, before)
	}
	second.signal(t, syscall.SIGTERM)
	if code := second.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, second.stderr)
	}
	// 3 failed dials per shard, each said once (as the shard's reconnect).
	if n := strings.Count(second.stderr.String(), "127.0.0.1:1"); n != 6 {
		t.Errorf("the unreachable resume URL appears %d times in the log, want 6 (3 dials x 2 shards, once each):\n%s", n, second.stderr)
	}
	if strings.Contains(readFileString(t, statePath), "127.0.0.1:1") {
		t.Errorf("the state file still holds the unreachable resume URL")
	}
}

// Two runs a moment apart, the first stopped inside its first identify
// window: the second resumes what the first had and waits out the rest of
// the window before identifying the others. Before the buckets' last
// identifies were saved, it identified at once and got op 9.
func TestQuickRestartKeepsTheIdentifyWindow(t *testing.T) {
	sim := startSimProc(t, "--shards", "4", "--max-concurrency", "2", "--window", "2s", "--heartbeat", "5s", "--token", e2eToken)
	dir := t.TempDir()
	cfgPath := filetest.Write(t, dir, "shardtop.toml", fmt.Sprintf("api_url = %q\ntoken = %q\nidentify_window = \"2s\"\nstate_file = \"state.toml\"\n", sim.api, e2eToken)+testBusTable, 0o600)
	first := startProc(t, "-config", cfgPath, "--headless", "--log-format", "json")
	poll.UntilState(t, 20*time.Second, "the first wave READY", func() (bool, string) {
		n := 0
		for _, l := range jsonLogLines(first.stderr.String()) {
			if l["msg"] == "shard ready" {
				n++
			}
		}
		return n == 2, first.stderr.String()
	})
	first.signal(t, syscall.SIGTERM)
	if code := first.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, first.stderr)
	}
	if findLog(first.stderr.String(), "stopped: 2 of 4 sessions saved; 2 shards had none yet and will identify") == nil {
		t.Errorf("the shutdown line does not say what was saved:\n%s", first.stderr)
	}

	second := startProc(t, "-config", cfgPath, "--headless", "--log-format", "json")
	ready := waitAllReady(t, second, 30*time.Second)
	if ready["identifies"] != float64(2) || ready["resumes"] != float64(2) {
		t.Errorf("second run's ready line %v, want 2 resumes and 2 identifies", ready)
	}
	if st := sim.stats(t); st.IdentifyViolations != 0 || st.Identifies != 4 {
		t.Errorf("sim stats %+v: want 4 identifies and no violation", st)
	}
	second.signal(t, syscall.SIGTERM)
	if code := second.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, second.stderr)
	}
}
