package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Discord's defaults and the shard's tunables. Everything configurable by an
// option has its default here and only here.
const (
	// DefaultURL is the gateway URL used without WithURL (use /gateway/bot's url).
	DefaultURL = "wss://gateway.discord.gg"
	// DefaultCompression is zstd-stream: the smallest frames and, with a
	// synchronous decoder, cheap to decode. Its memory cost is the window the
	// server declares (see WithZstdMaxWindow).
	DefaultCompression = CompressionZstdStream
	// DefaultLargeThreshold is Discord's default large_threshold.
	DefaultLargeThreshold = 50
	// DefaultSendLimit and DefaultSendWindow are Discord's 120 payloads per 60 s per connection.
	DefaultSendLimit  = 120
	DefaultSendWindow = 60 * time.Second
	// DefaultBackoffMin and DefaultBackoffMax bound reconnect backoff:
	// exponential, jittered between min and the exponential bound (see WithBackoff).
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = 2 * time.Minute
	// DefaultHandshakeTimeout bounds the websocket upgrade and the wait for Hello.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultIdentifyWindow is Discord's identify window (5 s), the window of the default gate.
	DefaultIdentifyWindow = 5 * time.Second
	// DefaultIdentifyMargin is added to the window of a gate made by
	// NewLocalGate (as limiter.DefaultMargin is to the limiter's): Discord
	// judges the window on arrival, so spacing identifies exactly one window
	// apart lets network and scheduling jitter earn an op 9.
	DefaultIdentifyMargin = 50 * time.Millisecond
	// DefaultPresenceLimit and DefaultPresenceWindow are Discord's limit on
	// presence updates (op 3): at most 5 per 20 s per connection.
	DefaultPresenceLimit  = 5
	DefaultPresenceWindow = 20 * time.Second
	// DefaultInvalidSessionMin/Max: after op 9 d=false wait a random 1-5 s before identifying anew (Discord's advice).
	DefaultInvalidSessionMin = time.Second
	DefaultInvalidSessionMax = 5 * time.Second
	// DefaultReadLimit bounds one websocket message and one decompressed payload.
	DefaultReadLimit = 64 << 20
	// DefaultZstdMaxWindow is the largest zstd window accepted (the zstd
	// format's recommended decoder minimum is 8 MiB). The decoder's history
	// is window + ~256 KiB, allocated per connection.
	DefaultZstdMaxWindow = 8 << 20
	// DefaultWriteTimeout bounds every write to the socket.
	DefaultWriteTimeout = 10 * time.Second

	// Adaptive identify lead: measured handshake time x 1.5, clamped.
	defaultLeadInitial = time.Second
	leadMin            = 100 * time.Millisecond
	leadMax            = 5 * time.Second
	leadFactor         = 1.5

	// minHeartbeatInterval and maxHeartbeatInterval bound the
	// heartbeat_interval a Hello may declare; outside them the Hello is bad
	// (a *DecodeError, the shard reconnects). Discord sends 41.25 s. Below
	// 1 ms the shard would do little but heartbeat (and blow the send
	// limit); above 10 min a dead connection would go unnoticed for hours.
	minHeartbeatInterval = time.Millisecond
	maxHeartbeatInterval = 10 * time.Minute

	// maxResumeURLDialFails is how many dials in a row to a session's
	// resume URL may fail before the shard resumes through the gateway URL.
	maxResumeURLDialFails = 3

	// closeWriteTimeout bounds writing our close frame.
	closeWriteTimeout = time.Second
	// resumableCloseCode is the code the shard closes with when the session
	// must survive (zombie, op 7, Close): anything but 1000/1001 works; 4000
	// is what most libraries send.
	resumableCloseCode = 4000
)

// Option configures a Shard.
type Option func(*config)

type config struct {
	url               string
	intents           int64
	compression       Compression
	largeThreshold    int
	presence          json.RawMessage
	osName, browser   string
	device            string
	gate              IdentifyGate
	identifyLead      time.Duration // 0: adaptive
	dialGuard         func() error  // nil: always
	session           Session
	onDispatch        func(Dispatch)
	onState           func(StateChange)
	logger            *slog.Logger
	backoffMin        time.Duration
	backoffMax        time.Duration
	dialer            *websocket.Dialer
	handshakeTimeout  time.Duration
	sendLimit         int
	sendWindow        time.Duration
	presenceLimit     int
	presenceWindow    time.Duration
	heartbeatJitter   func() float64
	backoffJitter     func() float64
	invalidSessionMin time.Duration
	invalidSessionMax time.Duration
	readLimit         int
	zstdMaxWindow     uint64
	writeTimeout      time.Duration
}

// String redacts nothing because config holds no token; it exists so %v never walks into the dialer or handlers.
func (c *config) String() string {
	return "gateway.config{url=" + c.url + ", compress=" + string(c.compression) + "}"
}

