//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/filetest"
)

// The tests in this file run the binary on the hostile input of a trial:
// extreme config values, files that are not regular files, malformed
// tokens. Each checks the exit status, the message and that no file was
// harmed.

// deadAPI is a REST base nothing listens on: a test whose shardtop must
// stop before any request uses it, so that a regression fails fast
// (connection refused) instead of talking to anything.
const deadAPI = "http://127.0.0.1:1/api/v10"

// quickExit bounds how long a shardtop that must refuse its input may take.
const quickExit = 15 * time.Second

// assertNoPanic fails if stderr shows a Go panic or a runtime error.
func assertNoPanic(t *testing.T, stderr string) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", "fatal error:"} {
		if strings.Contains(stderr, s) {
			t.Errorf("stderr shows a crash (%q):\n%s", s, stderr)
		}
	}
}

// TestHugeConfigValuesExit2: shard_count = 9223372036854775807 panicked
// (makeslice) with exit 2 as if it were a config error, 4294967296 ran out
// of memory, 10000000 grew to 23.7 GB, and max_concurrency = 1000000 made
// every /metrics scrape 50 MB. Each is now a config error naming the file,
// line and key, before anything is allocated or asked.
func TestHugeConfigValuesExit2(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"shard_count", "9223372036854775807", "shard_count: must be 0 (Discord's recommendation) up to 65536, got 9223372036854775807"},
		{"shard_count", "4294967296", "shard_count: must be 0 (Discord's recommendation) up to 65536, got 4294967296"},
		{"shard_count", "10000000", "shard_count: must be 0 (Discord's recommendation) up to 65536, got 10000000"},
		{"max_concurrency", "1000000", "max_concurrency: must be 0 (from Discord) up to 1024, got 1000000"},
		{"split_count", "9223372036854775807", "split_count: must be at least 2 and at most 64"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			cfgPath, _ := writeSimConfig(t, t.TempDir(), deadAPI, tc.key+" = "+tc.value+"\n")
			p := startProc(t, "-config", cfgPath, "--headless")
			code := p.exitCode(t, quickExit)
			stderr := p.stderr.String()
			// writeSimConfig puts extra on line 9.
			if code != exitUsage || !strings.Contains(stderr, cfgPath+":9: "+tc.want) {
				t.Errorf("exit %d, want %d with %q; stderr:\n%s", code, exitUsage, cfgPath+":9: "+tc.want, stderr)
			}
			assertNoPanic(t, stderr)
		})
	}
}

// TestConfigFileNotRegular: a named pipe as -config hung shardtop (and it
// ignored SIGTERM), /dev/zero was read until out of memory, /dev/null was
// read as an empty config. Each is refused at once with exit 2, naming the
// file and what it is; so is a named pipe as token_file.
func TestConfigFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "config.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFifo := filepath.Join(dir, "token.fifo")
	if err := syscall.Mkfifo(tokenFifo, 0o600); err != nil {
		t.Fatal(err)
	}
	withTokenFifo := filetest.Write(t, dir, "token-fifo.toml", fmt.Sprintf("api_url = %q\ntoken_file = %q\n", deadAPI, tokenFifo), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"fifo config", []string{"-config", fifo}, []string{fifo, "named pipe"}},
		{"device config", []string{"-config", "/dev/null"}, []string{"/dev/null", "character device"}},
		{"directory config", []string{"-config", dir}, []string{dir, "directory"}},
		{"fifo token_file", []string{"-config", withTokenFifo}, []string{withTokenFifo + ":2: token_file:", tokenFifo, "named pipe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startProc(t, append(tc.args, "--headless")...)
			assertExit(t, p, exitUsage, tc.want...)
		})
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the named pipe was changed: %v %v", fi, err)
	}
}

// TestStateFileNotRegular: --state-file on a device node with
// --fresh-state moved the device aside and wrote a regular file in its
// place (as root, /dev/null for the whole system), a named pipe hung
// shardtop, and a symbolic link at STATE.lock made shardtop write its PID
// into the file it points to. Each is now exit 1 naming the path, and
// nothing is changed.
func TestStateFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _ := writeSimConfig(t, dir, deadAPI, "")

	fifo := filepath.Join(dir, "state.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	victim := filetest.Write(t, dir, "SOMEFILE", "precious\n", 0o600)
	linked := filepath.Join(dir, "linked.toml")
	if err := os.Symlink(victim, linked+".lock"); err != nil {
		t.Fatal(err)
	}
	type tcase struct {
		name, path string
		args, want []string
	}
	cases := []tcase{
		{"fifo", fifo, []string{"--state-file", fifo, "--fresh-state"}, []string{fifo, "named pipe"}},
		{"lock symlink", linked + ".lock", []string{"--state-file", linked}, []string{linked + ".lock", "symbolic link"}},
	}
	// A device node like /dev/null, made in the test's directory so that
	// nothing else is at stake; only root can make one.
	device := filepath.Join(dir, "null.toml")
	if runtime.GOOS != "linux" {
		t.Logf("no device node case on %s", runtime.GOOS)
	} else if err := syscall.Mknod(device, syscall.S_IFCHR|0o600, 1<<8|3); err != nil { // major 1, minor 3: /dev/null
		t.Logf("no device node case: mknod: %v", err)
	} else {
		cases = append(cases, tcase{"device", device, []string{"--state-file", device, "--fresh-state"}, []string{device, "character device"}})
	}
	before := map[string]os.FileInfo{}
	for _, tc := range cases {
		fi, err := os.Lstat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		before[tc.path] = fi
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startProc(t, append([]string{"-config", cfgPath, "--headless"}, tc.args...)...)
			assertExit(t, p, exitFailure, tc.want...)
			fi, err := os.Lstat(tc.path)
			if err != nil || fi.Mode() != before[tc.path].Mode() || !os.SameFile(fi, before[tc.path]) {
				t.Errorf("%s was moved or replaced: %v %v", tc.path, fi, err)
			}
			if m, _ := filepath.Glob(tc.path + ".corrupt-*"); len(m) > 0 {
				t.Errorf("%s was moved aside: %v", tc.path, m)
			}
		})
	}
	if got := readFileString(t, victim); got != "precious\n" {
		t.Errorf("the lock link's target was written: %q", got)
	}
}

