package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/internal/regularfile"
	"github.com/shardtop/shardtop/internal/secret"
)

// Modes of the event bus (the [bus] table's mode).
const (
	// BusEmbedded runs the NATS server inside shardtop (the default).
	BusEmbedded = "embedded"
	// BusExternal connects to a NATS server or cluster at bus.url.
	BusExternal = "external"
	// BusOff publishes no event.
	BusOff = "off"
)

// Defaults of the [bus] table; config.example.toml documents the same.
const (
	DefaultBusMode   = BusEmbedded
	DefaultBusListen = bus.DefaultListen
	DefaultBusPrefix = "shardtop"
	// DefaultBusMaxAge is how long the stream keeps an event: a day, so a
	// worker down overnight catches up.
	DefaultBusMaxAge = 24 * time.Hour
	// DefaultBusMaxBytes is the stream's size limit, 1 GiB: about a
	// million 1 KB events.
	DefaultBusMaxBytes int64 = 1 << 30
	// DefaultBusDuplicateWindow must exceed how long a resume's replay can
	// take after a crash: Discord keeps a session a few minutes.
	DefaultBusDuplicateWindow = 10 * time.Minute
	DefaultBusReplicas        = 1
	// DefaultBusBuffer is how many events may be published and not yet
	// acknowledged, all shards together.
	DefaultBusBuffer = bus.DefaultMaxPending
	// DefaultBusBufferBytes bounds the same buffer in bytes.
	DefaultBusBufferBytes int64 = bus.DefaultMaxPendingBytes
	// DefaultBusBufferWait is how long a shard waits for room in a full
	// buffer before it is held.
	DefaultBusBufferWait = bus.DefaultBufferWait
	// DefaultBusStream is the stream's name.
	DefaultBusStream = bus.DefaultStreamName
	// busStoreSuffix names the embedded server's default storage folder:
	// STATE_FILE.bus, beside the state file.
	busStoreSuffix = ".bus"
	// The environment variables of the bus credentials, which take
	// precedence over token_file and password_file.
	busTokenEnv    = "SHARDTOP_BUS_TOKEN"
	busPasswordEnv = "SHARDTOP_BUS_PASSWORD"
)

// Bounds of the [bus] table, each far beyond what a bot needs:
//   - max_age is 0 (no age limit) or 1m to a year;
//   - max_bytes is at least bus.ServerMaxPayload (the largest event must
//     fit) and at most 1 PiB;
//   - duplicate_window is 1m to 1h: shorter and a restart's replay comes
//     back after it ended; the server remembers every message ID of the
//     window, so longer costs memory with no use;
//   - replicas is 1 to 5, JetStream's own limit;
//   - buffer is 1 to 1048576 events (about 1 GB of 1 KB events held);
//     buffer_bytes 1 MiB to 1 TiB; buffer_wait 0 to 1m (Discord drops a
//     connection that is not read for long);
//   - url lists at most 64 servers; prefix is 1 to 64 characters.
const (
	minBusMaxAge            = time.Minute
	maxBusMaxAge            = 365 * 24 * time.Hour
	minBusMaxBytes          = bus.ServerMaxPayload
	maxBusMaxBytes    int64 = 1 << 50
	minBusDuplicate         = time.Minute
	maxBusDuplicate         = time.Hour
	maxBusReplicas          = 5
	maxBusBuffer            = 1 << 20
	minBusBufferBytes       = 1 << 20
	maxBusBufferBytes       = 1 << 40
	maxBusBufferWait        = time.Minute
	maxBusURLs              = 64
	maxBusPrefix            = 64
	// MaxBusSecretFileSize bounds password_file and token_file.
	MaxBusSecretFileSize = 4 << 10
	// MaxBusCredsFileSize bounds creds_file: a NATS .creds file holds a
	// JWT and a seed, 1-2 KB.
	MaxBusCredsFileSize = 64 << 10
)

