package main

import (
	"strings"
	"testing"
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
