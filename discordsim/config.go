package discordsim

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Defaults for every Config field whose zero value means "use the default".
// They are Discord's real figures where Discord publishes one.
const (
	DefaultAddr                   = "127.0.0.1:0"
	DefaultToken                  = "sim-token"
	DefaultShards                 = 4
	DefaultMaxConcurrency         = 1
	DefaultIdentifyWindow         = 5 * time.Second
	DefaultSessionStartTotal      = 1000
	DefaultSessionStartResetAfter = 24 * time.Hour
	DefaultGuilds                 = 100
	DefaultMaxGuildsPerShard      = 2500
	DefaultHeartbeatInterval      = 41250 * time.Millisecond
	DefaultSessionTTL             = 3 * time.Minute
	DefaultReplayBuffer           = 10000
	DefaultSendLimit              = 120
	DefaultSendWindow             = 60 * time.Second
	DefaultPresenceLimit          = 5
	DefaultPresenceWindow         = 20 * time.Second
	// DefaultMemberRequestWindow is Discord's limit on requests for a
	// guild's whole member list: one per guild per 30 s.
	DefaultMemberRequestWindow = 30 * time.Second
	// DefaultWriteTimeout bounds every network write to a client.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultCloseGrace is how long the server waits for the client's
	// answering close frame before it closes the TCP connection.
	DefaultCloseGrace = time.Second
)

// Upper bounds of the rates and sizes the simulator accepts, in Config, from
// the Set* methods (which clamp to them) and on the control endpoints (which
// refuse more with a 400).
const (
	// MaxEventRate is the highest EventRate: MESSAGE_CREATE per second per
	// session, far more than one Discord shard sees. A loopback connection
	// carries ~350k small events per second uncompressed; Burst goes as fast
	// as a connection takes them.
	MaxEventRate = 100_000
	// MaxFaultRate is the highest FaultRate per connection. The scheduler
	// injects at most one random fault per connection per tick (10 ms), so
	// anything above 100 already means one every tick.
	MaxFaultRate = 1000
	// MaxBurst is the largest n POST /_sim/burst accepts (~10 GB of frames).
	MaxBurst = 10_000_000
)

// Bounds of Config fields that have no Max constant of their own.
const (
	// maxConfigDuration bounds every duration, so that adding one to now or
	// taking 3/2 of the heartbeat interval cannot overflow.
	maxConfigDuration = 365 * 24 * time.Hour
	// minHeartbeatInterval: Hello carries the interval in whole milliseconds.
	minHeartbeatInterval = time.Millisecond
	// maxSlidingLimit bounds SendLimit and PresenceLimit: each connection
	// keeps one instant per admitted payload of the window.
	maxSlidingLimit = 100_000
)

// ErrInvalidConfig is matched (errors.Is) by every Config error of Start;
// errors.As gives the *ConfigError that names the field.
var ErrInvalidConfig = errors.New("invalid config")

// ErrControlTokenRequired is the cause of Start's *ConfigError for an Addr
// that is not loopback when Config.ControlToken is empty.
var ErrControlTokenRequired = errors.New("not a loopback address: anyone who reaches it could drive the control endpoints (/_sim/...), so a ControlToken is required")

// ConfigError is a Config field Start refuses.
type ConfigError struct {
	Field string // the Config field, e.g. "EventRate"
	Value any    // the value refused (never a token)
	Err   error  // what is wrong with it
}

// Error names the field, its value and what is wrong.
func (e *ConfigError) Error() string {
	if s, ok := e.Value.(string); ok {
		return fmt.Sprintf("discordsim: config %s = %q: %v", e.Field, s, e.Err)
	}
	return fmt.Sprintf("discordsim: config %s = %v: %v", e.Field, e.Value, e.Err)
}

// Unwrap makes the error match ErrInvalidConfig and its cause.
func (e *ConfigError) Unwrap() []error { return []error{ErrInvalidConfig, e.Err} }

