package manager

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/limiter"
	"github.com/shardtop/shardtop/store"
)

// Defaults. Every option's default lives here and only here; the identify
// window and margin are Discord's and the limiter's.
const (
	// DefaultAPIURL is Discord's REST base for API v10.
	DefaultAPIURL = "https://discord.com/api/v10"
	// DefaultIdentifyWindow is how often one bucket may identify (Discord: 5 s).
	DefaultIdentifyWindow = limiter.DefaultWindow
	// DefaultIdentifyMargin is added to the window after an identify READY
	// did not prove (see limiter.DefaultMargin).
	DefaultIdentifyMargin = limiter.DefaultMargin
	// DefaultSessionStartReserve is how many session starts the limiter keeps back.
	DefaultSessionStartReserve = limiter.DefaultReserve
	// DefaultSplitCount is how many shards one shard becomes in an automatic split.
	DefaultSplitCount = 2
	// DefaultSampleInterval is how often events/s are sampled from the shards' counters.
	DefaultSampleInterval = time.Second
	// DefaultPersistInterval is how often the latest sequence of every Ready
	// shard is Put into the store (the store coalesces the writes). A stale
	// sequence only lengthens the replay on resume.
	DefaultPersistInterval = 5 * time.Second
	// DefaultRefreshInterval is how often GET /gateway/bot is asked again, so
	// the session-start budget and the recommended shard count shown stay
	// Discord's (another process on the same token spends the budget too).
	DefaultRefreshInterval = 5 * time.Minute
	// DefaultHTTPTimeout bounds GET /gateway/bot and GET /users/@me when no HTTP client is given.
	DefaultHTTPTimeout = 10 * time.Second

	// identifyGrace is how long Close lets a shard that has sent its
	// Identify wait for READY (Discord answers within a second or two), so
	// that the identify spent is kept as a session.
	identifyGrace = 3 * time.Second
)

// Option configures a Manager made by New.
type Option func(*config)

type config struct {
	apiURL          string
	httpClient      *http.Client
	shardCount      int
	shardIDs        []int
	maxConcurrency  int
	gatewayURL      string
	store           Store
	identifyWindow  time.Duration
	identifyMargin  time.Duration
	reserve         int
	gatewayOpts     []gateway.Option
	autoReshard     bool
	splitCount      int
	onDispatch      func(gateway.Dispatch)
	onClose         func(ShardKey, error)
	sink            EventSink
	logger          *slog.Logger
	sampleInterval  time.Duration
	persistInterval time.Duration
	refreshInterval time.Duration
	limiterFactory  func(maxConcurrency int) (IdentifyLimiter, error)
	noInitialShards bool
	keysHook        func(ctx context.Context, keys []ShardKey) error
	dialGuard       func(ShardKey) error
}

func defaultConfig() config {
	return config{
		apiURL:          DefaultAPIURL,
		httpClient:      &http.Client{Timeout: DefaultHTTPTimeout},
		identifyWindow:  DefaultIdentifyWindow,
		identifyMargin:  DefaultIdentifyMargin,
		reserve:         DefaultSessionStartReserve,
		splitCount:      DefaultSplitCount,
		logger:          slog.New(slog.DiscardHandler),
		sampleInterval:  DefaultSampleInterval,
		persistInterval: DefaultPersistInterval,
		refreshInterval: DefaultRefreshInterval,
	}
}

