// Package app is the shardtop program behind its main: the command line,
// the wiring of config, store, manager, metrics and TUI or headless logging
// (supervise), the --demo simulator, signal handling and the sim and tail
// subcommands.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/config"
	"github.com/shardtop/shardtop/internal/metrics"
	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/store"
	"github.com/shardtop/shardtop/tui"
)

// shutdownTimeout bounds the graceful stop: closing every shard resumable and
// flushing the state file. Shards answer within a round trip; this only
// matters when the network is gone.
const shutdownTimeout = 10 * time.Second

// Run is the whole program behind main: it runs shardtop with the
// command-line args (without the program name) and returns the exit
// status. version is the one set at link time, "" for the module version
// from the build info; getenv is os.Getenv outside tests.
func Run(version string, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) > 0 && args[0] == "sim" {
		return runSim(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "tail" {
		return runTail(args[1:], stdout, stderr, getenv)
	}
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "shardtop:", err)
		return exitUsage
	}
	if o.showVersion {
		fmt.Fprintln(stdout, versionString(version))
		return exitOK
	}
	ctx, stop := signalContext(stderr)
	defer stop()
	return supervise(ctx, o, stderr, getenv)
}

// supervise runs the shard manager with the TUI or headless until ctx ends
// (a signal) or the TUI quits, then closes every shard resumable.
func supervise(ctx context.Context, o options, stderr io.Writer, getenv func(string) string) int {
	s := &supervisor{o: o, stderr: stderr}
	defer s.release()
	if status, ok := s.setup(ctx, getenv); !ok {
		return status
	}
	status, opened := s.run(ctx)
	return s.shutdown(ctx, status, opened)
}

// supervisor is one run of supervise. setup fills it step by step, run
// opens the manager and hands it to the TUI or the headless logger,
// shutdown closes every shard resumable, and release frees what setup
// took, in the reverse order. A step that fails has said why on stderr
// and returns the exit status it calls for with ok false.
type supervisor struct {
	o      options
	stderr io.Writer

	cfg         config.Config
	token       string
	tokenSource string                  // where the token came from, for a 401
	busCreds    config.BusCredentials   // the bus's, from the environment or files
	routeCreds  config.RouteCredentials // the embedded server's routes', with [bus.cluster]
	warnings    []string                // about the token and bus secrets, said once the loggers exist

	logger   *slog.Logger // the program's own lines
	internal *slog.Logger // the manager's, gateway's and store's
	held     *heldLines   // internal's lines while the TUI owns the terminal

	sim     *discordsim.Server // --demo's simulator
	demoDir string             // --demo's temporary state directory
	st      *store.File
	// The event bus, in the order setup takes them: the embedded server
	// (mode embedded), the connection to it or to the external one, and
	// the bus on that connection.
	busServer *bus.Server
	busConn   *nats.Conn
	bus       eventBus
	// busURL is where workers connect ("" with mode off): the embedded
	// server's client URL or the external URLs, for the log and the TUI.
	busURL  string
	cluster *clusterRun // with [cluster] enabled: leases, shared limiter, ownership, view
	m       *manager.Manager
	metrics *metrics.Server
	events  <-chan manager.Event // headless: lifecycle events
	unsub   func()               // ends the subscription to events
}

// setup loads the configuration and token, builds the loggers, opens the
// state file, starts the event bus and creates the manager and the
// metrics server.
func (s *supervisor) setup(ctx context.Context, getenv func(string) string) (status int, ok bool) {
	if status, ok := s.configure(getenv); !ok {
		return status, false
	}
	s.setupLogging()
	if status, ok := s.openStore(); !ok {
		return status, false
	}
	if status, ok := s.startBus(ctx); !ok {
		return status, false
	}
	if status, ok := s.startCluster(ctx); !ok {
		return status, false
	}
	return s.startManager(ctx)
}

