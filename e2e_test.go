package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/shardtop/shardtop/internal/poll"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/shardtop/shardtop/internal/filetest"
	"github.com/shardtop/shardtop/store"
)

// The tests in this file run the shardtop binary (built by TestMain) as a
// real process, as an operator or a service manager would.

func TestVersion(t *testing.T) {
	code, out, errOut := runProc(t, "--version")
	if code != exitOK || !regexp.MustCompile(`^shardtop `+regexp.QuoteMeta(linkedVersion)+` .*go1\.\d+`).MatchString(out) {
		t.Errorf("--version: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestBadUsageAndConfigExit2(t *testing.T) {
	dir := t.TempDir()
	unknown := filetest.Write(t, dir, "unknown.toml", "# a bot\nshard_count = 4\nshard_idz = [0]\n", 0o600)
	wrongType := filetest.Write(t, dir, "type.toml", "token = \"x\"\n\nmax_concurrency = \"16\"\n", 0o600)
	impossible := filetest.Write(t, dir, "value.toml", "token = \"x\"\ncompression = \"brotli\"\n", 0o600)
	noToken := filetest.Write(t, dir, "notoken.toml", "shard_count = 1\n", 0o600)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown key", []string{"-config", unknown}, []string{unknown + ":3: shard_idz: unknown key"}},
		{"wrong type", []string{"-config", wrongType}, []string{wrongType + ":3: max_concurrency:"}},
		{"impossible value", []string{"--config", impossible}, []string{impossible + ":2: compression:", "brotli"}},
		{"missing explicit config", []string{"-config", filepath.Join(dir, "nope.toml")}, []string{"nope.toml", "no such file"}},
		{"no token", []string{"-config", noToken}, []string{"no bot token", "DISCORD_TOKEN"}},
		{"unknown flag", []string{"--bogus"}, []string{"flag provided but not defined: -bogus"}},
		{"stray argument", []string{"run"}, []string{`unexpected argument "run"`}},
		{"bad log format", []string{"--demo", "--log-format", "xml"}, []string{"-log-format must be text or json"}},
		{"bad metrics addr", []string{"--demo", "--metrics-addr", "9464"}, []string{"-metrics-addr must be HOST:PORT"}},
		{"demo with config", []string{"--demo", "-config", unknown}, []string{"-demo runs without a config file"}},
		{"sim bad flag", []string{"sim", "--shards", "0"}, []string{"-shards must be at least 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runProc(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, errOut)
				}
			}
			if out != "" {
				t.Errorf("stdout not empty: %q", out)
			}
		})
	}
}

func TestSimSubcommand(t *testing.T) {
	sim := startSimProc(t, "--shards", "3", "--max-concurrency", "2", "--token", e2eToken)
	var gw struct {
		URL               string `json:"url"`
		Shards            int    `json:"shards"`
		SessionStartLimit struct {
			MaxConcurrency int `json:"max_concurrency"`
		} `json:"session_start_limit"`
	}
	// An authorised /gateway/bot, as a bot would ask it.
	if err := json.Unmarshal([]byte(httpGet(t, sim.api+"/gateway/bot", e2eToken)), &gw); err != nil {
		t.Fatal(err)
	}
	if gw.Shards != 3 || gw.SessionStartLimit.MaxConcurrency != 2 || !strings.HasPrefix(gw.URL, "ws://127.0.0.1:") {
		t.Errorf("/gateway/bot = %+v", gw)
	}
	sim.signal(t, syscall.SIGINT)
	if code := sim.exitCode(t, 10*time.Second); code != exitOK {
		t.Errorf("sim exit %d after SIGINT; stderr:\n%s", code, sim.stderr)
	}
	if out := sim.stdout.String(); strings.Count(out, "\n") != 1 || !apiLine.MatchString(out) {
		t.Errorf("sim stdout must be exactly one API line, got %q", out)
	}
	assertNoToken(t, "sim output", sim.stdout.String(), sim.stderr.String())
}