// validate reports the first invalid option, naming it.
func (c *config) validate() error {
	switch {
	case c.apiURL == "":
		return fmt.Errorf("%w: WithAPIURL: empty URL", ErrInvalidOption)
	case c.httpClient == nil:
		return fmt.Errorf("%w: WithHTTPClient: nil client", ErrInvalidOption)
	case c.shardCount < 0:
		return fmt.Errorf("%w: WithShardCount: %d is negative", ErrInvalidOption, c.shardCount)
	case c.shardCount > store.MaxShardCount:
		return fmt.Errorf("%w: WithShardCount: %d is more than %d, the largest shard count supported", ErrInvalidOption, c.shardCount, store.MaxShardCount)
	case c.maxConcurrency < 0:
		return fmt.Errorf("%w: WithMaxConcurrency: %d is negative", ErrInvalidOption, c.maxConcurrency)
	case c.maxConcurrency > store.MaxMaxConcurrency:
		return fmt.Errorf("%w: WithMaxConcurrency: %d is more than %d, the largest max_concurrency supported", ErrInvalidOption, c.maxConcurrency, store.MaxMaxConcurrency)
	case c.identifyWindow < 0:
		return fmt.Errorf("%w: WithIdentifyWindow: %v is negative", ErrInvalidOption, c.identifyWindow)
	case c.identifyMargin < 0:
		return fmt.Errorf("%w: WithIdentifyMargin: %v is negative", ErrInvalidOption, c.identifyMargin)
	case c.reserve < 0:
		return fmt.Errorf("%w: WithSessionStartReserve: %d is negative", ErrInvalidOption, c.reserve)
	case c.splitCount < 2:
		return fmt.Errorf("%w: WithSplitCount: %d, must be at least 2", ErrInvalidOption, c.splitCount)
	case c.sampleInterval <= 0:
		return fmt.Errorf("%w: WithSampleInterval: %v, must be positive", ErrInvalidOption, c.sampleInterval)
	case c.persistInterval <= 0:
		return fmt.Errorf("%w: WithPersistInterval: %v, must be positive", ErrInvalidOption, c.persistInterval)
	case c.refreshInterval <= 0:
		return fmt.Errorf("%w: WithRefreshInterval: %v, must be positive", ErrInvalidOption, c.refreshInterval)
	}
	if c.noInitialShards && len(c.shardIDs) > 0 {
		return fmt.Errorf("%w: WithNoInitialShards and WithShardIDs: give one or the other", ErrInvalidOption)
	}
	seen := make(map[int]bool, len(c.shardIDs))
	for _, id := range c.shardIDs {
		if id < 0 {
			return fmt.Errorf("%w: WithShardIDs: shard %d is negative", ErrInvalidOption, id)
		}
		if id >= store.MaxShardCount {
			return fmt.Errorf("%w: WithShardIDs: shard %d is not below %d, the largest shard count supported", ErrInvalidOption, id, store.MaxShardCount)
		}
		if c.shardCount > 0 && id >= c.shardCount {
			return fmt.Errorf("%w: WithShardIDs: shard %d is outside [0, %d)", ErrInvalidOption, id, c.shardCount)
		}
		if seen[id] {
			return fmt.Errorf("%w: WithShardIDs: shard %d given twice", ErrInvalidOption, id)
		}
		seen[id] = true
	}
	return nil
}

// WithAPIURL sets Discord's REST base (default DefaultAPIURL); tests and
// proxies point it elsewhere.
func WithAPIURL(u string) Option { return func(c *config) { c.apiURL = u } }

// WithHTTPClient sets the client for GET /gateway/bot and GET /users/@me
// (default: a client with a DefaultHTTPTimeout timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *config) { c.httpClient = h } }

// WithShardCount sets the shard count. 0 (the default) uses Discord's
// recommendation from GET /gateway/bot.
func WithShardCount(n int) Option { return func(c *config) { c.shardCount = n } }

// WithShardIDs limits the manager to these shard IDs (one process of a bot
// spread over several). Empty (the default) runs every shard of the count.
func WithShardIDs(ids ...int) Option {
	return func(c *config) { c.shardIDs = append([]int(nil), ids...) }
}

// WithMaxConcurrency sets max_concurrency. 0 (the default) uses
// session_start_limit.max_concurrency from GET /gateway/bot.
func WithMaxConcurrency(n int) Option { return func(c *config) { c.maxConcurrency = n } }

// WithGatewayURL sets the gateway URL. "" (the default) uses the url of GET
// /gateway/bot.
func WithGatewayURL(u string) Option { return func(c *config) { c.gatewayURL = u } }

// WithStore sets where sessions are persisted (e.g. a *store.File). nil (the
// default) keeps them in memory only, for this manager's lifetime.
func WithStore(s Store) Option { return func(c *config) { c.store = s } }

// WithIdentifyWindow sets the per-bucket identify window (default
// DefaultIdentifyWindow, Discord's 5 s). Tests use a few milliseconds.
func WithIdentifyWindow(d time.Duration) Option { return func(c *config) { c.identifyWindow = d } }

// WithIdentifyMargin sets the safety margin added to the identify window
// after an identify READY did not prove (a failure, or one from the
// previous run); see limiter.WithMargin (default DefaultIdentifyMargin).
func WithIdentifyMargin(d time.Duration) Option { return func(c *config) { c.identifyMargin = d } }

// WithSessionStartReserve sets how many daily session starts the limiter
// never spends (default DefaultSessionStartReserve).
func WithSessionStartReserve(n int) Option { return func(c *config) { c.reserve = n } }

// WithGatewayOptions adds options for every shard (intents, compression,
// large threshold, presence, backoff...). The manager sets the URL, identify
// gate, session, handlers and logger itself, after these.
func WithGatewayOptions(opts ...gateway.Option) Option {
	return func(c *config) { c.gatewayOpts = append(c.gatewayOpts, opts...) }
}

