package main

import (
	"context"
	"encoding/json"
	"github.com/shardtop/shardtop/internal/poll"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The tests in this file run `shardtop sim` as a process, as a developer
// testing a bot would.

// controlTokenEnvName is spelled out, not taken from internal/app, so that the
// documented name is what is tested.
const controlTokenEnvName = "SHARDTOP_SIM_CONTROL_TOKEN"

// anyAPILine is the sim's stdout line for any advertised host.
var anyAPILine = regexp.MustCompile(`^API (http://(\S+?))/api/v10\n`)

// startSimAt runs `shardtop sim` with args and returns it with the base URL
// and the host:port of its API line.
func startSimAt(t *testing.T, args ...string) (p *proc, base, hostport string) {
	t.Helper()
	p = startProc(t, append([]string{"sim"}, args...)...)
	var m []string
	poll.UntilState(t, 15*time.Second, "the sim's API line", func() (bool, string) {
		m = anyAPILine.FindStringSubmatch(p.stdout.String())
		return m != nil, "stdout: " + p.stdout.String() + "\nstderr: " + p.stderr.String()
	})
	return p, m[1], m[2]
}

// stopSim ends a sim with SIGINT and checks it exits cleanly, printed only
// its API line and showed no secret.
func stopSim(t *testing.T, p *proc, secrets ...string) {
	t.Helper()
	p.signal(t, syscall.SIGINT)
	if code := p.exitCode(t, 10*time.Second); code != exitOK {
		t.Errorf("sim exit %d after SIGINT; stderr:\n%s", code, p.stderr)
	}
	if out := p.stdout.String(); strings.Count(out, "\n") != 1 {
		t.Errorf("sim stdout must be exactly one API line, got %q", out)
	}
	for _, s := range append(secrets, e2eToken) {
		if strings.Contains(p.stdout.String()+p.stderr.String(), s) {
			t.Errorf("sim output shows a secret %q", s)
		}
	}
}

// simRequest sends method url with headers and returns the status and body.
func simRequest(t *testing.T, method, url string, header map[string]string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// gatewayURLs asks the sim's /gateway/bot for the gateway URL, identifies
// there as shard 0/1 and returns it with READY's resume_gateway_url.
func gatewayURLs(t *testing.T, api string) (gateway, resume string) {
	t.Helper()
	var gw struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, api+"/gateway/bot", e2eToken)), &gw); err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(gw.URL+"?v=10&encoding=json", nil)
	if err != nil {
		t.Fatalf("dial the advertised gateway %s: %v", gw.URL, err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hello struct{ Op int }
	if err := ws.ReadJSON(&hello); err != nil || hello.Op != 10 {
		t.Fatalf("Hello: %+v %v", hello, err)
	}
	identify := map[string]any{"op": 2, "d": map[string]any{"token": e2eToken, "intents": 0, "shard": []int{0, 1},
		"properties": map[string]string{"os": "linux", "browser": "test", "device": "test"}}}
	if err := ws.WriteJSON(identify); err != nil {
		t.Fatal(err)
	}
	var ready struct {
		T string
		D struct {
			ResumeGatewayURL string `json:"resume_gateway_url"`
		}
	}
	if err := ws.ReadJSON(&ready); err != nil || ready.T != "READY" {
		t.Fatalf("READY: %+v %v", ready, err)
	}
	return gw.URL, ready.D.ResumeGatewayURL
}

// TestSimWildcardNeedsControlToken: `shardtop sim --addr 0.0.0.0:0` without
// a control token does not start: anyone reaching the port could drive the
// control endpoints. It says how to give one.
func TestSimWildcardNeedsControlToken(t *testing.T) {
	t.Setenv(controlTokenEnvName, "") // a developer's own must not change the test
	code, out, errOut := runProc(t, "sim", "--addr", "0.0.0.0:0")
	if code != exitUsage || out != "" {
		t.Fatalf("exit %d, stdout %q, want exit %d and nothing; stderr:\n%s", code, out, exitUsage, errOut)
	}
	for _, want := range []string{"0.0.0.0:0", "not a loopback address", "-control-token", controlTokenEnvName} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not say %q:\n%s", want, errOut)
		}
	}
}

