package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/shardtop/shardtop/internal/config"
)

// Exit statuses.
const (
	exitOK      = 0 // normal stop
	exitFailure = 1 // runtime failure, or a second signal
	exitUsage   = 2 // bad usage or configuration
)

// options are the command-line flags of the supervisor (not of `sim` or `tail`).
type options struct {
	configPath  string
	configSet   bool // -config was given explicitly
	demo        bool
	headless    bool
	showVersion bool
	logFormat   string
	logLevel    string
	metricsAddr string
	stateFile   string
	freshState  bool
	busURL      string // --bus-url: mode external with these URLs (comma-separated)
}

// parseOptions parses the supervisor's flags. Errors are usage errors (exit 2).
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("shardtop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", config.DefaultFile, "config `file` (TOML)")
	fs.BoolVar(&o.demo, "demo", false, "run against an in-process simulator (no token, no network)")
	fs.BoolVar(&o.headless, "headless", false, "no TUI: log lifecycle events on stderr")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.StringVar(&o.logFormat, "log-format", "", "log format: text or json (overrides log_format)")
	fs.StringVar(&o.logLevel, "log-level", "", "log level: debug, info, warn or error (overrides log_level)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on `HOST:PORT` (overrides metrics_addr)")
	fs.StringVar(&o.stateFile, "state-file", "", "session state `file` (overrides state_file; not with -demo, whose sessions end with its simulator)")
	fs.StringVar(&o.busURL, "bus-url", "", "publish events to the NATS server(s) at `URL` (several separated by commas) instead of the embedded one (sets [bus] mode = \"external\")")
	fs.BoolVar(&o.freshState, "fresh-state", false, "if the state file is corrupt, move it aside (kept as FILE.corrupt-TIME) and start without saved sessions (not with -demo, which always starts without)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage:\n  shardtop [flags]        supervise a bot's shards (TUI)\n  shardtop sim [flags]    run the Discord simulator\n  shardtop tail [flags]   print the events on the bus as JSON lines\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (the subcommands are sim and tail, which come first)", fs.Arg(0))
	}
	stateFileSet, busURLSet := false, false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "config":
			o.configSet = true
		case "state-file":
			stateFileSet = true
		case "bus-url":
			busURLSet = true
		}
	})
	if busURLSet && len(busURLs(o.busURL)) == 0 {
		return o, errors.New("-bus-url needs a NATS URL, e.g. nats://127.0.0.1:4222")
	}
	if o.logFormat != "" && o.logFormat != "text" && o.logFormat != "json" {
		return o, fmt.Errorf("-log-format must be text or json, got %q", o.logFormat)
	}
	if o.logLevel != "" {
		if _, err := config.ParseLevel(o.logLevel); err != nil {
			return o, fmt.Errorf("-log-level %w", err)
		}
	}
	for _, u := range busURLs(o.busURL) {
		if err := config.CheckBusURL(u); err != nil {
			return o, fmt.Errorf("-bus-url %w", err)
		}
	}
	if o.demo && o.configSet {
		return o, errors.New("-demo runs without a config file; drop -config")
	}
	// The demo's sessions die with its in-process simulator, so a state
	// file could only hold useless sessions, or have a real bot's
	// sessions overwritten by them.
	if o.demo && stateFileSet {
		return o, errors.New("-demo keeps its sessions in a temporary file, as they end with its simulator; drop -state-file")
	}
	if o.demo && o.freshState {
		return o, errors.New("-demo always starts without saved sessions; drop -fresh-state")
	}
	return o, nil
}

// busURLs splits the value of --bus-url into its URLs ("" is none).
func busURLs(flag string) []string {
	var urls []string
	for _, u := range strings.Split(flag, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// versionString describes the build: version (set with -ldflags by main)
// or else the module version, the VCS revision when known, and the Go
// version.
func versionString(version string) string {
	v := version
	var rev, dirty string
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	var b strings.Builder
	b.WriteString("shardtop " + v)
	if rev != "" {
		b.WriteString(" (" + rev[:min(len(rev), 12)] + dirty + ")")
	}
	b.WriteString(" " + runtime.Version())
	return b.String()
}