// TestEmptyStateFileStarts: `touch state.toml` was reported as a corrupt
// state file (exit 1); it is no sessions, and the run saves its own.
func TestEmptyStateFileStarts(t *testing.T) {
	t.Parallel()
	sim := startSimProc(t, "--shards", "2", "--window", "100ms", "--token", e2eToken)
	dir := t.TempDir()
	cfgPath, statePath := writeSimConfig(t, dir, sim.api, "")
	filetest.Write(t, dir, "state.toml", "", 0o600)
	p := startProc(t, "-config", cfgPath, "--headless", "--log-format", "json")
	waitAllReady(t, p, 30*time.Second)
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d with an empty state file, want 0; stderr:\n%s", code, p.stderr)
	}
	if n := len(readSessions(t, statePath)); n != 2 {
		t.Errorf("state file holds %d sessions, want 2", n)
	}
	if m, _ := filepath.Glob(statePath + ".corrupt-*"); len(m) > 0 {
		t.Errorf("the empty file was treated as corrupt: %v", m)
	}
}

// TestMalformedTokenExit2: DISCORD_TOKEN=$'abc\nX-Evil: 1' reached the HTTP
// client (exit 1, `invalid header field value for "Authorization"`). A
// token that cannot be a bot token is bad input: exit 2, naming where it
// came from, never showing it.
func TestMalformedTokenExit2(t *testing.T) {
	dir := t.TempDir()
	bare := filetest.Write(t, dir, "bare.toml", fmt.Sprintf("api_url = %q\nstate_file = \"s.toml\"\n", deadAPI), 0o600)
	bearerFile := filetest.Write(t, dir, "bearer-token", "Bearer "+e2eToken+"\n", 0o600)
	bearer := filetest.Write(t, dir, "bearer.toml", fmt.Sprintf("api_url = %q\ntoken_file = %q\n", deadAPI, bearerFile), 0o600)
	for _, tc := range []struct {
		name, config string
		env          []string
		want         []string
	}{
		{"newline in DISCORD_TOKEN", bare, []string{tokenEnv + "=" + e2eToken + "\nX-Evil: 1"}, []string{"bot token from DISCORD_TOKEN", "line break"}},
		{"space in DISCORD_TOKEN", bare, []string{tokenEnv + "=" + e2eToken + " x"}, []string{"bot token from DISCORD_TOKEN", "space"}},
		{"Bearer in token_file", bearer, nil, []string{"bot token from token_file " + bearerFile, "OAuth2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startProcEnv(t, tc.env, "-config", tc.config, "--headless")
			stderr := assertExit(t, p, exitUsage, tc.want...)
			if strings.Contains(stderr, "X-Evil") || strings.Contains(stderr, "header field") {
				t.Errorf("the token reached the HTTP client or is shown:\n%s", stderr)
			}
			assertNoToken(t, "output", p.stdout.String(), stderr)
		})
	}
}

// TestBotPrefixedTokenWorks: a token pasted with its "Bot " prefix got a
// plain 401. The prefix is removed, with a warning that names the source,
// and the shards connect.
func TestBotPrefixedTokenWorks(t *testing.T) {
	t.Parallel()
	sim := startSimProc(t, "--shards", "1", "--token", e2eToken)
	dir := t.TempDir()
	bare := filetest.Write(t, dir, "bare.toml", fmt.Sprintf("api_url = %q\nstate_file = \"s.toml\"\nidentify_window = \"100ms\"\n", sim.api)+testBusTable, 0o600)
	p := startProcEnv(t, []string{tokenEnv + "=Bot " + e2eToken}, "-config", bare, "--headless", "--log-format", "json")
	waitAllReady(t, p, 30*time.Second)
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), `the bot token from DISCORD_TOKEN starts with \"Bot \"`) {
		t.Errorf("no warning about the prefix:\n%s", p.stderr)
	}
	assertNoToken(t, "output", p.stdout.String(), p.stderr.String())
}

// TestDemoRefusesStateFlags: --demo --state-file x ran the demo on x (its
// sessions useless once its simulator ends, and a real bot's sessions in x
// overwritten), while --demo -config was refused. Both state flags are
// refused with --demo now, and x is not created.
func TestDemoRefusesStateFlags(t *testing.T) {
	x := filepath.Join(t.TempDir(), "x.toml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--demo", "--state-file", x}, "-demo keeps its sessions in a temporary file"},
		{[]string{"--demo", "--fresh-state"}, "-demo always starts without saved sessions; drop -fresh-state"},
	} {
		p := startProc(t, append(tc.args, "--headless")...)
		code := p.exitCode(t, quickExit)
		if code != exitUsage || !strings.Contains(p.stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d with %q; stderr:\n%s", tc.args, code, exitUsage, tc.want, p.stderr)
		}
	}
	if _, err := os.Lstat(x); err == nil {
		t.Errorf("%s was created", x)
	}
	_, _, stderr := runProc(t, "--help")
	if !strings.Contains(stderr, "not with -demo") {
		t.Errorf("the help does not say which flags -demo refuses:\n%s", stderr)
	}
}
