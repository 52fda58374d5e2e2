package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultListen is where the embedded server listens unless told otherwise:
// loopback, NATS's usual port.
const DefaultListen = "127.0.0.1:4222"

// ServerMaxPayload is the largest message the embedded server accepts.
// NATS's default, 1 MiB, is below what Discord sends at times (the
// GUILD_CREATE of a large guild); 8 MiB is the largest size nats-server
// takes without warning.
const ServerMaxPayload = 8 << 20

// serverReadyTimeout bounds the wait for the server to accept connections
// once Start has returned (it returns with the listener open or failed, so
// this only matters on a machine that is badly stalled).
const serverReadyTimeout = 10 * time.Second

// Errors of StartServer, wrapped in a *ServerError naming the address.
var (
	// ErrNoCredentials means the server would listen beyond loopback
	// without a user and password or a token: anyone who reaches the port
	// could read every event and send gateway commands.
	ErrNoCredentials = errors.New("listening beyond loopback needs credentials: a user and password, or a token")
	// ErrBadCredentials means the credentials are incomplete or mixed: a
	// user needs a password (and the reverse), and a token goes alone.
	ErrBadCredentials = errors.New("credentials must be a user and a password, or a token alone")
	// ErrNoStoreDir means ServerConfig.StoreDir is empty: JetStream keeps
	// the stream there, and a default (the system's temporary folder) would
	// lose it or share it with another program.
	ErrNoStoreDir = errors.New("no JetStream storage folder (StoreDir)")
	// ErrNoRouteCredentials means the cluster's route listener is beyond
	// loopback without a route user and password: anyone who reaches it
	// could join the cluster and read every event.
	ErrNoRouteCredentials = errors.New("a cluster listener beyond loopback needs route credentials: a user and a password")
	// ErrBadRouteCredentials means only one of the route user and
	// password is set.
	ErrBadRouteCredentials = errors.New("route credentials must be a user and a password")
	// ErrNoClusterName means a cluster listener or routes are configured
	// without the cluster's name, which every server of it must share.
	ErrNoClusterName = errors.New("clustering needs a cluster name")
	// ErrNoClusterListen means routes are configured without a cluster
	// listener: the other servers could not route back.
	ErrNoClusterListen = errors.New("cluster routes need a cluster listener (HOST:PORT)")
	// ErrBadRoute means a route is not a nats-route://HOST:PORT URL.
	ErrBadRoute = errors.New("a route must be a nats-route://HOST:PORT URL")
)

// ClusterConfig makes the embedded server one of a NATS cluster, so that
// several machines share the bus and its JetStream (KV buckets and stream
// replicated across them). The zero value is a lone server.
type ClusterConfig struct {
	// Name is the cluster's name, the same on every server of it.
	Name string
	// Listen is HOST:PORT where the other servers' routes connect; port 0
	// picks a free one. Empty: not clustered.
	Listen string
	// Routes are the other servers, as nats-route://HOST:PORT URLs. A
	// server may list itself; nats-server ignores that route.
	Routes []string
	// ServerName names this server in the cluster, unique among its
	// servers (JetStream's replicas are placed by it). Empty: the
	// machine's host name.
	ServerName string
	// User and Password are the route credentials: the other servers'
	// routes must present them, and this server presents them on its
	// own routes (unless a route URL carries its own). Required when
	// Listen is not loopback. They are never logged.
	User, Password string
}

// clustered reports whether c configures a cluster at all.
func (c ClusterConfig) clustered() bool {
	return c.Listen != "" || len(c.Routes) > 0 || c.Name != ""
}

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Listen is HOST:PORT, DefaultListen if empty; port 0 picks a free one.
	Listen string
	// StoreDir is JetStream's storage folder, created (mode 0700) if missing.
	StoreDir string
	// Credentials: a user and password, or a token. Required when Listen
	// is not loopback. They are never logged.
	User, Password, Token string
	// Cluster makes the server one of a NATS cluster (zero: alone).
	Cluster ClusterConfig
	// Logger receives the server's lines: its errors and warnings at their
	// level, its notices and debug lines at debug (nil: none).
	Logger *slog.Logger
}

// ServerError is the embedded server failing to start. It names the
// address it was to listen on.
type ServerError struct {
	Listen string // the address, as configured
	Err    error  // what went wrong
}

// Error formats the problem as "embedded NATS server on ADDR: problem".
func (e *ServerError) Error() string {
	return "embedded NATS server on " + e.Listen + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *ServerError) Unwrap() error { return e.Err }

// Server is a NATS server with JetStream running inside this process: the
// bus of the default set-up, so that one binary is the whole of it.
type Server struct {
	ns        *server.Server
	clientURL string
	// clusterHost is the cluster listener's host, as configured.
	clusterHost string
	auth        []nats.Option // the credentials, for Connect
	shutdown    sync.Once
}

