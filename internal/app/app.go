// Package app is the shardtop program behind its main: the command line,
// the wiring of config, store, manager, metrics and TUI or headless logging
// (supervise), the --demo simulator, signal handling and the sim
// subcommand.
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

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/config"
	"github.com/shardtop/shardtop/internal/metrics"
	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/store"
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
	var (
		cfg      config.Config
		token    string
		warnings []string
	)
	var tokenSource string // where the token came from, for a 401
	if o.demo {
		sim, err := startDemoSim()
		if err != nil {
			fmt.Fprintln(stderr, "shardtop: demo:", err)
			return exitFailure
		}
		defer sim.Close()
		cfg, token = demoConfig(sim)
		// The demo's sessions die with its in-process simulator: keeping
		// them is pointless (parseOptions refuses --state-file with it).
		dir, err := os.MkdirTemp("", "shardtop-demo-")
		if err != nil {
			fmt.Fprintln(stderr, "shardtop: demo:", err)
			return exitFailure
		}
		defer os.RemoveAll(dir)
		cfg.StateFile = filepath.Join(dir, "state.toml")
	} else {
		var err error
		cfg, err = loadConfig(o)
		if err != nil {
			fmt.Fprintln(stderr, "shardtop: bad config:", err)
			return exitUsage
		}
		token, tokenSource, warnings, err = cfg.ResolveToken(getenv)
		if err != nil {
			hint := ""
			if errors.Is(err, config.ErrNoToken) {
				hint = " (or try --demo, which needs none)"
			}
			fmt.Fprintln(stderr, "shardtop:", err.Error()+hint)
			return exitUsage
		}
	}
	if err := applyOverrides(&cfg, o); err != nil {
		fmt.Fprintln(stderr, "shardtop:", err)
		return exitUsage
	}
	if !o.headless {
		if err := checkTerminal(); err != nil {
			fmt.Fprintf(stderr, "shardtop: %v; run with --headless to log lifecycle events on stderr instead\n", err)
			return exitUsage
		}
	}

	// In the TUI, log lines would tear the screen: the TUI shows events
	// itself, and the warnings of the manager, gateway and store wait in
	// held until it has ended.
	logger := slog.New(slog.DiscardHandler)
	held := &heldLines{}
	internal := slog.New(slog.NewTextHandler(held, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if o.headless {
		logger, internal = newLoggers(cfg, stderr)
	}
	defer held.writeTo(stderr)
	for _, w := range warnings {
		if o.headless {
			logger.Warn(w)
		} else {
			fmt.Fprintln(stderr, "shardtop: warning:", w) // seen once the TUI ends
		}
	}
	storeOpts := []store.Option{store.WithLogger(internal)}
	if o.freshState {
		storeOpts = append(storeOpts, store.WithStartFresh())
	}
	st, err := store.OpenFile(cfg.StateFile, storeOpts...)
	if err != nil {
		fmt.Fprintln(stderr, "shardtop: state file:", err)
		if errors.Is(err, store.ErrCorrupt) {
			fmt.Fprintln(stderr, "shardtop: nothing was changed; to start without saved sessions, run again with --fresh-state (the file is kept beside it)")
		}
		return exitFailure
	}
	if aside, cause := st.MovedAside(); aside != "" {
		msg := fmt.Sprintf("state file %s was unreadable (%v); moved it to %s and started without saved sessions", cfg.StateFile, cause, aside)
		if o.headless {
			logger.Warn(msg)
		} else {
			fmt.Fprintln(stderr, "shardtop: warning:", msg)
		}
	}
	defer func() {
		if err := st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			fmt.Fprintln(stderr, "shardtop: state file:", err)
		}
	}()
	m, err := manager.New(token, managerOptions(cfg, st, internal)...)
	if err != nil {
		fmt.Fprintln(stderr, "shardtop:", err)
		return exitUsage
	}

	if cfg.MetricsAddr != "" {
		ms, err := metrics.Start(cfg.MetricsAddr, m, logger)
		if err != nil {
			fmt.Fprintln(stderr, "shardtop: metrics:", err)
			_ = m.Close(context.Background())
			return exitFailure
		}
		defer ms.Close()
	}

	var (
		events <-chan manager.Event
		unsub  = func() {}
	)
	if o.headless {
		// Subscribe before Open so that the first queued and identifying states are logged too.
		events, unsub = m.Subscribe(eventBuffer)
	}
	code, opened := openManager(ctx, m, stderr, tokenSource)
	if opened {
		if o.headless {
			code = runHeadless(ctx, m, events, logger)
		} else {
			code = runInteractive(ctx, m, cfg, stderr)
		}
	}
	if ctx.Err() != nil {
		logger.Info("signal received: closing every shard resumable")
	}
	// Headless: keep logging while the shards close (Close ends the
	// subscription, which ends the drain).
	drained := make(chan struct{})
	if o.headless && opened {
		go func() {
			defer close(drained)
			for ev := range events {
				logEvent(logger, ev)
			}
		}()
	} else {
		unsub()
		close(drained)
	}

	closeCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	start := time.Now()
	fail := func(what string, err error) {
		code = exitFailure
		if o.headless {
			logger.Error(what, "err", err)
		} else {
			fmt.Fprintf(stderr, "shardtop: %s: %v\n", what, err)
		}
	}
	if err := m.Close(closeCtx); err != nil {
		fail("closing shards", err)
	}
	<-drained
	if err := st.Close(); err != nil {
		fail("saving the state file", err)
	}
	if code == exitOK && opened {
		saved, total := savedSessions(m.Snapshot())
		msg := fmt.Sprintf("stopped: %d of %d sessions saved", saved, total)
		switch {
		case saved == 0:
			msg = "stopped: no session to save (no shard had one yet)"
		case saved < total:
			msg += fmt.Sprintf("; %d shards had none yet and will identify", total-saved)
		}
		took := time.Since(start).Round(time.Millisecond)
		if o.headless {
			logger.Info(msg, "state_file", cfg.StateFile, "took", took.String())
		} else if !o.demo { // the demo's state file dies with it
			fmt.Fprintf(stderr, "shardtop: %s in %s\n", msg, cfg.StateFile)
		}
	}
	return code
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
