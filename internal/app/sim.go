package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/internal/config"
)

// controlTokenEnv holds the sim's control token when -control-token is not
// given: unlike a flag, it does not show in the process list.
const controlTokenEnv = "SHARDTOP_SIM_CONTROL_TOKEN"

// simFlags names the flag behind each discordsim.Config field runSim sets,
// so that a *discordsim.ConfigError from Start names what the user typed.
var simFlags = map[string]string{
	"Addr": "addr", "Advertise": "advertise", "Shards": "shards", "MaxConcurrency": "max-concurrency",
	"IdentifyWindow": "window", "Guilds": "guilds", "EventRate": "rate", "FaultRate": "fault-rate",
	"Token": "token", "HeartbeatInterval": "heartbeat", "ControlToken": "control-token",
}

// runSim is `shardtop sim`: the simulator alone, until SIGINT or SIGTERM.
// It prints exactly one line on stdout, "API <url>", once it listens.
func runSim(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shardtop sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg discordsim.Config
	fs.StringVar(&cfg.Addr, "addr", discordsim.DefaultAddr, "listen `HOST:PORT`; other than loopback, it needs -control-token")
	fs.StringVar(&cfg.Advertise, "advertise", "", "`HOST[:PORT]` that the URLs handed to bots carry; without PORT, the port listened on\n"+
		"(default: the -addr host; for a wildcard -addr such as 0.0.0.0, this machine's first non-loopback address)")
	fs.StringVar(&cfg.ControlToken, "control-token", "", "require \"Authorization: Bearer `TOKEN`\" on /_sim/ (default $"+controlTokenEnv+")")
	fs.IntVar(&cfg.Shards, "shards", discordsim.DefaultShards, "recommended shard count /gateway/bot answers")
	fs.IntVar(&cfg.MaxConcurrency, "max-concurrency", discordsim.DefaultMaxConcurrency, "session_start_limit.max_concurrency")
	fs.DurationVar(&cfg.IdentifyWindow, "window", discordsim.DefaultIdentifyWindow, "identify window per bucket")
	fs.IntVar(&cfg.Guilds, "guilds", discordsim.DefaultGuilds, "guilds the bot is in")
	fs.Float64Var(&cfg.EventRate, "rate", 0, fmt.Sprintf("MESSAGE_CREATE events per second per shard (at most %d)", discordsim.MaxEventRate))
	fs.Float64Var(&cfg.FaultRate, "fault-rate", 0, fmt.Sprintf("random faults per second per connection (at most %d)", discordsim.MaxFaultRate))
	fs.StringVar(&cfg.Token, "token", discordsim.DefaultToken, "the only bot token accepted")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat", discordsim.DefaultHeartbeatInterval, "heartbeat_interval sent in Hello")
	logLevel := fs.String("log-level", "warn", "log level on stderr: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shardtop sim [flags]\n\nA local fake Discord (REST + gateway v10) for testing bots.\n"+
			"Prints \"API <url>\" on stdout once listening; runs until SIGINT or SIGTERM.\n"+
			"Control it with POST /_sim/{close,reconnect,invalidate,zombie,drop,heartbeat,burst,rate,faults}; read GET /_sim/{stats,sessions}.\n"+
			"A control request with an Origin header other than the sim's own is refused (403): web pages cannot send one.\n"+
			"With a control token (-control-token or $"+controlTokenEnv+") they need \"Authorization: Bearer TOKEN\";\n"+
			"listening on an address other than loopback requires one.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shardtop sim: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if cfg.ControlToken == "" {
		cfg.ControlToken = os.Getenv(controlTokenEnv)
	}
	if err := validateSim(cfg); err != nil {
		fmt.Fprintln(stderr, "shardtop sim:", err)
		return exitUsage
	}
	level, err := config.ParseLevel(*logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "shardtop sim: -log-level", err)
		return exitUsage
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signalContext(stderr)
	defer stop()
	s, err := discordsim.Start(cfg)
	if err != nil {
		if msg, ok := simConfigProblem(err); ok {
			fmt.Fprintln(stderr, "shardtop sim:", msg)
			return exitUsage
		}
		fmt.Fprintln(stderr, "shardtop sim:", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "API %s\n", s.APIURL())
	<-ctx.Done()
	if err := s.Close(); err != nil {
		fmt.Fprintln(stderr, "shardtop sim:", err)
		return exitFailure
	}
	return exitOK
}

// validateSim rejects flag values the simulator would silently replace by a
// default. The ranges of every value are discordsim's to check (Start):
// simConfigProblem words its refusal in flags.
func validateSim(cfg discordsim.Config) error {
	switch {
	case cfg.Shards < 1:
		return fmt.Errorf("-shards must be at least 1, got %d", cfg.Shards)
	case cfg.MaxConcurrency < 1:
		return fmt.Errorf("-max-concurrency must be at least 1, got %d", cfg.MaxConcurrency)
	case cfg.IdentifyWindow <= 0:
		return fmt.Errorf("-window must be positive, got %s", cfg.IdentifyWindow)
	case cfg.Guilds < 0:
		return fmt.Errorf("-guilds must not be negative, got %d", cfg.Guilds)
	case cfg.Token == "":
		return errors.New("-token must not be empty")
	case cfg.HeartbeatInterval < 10*time.Millisecond:
		return fmt.Errorf("-heartbeat must be at least 10ms, got %s", cfg.HeartbeatInterval)
	}
	return nil
}

// simConfigProblem words a Config refusal of discordsim.Start in flags; ok
// is false for any other error (e.g. the port is taken).
func simConfigProblem(err error) (msg string, ok bool) {
	var ce *discordsim.ConfigError
	if !errors.As(err, &ce) {
		return "", false
	}
	name, known := simFlags[ce.Field]
	if !known {
		return err.Error(), true
	}
	if errors.Is(err, discordsim.ErrControlTokenRequired) {
		return fmt.Sprintf("-%s %v is not a loopback address: anyone who reaches it could drive the control endpoints "+
			"(/_sim/...). Give a control token with -control-token TOKEN or %s=TOKEN; "+
			"control requests then send \"Authorization: Bearer TOKEN\"", name, ce.Value, controlTokenEnv), true
	}
	if v, isString := ce.Value.(string); isString {
		return fmt.Sprintf("-%s %q: %v", name, v, ce.Err), true
	}
	return fmt.Sprintf("-%s %v: %v", name, ce.Value, ce.Err), true
}