// configure takes the configuration and token from the demo or from the
// config file and the environment, applies the flags over them and checks
// that the TUI has a terminal, before anything is started.
func (s *supervisor) configure(getenv func(string) string) (status int, ok bool) {
	if s.o.demo {
		if err := s.startDemo(); err != nil {
			fmt.Fprintln(s.stderr, "shardtop: demo:", err)
			return exitFailure, false
		}
	} else if status, ok := s.readConfig(getenv); !ok {
		return status, false
	}
	if err := applyOverrides(&s.cfg, s.o); err != nil {
		fmt.Fprintln(s.stderr, "shardtop:", err)
		return exitUsage, false
	}
	// The bus's secrets: after the flags (--bus-url changes the mode), and
	// not from the environment for the demo's own server, which takes none.
	busEnv := getenv
	if s.o.demo && s.cfg.Bus.Mode == config.BusEmbedded {
		busEnv = func(string) string { return "" }
	}
	creds, warnings, err := s.cfg.ResolveBus(busEnv)
	if err != nil {
		fmt.Fprintln(s.stderr, "shardtop: bad config:", err)
		return exitUsage, false
	}
	s.busCreds, s.warnings = creds, append(s.warnings, warnings...)
	routeCreds, warnings, err := s.cfg.ResolveBusCluster(busEnv)
	if err != nil {
		fmt.Fprintln(s.stderr, "shardtop: bad config:", err)
		return exitUsage, false
	}
	s.routeCreds, s.warnings = routeCreds, append(s.warnings, warnings...)
	if !s.o.headless {
		if err := checkTerminal(); err != nil {
			fmt.Fprintf(s.stderr, "shardtop: %v; run with --headless to log lifecycle events on stderr instead\n", err)
			return exitUsage, false
		}
	}
	return exitOK, true
}

// startDemo starts the in-process simulator of --demo and configures the
// run against it.
func (s *supervisor) startDemo() error {
	sim, err := startDemoSim()
	if err != nil {
		return err
	}
	s.sim = sim
	s.cfg, s.token = demoConfig(sim)
	// The demo's sessions die with its in-process simulator: keeping
	// them is pointless (parseOptions refuses --state-file with it).
	dir, err := os.MkdirTemp("", "shardtop-demo-")
	if err != nil {
		return err
	}
	s.demoDir = dir
	s.cfg.StateFile = filepath.Join(dir, "state.toml")
	// Its bus: the embedded server on a free port, storing with the state.
	s.cfg.Bus.Listen = demoBusListen
	s.cfg.Bus.StoreDir = filepath.Join(dir, "bus")
	return nil
}

// readConfig reads the config file and finds the bot token.
func (s *supervisor) readConfig(getenv func(string) string) (status int, ok bool) {
	cfg, err := loadConfig(s.o)
	if err != nil {
		fmt.Fprintln(s.stderr, "shardtop: bad config:", err)
		return exitUsage, false
	}
	s.cfg = cfg
	s.token, s.tokenSource, s.warnings, err = cfg.ResolveToken(getenv)
	if err != nil {
		hint := ""
		if errors.Is(err, config.ErrNoToken) {
			hint = " (or try --demo, which needs none)"
		}
		fmt.Fprintln(s.stderr, "shardtop:", err.Error()+hint)
		return exitUsage, false
	}
	return exitOK, true
}

