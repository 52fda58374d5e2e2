package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/internal/config"
	"github.com/shardtop/shardtop/internal/secret"
	"github.com/shardtop/shardtop/internal/syncbuf"
)

// TestBusURLFlag: --bus-url selects mode external with its URLs (several
// separated by commas); a URL that is no NATS URL, or holds a password, is
// a usage error.
func TestBusURLFlag(t *testing.T) {
	o, err := parseOptions([]string{"--bus-url", "nats://10.0.0.1:4222, tls://nats.example.com:4443"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	if err := applyOverrides(&cfg, o); err != nil {
		t.Fatal(err)
	}
	if cfg.Bus.Mode != config.BusExternal || !slices.Equal(cfg.Bus.URL, []string{"nats://10.0.0.1:4222", "tls://nats.example.com:4443"}) {
		t.Errorf("after --bus-url: mode %q, url %v", cfg.Bus.Mode, cfg.Bus.URL)
	}
	// Without the flag the config's mode stays.
	o, _ = parseOptions(nil, io.Discard)
	cfg = config.Default()
	if err := applyOverrides(&cfg, o); err != nil || cfg.Bus.Mode != config.BusEmbedded {
		t.Errorf("without --bus-url: mode %q, %v", cfg.Bus.Mode, err)
	}
	for _, bad := range []string{"127.0.0.1:4222", "http://h:1", "nats://u:secret-pw@h:1", "", " , "} {
		_, err := parseOptions([]string{"--bus-url", bad}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-bus-url") || strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("--bus-url %q: %v, want a usage error naming the flag, without the password", bad, err)
		}
	}
}

// busSupervisor is a supervisor with what startBus needs.
func busSupervisor(t *testing.T, cfg config.Config, creds config.BusCredentials) (*supervisor, *syncbuf.Buffer) {
	t.Helper()
	stderr := &syncbuf.Buffer{}
	logs := slog.New(slog.NewTextHandler(stderr, nil))
	return &supervisor{cfg: cfg, busCreds: creds, stderr: stderr, logger: logs, internal: logs}, stderr
}

// TestStartBusEmbedded: mode embedded starts the server in the process,
// with its credentials, and connects to it; release stops both.
func TestStartBusEmbedded(t *testing.T) {
	cfg := config.Default()
	cfg.Bus.Listen = "127.0.0.1:0"
	cfg.StateFile = filepath.Join(t.TempDir(), "state.toml")
	s, stderr := busSupervisor(t, cfg, config.BusCredentials{User: "worker", Password: secret.New("pw-of-the-test")})
	if status, ok := s.startBus(context.Background()); !ok {
		t.Fatalf("startBus: status %d; stderr:\n%s", status, stderr)
	}
	if s.busServer == nil || s.busConn == nil || !s.busConn.IsConnected() || s.busURL != s.busServer.ClientURL() {
		t.Fatalf("after startBus: server %v, conn %v, url %q", s.busServer, s.busConn, s.busURL)
	}
	if !strings.Contains(stderr.String(), `msg="bus ready" mode=embedded url=`+s.busURL) {
		t.Errorf("no \"bus ready\" line with the mode and URL:\n%s", stderr)
	}
	// The server takes the configured user only.
	if nc, err := nats.Connect(s.busURL); err == nil {
		nc.Close()
		t.Errorf("a client without credentials connected to %s", s.busURL)
	}
	nc, err := nats.Connect(s.busURL, nats.UserInfo("worker", "pw-of-the-test"))
	if err != nil {
		t.Fatalf("a client with the credentials: %v", err)
	}
	nc.Close()

	addr := strings.TrimPrefix(s.busURL, "nats://")
	s.releaseBus()
	if !s.busConn.IsClosed() {
		t.Errorf("the connection is open after release")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the embedded server still listens on %s after release", addr)
	}
	if strings.Contains(stderr.String(), "pw-of-the-test") {
		t.Errorf("the log shows the password:\n%s", stderr)
	}
}

// TestStartBusExternal: mode external connects to the URLs with the
// credentials, never giving up on reconnecting once connected; a server
// that refuses them, or none there, is exit 1 naming the URL.
func TestStartBusExternal(t *testing.T) {
	server, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: "token-of-the-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Shutdown()
	cfg := config.Default()
	cfg.Bus.Mode = config.BusExternal
	cfg.Bus.URL = config.BusURLs{"nats://127.0.0.1:1", server.ClientURL()} // the first is down: the next is tried

	s, stderr := busSupervisor(t, cfg, config.BusCredentials{Token: secret.New("token-of-the-test")})
	if status, ok := s.startBus(context.Background()); !ok {
		t.Fatalf("startBus: status %d; stderr:\n%s", status, stderr)
	}
	if s.busServer != nil || !s.busConn.IsConnected() || s.busConn.ConnectedUrl() != server.ClientURL() {
		t.Errorf("after startBus: embedded server %v, connected %v to %q", s.busServer, s.busConn.IsConnected(), s.busConn.ConnectedUrl())
	}
	if s.busURL != "nats://127.0.0.1:1,"+server.ClientURL() {
		t.Errorf("busURL %q, want both URLs", s.busURL)
	}
	if o := s.busConn.Opts; o.MaxReconnect != -1 || o.Timeout != busConnectTimeout {
		t.Errorf("connection options: max reconnects %d, timeout %s; want -1 (forever) and %s", o.MaxReconnect, o.Timeout, busConnectTimeout)
	}
	s.releaseBus()

	for _, tc := range []struct {
		name  string
		urls  config.BusURLs
		creds config.BusCredentials
		want  string
	}{
		{"wrong token", config.BusURLs{server.ClientURL()}, config.BusCredentials{Token: secret.New("wrong")}, "Authorization Violation"},
		{"nothing there", config.BusURLs{"nats://127.0.0.1:1"}, config.BusCredentials{}, "no servers available"},
	} {
		cfg.Bus.URL = tc.urls
		s, stderr := busSupervisor(t, cfg, tc.creds)
		status, ok := s.startBus(context.Background())
		s.releaseBus()
		if ok || status != exitFailure || !strings.Contains(stderr.String(), "shardtop: bus: cannot connect to "+tc.urls.String()+": ") ||
			!strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: status %d ok %v; stderr:\n%s", tc.name, status, ok, stderr)
		}
	}

	// A signal during the dial ends it: a normal stop, nothing said.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg.Bus.URL = config.BusURLs{server.ClientURL()}
	s, stderr = busSupervisor(t, cfg, config.BusCredentials{Token: secret.New("token-of-the-test")})
	status, ok := s.startBus(ctx)
	s.releaseBus()
	if ok || status != exitOK || stderr.String() != "" {
		t.Errorf("start-up cancelled: status %d ok %v; stderr:\n%s", status, ok, stderr)
	}
}

// TestStartBusOff: mode off starts nothing.
func TestStartBusOff(t *testing.T) {
	cfg := config.Default()
	cfg.Bus.Mode = config.BusOff
	s, stderr := busSupervisor(t, cfg, config.BusCredentials{})
	if status, ok := s.startBus(context.Background()); !ok || status != exitOK || s.busConn != nil || s.busServer != nil || s.bus != nil || s.busURL != "" {
		t.Errorf("mode off: status %d ok %v, conn %v server %v bus %v url %q", status, ok, s.busConn, s.busServer, s.bus, s.busURL)
	}
	if stderr.String() != "" {
		t.Errorf("mode off said something:\n%s", stderr)
	}
}