func defaultConfig() config {
	return config{
		url:               DefaultURL,
		compression:       DefaultCompression,
		largeThreshold:    DefaultLargeThreshold,
		osName:            runtime.GOOS,
		browser:           "shardtop",
		device:            "shardtop",
		logger:            discardLogger,
		backoffMin:        DefaultBackoffMin,
		backoffMax:        DefaultBackoffMax,
		handshakeTimeout:  DefaultHandshakeTimeout,
		sendLimit:         DefaultSendLimit,
		sendWindow:        DefaultSendWindow,
		presenceLimit:     DefaultPresenceLimit,
		presenceWindow:    DefaultPresenceWindow,
		heartbeatJitter:   rand.Float64,
		backoffJitter:     rand.Float64,
		invalidSessionMin: DefaultInvalidSessionMin,
		invalidSessionMax: DefaultInvalidSessionMax,
		readLimit:         DefaultReadLimit,
		zstdMaxWindow:     DefaultZstdMaxWindow,
		writeTimeout:      DefaultWriteTimeout,
	}
}

// discardLogger is the default logger, shared: a shard with it logs nothing
// and allocates no logger of its own.
var discardLogger = slog.New(slog.DiscardHandler)

// writeBufferPool shares websocket write buffers between all shards: an idle
// shard holds none.
var writeBufferPool sync.Pool

// defaultDialer is the dialer of every shard without WithDialer for wss://
// URLs (plainDialer for ws://). It has no HandshakeTimeout: connect bounds
// the whole dial with a context already.
var defaultDialer = &websocket.Dialer{
	Proxy:           http.ProxyFromEnvironment,
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	WriteBufferPool: &writeBufferPool,
}

// newDialer returns a copy of WithDialer's dialer (so that a later change
// to it does not reach a running shard), or nil for the shared defaults
// (see dialerFor).
func (c *config) newDialer() *websocket.Dialer {
	if c.dialer != nil {
		d := *c.dialer
		return &d
	}
	return nil
}

// dialerFor returns the dialer for fullURL (a gatewayURL): WithDialer's,
// else plainDialer for ws:// and defaultDialer for wss://.
func (s *Shard) dialerFor(fullURL string) *websocket.Dialer {
	switch {
	case s.dialer != nil:
		return s.dialer
	case strings.HasPrefix(fullURL, "ws://"):
		return plainDialer
	}
	return defaultDialer
}

// WithURL sets the gateway URL (the url of /gateway/bot). Default DefaultURL.
func WithURL(gatewayURL string) Option { return func(c *config) { c.url = gatewayURL } }

// WithIntents sets the gateway intents sent in Identify. Default 0.
func WithIntents(intents int64) Option { return func(c *config) { c.intents = intents } }

// WithCompression sets the transport compression. Default zstd-stream.
func WithCompression(comp Compression) Option { return func(c *config) { c.compression = comp } }

// WithLargeThreshold sets large_threshold (50..250; clamped). Default 50.
func WithLargeThreshold(n int) Option {
	return func(c *config) { c.largeThreshold = min(max(n, 50), 250) }
}

// WithPresence sets the presence sent in Identify (a JSON object). Default none.
func WithPresence(p json.RawMessage) Option { return func(c *config) { c.presence = p } }

// WithProperties sets Identify's connection properties. Default runtime.GOOS, "shardtop", "shardtop".
func WithProperties(os, browser, device string) Option {
	return func(c *config) { c.osName, c.browser, c.device = os, browser, device }
}

// WithIdentifyGate sets the identify limiter (shared by all shards of a bot,
// e.g. limiter.Limiter). Default: a gate private to this shard that spaces
// its identifies DefaultIdentifyWindow apart; it knows nothing of other
// shards, so a multi-shard bot must pass a shared gate.
func WithIdentifyGate(g IdentifyGate) Option { return func(c *config) { c.gate = g } }

// WithDialGuard sets a check made before every dial, the first and each
// reconnect: when it returns an error the shard does not connect and fails
// with that error (a *DialGuardError). A process of a cluster passes one
// that asks whether it still holds the shard's lease, so a process that
// was paused past its lease never reconnects a shard another one runs now.
func WithDialGuard(f func() error) Option { return func(c *config) { c.dialGuard = f } }

// WithIdentifyLead sets how long before its identify slot a queued shard
// dials. Default (or d <= 0): adaptive, 1.5 x the measured handshake time
// (dial to Hello, smoothed), clamped to 100 ms..5 s, starting at 1 s.
func WithIdentifyLead(d time.Duration) Option { return func(c *config) { c.identifyLead = max(d, 0) } }

// WithSession resumes this saved session on the first connect.
//
// A resumed session gets no READY, so the shard starts with s.Guilds as its
// guild count, without the guilds' IDs; the next READY (after an identify)
// replaces both. Until then a GUILD_CREATE for a guild whose ID the shard
// has not seen is taken as one of those s.Guilds guilds coming back (a
// replayed lazy load, or the end of an outage) and leaves the count as it
// is, unless its joined_at is later than the shard's creation, which makes
// it a newly joined guild (+1). A GUILD_DELETE (not unavailable) for an
// unseen ID removes one of them (-1). So the count stays right through
// replays, outages, joins and leaves; only a guild joined while the shard
// was down and replayed on resume is missed, until the next READY.
func WithSession(s Session) Option { return func(c *config) { c.session = s } }