// WithAutoReshard makes the manager split a shard that Discord closes with
// 4011 (sharding required) into WithSplitCount shards. Default false.
func WithAutoReshard(on bool) Option { return func(c *config) { c.autoReshard = on } }

// WithSplitCount sets how many shards an automatic split makes of one
// (default DefaultSplitCount, 2; at least 2).
func WithSplitCount(k int) Option { return func(c *config) { c.splitCount = k } }

// WithDispatchHandler sets the handler of every delivered dispatch. It runs
// on the shard's goroutine: it must be quick and copy Data to keep it.
// Dispatches of shards joining in a split or re-shard are not delivered.
func WithDispatchHandler(h func(gateway.Dispatch)) Option {
	return func(c *config) { c.onDispatch = h }
}

// WithEventSink hands every dispatch the active shards deliver to sink
// (an event bus), besides the dispatch handler, and keeps the sequence
// saved for a resume no later than what sink has made durable (see
// EventSink). A shard whose events sink refuses is closed resumable and
// held until sink is ready, then resumed; events that cannot be replayed
// then are reported to sink as lost.
func WithEventSink(sink EventSink) Option { return func(c *config) { c.sink = sink } }

// WithCloseHandler sets a handler called, on a goroutine of its own, when a
// shard ends Failed (fatal close code or error). It may call the manager,
// Close included (e.g. to shut down on a bad token).
func WithCloseHandler(h func(ShardKey, error)) Option { return func(c *config) { c.onClose = h } }

// WithLogger sets the logger (default: discard). Shards log through it with
// shard and shards attributes.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithSampleInterval sets how often events/s are sampled (default
// DefaultSampleInterval).
func WithSampleInterval(d time.Duration) Option { return func(c *config) { c.sampleInterval = d } }

// WithPersistInterval sets how often the sequence of every Ready shard is
// Put into the store (default DefaultPersistInterval).
func WithPersistInterval(d time.Duration) Option { return func(c *config) { c.persistInterval = d } }

// WithRefreshInterval sets how often GET /gateway/bot is asked again while
// open (default DefaultRefreshInterval).
func WithRefreshInterval(d time.Duration) Option { return func(c *config) { c.refreshInterval = d } }

// WithIdentifyLimiter sets how the identify limiter is made: Open calls f
// once max_concurrency is known (from WithMaxConcurrency or /gateway/bot),
// then hands the limiter /gateway/bot's session_start_limit
// (SetSessionStartLimit) and, while open, every refreshed one. A limiter
// shared by the processes of one bot goes here. f's error fails Open. The
// default is a *limiter.Limiter with WithIdentifyWindow, WithIdentifyMargin
// and WithSessionStartReserve; those options do not reach a limiter f
// makes. A limiter that is also an IdentifyRecorder has its buckets' last
// identifies kept in the store (see IdentifyHistory).
func WithIdentifyLimiter(f func(maxConcurrency int) (IdentifyLimiter, error)) Option {
	return func(c *config) { c.limiterFactory = f }
}

// WithShardDialGuard sets a check every shard makes before each dial (see
// gateway.WithDialGuard): when it returns an error for the shard's key,
// the shard does not connect and fails with it. A process of a cluster
// passes its lease check, so that a shard whose lease this process lost
// (it was paused, or cut off) never reconnects, whatever its timers say.
func WithShardDialGuard(f func(ShardKey) error) Option { return func(c *config) { c.dialGuard = f } }

// WithNoInitialShards makes Open start no shard: another package (a
// cluster's leases) decides which shards this process runs and brings them
// with AddShard and takes them away with RemoveShard. Open still discovers
// the gateway, max_concurrency, the recommended count and the bot user, and
// loads the store: its sessions are kept, none deleted, and AddShard
// without a resumable session resumes the one loaded for the same key, if
// any. Such a manager does not re-shard the whole bot (Reshard); splits work.
// It excludes WithShardIDs. Default false.
func WithNoInitialShards() Option { return func(c *config) { c.noInitialShards = true } }

// WithShardKeysHook sets a hook told the keys of the new shards of a split
// or re-shard before any of them starts (a cluster takes their leases). It
// runs on a goroutine of its own with a context that ends with the split's
// (SplitShard's or Reshard's, or Close); an error aborts the split or
// re-shard, which then returns it wrapped with ErrAborted, and the old
// shards keep serving. Default none.
func WithShardKeysHook(h func(ctx context.Context, keys []ShardKey) error) Option {
	return func(c *config) { c.keysHook = h }
}