// TestHeadlessRestartResumesEverySession runs the supervisor headless
// against a `shardtop sim` process, stops it with SIGTERM, starts it again on
// the same state file and checks, on the simulator's own counters, that
// every shard resumed and none identified.
func TestHeadlessRestartResumesEverySession(t *testing.T) {
	sim := startSimProc(t, "--shards", "4", "--max-concurrency", "2", "--window", "100ms",
		"--rate", "20", "--heartbeat", "5s", "--token", e2eToken)
	dir := t.TempDir()
	cfgPath, statePath := writeSimConfig(t, dir, sim.api, "")

	first := startProc(t, "-config", cfgPath, "--headless", "--log-format", "json")
	waitAllReady(t, first, 30*time.Second)
	before := sim.stats(t)
	if before.Identifies != 4 || before.IdentifyViolations != 0 {
		t.Fatalf("first start: sim stats %+v, want 4 identifies and no violation", before)
	}
	first.signal(t, syscall.SIGTERM)
	if code := first.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0; stderr:\n%s", code, first.stderr)
	}
	if findLog(first.stderr.String(), "stopped: 4 of 4 sessions saved") == nil {
		t.Errorf("no shutdown line in the log:\n%s", first.stderr)
	}
	closed := 0
	for _, l := range jsonLogLines(first.stderr.String()) {
		if l["msg"] == "shard closed" {
			closed++
		}
	}
	if closed != 4 {
		t.Errorf("the log shows %d shards closing at shutdown, want 4:\n%s", closed, first.stderr)
	}
	sessions := readSessions(t, statePath)
	if len(sessions) != 4 {
		t.Fatalf("state file holds %d sessions, want 4: %+v", len(sessions), sessions)
	}

	second := startProc(t, "-config", cfgPath, "--headless", "--log-format", "json")
	ready := waitAllReady(t, second, 30*time.Second)
	if ready["resumes"] != float64(4) || ready["identifies"] != float64(0) {
		t.Errorf("second start's ready line: %v, want 4 resumes and 0 identifies", ready)
	}
	after := sim.stats(t)
	if after.Identifies != before.Identifies || after.Resumes != before.Resumes+4 || after.ResumesRejected != 0 {
		t.Errorf("second start: sim stats %+v (before %+v): want the same identifies and 4 more resumes", after, before)
	}
	second.signal(t, syscall.SIGINT)
	if code := second.exitCode(t, 10*time.Second); code != exitOK {
		t.Errorf("exit %d after SIGINT, want 0; stderr:\n%s", code, second.stderr)
	}
	state := readFileString(t, statePath)
	assertNoToken(t, "output or state file", first.stderr.String(), first.stdout.String(),
		second.stderr.String(), second.stdout.String(), state)
}