// Gateway intents (bit flags) as Discord defines them for API v10.
const (
	// IntentsPrivileged are GUILD_MEMBERS (1<<1), GUILD_PRESENCES (1<<8) and
	// MESSAGE_CONTENT (1<<15): a bot must be approved to use them.
	IntentsPrivileged int64 = 1<<1 | 1<<8 | 1<<15
	// IntentsAll is every intent bit Discord defines (0-16, 20, 21, 24, 25).
	// Any other bit in an identify is invalid (close 4013).
	IntentsAll int64 = 1<<17 - 1 | 1<<20 | 1<<21 | 1<<24 | 1<<25
	// IntentsNonPrivileged is IntentsAll without the privileged intents.
	IntentsNonPrivileged = IntentsAll &^ IntentsPrivileged
)

// FaultKind names a fault the simulator can inject at random (Config.FaultKinds).
type FaultKind int

// The random faults. Each one is also available on demand through a Server method.
const (
	FaultReconnect        FaultKind = iota + 1 // op 7 Reconnect
	FaultInvalidResumable                      // op 9 d=true
	FaultInvalidFresh                          // op 9 d=false (the session is gone)
	FaultClose4000                             // close 4000 unknown error
	FaultClose4007                             // close 4007 invalid seq
	FaultClose4009                             // close 4009 session timed out
	FaultZombie                                // stop sending, keep TCP open
	FaultDropTCP                               // close TCP with no close frame
)

// allFaults is what an empty Config.FaultKinds means.
var allFaults = []FaultKind{FaultReconnect, FaultInvalidResumable, FaultInvalidFresh,
	FaultClose4000, FaultClose4007, FaultClose4009, FaultZombie, FaultDropTCP}