// setupLogging builds the loggers and says the token's warnings.
func (s *supervisor) setupLogging() {
	// In the TUI, log lines would tear the screen: the TUI shows events
	// itself, and the warnings of the manager, gateway and store wait in
	// held until it has ended.
	s.logger = slog.New(slog.DiscardHandler)
	s.held = &heldLines{}
	s.internal = slog.New(slog.NewTextHandler(s.held, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if s.o.headless {
		s.logger, s.internal = newLoggers(s.cfg, s.stderr)
	}
	for _, w := range s.warnings {
		s.warn(w)
	}
}

// warn says msg in the log when headless, else on stderr, where it is seen
// once the TUI ends.
func (s *supervisor) warn(msg string) {
	if s.o.headless {
		s.logger.Warn(msg)
	} else {
		fmt.Fprintln(s.stderr, "shardtop: warning:", msg)
	}
}

// openStore opens the state file, saying so when an unreadable one was
// moved aside (--fresh-state).
func (s *supervisor) openStore() (status int, ok bool) {
	opts := []store.Option{store.WithLogger(s.internal)}
	if s.o.freshState {
		opts = append(opts, store.WithStartFresh())
	}
	st, err := store.OpenFile(s.cfg.StateFile, opts...)
	if err != nil {
		fmt.Fprintln(s.stderr, "shardtop: state file:", err)
		if errors.Is(err, store.ErrCorrupt) {
			fmt.Fprintln(s.stderr, "shardtop: nothing was changed; to start without saved sessions, run again with --fresh-state (the file is kept beside it)")
		}
		return exitFailure, false
	}
	s.st = st
	if aside, cause := st.MovedAside(); aside != "" {
		s.warn(fmt.Sprintf("state file %s was unreadable (%v); moved it to %s and started without saved sessions", s.cfg.StateFile, cause, aside))
	}
	return exitOK, true
}

// startManager creates the manager, handing it the bus if there is one,
// and, with metrics_addr, the metrics server.
func (s *supervisor) startManager(ctx context.Context) (status int, ok bool) {
	opts := managerOptions(s.cfg, s.st, s.internal)
	if s.bus != nil {
		opts = append(opts, s.bus.managerOptions()...)
	}
	if s.cluster != nil {
		opts = append(opts, s.cluster.managerOptions(ctx, s)...)
	}
	m, err := manager.New(s.token, opts...)
	if err != nil {
		fmt.Fprintln(s.stderr, "shardtop:", err)
		return exitUsage, false
	}
	s.m = m
	if s.cfg.MetricsAddr != "" {
		var mopts []metrics.Option
		if s.bus != nil {
			mopts = append(mopts, metrics.WithBus(s.bus))
		}
		if s.cluster != nil {
			mopts = append(mopts, metrics.WithNode(s.cluster.node))
		}
		ms, err := metrics.Start(s.cfg.MetricsAddr, m, s.logger, mopts...)
		if err != nil {
			fmt.Fprintln(s.stderr, "shardtop: metrics:", err)
			_ = m.Close(context.Background())
			return exitFailure, false
		}
		s.metrics = ms
	}
	return exitOK, true
}

// run opens the manager and runs the headless logger or the TUI until ctx
// ends or the TUI quits. opened reports whether Open succeeded.
func (s *supervisor) run(ctx context.Context) (status int, opened bool) {
	if s.o.headless {
		// Subscribe before Open so that the first queued and identifying states are logged too.
		s.events, s.unsub = s.m.Subscribe(eventBuffer)
	}
	status, opened = openManager(ctx, s.m, s.stderr, s.tokenSource)
	if !opened {
		return status, false
	}
	if s.bus != nil {
		if err := s.bus.serve(s.m); err != nil {
			return s.fail("bus: serving commands on "+s.busURL, err), true
		}
	}
	if s.cluster != nil {
		if err := s.cluster.start(ctx, s); err != nil {
			if ctx.Err() != nil {
				return exitOK, true
			}
			return s.fail("cluster: ownership on "+s.busURL, err), true
		}
	}
	if s.o.headless {
		return runHeadless(ctx, s.m, s.events, s.logger, s.cluster != nil), true
	}
	var b tui.Bus
	if s.bus != nil {
		b = s.bus
	}
	var ui tui.Manager = s.m
	if s.cluster != nil {
		ui = s.cluster.view // every node's shards, acting through their owners
	}
	return runInteractive(ctx, ui, b, s.cfg, s.stderr), true
}

// shutdown closes every shard resumable and saves the state file, within
// shutdownTimeout, and says how many sessions were saved. It returns
// status, or exitFailure if closing or saving failed.
func (s *supervisor) shutdown(ctx context.Context, status int, opened bool) int {
	if ctx.Err() != nil {
		s.logger.Info("signal received: closing every shard resumable")
	}
	drained := s.drainEvents(opened)
	closeCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	start := time.Now()
	handed := -1 // shards handed over to the cluster, -1 when not clustered
	if s.cluster != nil && opened {
		handed = s.cluster.held()
		if err := s.cluster.leave(closeCtx); err != nil {
			status = s.fail("cluster: handing the shards over", err)
		}
	}
	if err := s.m.Close(closeCtx); err != nil {
		status = s.fail("closing shards", err)
	}
	<-drained
	if err := s.st.Close(); err != nil {
		status = s.fail("saving the state file", err)
	}
	switch {
	case status != exitOK || !opened:
	case handed >= 0:
		s.logger.Info(fmt.Sprintf("stopped: %d shards handed over to the cluster", handed),
			"node", s.cluster.node, "took", time.Since(start).Round(time.Millisecond).String())
		if !s.o.headless {
			fmt.Fprintf(s.stderr, "shardtop: stopped: %d shards handed over to the cluster\n", handed)
		}
	default:
		s.reportSaved(start)
	}
	return status
}

// drainEvents keeps logging lifecycle events while the shards close, when
// headless (Close ends the subscription, which ends the drain); otherwise
// it ends the subscription, if any. The channel closes once it is done.
func (s *supervisor) drainEvents(opened bool) <-chan struct{} {
	drained := make(chan struct{})
	if s.o.headless && opened {
		go func() {
			defer close(drained)
			for ev := range s.events {
				logEvent(s.logger, ev)
			}
		}()
		return drained
	}
	if s.unsub != nil {
		s.unsub()
	}
	close(drained)
	return drained
}

// fail says what failed during shutdown, in the log when headless,
// and returns exitFailure.
func (s *supervisor) fail(what string, err error) int {
	if s.o.headless {
		s.logger.Error(what, "err", err)
	} else {
		fmt.Fprintf(s.stderr, "shardtop: %s: %v\n", what, err)
	}
	return exitFailure
}

// reportSaved says how many sessions were saved for the next run, and how
// long the shutdown that began at start took.
func (s *supervisor) reportSaved(start time.Time) {
	saved, total := savedSessions(s.m.Snapshot())
	msg := fmt.Sprintf("stopped: %d of %d sessions saved", saved, total)
	switch {
	case saved == 0:
		msg = "stopped: no session to save (no shard had one yet)"
	case total-saved == 1:
		msg += "; 1 shard had none yet and will identify"
	case saved < total:
		msg += fmt.Sprintf("; %d shards had none yet and will identify", total-saved)
	}
	took := time.Since(start).Round(time.Millisecond)
	if s.o.headless {
		s.logger.Info(msg, "state_file", s.cfg.StateFile, "took", took.String())
	} else if !s.o.demo { // the demo's state file dies with it
		fmt.Fprintf(s.stderr, "shardtop: %s in %s\n", msg, s.cfg.StateFile)
	}
}

// release frees what setup took, in the reverse order: the metrics
// server, the event bus (after the manager's Close, which flushed it), the
// state file (already closed after a shutdown), the held log lines (printed
// now that the TUI has ended), and the demo's state directory and
// simulator.
func (s *supervisor) release() {
	if s.metrics != nil {
		_ = s.metrics.Close()
	}
	if s.cluster != nil {
		s.cluster.close() // on the bus connection: before it closes
	}
	s.releaseBus()
	if s.st != nil {
		if err := s.st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			fmt.Fprintln(s.stderr, "shardtop: state file:", err)
		}
	}
	if s.held != nil {
		s.held.writeTo(s.stderr)
	}
	if s.demoDir != "" {
		_ = os.RemoveAll(s.demoDir)
	}
	if s.sim != nil {
		_ = s.sim.Close()
	}
}

// savedSessions counts the active shards whose session the manager holds
// (and the store has saved, once it closed without error).
func savedSessions(s manager.Snapshot) (saved, total int) {
	for i := range s.Shards {
		if si := &s.Shards[i]; si.Role == manager.RoleActive {
			total++
			if si.Resumable {
				saved++
			}
		}
	}
	return saved, total
}

// openManager opens m and reports a failure on stderr with the exit status
// it calls for: a token Discord refuses is bad configuration, and the
// message names tokenSource, where ResolveToken found it.
func openManager(ctx context.Context, m *manager.Manager, stderr io.Writer, tokenSource string) (int, bool) {
	err := m.Open(ctx)
	switch {
	case err == nil:
		return exitOK, true
	case errors.Is(err, manager.ErrUnauthorized):
		from := ""
		if tokenSource != "" {
			from = " from " + tokenSource
		}
		fmt.Fprintf(stderr, "shardtop: Discord refused the bot token%s (401); check it (shardtop takes the first of DISCORD_TOKEN, token_file, token)\n", from)
		return exitUsage, false
	case ctx.Err() != nil:
		return exitOK, false // a signal during start-up: a normal stop
	default:
		fmt.Fprintln(stderr, "shardtop: opening shards:", err)
		return exitFailure, false
	}
}

// loadConfig reads the config file. A missing default file is no error: the
// defaults and DISCORD_TOKEN may be all a bot needs.
func loadConfig(o options) (config.Config, error) {
	cfg, err := config.Load(o.configPath)
	if err != nil && !o.configSet && errors.Is(err, fs.ErrNotExist) {
		return config.Default(), nil
	}
	return cfg, err
}

// applyOverrides applies command-line flags over the config.
func applyOverrides(cfg *config.Config, o options) error {
	if o.stateFile != "" {
		cfg.StateFile = o.stateFile
	}
	if o.logFormat != "" {
		cfg.LogFormat = o.logFormat
	}
	if o.logLevel != "" {
		cfg.LogLevel = o.logLevel
	}
	if o.metricsAddr != "" {
		if _, port, err := net.SplitHostPort(o.metricsAddr); err != nil || port == "" {
			return fmt.Errorf("-metrics-addr must be HOST:PORT, got %q", o.metricsAddr)
		}
		cfg.MetricsAddr = o.metricsAddr
	}
	if urls := busURLs(o.busURL); len(urls) > 0 { // checked by parseOptions
		cfg.Bus.Mode = config.BusExternal
		cfg.Bus.URL = urls
	}
	return nil
}

// newLoggers builds the slog loggers of log_level and log_format on w:
// logger for the program's own lines (lifecycle events from Subscribe), and
// internal for the manager, gateway and store, which log every state change
// themselves at info: below debug they only get to say warnings and errors,
// so each event is logged once.
func newLoggers(cfg config.Config, w io.Writer) (logger, internal *slog.Logger) {
	level, _ := config.ParseLevel(cfg.LogLevel) // validated with the config
	handler := func(l slog.Level) slog.Handler {
		hopts := &slog.HandlerOptions{Level: l}
		if cfg.LogFormat == "json" {
			return slog.NewJSONHandler(w, hopts)
		}
		return slog.NewTextHandler(w, hopts)
	}
	logger = slog.New(handler(level))
	if level <= slog.LevelDebug {
		return logger, logger
	}
	return logger, slog.New(handler(max(level, slog.LevelWarn)))
}

// managerOptions turns the config into manager options.
func managerOptions(cfg config.Config, st manager.Store, logger *slog.Logger) []manager.Option {
	return []manager.Option{
		manager.WithAPIURL(cfg.APIURL),
		manager.WithShardCount(cfg.ShardCount),
		manager.WithShardIDs(cfg.ShardIDs...),
		manager.WithMaxConcurrency(cfg.MaxConcurrency),
		manager.WithStore(st),
		manager.WithIdentifyWindow(time.Duration(cfg.IdentifyWindow)),
		manager.WithIdentifyMargin(time.Duration(cfg.IdentifyMargin)),
		manager.WithSessionStartReserve(cfg.SessionStartReserve),
		manager.WithAutoReshard(cfg.AutoReshard),
		manager.WithSplitCount(cfg.SplitCount),
		manager.WithLogger(logger),
		manager.WithGatewayOptions(
			gateway.WithIntents(cfg.Intents),
			gateway.WithCompression(gateway.Compression(cfg.Compression)),
			gateway.WithLargeThreshold(cfg.LargeThreshold),
		),
	}
}

// Demo settings: lively, but with Discord's real identify window so the
// backlog visibly drains (16 shards at concurrency 4: three 5 s windows).
const (
	// demoBusListen puts the demo's embedded bus on a free loopback port:
	// a demo beside a real bot (or another demo) must not fail on 4222.
	demoBusListen      = "127.0.0.1:0"
	demoShards         = 16
	demoMaxConcurrency = 4
	demoGuildsPerShard = 40
	demoEventRate      = 5.0 // MESSAGE_CREATE per second per shard
	// demoFaultRate is faults per second per connection: about one fault
	// every 30 s across 16 shards.
	demoFaultRate = 1.0 / (demoShards * 30)
	// demoHeartbeatInterval is livelier than Discord's 41.25 s so that every
	// shard's LATENCY shows within seconds of READY (the first heartbeat
	// comes after a random fraction of the interval). Only the heartbeat is
	// sped up: the identify window stays Discord's real 5 s.
	demoHeartbeatInterval = 5 * time.Second
)

// startDemoSim starts the in-process simulator of --demo on loopback.
func startDemoSim() (*discordsim.Server, error) {
	return discordsim.Start(demoSimConfig())
}

// demoSimConfig is the simulator of --demo.
func demoSimConfig() discordsim.Config {
	return discordsim.Config{
		Addr:              "127.0.0.1:0",
		Shards:            demoShards,
		MaxConcurrency:    demoMaxConcurrency,
		IdentifyWindow:    discordsim.DefaultIdentifyWindow,
		HeartbeatInterval: demoHeartbeatInterval,
		Guilds:            demoShards * demoGuildsPerShard,
		EventRate:         demoEventRate,
		FaultRate:         demoFaultRate,
	}
}

// demoConfig is the configuration of --demo against sim: everything from
// /gateway/bot, as against Discord.
func demoConfig(sim *discordsim.Server) (config.Config, string) {
	cfg := config.Default()
	cfg.APIURL = sim.APIURL()
	return cfg, discordsim.DefaultToken
}

// heldLines keeps the log lines written while the TUI owns the terminal
// (the first maxHeldLines), to print them once it has ended.
type heldLines struct {
	mu      sync.Mutex
	lines   []byte
	n       int
	dropped int
}

// maxHeldLines bounds what heldLines keeps: warnings, not a flood.
const maxHeldLines = 50

// Write keeps one log line (slog's handlers write one line per call).
func (h *heldLines) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n >= maxHeldLines {
		h.dropped++
		return len(p), nil
	}
	h.n++
	h.lines = append(h.lines, "shardtop: "...)
	h.lines = append(h.lines, p...)
	return len(p), nil
}

// writeTo prints the kept lines on w.
func (h *heldLines) writeTo(w io.Writer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, _ = w.Write(h.lines)
	if h.dropped > 0 {
		fmt.Fprintf(w, "shardtop: (%d more warnings not shown)\n", h.dropped)
	}
}