// WithDispatchHandler sets the dispatch handler. It is called from the
// shard's connection goroutine, one event at a time in sequence order; it
// must be quick and must copy Data to keep it.
func WithDispatchHandler(h func(Dispatch)) Option { return func(c *config) { c.onDispatch = h } }

// WithStateHandler sets the state change handler. Calls never overlap and
// come in transition order; it must be quick and must not call Close/End.
func WithStateHandler(h func(StateChange)) Option { return func(c *config) { c.onState = h } }

// WithLogger sets the logger (scoped with shard and shards attributes). Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithBackoff sets reconnect backoff bounds. Before the n-th retry (n >= 1)
// since the last Ready the shard waits min + jitter x (min(max, min x
// 2^(n-1)) - min), jitter uniform in [0,1] (see WithBackoffJitter): so the
// first retry waits exactly min and the wait never drops below min (not
// "full jitter", which would start at 0). Defaults 1 s and 2 min. The first
// reconnect after a working session drops is immediate (no backoff).
func WithBackoff(minWait, maxWait time.Duration) Option {
	return func(c *config) {
		c.backoffMin = max(minWait, 0)
		c.backoffMax = max(maxWait, c.backoffMin)
	}
}

// WithDialer sets the websocket dialer (proxy, TLS, NetDialContext). Default:
// the proxy from the environment, write buffers from a shared pool, and a
// 4 KiB read buffer for wss:// (crypto/tls buffers records on top); for
// ws:// (on unix) a 512-byte one over reads into 16 KiB chunks borrowed
// from a pool only while they hold unread bytes, so an idle shard holds no
// read buffer.
func WithDialer(d *websocket.Dialer) Option { return func(c *config) { c.dialer = d } }

// WithHandshakeTimeout bounds the websocket upgrade and the wait for Hello. Default 10 s.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.handshakeTimeout = d
		}
	}
}

// WithSendLimit sets the per-connection send limit. Default 120 per 60 s.
// Room for heartbeats and Identify/Resume is reserved out of n: Send and
// TrySend payloads get the rest (a Send over it waits, a TrySend returns a
// *RateLimitError).
func WithSendLimit(n int, per time.Duration) Option {
	return func(c *config) {
		if n > 0 && per > 0 {
			c.sendLimit, c.sendWindow = n, per
		}
	}
}

// WithPresenceLimit sets the limit on presence updates (op 3) sent with
// Send or TrySend: at most n per window (plus a 5% margin, as the send
// limit), counted per shard across reconnects. A Send over it waits
// (bounded by its ctx); a TrySend returns a *RateLimitError. Default
// DefaultPresenceLimit per DefaultPresenceWindow (5 per 20 s).
func WithPresenceLimit(n int, per time.Duration) Option {
	return func(c *config) {
		if n > 0 && per > 0 {
			c.presenceLimit, c.presenceWindow = n, per
		}
	}
}

// WithHeartbeatJitter sets the source of the first heartbeat's jitter in
// [0,1): the first beat is due jitter x heartbeat_interval after Hello, the
// next ones an interval apart. Each beat goes out at the last of 32
// instants per interval before it is due (multiples of interval/32 on a
// clock all shards of the process share): early by less than 1/32 of the
// interval, never late, so that many idle shards wake the process together
// rather than one by one. Default math/rand/v2.Float64.
func WithHeartbeatJitter(f func() float64) Option {
	return func(c *config) {
		if f != nil {
			c.heartbeatJitter = f
		}
	}
}

// WithBackoffJitter sets the source of backoff jitter in [0,1]. Default math/rand/v2.Float64.
func WithBackoffJitter(f func() float64) Option {
	return func(c *config) {
		if f != nil {
			c.backoffJitter = f
		}
	}
}

// WithInvalidSessionWait sets the random wait after op 9 d=false before
// identifying anew. Default 1-5 s as Discord suggests.
func WithInvalidSessionWait(minWait, maxWait time.Duration) Option {
	return func(c *config) {
		c.invalidSessionMin = max(minWait, 0)
		c.invalidSessionMax = max(maxWait, c.invalidSessionMin)
	}
}

// WithReadLimit bounds one websocket message and one decompressed payload. Default 64 MiB.
func WithReadLimit(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.readLimit = n
		}
	}
}

// WithZstdMaxWindow sets the largest zstd window the shard accepts (the
// decoder allocates window + ~256 KiB per connection). Default 8 MiB.
func WithZstdMaxWindow(n uint64) Option {
	return func(c *config) {
		if n >= 1<<10 {
			c.zstdMaxWindow = n
		}
	}
}

// WithWriteTimeout bounds every socket write. Default 10 s.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.writeTimeout = d
		}
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
