// Package config is shardtop's configuration: the schema of the TOML config
// file with every key's default and bound, its loading and validation (each
// problem names the file, line and key), and where the bot token comes from
// (DISCORD_TOKEN, token_file or token), never showing it.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/regularfile"
	"github.com/shardtop/shardtop/internal/secret"
	"github.com/shardtop/shardtop/limiter"
	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/store"
)

// Defaults of the config file. Every key's default lives here and only here;
// config.example.toml documents the same values (a test checks it).
const (
	// DefaultFile is read when -config is not given.
	DefaultFile = "shardtop.toml"
	// DefaultIntents is GUILDS (1<<0) | GUILD_MESSAGES (1<<9): no privileged intent.
	DefaultIntents int64 = 1<<0 | 1<<9
	// DefaultStateFile is where sessions are kept between runs (relative to the config file).
	DefaultStateFile = "shardtop-state.toml"
	// DefaultLogLevel and DefaultLogFormat configure the slog handler.
	DefaultLogLevel  = "info"
	DefaultLogFormat = "text"
	// DefaultRefresh is how often the TUI pulls a snapshot.
	DefaultRefresh = 250 * time.Millisecond
	// tokenEnv names the environment variable that holds the bot token.
	tokenEnv = "DISCORD_TOKEN"
)

// Limits of values Discord or the program accept. Every integer and
// duration key has an upper bound, so that no value a TOML file can hold
// makes shardtop allocate without end, overflow or panic; each bound is far
// above what a real bot uses:
//   - shard_count is at most store.MaxShardCount (65536; Discord's largest
//     bots run tens of thousands) and shard_ids are below it;
//   - max_concurrency is at most store.MaxMaxConcurrency (1024; Discord
//     gives 1, 16, 32, 64, up to a few hundred to the largest bots);
//   - split_count is at most 64: a shard closed with 4011 has outgrown 2500
//     guilds, and halving it (the default 2) is the usual answer;
//   - identify_window is at most an hour (Discord's is 5 s) and
//     identify_margin a minute (it covers an unproven identify), so their sum
//     cannot overflow;
//   - refresh is at most a minute: a slower TUI looks frozen.
//
// intents and large_threshold have Discord's own ranges, and
// session_start_reserve needs no bound: the limiter caps it at the daily
// total minus one.
const (
	minLargeThreshold = 50
	maxLargeThreshold = 250
	maxSplitCount     = 64
	maxIdentifyWindow = time.Hour
	maxIdentifyMargin = time.Minute
	minRefresh        = 10 * time.Millisecond
	maxRefresh        = time.Minute
	maxIntents        = 1<<31 - 1 // intents are a 31-bit set
)

// Size limits of the files shardtop reads besides the state file (whose
// limit is store.MaxFileSize). They stop a device or a wrong path from
// being read into memory.
const (
	// MaxFileSize bounds the config file: real ones are a few KB;
	// even every ID of store.MaxShardCount shards listed in shard_ids
	// takes under 500 KB.
	MaxFileSize = 1 << 20
	// MaxTokenFileSize bounds token_file: a bot token is about 70 bytes.
	MaxTokenFileSize = 4 << 10
)

