package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/internal/poll"
)

// The tests in this file start the binary with each kind of event bus and
// check what it says and does at start-up: the embedded server it runs,
// the external one it connects to, and the errors that stop it.

// busSecret is the bus token of these tests: no output may show it.
const busSecret = "bus-secret-never-printed-4242"

// waitBusReady waits for the "bus ready" line of a JSON-logging p and
// returns it.
func waitBusReady(t testing.TB, p *proc) map[string]any {
	t.Helper()
	var line map[string]any
	poll.UntilState(t, 30*time.Second, `the "bus ready" line`, func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("shardtop exited early: %v; stderr:\n%s", p.err, p.stderr)
		default:
		}
		line = findLog(p.stderr.String(), "bus ready")
		return line != nil, p.stderr.String()
	})
	return line
}

var loopbackNATS = regexp.MustCompile(`^nats://127\.0\.0\.1:(\d+)$`)

// TestDemoStartsEmbeddedBus: --demo runs the embedded NATS server on a
// free loopback port, storing in its temporary folder, and logs its URL,
// which a worker can connect to; all of it is gone after the stop.
func TestDemoStartsEmbeddedBus(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	p := startProcEnv(t, []string{"TMPDIR=" + tmp}, "--demo", "--headless", "--log-format", "json")
	ready := waitBusReady(t, p)
	url, _ := ready["url"].(string)
	m := loopbackNATS.FindStringSubmatch(url)
	if ready["mode"] != "embedded" || m == nil || m[1] == "4222" || m[1] == "0" {
		t.Fatalf(`"bus ready" line %v: want mode embedded and a nats://127.0.0.1:PORT URL with a free port`, ready)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("a worker connecting to %s: %v", url, err)
	}
	if err := nc.Flush(); err != nil {
		t.Errorf("round trip to %s: %v", url, err)
	}
	nc.Close()
	if stores, _ := filepath.Glob(filepath.Join(tmp, "shardtop-demo-*", "bus", "jetstream")); len(stores) != 1 {
		t.Errorf("JetStream storage in the demo's folder: %v, want one", stores)
	}

	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("the demo left files behind: %v", left)
	}
}

// TestEmbeddedBusBeyondLoopbackNeedsCredentials: an embedded bus set to
// listen beyond loopback without credentials is bad config (exit 2, the
// file, line and key named) and nothing is started; with a token from
// SHARDTOP_BUS_TOKEN it starts, and a client without the token is refused.
func TestEmbeddedBusBeyondLoopbackNeedsCredentials(t *testing.T) {
	t.Parallel()
	open := "[bus]\nmode = \"embedded\"\nlisten = \"0.0.0.0:0\"\n"
	dir := t.TempDir()
	cfgPath, statePath := writeSimConfig(t, dir, deadAPI, open)
	p := startProc(t, "-config", cfgPath, "--headless")
	// writeSimConfig puts extra on line 9: listen is on line 11.
	assertExit(t, p, exitUsage, cfgPath+`:11: bus.listen: "0.0.0.0:0" is not loopback: the embedded server refuses to listen there without credentials`)
	if _, err := os.Stat(statePath + ".bus"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the bus's store was created: %v", err)
	}

	sim := startSimProc(t, "--shards", "1", "--token", e2eToken)
	withToken, _ := writeSimConfig(t, t.TempDir(), sim.api, open)
	p = startProcEnv(t, []string{"SHARDTOP_BUS_TOKEN=" + busSecret}, "-config", withToken, "--headless", "--log-format", "json")
	ready := waitBusReady(t, p)
	url, _ := ready["url"].(string)
	if loopbackNATS.FindStringSubmatch(url) == nil {
		t.Fatalf(`"bus ready" line %v: want the wildcard listen shown as a loopback URL`, ready)
	}
	if nc, err := nats.Connect(url); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Errorf("a client without the token: %v, want %v", err, nats.ErrAuthorization)
	}
	nc, err := nats.Connect(url, nats.Token(busSecret))
	if err != nil {
		t.Fatalf("a client with the token: %v", err)
	}
	nc.Close()
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	if strings.Contains(p.stderr.String(), busSecret) {
		t.Errorf("the log shows the bus token:\n%s", p.stderr)
	}
}

// TestBusURLUnreachableExits1: --bus-url naming a server that is not there
// is a runtime failure (exit 1) within seconds, naming the URL, before any
// shard is started.
func TestBusURLUnreachableExits1(t *testing.T) {
	t.Parallel()
	sim := startSimProc(t, "--shards", "1", "--token", e2eToken)
	cfgPath, _ := writeSimConfig(t, t.TempDir(), sim.api, "")
	start := time.Now()
	p := startProc(t, "-config", cfgPath, "--headless", "--bus-url", "nats://127.0.0.1:1")
	stderr := assertExit(t, p, exitFailure, "shardtop: bus: cannot connect to nats://127.0.0.1:1: ")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("exiting took %s, want a few seconds", took)
	}
	if st := sim.stats(t); st.Identifies != 0 {
		t.Errorf("the sim saw %d identifies: shards were started without a bus", st.Identifies)
	}
	assertNoToken(t, "output", p.stdout.String(), stderr)
}

// TestBadBusURLExit2: a --bus-url that is no NATS URL, or that holds a
// password (it would be logged), is bad usage, without showing it.
func TestBadBusURLExit2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"http://127.0.0.1:4222", `-bus-url must be a nats://, tls://, ws:// or wss:// URL with a host, got "http://127.0.0.1:4222"`},
		{"nats://worker:" + busSecret + "@127.0.0.1:4222", "-bus-url must not hold a user or password"},
		{",", "-bus-url needs a NATS URL"},
	} {
		p := startProc(t, "--demo", "--headless", "--bus-url", tc.url)
		if stderr := assertExit(t, p, exitUsage, tc.want); strings.Contains(stderr, busSecret) {
			t.Errorf("the error shows the password:\n%s", stderr)
		}
	}
}

// TestBusURLExternal: --bus-url selects mode external: shardtop connects
// to that NATS server (one in the test process, requiring a token) with
// SHARDTOP_BUS_TOKEN and says so; without the token it exits 1 naming the
// URL and the refusal.
func TestBusURLExternal(t *testing.T) {
	t.Parallel()
	server, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: busSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Shutdown)
	sim := startSimProc(t, "--shards", "1", "--token", e2eToken)
	cfgPath, _ := writeSimConfig(t, t.TempDir(), sim.api, "")

	p := startProcEnv(t, []string{"SHARDTOP_BUS_TOKEN=" + busSecret}, "-config", cfgPath, "--headless", "--log-format", "json",
		"--bus-url", server.ClientURL())
	ready := waitBusReady(t, p)
	if ready["mode"] != "external" || ready["url"] != server.ClientURL() {
		t.Errorf(`"bus ready" line %v, want mode external and url %s`, ready, server.ClientURL())
	}
	waitAllReady(t, p, 30*time.Second)
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}

	p = startProc(t, "-config", cfgPath, "--headless", "--bus-url", server.ClientURL())
	stderr := assertExit(t, p, exitFailure, fmt.Sprintf("shardtop: bus: cannot connect to %s: ", server.ClientURL()), "Authorization Violation")
	if strings.Contains(stderr, busSecret) {
		t.Errorf("the error shows the token:\n%s", stderr)
	}
}
