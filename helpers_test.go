package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/internal/syncbuf"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/filetest"
)

// tokenEnv is the variable README documents for the bot token, spelled out
// rather than taken from internal/config so that renaming it there fails
// these tests, as it would break every deployment.
const tokenEnv = "DISCORD_TOKEN"

// The exit statuses README documents, spelled out for the same reason.
const (
	exitOK      = 0 // normal stop
	exitFailure = 1 // runtime failure, or a second signal
	exitUsage   = 2 // bad usage or configuration
)

// childEnv is the tests' environment without DISCORD_TOKEN, so a developer's
// real token never reaches the simulator and never changes what is tested.
func childEnv() []string {
	var env []string
	gorace := false
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, tokenEnv+"=") {
			env = append(env, kv)
		}
		gorace = gorace || strings.HasPrefix(kv, "GORACE=")
	}
	if raceEnabled && !gorace {
		// A -race binary sleeps 1 s at exit by default; the exit status still
		// reports a race (66), which every test checks.
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// proc is a shardtop process started by a test.
type proc struct {
	cmd    *exec.Cmd
	stdout *syncbuf.Buffer
	stderr *syncbuf.Buffer
	done   chan struct{}
	err    error // Wait's result, set before done is closed
}

// startProc runs the test binary with args; the process is killed at the
// end of the test if it still runs.
func startProc(t testing.TB, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, nil, args...)
}

// startProcEnv is startProc with env (KEY=value) added to childEnv().
func startProcEnv(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(shardtopBin, args...), stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(childEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start shardtop %v: %v", args, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// exitCode waits up to timeout for the process to end and returns its exit status.
func (p *proc) exitCode(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("shardtop did not exit within %s; stderr:\n%s", timeout, p.stderr)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

// assertExit waits (briefly) for p to exit and checks its status and that
// its stderr says each of says; it returns the stderr.
func assertExit(t *testing.T, p *proc, want int, says ...string) string {
	t.Helper()
	code := p.exitCode(t, quickExit)
	stderr := p.stderr.String()
	if code != want {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, want, stderr)
	}
	for _, w := range says {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, stderr)
		}
	}
	return stderr
}

// runProc runs shardtop to completion and returns its exit status and output.
func runProc(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startProc(t, args...)
	code = p.exitCode(t, 30*time.Second)
	return code, p.stdout.String(), p.stderr.String()
}

// simProc is a `shardtop sim` process.
type simProc struct {
	*proc
	api  string // http://127.0.0.1:PORT/api/v10
	base string // http://127.0.0.1:PORT
}

var apiLine = regexp.MustCompile(`^API (http://127\.0\.0\.1:\d+)/api/v10\n`)

// startSimProc runs `shardtop sim` with args and waits for its API line.
func startSimProc(t testing.TB, args ...string) *simProc {
	t.Helper()
	p := startProc(t, append([]string{"sim"}, args...)...)
	var m []string
	poll.UntilState(t, 15*time.Second, "the sim's API line", func() (bool, string) {
		m = apiLine.FindStringSubmatch(p.stdout.String())
		return m != nil, "stdout: " + p.stdout.String() + "\nstderr: " + p.stderr.String()
	})
	s := &simProc{proc: p, base: m[1], api: m[1] + "/api/v10"}
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	})
	return s
}

// simStats is the part of GET /_sim/stats the tests read.
type simStats struct {
	Identifies, IdentifyViolations, Resumes, ResumesRejected int
	ActiveConnections                                        int
	Closes                                                   map[int]int
}

func (s *simProc) stats(t testing.TB) simStats {
	t.Helper()
	var st simStats
	getJSON(t, s.base+"/_sim/stats", &st)
	return st
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	body := httpGet(t, url, "")
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}

// httpGet GETs url (with "Authorization: Bot token" unless token is empty)
// and returns the body of a 200 answer.
func httpGet(t testing.TB, url, token string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bot "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return string(b)
}

// e2eToken is the bot token of the end-to-end tests: the sim accepts only it,
// and no output, log or file of shardtop may contain it.
const e2eToken = "e2e-bot-token.SECRET.do-not-print-0123456789"

// writeSimConfig writes a shardtop config in dir for the sim at api with
// short windows, and returns its path and the state file's. Unless extra
// has a [bus] table, testBusTable comes after it.
func writeSimConfig(t *testing.T, dir, api string, extra string) (cfgPath, statePath string) {
	t.Helper()
	statePath = filepath.Join(dir, "state.toml")
	cfg := fmt.Sprintf(`# shardtop end-to-end test config
api_url = %q
token = %q
compression = "zlib-stream"
identify_window = "100ms"
identify_margin = "50ms" # the production default: two race-built processes stall on a loaded machine
state_file = "state.toml"
refresh = "50ms"
%s`, api, e2eToken, extra)
	if !strings.Contains(extra, "[bus]") {
		cfg += "\n" + testBusTable
	}
	return filetest.Write(t, dir, "shardtop.toml", cfg, 0o600), statePath
}

// testBusTable puts the embedded bus of a test's shardtop on a free port:
// tests (and other programs) run side by side, and the default, 4222, is
// one port for all of them. It goes after every top-level key.
const testBusTable = "[bus]\nlisten = \"127.0.0.1:0\"\n"

// assertNoToken fails if any of texts shows the token (or a recognisable part of it).
func assertNoToken(t *testing.T, where string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, e2eToken) || strings.Contains(s, "SECRET.do-not-print") {
			t.Errorf("%s shows the bot token:\n%s", where, s)
		}
	}
}

// jsonLogLines parses the JSON log lines in s (others are ignored).
func jsonLogLines(s string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// findLog returns the first JSON log line with msg, or nil.
func findLog(s, msg string) map[string]any {
	for _, l := range jsonLogLines(s) {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}