// Config is the program's configuration, as read from a TOML file.
// Its String, GoString and LogValue never show the token, nor the file's
// text, which holds it.
type Config struct {
	// TokenFile names a file holding the bot token (relative to the config file).
	TokenFile string `toml:"token_file"`
	// Token is the bot token itself (prefer DISCORD_TOKEN or token_file).
	Token secret.Token `toml:"token"`
	// APIURL is Discord's REST base; point it at `shardtop sim` to test.
	APIURL string `toml:"api_url"`
	// Intents are the gateway intents sent in Identify.
	Intents int64 `toml:"intents"`
	// ShardCount is the total shard count; 0 uses Discord's recommendation.
	ShardCount int `toml:"shard_count"`
	// ShardIDs limits this process to some shards; empty runs all.
	ShardIDs ShardIDs `toml:"shard_ids"`
	// MaxConcurrency overrides session_start_limit.max_concurrency; 0 asks Discord.
	MaxConcurrency int `toml:"max_concurrency"`
	// Compression is the transport compression: zstd-stream, zlib-stream or none.
	Compression string `toml:"compression"`
	// LargeThreshold is Identify's large_threshold (50..250).
	LargeThreshold int `toml:"large_threshold"`
	// StateFile is where sessions are persisted (relative to the config file).
	StateFile string `toml:"state_file"`
	// AutoReshard splits a shard Discord closes with 4011.
	AutoReshard bool `toml:"auto_reshard"`
	// SplitCount is how many shards an automatic split makes of one (>= 2).
	SplitCount int `toml:"split_count"`
	// IdentifyWindow is how often one bucket may identify.
	IdentifyWindow Duration `toml:"identify_window"`
	// IdentifyMargin is added to the identify window after an identify
	// that got no READY (limiter.WithMargin).
	IdentifyMargin Duration `toml:"identify_margin"`
	// SessionStartReserve is how many daily session starts are never spent.
	SessionStartReserve int `toml:"session_start_reserve"`
	// MetricsAddr serves Prometheus metrics on HOST:PORT; empty disables them.
	MetricsAddr string `toml:"metrics_addr"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// LogFormat is text or json.
	LogFormat string `toml:"log_format"`
	// Refresh is the TUI refresh interval.
	Refresh Duration `toml:"refresh"`
	// Bus is the [bus] table: the event bus on NATS JetStream.
	Bus Bus `toml:"bus"`
	// Cluster is the [cluster] table: one bot on several processes.
	Cluster Cluster `toml:"cluster"`

	// file is the config file the values came from ("" for defaults only).
	file string
	// lines are the config file's lines, to name the line of a key.
	lines []string
}

// Default returns the configuration used when a key is absent.
func Default() Config {
	return Config{
		APIURL:              manager.DefaultAPIURL,
		Intents:             DefaultIntents,
		Compression:         string(gateway.DefaultCompression),
		LargeThreshold:      gateway.DefaultLargeThreshold,
		StateFile:           DefaultStateFile,
		SplitCount:          manager.DefaultSplitCount,
		IdentifyWindow:      Duration(manager.DefaultIdentifyWindow),
		IdentifyMargin:      Duration(manager.DefaultIdentifyMargin),
		SessionStartReserve: limiter.DefaultReserve,
		LogLevel:            DefaultLogLevel,
		LogFormat:           DefaultLogFormat,
		Refresh:             Duration(DefaultRefresh),
		Bus:                 defaultBus(),
		Cluster:             defaultCluster(),
	}
}

// String describes the config with the token redacted (Token redacts
// itself; the lines of the file are left out).
func (c Config) String() string {
	c.lines = nil
	type plain Config // no methods: no recursion
	return fmt.Sprintf("%+v", plain(c))
}

// GoString is String: %#v never shows the token.
func (c Config) GoString() string { return c.String() }

// LogValue logs the config with the token redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("file", c.file),
		slog.Any("token", c.Token),
		slog.String("token_file", c.TokenFile),
		slog.String("api_url", c.APIURL),
		slog.Int("shard_count", c.ShardCount),
		slog.String("shard_ids", c.ShardIDs.String()),
		slog.Int("max_concurrency", c.MaxConcurrency),
		slog.String("compression", c.Compression),
		slog.String("state_file", c.StateFile),
	)
}

// Error is a problem with the configuration, naming the file, line and key.
type Error struct {
	File string // the config file ("" for a command-line value)
	Line int    // 1-based line, 0 if unknown
	Key  string // the TOML key at fault, "" if none
	Err  error  // what is wrong
}

// Error formats the problem as "file:line: key: problem".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrNoToken means no bot token was found in DISCORD_TOKEN, token_file or token.
var ErrNoToken = errors.New("no bot token: set " + tokenEnv + ", token_file or token")

// Load reads the TOML file at path over the defaults and validates it.
// Every problem is a *config.Error (several are joined with errors.Join).
// path must be a regular file (a symbolic link to one is followed) of at
// most MaxFileSize bytes; a missing file matches fs.ErrNotExist.
func Load(path string) (Config, error) {
	data, err := regularfile.Read(path, MaxFileSize)
	if err != nil {
		return Config{}, &Error{File: path, Err: err}
	}
	return Parse(path, string(data))
}

// Parse parses text (the content of the file named name) over the
// defaults and validates the result.
func Parse(name, text string) (Config, error) {
	cfg := Default()
	cfg.file = name
	cfg.lines = strings.Split(text, "\n")
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		return Config{}, cfg.decodeError(err)
	}
	var errs []error
	undecoded := md.Undecoded()
	sort.Slice(undecoded, func(i, j int) bool { return undecoded[i].String() < undecoded[j].String() })
	for _, k := range undecoded {
		if len(k) > 1 && containsKey(undecoded, k[:len(k)-1]) {
			continue // report an unknown table once, not each of its keys
		}
		errs = append(errs, cfg.errorAt(k.String(), errors.New("unknown key")))
	}
	errs = append(errs, cfg.validate()...)
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].(*Error).Line < errs[j].(*Error).Line })
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	cfg.resolvePaths()
	return cfg, nil
}

func containsKey(keys []toml.Key, k toml.Key) bool {
	for _, x := range keys {
		if x.String() == k.String() {
			return true
		}
	}
	return false
}

// decodeLine matches BurntSushi/toml's type errors, which are not ParseErrors
// but carry the line and key in their text.
var decodeLine = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

func (c *Config) decodeError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return c.redacted(&Error{File: c.file, Line: pe.Position.Line, Key: pe.LastKey, Err: errors.New(pe.Message)})
	}
	if m := decodeLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		if line == 0 {
			line = c.lineOf(m[2])
		}
		return c.redacted(&Error{File: c.file, Line: line, Key: m[2], Err: errors.New(m[3])})
	}
	// No line to judge by: the parser's text may quote any of the file.
	if c.lineOf("token") > 0 {
		return &Error{File: c.file, Err: errTokenHidden}
	}
	return &Error{File: c.file, Err: err}
}

// errTokenHidden replaces a TOML error about the line that holds the token:
// the parser's message quotes the text it choked on, and that is the secret.
var errTokenHidden = errors.New("invalid value (not shown: this line holds the bot token; write it as a quoted string)")

// redacted hides the parser's message when the error is on the token's line.
func (c *Config) redacted(e *Error) *Error {
	if e.Key == "token" || (e.Line > 0 && e.Line == c.lineOf("token")) {
		e.Err = errTokenHidden
	}
	return e
}

// errorAt builds an Error for key, finding its line in the file's text.
func (c *Config) errorAt(key string, err error) error {
	return &Error{File: c.file, Line: c.lineOf(key), Key: key, Err: err}
}

// lineOf returns the 1-based line where key is set (or its table opened),
// or 0 if the text does not mention it. A key of a table ("bus.listen") is
// looked for inside that table first, and a top-level key before the first
// table: the same name may be in both (token_file).
func (c *Config) lineOf(key string) int {
	if key == "" {
		return 0
	}
	table, last := "", key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		table, last = key[:i], key[i+1:]
	}
	q := regexp.QuoteMeta
	assign := regexp.MustCompile(`^\s*(?:` + q(last) + `|"` + q(last) + `"|'` + q(last) + `')\s*=`)
	header := regexp.MustCompile(`^\s*\[\[?\s*` + q(key) + `\s*\]`)
	inTable := "" // the table the line is in, "" at the top level
	for i, l := range c.lines {
		if m := tableHeader.FindStringSubmatch(l); m != nil {
			inTable = m[1]
		}
		if inTable == table && assign.MatchString(l) {
			return i + 1
		}
	}
	// Elsewhere: a dotted key (bus.listen = ...), an inline table, or the
	// table's header; else, for a key of a table, the table.
	for i, l := range c.lines {
		if assign.MatchString(l) || header.MatchString(l) {
			return i + 1
		}
	}
	if table != "" {
		return c.lineOf(table) // an absent key of a table: the table's line
	}
	return 0
}

// tableHeader matches a line that opens a table, [name] or [[name]].
var tableHeader = regexp.MustCompile(`^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(?:#.*)?$`)

// validate checks values the TOML types cannot express and names their key and line.
func (c *Config) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, c.errorAt(key, fmt.Errorf(format, args...)))
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("api_url", "must be an http:// or https:// URL, got %q", c.APIURL)
	}
	if c.Intents < 0 || c.Intents > maxIntents {
		bad("intents", "must be a non-negative intent bit set of at most %d, got %d", maxIntents, c.Intents)
	}
	if c.ShardCount < 0 || c.ShardCount > store.MaxShardCount {
		bad("shard_count", "must be 0 (Discord's recommendation) up to %d, got %d", store.MaxShardCount, c.ShardCount)
	}
	if len(c.ShardIDs) > 0 {
		if c.ShardCount == 0 {
			bad("shard_ids", "needs a fixed shard_count (shard IDs only mean something for a known count)")
		}
		for _, id := range c.ShardIDs {
			if c.ShardCount > 0 && id >= c.ShardCount {
				bad("shard_ids", "shard %d is not below shard_count %d", id, c.ShardCount)
				break
			}
		}
	}
	if c.MaxConcurrency < 0 || c.MaxConcurrency > store.MaxMaxConcurrency {
		bad("max_concurrency", "must be 0 (from Discord) up to %d, got %d", store.MaxMaxConcurrency, c.MaxConcurrency)
	}
	switch gateway.Compression(c.Compression) {
	case gateway.CompressionZstdStream, gateway.CompressionZlibStream, gateway.CompressionNone:
	default:
		bad("compression", "must be zstd-stream, zlib-stream or none, got %q", c.Compression)
	}
	if c.LargeThreshold < minLargeThreshold || c.LargeThreshold > maxLargeThreshold {
		bad("large_threshold", "must be between %d and %d, got %d", minLargeThreshold, maxLargeThreshold, c.LargeThreshold)
	}
	if c.StateFile == "" {
		bad("state_file", "must not be empty")
	}
	if c.SplitCount < 2 || c.SplitCount > maxSplitCount {
		bad("split_count", "must be at least 2 and at most %d, got %d", maxSplitCount, c.SplitCount)
	}
	if c.IdentifyWindow <= 0 || c.IdentifyWindow > Duration(maxIdentifyWindow) {
		bad("identify_window", "must be positive and at most %s, got %s", maxIdentifyWindow, c.IdentifyWindow)
	}
	if c.IdentifyMargin < 0 || c.IdentifyMargin > Duration(maxIdentifyMargin) {
		bad("identify_margin", "must not be negative nor above %s, got %s", maxIdentifyMargin, c.IdentifyMargin)
	}
	if c.SessionStartReserve < 0 {
		bad("session_start_reserve", "must not be negative, got %d", c.SessionStartReserve)
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			bad("metrics_addr", "must be HOST:PORT, got %q", c.MetricsAddr)
		}
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		bad("log_level", "%v", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", "must be text or json, got %q", c.LogFormat)
	}
	if c.Refresh < Duration(minRefresh) || c.Refresh > Duration(maxRefresh) {
		bad("refresh", "must be at least %s and at most %s, got %s", minRefresh, maxRefresh, c.Refresh)
	}
	c.validateBus(bad)
	c.validateCluster(bad)
	return errs
}

