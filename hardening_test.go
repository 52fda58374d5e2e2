//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests in this file run the binary on the hostile input of a trial.
// Each checks the exit status, the message and that no file was harmed.

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
	withTokenFifo := writeFile(t, dir, "token-fifo.toml", fmt.Sprintf("api_url = %q\ntoken_file = %q\n", deadAPI, tokenFifo), 0o600)
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
			code := p.exitCode(t, quickExit)
			stderr := p.stderr.String()
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
		})
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the named pipe was changed: %v %v", fi, err)
	}
}

// TestMalformedTokenExit2: DISCORD_TOKEN=$'abc\nX-Evil: 1' reached the HTTP
// client (exit 1, `invalid header field value for "Authorization"`). A
// token that cannot be a bot token is bad input: exit 2, naming where it
// came from, never showing it.
func TestMalformedTokenExit2(t *testing.T) {
	dir := t.TempDir()
	bare := writeFile(t, dir, "bare.toml", fmt.Sprintf("api_url = %q\nstate_file = \"s.toml\"\n", deadAPI), 0o600)
	bearerFile := writeFile(t, dir, "bearer-token", "Bearer "+e2eToken+"\n", 0o600)
	bearer := writeFile(t, dir, "bearer.toml", fmt.Sprintf("api_url = %q\ntoken_file = %q\n", deadAPI, bearerFile), 0o600)
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
			code := p.exitCode(t, quickExit)
			stderr := p.stderr.String()
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
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
	bare := writeFile(t, dir, "bare.toml", fmt.Sprintf("api_url = %q\nstate_file = \"s.toml\"\nidentify_window = \"100ms\"\n", sim.api), 0o600)
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
