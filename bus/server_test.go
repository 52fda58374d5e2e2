package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/shardtop/shardtop/internal/syncbuf"
)

// startServerT starts an embedded server for a test, on a free loopback
// port unless cfg says otherwise, with its store in a temporary folder; it
// is shut down at the end of the test.
func startServerT(t *testing.T, cfg ServerConfig) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = filepath.Join(t.TempDir(), "bus")
	}
	s, err := StartServer(cfg)
	if err != nil {
		t.Fatalf("StartServer(%s): %v", cfg.Listen, err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// connectT connects to s in-process and closes the connection at the end
// of the test.
func connectT(t *testing.T, s *Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := s.Connect(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

var clientURLPattern = regexp.MustCompile(`^nats://127\.0\.0\.1:(\d+)$`)

// TestServerStartStop: port 0 picks a free port and ClientURL names it;
// clients reach the server through that URL and in-process; after
// Shutdown nothing listens there and no goroutine of the server is left.
func TestServerStartStop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := filepath.Join(t.TempDir(), "store")
	s, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m := clientURLPattern.FindStringSubmatch(s.ClientURL())
	if m == nil || m[1] == "0" || m[1] == "4222" {
		t.Fatalf("ClientURL() = %q, want nats://127.0.0.1:PORT with the free port picked", s.ClientURL())
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("store folder %s: %v %v, want a folder with mode 0700", dir, fi, err)
	}

	overTCP, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connecting to %s: %v", s.ClientURL(), err)
	}
	inProcess, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	// A message from one client reaches the other: one server behind both.
	sub, err := overTCP.SubscribeSync("hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := overTCP.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := inProcess.Publish("hello", []byte("world")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(msg.Data) != "world" {
		t.Fatalf("message over the server: %v %v", msg, err)
	}
	overTCP.Close()
	inProcess.Close()

	s.Shutdown()
	s.Shutdown() // twice is harmless
	addr := strings.TrimPrefix(s.ClientURL(), "nats://")
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Shutdown", addr)
	}
}

// TestServerJetStream: the embedded server has JetStream, storing in
// StoreDir: a stream is created, takes messages and gives them back, and
// it is still there after a restart on the same folder.
func TestServerJetStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "store")
	s := startServerT(t, ServerConfig{StoreDir: dir})
	nc := connectT(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TEST", Subjects: []string{"test.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("creating a stream: %v", err)
	}
	for i := range 3 {
		ack, err := js.Publish(ctx, fmt.Sprintf("test.ev.%d", i), []byte(fmt.Sprintf("event %d", i)))
		if err != nil || ack.Sequence != uint64(i+1) {
			t.Fatalf("publish %d: %+v %v", i, ack, err)
		}
	}
	readAll := func(stream jetstream.Stream) []string {
		t.Helper()
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.FetchNoWait(10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for msg := range batch.Messages() {
			got = append(got, msg.Subject()+"="+string(msg.Data()))
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := "[test.ev.0=event 0 test.ev.1=event 1 test.ev.2=event 2]"
	if got := fmt.Sprint(readAll(stream)); got != want {
		t.Fatalf("read back %s, want %s", got, want)
	}
	nc.Close()
	s.Shutdown()

	// The same folder, a new server: file storage kept the stream.
	again := startServerT(t, ServerConfig{StoreDir: dir})
	js, err = jetstream.New(connectT(t, again))
	if err != nil {
		t.Fatal(err)
	}
	stream, err = js.Stream(ctx, "TEST")
	if err != nil {
		t.Fatalf("the stream after a restart: %v", err)
	}
	if got := fmt.Sprint(readAll(stream)); got != want {
		t.Errorf("after a restart read %s, want %s", got, want)
	}
}

// TestServerRefusesNonLoopbackWithoutCredentials: an address other than
// loopback without credentials is refused before anything is created, with
// an error naming the address.
func TestServerRefusesNonLoopbackWithoutCredentials(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:4222", "example.com:4222"} {
		dir := filepath.Join(t.TempDir(), "store")
		s, err := StartServer(ServerConfig{Listen: listen, StoreDir: dir})
		if err == nil {
			s.Shutdown()
			t.Errorf("%s without credentials: started", listen)
			continue
		}
		var se *ServerError
		if !errors.Is(err, ErrNoCredentials) || !errors.As(err, &se) || se.Listen != listen ||
			!strings.HasPrefix(err.Error(), "embedded NATS server on "+listen+": ") {
			t.Errorf("%s without credentials: %v; want a *ServerError naming it and matching ErrNoCredentials", listen, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the store folder was created (%v) although the server was refused", listen, err)
		}
	}
	for _, listen := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0", "127.0.0.2:0"} {
		host, _, _ := net.SplitHostPort(listen)
		if !IsLoopback(host) {
			t.Errorf("IsLoopback(%q) = false", host)
		}
	}
}

// TestServerCredentials: with a user and password (or a token), the
// server may listen beyond loopback and takes no client without them; the
// in-process connection of Connect presents them.
func TestServerCredentials(t *testing.T) {
	const user, password, token = "worker", "pass-never-logged-1234", "token-never-logged-5678"
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug - 8}))

	s := startServerT(t, ServerConfig{Listen: "0.0.0.0:0", User: user, Password: password, Logger: logger})
	if m := clientURLPattern.FindStringSubmatch(s.ClientURL()); m == nil {
		t.Errorf("ClientURL() = %q for a wildcard listen, want a loopback URL to dial", s.ClientURL())
	}
	for name, opts := range map[string][]nats.Option{
		"none":           nil,
		"wrong password": {nats.UserInfo(user, "wrong")},
		"a token":        {nats.Token(password)},
	} {
		if nc, err := nats.Connect(s.ClientURL(), opts...); !errors.Is(err, nats.ErrAuthorization) {
			if nc != nil {
				nc.Close()
			}
			t.Errorf("connecting with %s credentials: %v, want %v", name, err, nats.ErrAuthorization)
		}
	}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, password))
	if err != nil {
		t.Fatalf("connecting with the credentials: %v", err)
	}
	nc.Close()
	// The in-process connection is let in, and JetStream is there for it.
	js, err := jetstream.New(connectT(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Errorf("JetStream for the user: %v", err)
	}

	// A token set on loopback is required there too.
	withToken := startServerT(t, ServerConfig{Token: token, Logger: logger})
	if nc, err := nats.Connect(withToken.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Errorf("connecting without the token: %v, want %v", err, nats.ErrAuthorization)
	}
	nc, err = nats.Connect(withToken.ClientURL(), nats.Token(token))
	if err != nil {
		t.Fatalf("connecting with the token: %v", err)
	}
	nc.Close()
	if js, err = jetstream.New(connectT(t, withToken)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Errorf("JetStream with the token: %v", err)
	}

	// The server logged through slog, even at its most verbose, and
	// never the credentials.
	text := logs.String()
	if !strings.Contains(text, "component=nats-server") {
		t.Errorf("no line of the server in the log:\n%s", text)
	}
	if strings.Contains(text, password) || strings.Contains(text, token) {
		t.Errorf("the log shows a credential:\n%s", text)
	}

	for _, cfg := range []ServerConfig{
		{User: user},
		{Password: password},
		{User: user, Password: password, Token: token},
		{Token: token, Password: password},
	} {
		cfg.StoreDir = t.TempDir()
		cfg.Listen = "127.0.0.1:0"
		if s, err := StartServer(cfg); !errors.Is(err, ErrBadCredentials) || strings.Contains(err.Error(), password) {
			if s != nil {
				s.Shutdown()
			}
			t.Errorf("user %q, password set %v, token set %v: %v, want ErrBadCredentials without the secrets",
				cfg.User, cfg.Password != "", cfg.Token != "", err)
		}
	}
}