// resolvePaths makes token_file, state_file and the [bus] paths relative to the config file's directory.
func (c *Config) resolvePaths() {
	if c.file == "" {
		return
	}
	dir := filepath.Dir(c.file)
	if c.TokenFile != "" && !filepath.IsAbs(c.TokenFile) {
		c.TokenFile = filepath.Join(dir, c.TokenFile)
	}
	if !filepath.IsAbs(c.StateFile) {
		c.StateFile = filepath.Join(dir, c.StateFile)
	}
	c.resolveBusPaths(dir)
}

// ResolveToken returns the bot token from DISCORD_TOKEN, else token_file,
// else token; source names where it came from for messages ("DISCORD_TOKEN",
// "token_file PATH" or "token in FILE:LINE"), never showing the token; and
// warnings, about files readable by group or others and about a "Bot "
// prefix, which is removed (the REST client adds it itself). A token that
// cannot be one is a *TokenError matching ErrBadToken: Discord bot tokens
// are printable ASCII without spaces, and a "Bearer " token is an OAuth2
// access token. getenv is os.Getenv outside tests.
func (c Config) ResolveToken(getenv func(string) string) (token, source string, warnings []string, err error) {
	var raw string
	switch {
	case strings.TrimSpace(getenv(tokenEnv)) != "":
		raw, source = getenv(tokenEnv), tokenEnv
	case c.TokenFile != "":
		data, err := regularfile.Read(c.TokenFile, MaxTokenFileSize)
		if err != nil {
			return "", "", nil, c.errorAt("token_file", err)
		}
		raw, source = string(data), "token_file "+c.TokenFile
		if strings.TrimSpace(raw) == "" {
			return "", "", nil, c.errorAt("token_file", fmt.Errorf("%s is empty", c.TokenFile))
		}
		warnings = permissionWarning(c.TokenFile, "token file")
	case c.Token.Reveal() != "":
		raw, source = c.Token.Reveal(), "token in the config"
		if c.file != "" {
			source = "token in " + c.file
			if line := c.lineOf("token"); line > 0 {
				source += ":" + strconv.Itoa(line)
			}
		}
		warnings = permissionWarning(c.file, "config file holding the token")
	default:
		return "", "", nil, ErrNoToken
	}
	token, warning, err := checkToken(raw)
	if err != nil {
		return "", "", nil, &TokenError{Source: source, Err: err}
	}
	if warning != "" {
		warnings = append(warnings, "the bot token from "+source+" "+warning)
	}
	return token, source, warnings, nil
}