// String names the fault.
func (k FaultKind) String() string {
	switch k {
	case FaultReconnect:
		return "reconnect"
	case FaultInvalidResumable:
		return "invalidate-resumable"
	case FaultInvalidFresh:
		return "invalidate-fresh"
	case FaultClose4000:
		return "close-4000"
	case FaultClose4007:
		return "close-4007"
	case FaultClose4009:
		return "close-4009"
	case FaultZombie:
		return "zombie"
	case FaultDropTCP:
		return "drop-tcp"
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// Config configures a Server. It is a plain struct: every field's zero value
// means the default documented on the field (the Default* constants). Start
// refuses a field out of its range with a *ConfigError: negative numbers,
// durations over a year, a HeartbeatInterval under 1ms, SendLimit or
// PresenceLimit over 100000, a rate that is not finite or over its Max*.
type Config struct {
	// Addr is the listen address, HOST:PORT. Default "127.0.0.1:0" (any free
	// port). An address that is not loopback needs a ControlToken.
	Addr string
	// Advertise is the HOST or HOST:PORT clients are told to use: APIURL,
	// GatewayURL, ResumeURL, /gateway/bot's url and READY's
	// resume_gateway_url carry it. Without a port, the port listened on.
	// Default: Addr's host when it names one (an address or a name); when it
	// is a wildcard ("", 0.0.0.0 or ::), which no client can connect to, the
	// first global unicast address of an up, non-loopback network interface
	// (IPv4 first, only IPv4 for 0.0.0.0), or 127.0.0.1 if there is none.
	// The machine's hostname is not used: it often resolves to a loopback
	// address on the machine itself and to nothing elsewhere.
	Advertise string
	// ControlToken, when set, must come with every request to the control
	// endpoints (/_sim/...) as "Authorization: Bearer TOKEN"; others get a
	// 401. Required when Addr is not a loopback address (Start fails with
	// ErrControlTokenRequired): anyone who reaches the port could otherwise
	// close any shard with 4004 or list session IDs. Never logged, like Token.
	// Whatever the token, a control request carrying an Origin other than
	// the simulator's own (http://ADVERTISE or http://ADDR) gets a 403, so a
	// web page cannot send one cross-site.
	ControlToken string
	// Token is the only bot token accepted. Default "sim-token". Never logged:
	// Config's String, GoString and LogValue redact it.
	Token string
	// Shards is the recommended shard count /gateway/bot answers. Default 4.
	Shards int
	// MaxConcurrency is session_start_limit.max_concurrency: identify bucket =
	// shard_id % MaxConcurrency. Default 1.
	MaxConcurrency int
	// IdentifyWindow is how long a bucket is busy after an accepted identify.
	// Default 5s.
	IdentifyWindow time.Duration
	// SessionStartTotal is the daily identify budget. Default 1000.
	SessionStartTotal int
	// SessionStartResetAfter is the budget period. The period starts with the
	// first identify spent after a reset; remaining returns to the total when
	// it ends. Default 24h.
	SessionStartResetAfter time.Duration
	// Guilds is how many guilds the bot is in. Default 100.
	Guilds int
	// MaxGuildsPerShard is the most guilds one [id,count] may hold; an
	// identify for a shard holding more is closed with 4011. Default 2500.
	MaxGuildsPerShard int
	// HeartbeatInterval is sent in Hello. Default 41.25s.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout: a connection whose client sends no heartbeat for this
	// long (counted from Hello, then from each heartbeat) is closed with 4009
	// (session timed out) and its session ends. Discord does not state the code;
	// 4009 is its documented meaning. Default max(1.5*HeartbeatInterval,
	// HeartbeatInterval+1s).
	HeartbeatTimeout time.Duration
	// SessionTTL is how long a session whose connection ended without 1000/1001
	// stays resumable. Default 3m.
	SessionTTL time.Duration
	// ReplayBuffer is how many of its latest dispatches a session keeps for
	// resume replay; a resume from an older seq is closed with 4007. The buffer
	// grows as needed up to this size. Default 10000.
	ReplayBuffer int
	// EventRate is MESSAGE_CREATE dispatches per second per READY session
	// (attached or detached: a detached session keeps receiving events into its
	// replay buffer, as Discord queues them, so a resume replays them).
	// Default 0 (none); at most MaxEventRate. Change it at run time with
	// Server.SetEventRate. A connection that cannot keep up falls at most
	// maxRateBacklog (16384) events behind; the rate produces no more for it
	// until it catches up, so lowering the rate takes effect at once.
	EventRate float64
	// MessageVariety is how many different MESSAGE_CREATE bodies traffic
	// cycles through (1..256). Default 256: more than a 32 KiB compression
	// window holds, so zlib/zstd ratios are realistic (~3.8x) but each
	// compressed payload costs the server ~15-20 us (a per-message sync flush
	// builds Huffman tables). Bursts are compressed before they are sent (see
	// Server.Burst), so that cost delays a burst rather than pacing it. A small
	// value (e.g. 4) makes the stream highly repetitive: ~10x cheaper to
	// compress, unrealistically small on the wire, and so flattering to a
	// client's decoder: avoid it in client benchmarks.
	MessageVariety int
	// FaultRate is random faults per second per identified connection.
	// Default 0 (none); at most MaxFaultRate.
	FaultRate float64
	// FaultKinds are the random faults to choose from. Empty means all.
	FaultKinds []FaultKind
	// AllowedIntents are the intents the bot is approved for. Intent bits
	// outside IntentsAll close with 4013; privileged bits (IntentsPrivileged)
	// missing from AllowedIntents close with 4014. Zero means IntentsAll (every
	// privileged intent approved); use IntentsNonPrivileged for an unapproved bot.
	AllowedIntents int64
	// SendLimit is how many payloads a client may send per SendWindow on one
	// connection (every kind counts, heartbeats too). The window slides: the
	// (SendLimit+1)th payload within any SendWindow is closed with 4008.
	// Default 120.
	SendLimit int
	// SendWindow: see SendLimit. Default 60s.
	SendWindow time.Duration
	// PresenceLimit is how many presence updates (op 3) a client may send per
	// PresenceWindow on one connection (sliding, like SendLimit); the
	// (PresenceLimit+1)th within any PresenceWindow is closed with 4008.
	// Discord's docs state the limit (5 per 20 s) but not what happens over
	// it; 4008 (rate limited) is the simulator's choice. Default 5.
	PresenceLimit int
	// PresenceWindow: see PresenceLimit. Default 20s.
	PresenceWindow time.Duration
	// MemberRequestWindow is how often a guild's whole member list may be
	// requested (op 8 with query "" and limit 0): Discord allows one per
	// guild per bot per 30 s and answers one more with a RATE_LIMITED
	// dispatch instead of member chunks. Default 30s.
	MemberRequestWindow time.Duration
	// WriteTimeout bounds every network write to a client. A client that
	// stops reading is disconnected (TCP closed) once a write times out, or
	// as soon as its connection's command queue is full, as Discord
	// disconnects a client that does not read; it never stalls the server.
	// Default 10s.
	WriteTimeout time.Duration
	// CloseGrace is how long the server waits, after sending a close frame, for
	// the client's close frame before it closes the TCP connection. Default 1s.
	CloseGrace time.Duration
	// ReadyDelay is how long READY takes after an accepted identify (Discord
	// takes a moment to build it, longer for shards with many guilds). The
	// identify counts against its bucket from its arrival. Default 0.
	ReadyDelay time.Duration
	// Logger receives debug logs. Default: discard.
	Logger *slog.Logger
	// Seed seeds random faults, traffic and session IDs. 0 means time-based.
	Seed int64

	// burstChunk is how many dispatches a burst prepares per chunk (burst.go).
	// Unexported: tests shrink it to exercise chunking cheaply. Default
	// burstChunkEvents.
	burstChunk int
	// rateBacklog bounds rate traffic owed to one session (scheduler.go).
	// Unexported: tests shrink it so that a bounded backlog drains quickly
	// under -race on a loaded machine. Default maxRateBacklog.
	rateBacklog int64
}

// String describes the config with the token redacted.
func (c Config) String() string {
	c.Token = redact(c.Token)
	c.ControlToken = redact(c.ControlToken)
	type plain Config // no methods: no recursion
	return fmt.Sprintf("%+v", plain(c))
}

// GoString is String: %#v never shows the token.
func (c Config) GoString() string { return c.String() }

// LogValue makes slog log the config with the token redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("advertise", c.Advertise),
		slog.String("token", redact(c.Token)),
		slog.String("control_token", redact(c.ControlToken)),
		slog.Int("shards", c.Shards),
		slog.Int("max_concurrency", c.MaxConcurrency),
		slog.Int("guilds", c.Guilds),
		slog.Duration("heartbeat_interval", c.HeartbeatInterval),
	)
}