// Bus is the [bus] table: where events go and how.
type Bus struct {
	// Mode is "embedded", "external" or "off".
	Mode string `toml:"mode"`
	// Listen is the embedded server's HOST:PORT (port 0: a free one).
	Listen string `toml:"listen"`
	// URL lists the NATS servers of mode external.
	URL BusURLs `toml:"url"`
	// Prefix begins every subject (PREFIX.ev.…, PREFIX.cmd.…).
	Prefix string `toml:"prefix"`
	// StoreDir is the embedded server's JetStream folder; empty is
	// beside the state file (see Config.BusStoreDir).
	StoreDir string `toml:"store_dir"`
	// User, with a password from SHARDTOP_BUS_PASSWORD or PasswordFile.
	User string `toml:"user"`
	// PasswordFile holds User's password.
	PasswordFile string `toml:"password_file"`
	// TokenFile holds a token (SHARDTOP_BUS_TOKEN takes precedence).
	TokenFile string `toml:"token_file"`
	// CredsFile is a NATS .creds file (JWT and seed), for mode external.
	CredsFile string `toml:"creds_file"`
	// MaxAge is how long the stream keeps an event (0: no age limit).
	MaxAge Duration `toml:"max_age"`
	// MaxBytes is the stream's size limit.
	MaxBytes int64 `toml:"max_bytes"`
	// DuplicateWindow is how long the stream drops a repeated event.
	DuplicateWindow Duration `toml:"duplicate_window"`
	// Replicas is how many copies of the stream and of the KV buckets a
	// cluster keeps.
	Replicas int `toml:"replicas"`
	// Stream is the JetStream stream's name.
	Stream string `toml:"stream"`
	// Buffer is how many events may be published and not yet acknowledged.
	Buffer int `toml:"buffer"`
	// BufferBytes bounds the same events in bytes.
	BufferBytes int64 `toml:"buffer_bytes"`
	// BufferWait is how long a shard waits for room in a full buffer
	// before it is held.
	BufferWait Duration `toml:"buffer_wait"`
	// Cluster is the [bus.cluster] table: the embedded server in a NATS
	// cluster of the bot's machines.
	Cluster BusCluster `toml:"cluster"`
}

// defaultBus is the [bus] table when a key is absent.
func defaultBus() Bus {
	return Bus{
		Mode:            DefaultBusMode,
		Listen:          DefaultBusListen,
		Prefix:          DefaultBusPrefix,
		MaxAge:          Duration(DefaultBusMaxAge),
		MaxBytes:        DefaultBusMaxBytes,
		DuplicateWindow: Duration(DefaultBusDuplicateWindow),
		Replicas:        DefaultBusReplicas,
		Stream:          DefaultBusStream,
		Buffer:          DefaultBusBuffer,
		BufferBytes:     DefaultBusBufferBytes,
		BufferWait:      Duration(DefaultBusBufferWait),
	}
}

// BusURLs are NATS server URLs, written in TOML as one string or an array
// of strings.
type BusURLs []string

// UnmarshalTOML accepts a string or an array of strings.
func (u *BusURLs) UnmarshalTOML(v any) error {
	switch t := v.(type) {
	case string:
		*u = BusURLs{t}
		return nil
	case []any:
		var urls BusURLs // nil when empty, as the default
		for _, it := range t {
			s, ok := it.(string)
			if !ok {
				return fmt.Errorf("want NATS URLs (strings), got %v (%T)", it, it)
			}
			urls = append(urls, s)
		}
		*u = urls
		return nil
	}
	return fmt.Errorf("want a NATS URL or an array of them, got %v (%T)", v, v)
}

// String joins the URLs with commas, as nats.Connect takes them.
func (u BusURLs) String() string { return strings.Join(u, ",") }

// CheckBusURL checks one NATS URL: nats://, tls://, ws:// or wss:// with a
// host, and no user or password in it (the URL is shown and logged;
// credentials go in user and password_file, token_file or creds_file).
func CheckBusURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %q", s) // url's error may repeat a password
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("must be a nats://, tls://, ws:// or wss:// URL with a host, got %q", s)
	}
	if u.User != nil {
		return errors.New("must not hold a user or password (the URL is logged): use the [bus] keys user and password_file, token_file or creds_file")
	}
	if u.Host == "" {
		return fmt.Errorf("must be a nats://, tls://, ws:// or wss:// URL with a host, got %q", s)
	}
	return nil
}