// TestServerStartFailures: a port already taken and a store folder that
// cannot be made fail at once, naming the address, and leave nothing
// running; so does an address that is not HOST:PORT.
func TestServerStartFailures(t *testing.T) {
	first := startServerT(t, ServerConfig{})
	u, err := url.Parse(first.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	taken := u.Host
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	for _, tc := range []struct {
		name string
		cfg  ServerConfig
		want string
	}{
		{"port taken", ServerConfig{Listen: taken, StoreDir: t.TempDir()}, "listen tcp " + taken + ": bind: address already in use"},
		{"store is a file", ServerConfig{Listen: "127.0.0.1:0", StoreDir: notADir}, "JetStream storage folder"},
		{"store inside a file", ServerConfig{Listen: "127.0.0.1:0", StoreDir: filepath.Join(notADir, "sub")}, "JetStream storage folder"},
		{"no store", ServerConfig{Listen: "127.0.0.1:0"}, ErrNoStoreDir.Error()},
		{"no port", ServerConfig{Listen: "127.0.0.1", StoreDir: t.TempDir()}, "want HOST:PORT"},
		{"bad port", ServerConfig{Listen: "127.0.0.1:70000", StoreDir: t.TempDir()}, "not a number from 0 to 65535"},
	} {
		start := time.Now()
		tc.cfg.Logger = logger
		s, err := StartServer(tc.cfg)
		if err == nil {
			s.Shutdown()
			t.Errorf("%s: started", tc.name)
			continue
		}
		var se *ServerError
		if !errors.As(err, &se) || se.Listen != tc.cfg.Listen || !strings.Contains(err.Error(), "embedded NATS server on "+tc.cfg.Listen+": ") ||
			!strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want a *ServerError naming %s and saying %q", tc.name, err, tc.cfg.Listen, tc.want)
		}
		if tc.name == "port taken" && !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("%s: %v does not match syscall.EADDRINUSE", tc.name, err)
		}
		if took := time.Since(start); took > serverReadyTimeout/2 {
			t.Errorf("%s: failing took %s", tc.name, took)
		}
	}
	// The error is returned, not also logged.
	if text := logs.String(); text != "" {
		t.Errorf("failures to start were logged too:\n%s", text)
	}
	if data, err := os.ReadFile(notADir); err != nil || string(data) != "precious\n" {
		t.Errorf("the file in the store's place was changed: %q %v", data, err)
	}
}

// TestServerLogsQuietly: at info, starting and stopping the server logs
// nothing (its banner is debug); its warnings would show.
func TestServerLogsQuietly(t *testing.T) {
	logs := &syncbuf.Buffer{}
	s := startServerT(t, ServerConfig{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	connectT(t, s).Close()
	s.Shutdown()
	if text := logs.String(); text != "" {
		t.Errorf("the server logged at info:\n%s", text)
	}
}