// ErrBadToken means the bot token cannot be a Discord bot token. The error
// is a *TokenError naming where the token came from.
var ErrBadToken = errors.New("not a bot token")

// TokenError is a malformed bot token. It names the token's source, as
// ResolveToken reports it, and never the token.
type TokenError struct {
	Source string // "DISCORD_TOKEN", "token_file PATH" or "token in FILE:LINE"
	Err    error  // what is wrong, matching ErrBadToken
}

// Error formats the problem as "bot token from SOURCE: problem".
func (e *TokenError) Error() string { return "bot token from " + e.Source + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *TokenError) Unwrap() error { return e.Err }

// checkToken trims raw and checks that it can be a bot token. It removes a
// pasted "Bot " prefix, saying so in warning (the text after "the bot token
// from SOURCE"). Errors never quote the token.
func checkToken(raw string) (token, warning string, err error) {
	token = strings.TrimSpace(raw)
	if prefix, ok := cutPrefixFold(token, "Bearer "); ok {
		return "", "", fmt.Errorf("%w: it starts with %q, so it is an OAuth2 access token; shardtop needs the bot token from the Bot page of the application in the Discord Developer Portal", ErrBadToken, prefix)
	}
	if strings.EqualFold(token, "Bot") {
		token = "" // the prefix alone, trimmed of its space
	}
	if prefix, ok := cutPrefixFold(token, "Bot "); ok {
		token = strings.TrimSpace(token[len(prefix):])
		warning = fmt.Sprintf("starts with %q, which shardtop adds itself: it was removed; remove it there too", prefix)
	}
	if token == "" {
		return "", "", fmt.Errorf("%w: it is empty", ErrBadToken)
	}
	for i := 0; i < len(token); i++ {
		if b := token[i]; b <= ' ' || b > '~' {
			return "", "", fmt.Errorf("%w: it contains %s (character %d of %d); Discord bot tokens are printable ASCII without spaces",
				ErrBadToken, describeByte(b), i+1, len(token))
		}
	}
	return token, warning, nil
}