// StartServer starts the embedded server and returns once it accepts
// connections. Every failure is a *ServerError naming cfg.Listen.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	fail := func(err error) (*Server, error) { return nil, &ServerError{Listen: cfg.Listen, Err: err} }
	host, port, err := splitListen(cfg.Listen)
	if err != nil {
		return fail(err)
	}
	auth, err := serverAuth(cfg, host)
	if err != nil {
		return fail(err)
	}
	if cfg.StoreDir == "" {
		return fail(ErrNoStoreDir)
	}
	// The stream holds every event of the bot: the folder is private.
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return fail(fmt.Errorf("JetStream storage folder: %w", err))
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default port, 4222
	}
	opts := &server.Options{
		ServerName:             "shardtop",
		Host:                   host,
		Port:                   port,
		NoSigs:                 true, // the program handles its own signals
		MaxPayload:             ServerMaxPayload,
		JetStream:              true,
		StoreDir:               cfg.StoreDir,
		DisableJetStreamBanner: true,
		Username:               cfg.User,
		Password:               cfg.Password,
		Authorization:          cfg.Token,
	}
	if cfg.Cluster.clustered() {
		if err := clusterOptions(cfg.Cluster, opts); err != nil {
			return fail(err)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fail(err)
	}
	logger := newServerLogger(cfg.Logger)
	// Tracing logs every message: never on. Debug only when it is seen.
	ns.SetLoggerV2(logger, logger.enabled(serverDebugLevel), false, false)
	// Start returns once the listener is open, or after a failure it has
	// reported through the logger's Fatalf (the port is taken, the
	// storage folder cannot be written).
	ns.Start()
	if err := logger.fatal(); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fail(err)
	}
	if !ns.ReadyForConnections(serverReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fail(fmt.Errorf("not accepting connections after %s", serverReadyTimeout))
	}
	logger.started.Store(true)
	srv := &Server{ns: ns, clientURL: clientURL(host, ns.Addr()), auth: auth}
	if cfg.Cluster.clustered() {
		srv.clusterHost = opts.Cluster.Host
	}
	return srv, nil
}

// clusterOptions checks c and sets the cluster options of opts from it.
// Its errors say "cluster" and name the key at fault.
func clusterOptions(c ClusterConfig, opts *server.Options) error {
	if c.Name == "" {
		return ErrNoClusterName
	}
	if c.Listen == "" {
		return ErrNoClusterListen
	}
	host, port, err := splitListen(c.Listen)
	if err != nil {
		return fmt.Errorf("cluster listen %q: %w", c.Listen, err)
	}
	switch {
	case (c.User == "") != (c.Password == ""):
		return ErrBadRouteCredentials
	case c.User == "" && !IsLoopback(host):
		return ErrNoRouteCredentials
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	name := c.ServerName
	if name == "" {
		if name, err = os.Hostname(); err != nil || name == "" {
			return fmt.Errorf("cluster server name: none set and no host name: %w", err)
		}
	}
	routes := make([]*url.URL, 0, len(c.Routes))
	for i, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "nats-route" || u.Hostname() == "" || u.Port() == "" {
			return fmt.Errorf("cluster route %d (%q): %w", i+1, redactRoute(r), ErrBadRoute)
		}
		if u.User == nil && c.User != "" {
			u.User = url.UserPassword(c.User, c.Password)
		}
		routes = append(routes, u)
	}
	opts.ServerName = name
	opts.Cluster = server.ClusterOpts{
		Name:     c.Name,
		Host:     host,
		Port:     port,
		Username: c.User,
		Password: c.Password,
	}
	opts.Routes = routes
	return nil
}