// TestHeadlessDemo is §5's headless test: `--demo --headless` with Discord's
// real 5 s window (16 shards at concurrency 4: about 15 s), SIGTERM once all
// shards are READY, exit 0 and a state file with every session. It also
// scrapes the metrics endpoint of the running process. The demo refuses
// --state-file, so its temporary state file is found under TMPDIR, read
// while it runs, and must be gone once it has stopped.
func TestHeadlessDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the demo uses Discord's real 5 s identify window (~15 s)")
	}
	t.Parallel()
	tmp := t.TempDir()
	p := startProcEnv(t, []string{"TMPDIR=" + tmp}, "--demo", "--headless", "--log-format", "json", "--metrics-addr", "127.0.0.1:0")
	var addr string
	poll.UntilState(t, 10*time.Second, "the metrics address in the log", func() (bool, string) {
		if l := findLog(p.stderr.String(), "metrics listening"); l != nil {
			addr, _ = l["addr"].(string)
		}
		return addr != "", p.stderr.String()
	})
	start := time.Now()
	waitAllReady(t, p, 60*time.Second)
	t.Logf("--demo: 16 shards READY after %s", time.Since(start).Round(10*time.Millisecond))

	metrics := httpGet(t, "http://"+addr+"/metrics", "")
	for _, want := range []string{
		"shardtop_shards_ready 16\n", "shardtop_shards_total 16\n", `shardtop_shards{state="ready"} 16`,
		"shardtop_max_concurrency 4\n", `shardtop_identify_queue_length{bucket="3"} 0`,
		"shardtop_session_start_total 1000\n", `shardtop_shard_events_total{count="16",shard="15"}`,
		`shardtop_shard_state{count="16",role="active",shard="0",state="ready"} 1`,
		`shardtop_shard_sequence_gaps_total{count="16",shard="7"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Every READY is saved within the store's flush interval, at the
	// sequence the bus has acknowledged (0 until the stream has READY).
	var statePath string
	var sessions []demoRecord
	poll.UntilState(t, 10*time.Second, "16 sessions in the demo's state file under TMPDIR", func() (bool, string) {
		paths, _ := filepath.Glob(filepath.Join(tmp, "shardtop-demo-*", "state.toml"))
		if len(paths) != 1 {
			return false, fmt.Sprintf("state files: %v", paths)
		}
		statePath = paths[0]
		var err error
		sessions, err = demoSessions(statePath)
		durable := 0
		for _, s := range sessions {
			if s.Sequence > 0 {
				durable++
			}
		}
		return err == nil && durable == 16, fmt.Sprintf("%s: %d sessions, %d past READY, %v", statePath, len(sessions), durable, err)
	})
	for _, s := range sessions {
		if s.Count != 16 || s.SessionID == "" || s.Sequence <= 0 {
			t.Errorf("bad session record %+v", s)
		}
	}

	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	if l := findLog(p.stderr.String(), "stopped: 16 of 16 sessions saved"); l == nil || l["state_file"] != statePath {
		t.Errorf("no \"stopped: 16 of 16 sessions saved\" line naming %s:\n%s", statePath, p.stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("the demo left files behind: %v", left)
	}
}

// TestMetricsAddrTakenExits1: a metrics address that cannot be listened on
// is a runtime failure (exit 1) named on stderr, and what was set up before
// it is undone: the demo's temporary state directory is removed.
func TestMetricsAddrTakenExits1(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tmp := t.TempDir()
	p := startProcEnv(t, []string{"TMPDIR=" + tmp}, "--demo", "--headless", "--metrics-addr", ln.Addr().String())
	if code := p.exitCode(t, 10*time.Second); code != exitFailure {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFailure, p.stderr)
	}
	if msg := p.stderr.String(); !strings.Contains(msg, "shardtop: metrics: ") || !strings.Contains(msg, ln.Addr().String()) {
		t.Errorf("stderr does not name the metrics address:\n%s", msg)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("the demo left files behind: %v", left)
	}
}

// demoRecord is the part of a state file record TestHeadlessDemo checks.
type demoRecord struct {
	ID, Count int
	SessionID string `toml:"session_id"`
	Sequence  int64
}

// demoSessions reads the records of the running demo's state file without
// locking it (the demo holds the lock).
func demoSessions(path string) ([]demoRecord, error) {
	var doc struct{ Shard []demoRecord }
	_, err := toml.DecodeFile(path, &doc)
	return doc.Shard, err
}

// waitAllReady waits for the headless "all shards ready" JSON log line and returns it.
func waitAllReady(t testing.TB, p *proc, timeout time.Duration) map[string]any {
	t.Helper()
	var line map[string]any
	poll.UntilState(t, timeout, `the "all shards ready" log line`, func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("shardtop exited early: %v; stderr:\n%s", p.err, p.stderr)
		default:
		}
		line = findLog(p.stderr.String(), "all shards ready")
		return line != nil, p.stderr.String()
	})
	if line["ready"] != line["total"] {
		t.Errorf("ready line %v: ready != total", line)
	}
	return line
}

// readSessions opens the state file as the next run would, and returns its records.
func readSessions(t *testing.T, path string) []store.ShardState {
	t.Helper()
	f, err := store.OpenFile(path)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	defer f.Close()
	return f.Load()
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRefusedTokenExits2: a token Discord answers 401 for is bad
// configuration (exit 2), said plainly, without showing the token.
func TestRefusedTokenExits2(t *testing.T) {
	sim := startSimProc(t, "--shards", "1", "--token", "the-right-token")
	cfgPath, _ := writeSimConfig(t, t.TempDir(), sim.api, "")
	code, out, errOut := runProc(t, "-config", cfgPath, "--headless")
	// The message names where the token came from: token is line 3 of the config.
	if want := "refused the bot token from token in " + cfgPath + ":3 (401)"; code != exitUsage || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, want %d with %q; stderr:\n%s", code, exitUsage, want, errOut)
	}
	assertNoToken(t, "output", out, errOut)

	// DISCORD_TOKEN comes first: with it set (to a wrong token) and no token in
	// the config, the sim is asked and refuses; without it there is no token.
	dir := t.TempDir()
	bare := filetest.Write(t, dir, "bare.toml", fmt.Sprintf("api_url = %q\nstate_file = \"s.toml\"\n", sim.api)+testBusTable, 0o600)
	cmd := exec.Command(shardtopBin, "-config", bare, "--headless")
	cmd.Env = append(childEnv(), tokenEnv+"="+e2eToken)
	outB, err := cmd.CombinedOutput()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(string(outB), "refused the bot token from DISCORD_TOKEN (401)") {
		t.Errorf("DISCORD_TOKEN: %v, want exit 2 with a 401; output:\n%s", err, outB)
	}
	assertNoToken(t, "output", string(outB))
}

// A corrupt state file stops shardtop with the file and line named and the
// file untouched; --fresh-state moves it aside (kept) and starts anew.
func TestCorruptStateFile(t *testing.T) {
	sim := startSimProc(t, "--shards", "2", "--window", "100ms", "--token", e2eToken)
	dir := t.TempDir()
	cfgPath, statePath := writeSimConfig(t, dir, sim.api, "")
	corrupt := "# shardtop session state\nversion = 1\n[[shard]]\nid = 0\ncount = \"two\"\n" +
		"session_id = \"abc\"\nsequence = 5\nresume_url = \"ws://127.0.0.1:1/\"\nupdated_at = 2026-11-22T05:00:00Z\n"
	filetest.Write(t, dir, "state.toml", corrupt, 0o600)

	code, _, stderr := runProc(t, "-config", cfgPath, "--headless")
	if code != exitFailure {
		t.Fatalf("exit %d with a corrupt state file, want %d; stderr:\n%s", code, exitFailure, stderr)
	}
	if !strings.Contains(stderr, statePath+":5") || !strings.Contains(stderr, "--fresh-state") {
		t.Errorf("stderr does not name %s:5 and the way out:\n%s", statePath, stderr)
	}
	if got := readFileString(t, statePath); got != corrupt {
		t.Fatalf("the corrupt state file was changed:\n%s", got)
	}

	p := startProc(t, "-config", cfgPath, "--headless", "--log-format", "json", "--fresh-state")
	waitAllReady(t, p, 30*time.Second)
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d with --fresh-state, want 0; stderr:\n%s", code, p.stderr)
	}
	aside, _ := filepath.Glob(statePath + ".corrupt-*")
	if len(aside) != 1 || readFileString(t, aside[0]) != corrupt {
		t.Fatalf("corrupt file not kept beside the state file: %v", aside)
	}
	if n := strings.Count(p.stderr.String(), aside[0]); n != 1 {
		t.Errorf("the log says where the corrupt file went %d times, want once:\n%s", n, p.stderr)
	}
	if n := len(readSessions(t, statePath)); n != 2 {
		t.Errorf("new state file holds %d sessions, want 2", n)
	}
}