// cutPrefixFold reports whether s starts with prefix, ignoring case, and
// returns the prefix as written in s.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[:len(prefix)], true
	}
	return "", false
}

// describeByte names a byte that cannot be in a token, without showing it
// (it may be part of the secret).
func describeByte(b byte) string {
	switch {
	case b == '\n' || b == '\r':
		return "a line break"
	case b == ' ' || b == '\t':
		return "a space or tab"
	case b < ' ' || b == 0x7f:
		return "a control character"
	}
	return "a non-ASCII character"
}

// permissionWarning warns when a file holding the token is readable by group or others.
func permissionWarning(path, what string) []string {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s %s is accessible by group or others (mode %s); run chmod 600 %s",
		what, path, fi.Mode().Perm(), path)}
}

// ParseLevel maps a log_level to a slog level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
}

// Duration is a time.Duration written as a string in TOML, e.g. "5s" or "250ms".
type Duration time.Duration

// UnmarshalTOML accepts only a duration string: a bare number has no unit.
func (d *Duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a duration string such as \"5s\", got %v (%T)", v, v)
	}
	p, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q: %w", s, err)
	}
	*d = Duration(p)
	return nil
}

// String formats the duration like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// ShardIDs is a list of shard IDs, written in TOML as integers and
// range strings: shard_ids = [0, 1, "4-7"] or shard_ids = "0-15".
type ShardIDs []int

