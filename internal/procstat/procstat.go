// Package procstat reads a process's resident memory and CPU time from
// Linux's /proc, for the benchmarks that measure whole processes: this one
// or a child (the shardtop binary, nats-server).
//
// It is test support: import it from _test.go files only.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Self is the pid that names this process.
const Self = 0

// path is /proc/PID/name, or /proc/self/name for Self.
func path(pid int, name string) string {
	if pid == Self {
		return "/proc/self/" + name
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

// RSS returns the resident set size of process pid (VmRSS), in bytes.
func RSS(pid int) (int64, error) {
	p := path(pid, "status")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("%s: VmRSS line %q", p, line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: VmRSS line %q: %w", p, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("%s: no VmRSS line", p)
}

// CPU returns the CPU time (user + system) process pid has used so far.
func CPU(pid int) (time.Duration, error) {
	p := path(pid, "stat")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("%s: %q", p, s)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: utime %q stime %q", p, f[11], f[12])
	}
	return time.Duration(utime+stime) * (time.Second / 100), nil // USER_HZ is 100 in /proc
}