// TestSimWildcardAdvertisesUsableHost: on a wildcard address the API line,
// /gateway/bot and READY's resume_gateway_url carry a host a bot can
// connect to, not [::] or 0.0.0.0, and the control endpoints want the
// token (here from the environment) but refuse a web page even with it.
func TestSimWildcardAdvertisesUsableHost(t *testing.T) {
	const ctl = "ctl-secret-from-env"
	t.Setenv(controlTokenEnvName, ctl)
	p, base, hostport := startSimAt(t, "--addr", "0.0.0.0:0", "--token", e2eToken)
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() || port == "0" {
		t.Fatalf("API line advertises %s", hostport)
	}
	gateway, resume := gatewayURLs(t, base+"/api/v10")
	if gateway != "ws://"+hostport+"/gateway" || resume != "ws://"+hostport+"/gateway-resume" {
		t.Errorf("gateway %s, resume_gateway_url %s, want them on %s", gateway, resume, hostport)
	}
	bearer := map[string]string{"Authorization": "Bearer " + ctl}
	for _, tc := range []struct {
		method, path string
		header       map[string]string
		want         int
	}{
		{"GET", "/_sim/sessions", nil, 401},
		{"POST", "/_sim/close?shard=0&code=4004", map[string]string{"Authorization": "Bearer wrong"}, 401},
		{"POST", "/_sim/close?shard=0&code=4004", map[string]string{"Authorization": "Bearer " + ctl, "Origin": "http://evil.example"}, 403},
		{"GET", "/_sim/stats", bearer, 200},
	} {
		if code, body := simRequest(t, tc.method, base+tc.path, tc.header); code != tc.want {
			t.Errorf("%s %s %v: %d %s, want %d", tc.method, tc.path, tc.header, code, body, tc.want)
		}
	}
	if _, body := simRequest(t, "GET", base+"/_sim/stats", bearer); !strings.Contains(body, `"Closes":{}`) {
		t.Errorf("a refused control request acted: %s", body)
	}
	stopSim(t, p, ctl)
}

// TestSimAdvertiseFlag: --advertise sets the host (and the port, if given)
// of the API line and of every URL the sim hands a bot; --control-token
// works on loopback too.
func TestSimAdvertiseFlag(t *testing.T) {
	t.Setenv(controlTokenEnvName, "")
	p, base, hostport := startSimAt(t, "--advertise", "localhost", "--token", e2eToken, "--control-token", "ctl-flag")
	if !strings.HasPrefix(hostport, "localhost:") {
		t.Fatalf("API line advertises %s, want localhost:PORT", hostport)
	}
	gateway, resume := gatewayURLs(t, base+"/api/v10")
	if gateway != "ws://"+hostport+"/gateway" || resume != "ws://"+hostport+"/gateway-resume" {
		t.Errorf("gateway %s, resume_gateway_url %s, want them on %s", gateway, resume, hostport)
	}
	if code, _ := simRequest(t, "GET", base+"/_sim/stats", nil); code != 401 {
		t.Errorf("GET /_sim/stats without the control token: %d, want 401", code)
	}
	if code, _ := simRequest(t, "GET", base+"/_sim/stats", map[string]string{"Authorization": "Bearer ctl-flag"}); code != 200 {
		t.Errorf("GET /_sim/stats with the control token: %d, want 200", code)
	}
	stopSim(t, p)

	p, _, hostport = startSimAt(t, "--advertise", "sim.example:4444")
	if hostport != "sim.example:4444" {
		t.Errorf("API line advertises %s, want sim.example:4444", hostport)
	}
	stopSim(t, p)
}

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
		{[]string{"--advertise", "http://sim.example"}, "-advertise"},
		{[]string{"--advertise", "0.0.0.0"}, "-advertise"},
		{[]string{"--advertise", "sim.example:0"}, "-advertise"},
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

// TestSimUsage: the usage text tells of the control endpoints' guards.
func TestSimUsage(t *testing.T) {
	code, _, errOut := runProc(t, "sim", "-h")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"-advertise", "-control-token", controlTokenEnvName, "Authorization: Bearer", "Origin"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("usage does not mention %q:\n%s", want, errOut)
		}
	}
}