// UnmarshalTOML accepts an integer, a range string, or an array of both.
func (s *ShardIDs) UnmarshalTOML(v any) error {
	var items []any
	switch t := v.(type) {
	case []any:
		items = t
	default:
		items = []any{t}
	}
	seen := make(map[int]bool)
	var ids []int
	add := func(id int64) error {
		if id < 0 {
			return fmt.Errorf("shard ID %d is negative", id)
		}
		if id >= store.MaxShardCount {
			return fmt.Errorf("shard ID %d is not below %d, the largest shard count", id, store.MaxShardCount)
		}
		if !seen[int(id)] {
			seen[int(id)] = true
			ids = append(ids, int(id))
		}
		return nil
	}
	for _, it := range items {
		switch x := it.(type) {
		case int64:
			if err := add(x); err != nil {
				return err
			}
		case string:
			for _, part := range strings.Split(x, ",") {
				lo, hi, err := parseRange(strings.TrimSpace(part))
				if err != nil {
					return err
				}
				for id := lo; id <= hi; id++ {
					if err := add(int64(id)); err != nil {
						return err
					}
				}
			}
		default:
			return fmt.Errorf("want shard IDs (integers or ranges like \"0-15\"), got %v (%T)", it, it)
		}
	}
	sort.Ints(ids)
	*s = ids
	return nil
}

func parseRange(r string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(r, "-")
	if lo, err = strconv.Atoi(strings.TrimSpace(a)); err != nil {
		return 0, 0, fmt.Errorf("bad shard range %q: want N or N-M", r)
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
			return 0, 0, fmt.Errorf("bad shard range %q: want N or N-M", r)
		}
	}
	if lo < 0 || hi < lo {
		return 0, 0, fmt.Errorf("bad shard range %q: want 0 <= N <= M", r)
	}
	// Checked before the range is expanded, so it cannot allocate much.
	if hi >= store.MaxShardCount {
		return 0, 0, fmt.Errorf("bad shard range %q: shard IDs are below %d, the largest shard count", r, store.MaxShardCount)
	}
	return lo, hi, nil
}

// String formats the IDs compactly, e.g. "0-3,8".
func (s ShardIDs) String() string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	return b.String()
}