// redactRoute is a route URL for an error message: without a password it
// may carry.
func redactRoute(r string) string {
	if u, err := url.Parse(r); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// splitListen parses HOST:PORT.
func splitListen(listen string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("want HOST:PORT: %w", err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return host, port, nil
}

// serverAuth checks the credentials of cfg against the host it listens on
// and returns the client options that present them.
func serverAuth(cfg ServerConfig, host string) ([]nats.Option, error) {
	switch {
	case cfg.Token != "" && (cfg.User != "" || cfg.Password != ""):
		return nil, ErrBadCredentials
	case (cfg.User == "") != (cfg.Password == ""):
		return nil, ErrBadCredentials
	case cfg.Token != "":
		return []nats.Option{nats.Token(cfg.Token)}, nil
	case cfg.User != "":
		return []nats.Option{nats.UserInfo(cfg.User, cfg.Password)}, nil
	case !IsLoopback(host):
		return nil, ErrNoCredentials
	}
	return nil, nil
}

// IsLoopback reports whether host (of a HOST:PORT) names only this machine:
// "localhost" or a loopback IP address. An empty host, a wildcard address
// and any other name are not loopback: they may be reached from elsewhere.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clientURL is the URL a client on this machine dials to reach a server
// listening on host (as configured) at addr (as listened on, for the
// port). A wildcard host ("", 0.0.0.0, ::) is no address to dial, so it
// becomes loopback: IPv6 for ::, else IPv4 (Go reports a wildcard IPv4
// listener as [::] on a dual-stack machine, so addr cannot tell).
func clientURL(host string, addr net.Addr) string {
	port := "0"
	if ta, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(ta.Port)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	u := url.URL{Scheme: "nats", Host: net.JoinHostPort(host, port)}
	return u.String()
}

// ClientURL is the URL that clients on this machine connect to, e.g.
// "nats://127.0.0.1:4222", with the port actually listened on. A wildcard
// Listen shows as loopback.
func (s *Server) ClientURL() string { return s.clientURL }

// ClusterURL is the route URL other servers of the cluster reach this one
// at, e.g. "nats-route://127.0.0.1:6222", with the port actually listened
// on; "" if the server is not clustered.
func (s *Server) ClusterURL() string {
	addr := s.ns.ClusterAddr()
	if addr == nil {
		return ""
	}
	u := clientURL(s.clusterHost, addr)
	return "nats-route" + strings.TrimPrefix(u, "nats")
}

// Name is the server's name in its cluster.
func (s *Server) Name() string { return s.ns.Name() }

// Connect returns a connection to the server that does not go through the
// network (in-process), with the server's credentials; opts come after
// them and so may override them.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{nats.InProcessServer(s.ns), nats.Name("shardtop")}, s.auth...)
	nc, err := nats.Connect(s.clientURL, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to the embedded NATS server at %s: %w", s.clientURL, err)
	}
	return nc, nil
}

// Shutdown stops the server, closing its connections, and returns once
// every goroutine of it has ended. It may be called more than once.
func (s *Server) Shutdown() {
	s.shutdown.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}

// serverDebugLevel is where the server's debug lines go: below slog's
// debug, as there are many of them.
const serverDebugLevel = slog.LevelDebug - 4

// serverLogger is nats-server's Logger on a slog.Logger. It keeps the
// first fatal error, which nats-server reports only through it.
type serverLogger struct {
	l *slog.Logger
	// started is set once StartServer has returned the server: fatal
	// errors before are its error, not log lines.
	started atomic.Bool

	mu       sync.Mutex
	firstErr error
}

func newServerLogger(l *slog.Logger) *serverLogger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &serverLogger{l: l.With("component", "nats-server")}
}

func (s *serverLogger) enabled(level slog.Level) bool {
	return s.l.Enabled(context.Background(), level)
}

func (s *serverLogger) log(level slog.Level, format string, v []any) {
	if s.enabled(level) {
		s.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (s *serverLogger) fatal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}

// Noticef logs a notice at debug: the server's start-up banner and the
// like say nothing the program does not say itself.
func (s *serverLogger) Noticef(format string, v ...any) { s.log(slog.LevelDebug, format, v) }

// Warnf logs a warning.
func (s *serverLogger) Warnf(format string, v ...any) { s.log(slog.LevelWarn, format, v) }

// Fatalf keeps the first fatal error: nats-server calls it when it cannot
// start (and would exit the process with its own logger). StartServer
// returns it, so it is logged only once the server runs.
func (s *serverLogger) Fatalf(format string, v ...any) {
	s.mu.Lock()
	if s.firstErr == nil {
		s.firstErr = fatalError(format, v)
	}
	s.mu.Unlock()
	if s.started.Load() {
		s.log(slog.LevelError, format, v)
	}
}

// fatalError is the error of a Fatalf call. A failed listen is its cause
// alone ("listen tcp 127.0.0.1:4222: bind: address already in use"), which
// says all; otherwise the message is nats-server's, and its error argument
// the cause, for errors.Is.
func fatalError(format string, v []any) error {
	var cause error
	for _, a := range v {
		if err, ok := a.(error); ok {
			cause = err
		}
	}
	if op := (*net.OpError)(nil); errors.As(cause, &op) && op.Op == "listen" {
		return cause
	}
	msg := fmt.Sprintf(format, v...)
	if cause == nil {
		return errors.New(msg)
	}
	return &wrappedError{msg: msg, cause: cause}
}

// wrappedError is a message with its cause.
type wrappedError struct {
	msg   string
	cause error
}

func (e *wrappedError) Error() string { return e.msg }
func (e *wrappedError) Unwrap() error { return e.cause }

// Errorf logs an error.
func (s *serverLogger) Errorf(format string, v ...any) { s.log(slog.LevelError, format, v) }

// Debugf logs a debug line at serverDebugLevel.
func (s *serverLogger) Debugf(format string, v ...any) { s.log(serverDebugLevel, format, v) }

// Tracef logs a protocol trace, further below (tracing is never enabled).
func (s *serverLogger) Tracef(format string, v ...any) { s.log(slog.LevelDebug-8, format, v) }
