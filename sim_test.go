package main

import (
	"strings"
	"testing"
)

// The tests in this file run `shardtop sim` as a process, as a developer
// testing a bot would.

// TestSimFlagRanges: a flag value the simulator cannot honour is a usage
// error naming the flag, and nothing listens. --rate 1e30 used to start
// and overflow the event scheduler; NaN used to pass as a rate.
func TestSimFlagRanges(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "NaN"}, "-rate"},
		{[]string{"--rate", "1e30"}, "-rate"},
		{[]string{"--rate", "100001"}, "-rate"},
		{[]string{"--rate", "-1"}, "-rate"},
		{[]string{"--fault-rate", "Inf"}, "-fault-rate"},
		{[]string{"--fault-rate", "1001"}, "-fault-rate"},
		{[]string{"--heartbeat", "9000h"}, "-heartbeat"},
		{[]string{"--window", "9000h"}, "-window"},
		{[]string{"--guilds", "-1"}, "-guilds"},
		{[]string{"--addr", "9464"}, "-addr"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runProc(t, append([]string{"sim"}, tc.args...)...)
			if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want+" ") {
				t.Errorf("exit %d, stdout %q, want exit %d and stderr naming %s:\n%s", code, out, exitUsage, tc.want, errOut)
			}
		})
	}
}