// busPrefix is a subject token shardtop accepts as a prefix: NATS allows
// more, but these characters are safe in every subject and stream tool.
var busPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// validateBus checks the [bus] table's values (what the environment and
// the command line may change is checked by ResolveBus).
func (c *Config) validateBus(bad func(key, format string, args ...any)) {
	b := &c.Bus
	switch b.Mode {
	case BusEmbedded, BusExternal, BusOff:
	default:
		bad("bus.mode", "must be embedded, external or off, got %q", b.Mode)
	}
	if err := checkListen(b.Listen); err != nil {
		bad("bus.listen", "%v", err)
	}
	if len(b.URL) > maxBusURLs {
		bad("bus.url", "at most %d URLs, got %d", maxBusURLs, len(b.URL))
	}
	for _, u := range b.URL {
		if err := CheckBusURL(u); err != nil {
			bad("bus.url", "%v", err)
			break
		}
	}
	if len(b.Prefix) > maxBusPrefix || !busPrefix.MatchString(b.Prefix) {
		bad("bus.prefix", "must be 1 to %d letters, digits, '-' or '_' (one subject token), got %q", maxBusPrefix, b.Prefix)
	}
	if b.MaxAge != 0 && (b.MaxAge < Duration(minBusMaxAge) || b.MaxAge > Duration(maxBusMaxAge)) {
		bad("bus.max_age", "must be \"0s\" (no age limit) or from %s to %s, got %s", minBusMaxAge, maxBusMaxAge, b.MaxAge)
	}
	if b.MaxBytes < minBusMaxBytes || b.MaxBytes > maxBusMaxBytes {
		bad("bus.max_bytes", "must be from %d (8 MiB, the largest event) to %d (1 PiB), got %d", minBusMaxBytes, maxBusMaxBytes, b.MaxBytes)
	}
	switch {
	case b.DuplicateWindow < Duration(minBusDuplicate) || b.DuplicateWindow > Duration(maxBusDuplicate):
		bad("bus.duplicate_window", "must be from %s to %s, got %s", minBusDuplicate, maxBusDuplicate, b.DuplicateWindow)
	case b.MaxAge != 0 && b.DuplicateWindow > b.MaxAge:
		bad("bus.duplicate_window", "must not exceed max_age (%s), got %s", b.MaxAge, b.DuplicateWindow)
	}
	if b.Replicas < 1 || b.Replicas > maxBusReplicas {
		bad("bus.replicas", "must be from 1 to %d, got %d", maxBusReplicas, b.Replicas)
	}
	if b.Buffer < 1 || b.Buffer > maxBusBuffer {
		bad("bus.buffer", "must be from 1 to %d events, got %d", maxBusBuffer, b.Buffer)
	}
	if b.BufferBytes < minBusBufferBytes || b.BufferBytes > maxBusBufferBytes {
		bad("bus.buffer_bytes", "must be from %d (1 MiB) to %d (1 TiB), got %d", minBusBufferBytes, int64(maxBusBufferBytes), b.BufferBytes)
	}
	if b.BufferWait < 0 || b.BufferWait > Duration(maxBusBufferWait) {
		bad("bus.buffer_wait", "must be from 0s to %s, got %s", maxBusBufferWait, b.BufferWait)
	}
	if len(b.Stream) > maxBusPrefix || !busPrefix.MatchString(b.Stream) {
		bad("bus.stream", "must be 1 to %d letters, digits, '-' or '_', got %q", maxBusPrefix, b.Stream)
	}
	if b.PasswordFile != "" && b.User == "" {
		bad("bus.password_file", "needs bus.user")
	}
	if b.CredsFile != "" && (b.User != "" || b.TokenFile != "") {
		bad("bus.creds_file", "goes alone: drop bus.user or bus.token_file")
	} else if b.User != "" && b.TokenFile != "" {
		bad("bus.token_file", "is not used with bus.user: set a user and password, or a token")
	}
	c.validateBusCluster(bad)
}

// checkListen checks a HOST:PORT to listen on.
func checkListen(listen string) error {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("must be HOST:PORT, got %q", listen)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be 0 (a free one) to 65535, got %q", port)
	}
	return nil
}