func redact(token string) string {
	if token == "" {
		return ""
	}
	return "[REDACTED]"
}

// withDefaults fills every zero field with its default and rejects a field
// out of its range with a *ConfigError, in field order.
func (c Config) withDefaults() (Config, error) {
	// Raw durations first: a zero means the default, so only the sign and
	// the size of what the caller gave can be wrong.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"IdentifyWindow", c.IdentifyWindow}, {"SessionStartResetAfter", c.SessionStartResetAfter},
		{"HeartbeatInterval", c.HeartbeatInterval}, {"HeartbeatTimeout", c.HeartbeatTimeout},
		{"SessionTTL", c.SessionTTL}, {"SendWindow", c.SendWindow}, {"PresenceWindow", c.PresenceWindow},
		{"MemberRequestWindow", c.MemberRequestWindow},
		{"WriteTimeout", c.WriteTimeout}, {"CloseGrace", c.CloseGrace}, {"ReadyDelay", c.ReadyDelay}} {
		if d.v < 0 || d.v > maxConfigDuration {
			return c, &ConfigError{Field: d.name, Value: d.v, Err: fmt.Errorf("must be from 0 (the default) to %v", maxConfigDuration)}
		}
	}
	c.Addr = cmp.Or(c.Addr, DefaultAddr)
	c.Token = cmp.Or(c.Token, DefaultToken)
	c.Shards = cmp.Or(c.Shards, DefaultShards)
	c.MaxConcurrency = cmp.Or(c.MaxConcurrency, DefaultMaxConcurrency)
	c.IdentifyWindow = cmp.Or(c.IdentifyWindow, DefaultIdentifyWindow)
	c.SessionStartTotal = cmp.Or(c.SessionStartTotal, DefaultSessionStartTotal)
	c.SessionStartResetAfter = cmp.Or(c.SessionStartResetAfter, DefaultSessionStartResetAfter)
	c.Guilds = cmp.Or(c.Guilds, DefaultGuilds)
	c.MaxGuildsPerShard = cmp.Or(c.MaxGuildsPerShard, DefaultMaxGuildsPerShard)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	if c.HeartbeatInterval < minHeartbeatInterval {
		// Hello carries whole milliseconds: less would tell clients 0.
		return c, &ConfigError{Field: "HeartbeatInterval", Value: c.HeartbeatInterval, Err: fmt.Errorf("must be at least %v", minHeartbeatInterval)}
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = max(c.HeartbeatInterval*3/2, c.HeartbeatInterval+time.Second)
	}
	c.SessionTTL = cmp.Or(c.SessionTTL, DefaultSessionTTL)
	c.ReplayBuffer = cmp.Or(c.ReplayBuffer, DefaultReplayBuffer)
	if c.AllowedIntents == 0 {
		c.AllowedIntents = IntentsAll
	}
	if c.MessageVariety == 0 {
		c.MessageVariety = messagePoolSize
	}
	if c.MessageVariety < 0 || c.MessageVariety > messagePoolSize {
		return c, &ConfigError{Field: "MessageVariety", Value: c.MessageVariety, Err: fmt.Errorf("must be 1..%d", messagePoolSize)}
	}
	c.SendLimit = cmp.Or(c.SendLimit, DefaultSendLimit)
	c.SendWindow = cmp.Or(c.SendWindow, DefaultSendWindow)
	c.PresenceLimit = cmp.Or(c.PresenceLimit, DefaultPresenceLimit)
	c.PresenceWindow = cmp.Or(c.PresenceWindow, DefaultPresenceWindow)
	c.MemberRequestWindow = cmp.Or(c.MemberRequestWindow, DefaultMemberRequestWindow)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.CloseGrace = cmp.Or(c.CloseGrace, DefaultCloseGrace)
	if c.burstChunk <= 0 {
		c.burstChunk = burstChunkEvents
	}
	if c.rateBacklog <= 0 {
		c.rateBacklog = maxRateBacklog
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	if len(c.FaultKinds) == 0 {
		c.FaultKinds = allFaults
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"Shards", c.Shards}, {"MaxConcurrency", c.MaxConcurrency}, {"SessionStartTotal", c.SessionStartTotal},
		{"Guilds", c.Guilds}, {"MaxGuildsPerShard", c.MaxGuildsPerShard}, {"ReplayBuffer", c.ReplayBuffer}} {
		if f.v < 0 {
			return c, &ConfigError{Field: f.name, Value: f.v, Err: errors.New("must not be negative")}
		}
	}
	// Each connection keeps a ring of that many instants per limit.
	for _, f := range []struct {
		name string
		v    int
	}{{"SendLimit", c.SendLimit}, {"PresenceLimit", c.PresenceLimit}} {
		if f.v < 0 || f.v > maxSlidingLimit {
			return c, &ConfigError{Field: f.name, Value: f.v, Err: fmt.Errorf("must be from 0 (the default) to %d", maxSlidingLimit)}
		}
	}
	if err := checkRate(c.EventRate, MaxEventRate); err != nil {
		return c, &ConfigError{Field: "EventRate", Value: c.EventRate, Err: err}
	}
	if err := checkRate(c.FaultRate, MaxFaultRate); err != nil {
		return c, &ConfigError{Field: "FaultRate", Value: c.FaultRate, Err: err}
	}
	for _, k := range c.FaultKinds {
		if k < FaultReconnect || k > FaultDropTCP {
			return c, &ConfigError{Field: "FaultKinds", Value: k, Err: errors.New("unknown fault kind")}
		}
	}
	return c, nil
}

// checkRate accepts a finite rate from 0 to limit.
func checkRate(v, limit float64) error {
	if !(v >= 0 && v <= limit) { // NaN fails both
		return fmt.Errorf("must be a finite number from 0 to %g", limit)
	}
	return nil
}