// resolveBusPaths makes the [bus] table's paths relative to dir, the
// config file's directory.
func (c *Config) resolveBusPaths(dir string) {
	for _, p := range []*string{&c.Bus.StoreDir, &c.Bus.PasswordFile, &c.Bus.TokenFile, &c.Bus.CredsFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	c.resolveBusClusterPaths(dir)
}

// BusStoreDir is the embedded server's storage folder: store_dir, or else
// the state file's path with ".bus" appended (so a --state-file moves it too).
func (c Config) BusStoreDir() string {
	if c.Bus.StoreDir != "" {
		return c.Bus.StoreDir
	}
	return c.StateFile + busStoreSuffix
}

// BusCredentials are the bus credentials of a run, as ResolveBus found
// them: a user and password, a token, or a .creds file, or none.
type BusCredentials struct {
	User     string
	Password secret.Token
	Token    secret.Token
	// CredsFile is the .creds file nats.go reads (mode external only).
	CredsFile string
	// Source says where they came from, for messages ("" for none).
	Source string
}

// None reports whether there are no credentials.
func (b BusCredentials) None() bool {
	return b.User == "" && b.Token.Reveal() == "" && b.CredsFile == ""
}

// ResolveBus checks the [bus] table as the command line left it (mode,
// url, listen) and reads its credentials: the password from
// SHARDTOP_BUS_PASSWORD, else password_file; the token from
// SHARDTOP_BUS_TOKEN, else token_file; or creds_file. warnings are about
// secret files readable by group or others. With mode off it reads
// nothing. Problems are *config.Error naming the key and its line, never a
// secret. getenv is os.Getenv outside tests.
func (c Config) ResolveBus(getenv func(string) string) (creds BusCredentials, warnings []string, err error) {
	b := c.Bus
	if b.Mode == BusOff {
		return BusCredentials{}, nil, nil
	}
	if b.Mode == BusExternal && len(b.URL) == 0 {
		return creds, nil, c.errorAt("bus.mode", errors.New("external needs bus.url, one or more NATS URLs (or --bus-url)"))
	}
	if b.Mode == BusEmbedded {
		if b.CredsFile != "" {
			return creds, nil, c.errorAt("bus.creds_file", errors.New("is for mode external: the embedded server takes a user and password, or a token"))
		}
		if b.Replicas > 1 && !b.Cluster.Clustered() {
			return creds, nil, c.errorAt("bus.replicas", fmt.Errorf("the embedded server is one server without [bus.cluster]: replicas must be 1, got %d", b.Replicas))
		}
	}
	envToken := strings.TrimSpace(getenv(busTokenEnv))
	envPassword := strings.TrimSpace(getenv(busPasswordEnv))
	switch {
	case b.CredsFile != "":
		if envToken != "" || envPassword != "" {
			return creds, nil, c.errorAt("bus.creds_file", fmt.Errorf("goes alone: unset %s and %s", busTokenEnv, busPasswordEnv))
		}
		if _, err := regularfile.Read(b.CredsFile, MaxBusCredsFileSize); err != nil {
			return creds, nil, c.errorAt("bus.creds_file", err)
		}
		creds = BusCredentials{CredsFile: b.CredsFile, Source: "creds_file " + b.CredsFile}
		warnings = permissionWarning(b.CredsFile, "bus creds file")
	case b.User != "":
		if envToken != "" {
			return creds, nil, c.errorAt("bus.user", fmt.Errorf("is not used with a token: unset %s, or drop bus.user", busTokenEnv))
		}
		password, source := envPassword, busPasswordEnv
		if password == "" && b.PasswordFile != "" {
			password, err = c.readBusSecret("bus.password_file", b.PasswordFile)
			if err != nil {
				return creds, nil, err
			}
			source = "password_file " + b.PasswordFile
			warnings = permissionWarning(b.PasswordFile, "bus password file")
		}
		if password == "" {
			return creds, nil, c.errorAt("bus.user", fmt.Errorf("needs a password: set %s or bus.password_file", busPasswordEnv))
		}
		creds = BusCredentials{User: b.User, Password: secret.New(password), Source: "user " + b.User + " with " + source}
	case envPassword != "":
		return creds, nil, &Error{Key: busPasswordEnv, Err: errors.New("is set, but bus.user is not: a password needs a user")}
	case envToken != "":
		creds = BusCredentials{Token: secret.New(envToken), Source: busTokenEnv}
	case b.TokenFile != "":
		token, err := c.readBusSecret("bus.token_file", b.TokenFile)
		if err != nil {
			return creds, nil, err
		}
		creds = BusCredentials{Token: secret.New(token), Source: "token_file " + b.TokenFile}
		warnings = permissionWarning(b.TokenFile, "bus token file")
	}
	if b.Mode == BusEmbedded && creds.None() {
		host, _, _ := net.SplitHostPort(b.Listen) // validated with the config
		if !bus.IsLoopback(host) {
			return creds, nil, c.errorAt("bus.listen", fmt.Errorf("%q is not loopback: the embedded server refuses to listen there without credentials (bus.user and password_file, bus.token_file, or %s)", b.Listen, busTokenEnv))
		}
	}
	return creds, warnings, nil
}

// readBusSecret reads a password or token file named by key: a regular
// file of at most MaxBusSecretFileSize bytes, trimmed, not empty, one
// line of printable ASCII. Errors never show the content.
func (c Config) readBusSecret(key, path string) (string, error) {
	data, err := regularfile.Read(path, MaxBusSecretFileSize)
	if err != nil {
		return "", c.errorAt(key, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", c.errorAt(key, fmt.Errorf("%s is empty", path))
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' || b > '~' {
			return "", c.errorAt(key, fmt.Errorf("%s holds %s (character %d of %d): want one line of printable ASCII", path, describeByte(b), i+1, len(s)))
		}
	}
	return s, nil
}
