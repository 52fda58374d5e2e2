package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/clusterview"
	"github.com/shardtop/shardtop/internal/config"
	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/shardlease"
	"github.com/shardtop/shardtop/shardowner"
	"github.com/shardtop/shardtop/sharedlimiter"
)

// clusterSetupTimeout bounds the creation (or binding) of the cluster's
// key-value buckets at start-up.
const clusterSetupTimeout = 60 * time.Second

// clusterRun is what a clustered run adds (the [cluster] table): the shard
// leases holding the sessions in JetStream KV, the identify limiter shared
// by the bot's processes, the ownership runner that brings and hands over
// shards, and the snapshot publisher and whole-bot view of the TUI.
type clusterRun struct {
	node   string
	js     jetstream.JetStream
	leases *shardlease.Table
	// hooks connect the manager, made first, to the ownership runner: the
	// leases of a split's new shards and the records the split retires.
	hooks *shardowner.Hooks

	mu      sync.Mutex             // guards limiter, made on the manager's Open goroutine
	limiter *sharedlimiter.Limiter // nil until the manager's Open made it

	owner *shardowner.Runner // nil for watch-only, and until start
	pub   *clusterview.Publisher
	view  *clusterview.View // the whole bot, for the TUI
}

// startCluster opens the cluster's lease table on the bus connection, when
// [cluster] is enabled. It comes after startBus and before startManager,
// whose store and limiter it provides.
func (s *supervisor) startCluster(ctx context.Context) (status int, ok bool) {
	cl := s.cfg.Cluster
	if !cl.Enabled {
		return exitOK, true
	}
	js, err := jetstream.New(s.busConn)
	if err != nil {
		fmt.Fprintln(s.stderr, "shardtop: cluster:", err)
		return exitFailure, false
	}
	node := cl.NodeName()
	var leases *shardlease.Table
	err = s.retryJetStream(ctx, clusterSetupTimeout, "the lease bucket", func(ctx context.Context) (err error) {
		leases, err = shardlease.Open(ctx, js, node,
			shardlease.WithBucket(s.cfg.Bus.Prefix+"_shards"),
			shardlease.WithReplicas(s.cfg.Bus.Replicas),
			shardlease.WithTTL(time.Duration(cl.LeaseTTL)),
			shardlease.WithLogger(s.internal.With("component", "leases")))
		return err
	})
	if err != nil && ctx.Err() != nil {
		return exitOK, false // a signal during start-up
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "shardtop: cluster: the lease bucket %s_shards on %s: %v\n", s.cfg.Bus.Prefix, s.busURL, err)
		return exitFailure, false
	}
	s.cluster = &clusterRun{node: node, js: js, leases: leases, hooks: shardowner.NewHooks(leases.Store())}
	s.logger.Info("cluster joined", "node", node, "ownership", s.cfg.OwnershipMode(), "lease_ttl", cl.LeaseTTL.String())
	return exitOK, true
}

// managerOptions make the manager a node of the cluster: its sessions go
// to the lease records, it starts no shard itself (the ownership runner
// adds them as it wins their leases), a split's new shards are leased to
// this node before they start (the runner, through the hooks), and it
// identifies through the limiter the bot's processes share. ctx is the run's: the limiter's KV
// work ends with it.
func (c *clusterRun) managerOptions(ctx context.Context, s *supervisor) []manager.Option {
	cfg := s.cfg
	return []manager.Option{
		manager.WithStore(c.hooks.Store()),
		manager.WithShardKeysHook(c.hooks.KeysHook),
		manager.WithShardIDs(),
		manager.WithNoInitialShards(),
		// A shard connects only while this node holds its lease.
		manager.WithShardDialGuard(func(k manager.ShardKey) error {
			return c.leases.Check(shardlease.Key{ID: k.ID, Count: k.Count})
		}),
		manager.WithIdentifyLimiter(func(conc int) (manager.IdentifyLimiter, error) {
			var lim *sharedlimiter.Limiter
			err := s.retryJetStream(ctx, clusterSetupTimeout, "the identify bucket", func(ctx context.Context) (err error) {
				lim, err = sharedlimiter.New(ctx, c.js, conc, // ctx bounds its setup only
					sharedlimiter.WithBucket(cfg.Bus.Prefix+"_identify"),
					sharedlimiter.WithReplicas(cfg.Bus.Replicas),
					sharedlimiter.WithWindow(time.Duration(cfg.IdentifyWindow)),
					sharedlimiter.WithMargin(time.Duration(cfg.IdentifyMargin)),
					sharedlimiter.WithReserve(cfg.SessionStartReserve),
					sharedlimiter.WithNode(c.node),
					sharedlimiter.WithLogger(s.internal.With("component", "limiter")))
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("the shared identify limiter (bucket %s_identify): %w", cfg.Bus.Prefix, err)
			}
			c.mu.Lock()
			c.limiter = lim
			c.mu.Unlock()
			return lim, nil
		}),
	}
}

// start begins running shards once the manager is open: the ownership
// runner wins leases and adds their shards to m (none for watch-only).
func (c *clusterRun) start(ctx context.Context, s *supervisor) error {
	cfg := s.cfg
	if err := c.startView(s); err != nil {
		return err
	}
	if cfg.Cluster.WatchOnly {
		return nil
	}
	mode := shardowner.Balanced(cfg.ShardCount)
	if cfg.OwnershipMode() == config.OwnershipFixed {
		ids := []int(cfg.ShardIDs)
		if len(ids) == 0 {
			ids = make([]int, cfg.ShardCount)
			for i := range ids {
				ids[i] = i
			}
		}
		mode = shardowner.Fixed(ids, cfg.ShardCount)
	}
	owner, err := shardowner.New(c.leases, s.m, c.js, mode,
		shardowner.WithNodesBucket(cfg.Bus.Prefix+"_nodes"),
		shardowner.WithReplicas(cfg.Bus.Replicas),
		shardowner.WithTTL(time.Duration(cfg.Cluster.LeaseTTL)),
		shardowner.WithHooks(c.hooks),
		shardowner.WithLogger(s.internal))
	if err != nil {
		return err
	}
	if err := s.retryJetStream(ctx, clusterSetupTimeout, "the nodes bucket", owner.Start); err != nil {
		return fmt.Errorf("the nodes bucket %s_nodes: %w", cfg.Bus.Prefix, err)
	}
	c.owner = owner
	return nil
}

// startView publishes this node's snapshot and answers the others'
// actions, and makes the whole-bot view the TUI shows. A watch-only node
// publishes an empty snapshot marked so, and acts only through the others.
func (c *clusterRun) startView(s *supervisor) error {
	ttl := time.Duration(s.cfg.Cluster.LeaseTTL)
	opts := []clusterview.Option{
		clusterview.WithPrefix(s.cfg.Bus.Prefix),
		clusterview.WithGoneAfter(ttl),
		clusterview.WithLeases(c.held),
		clusterview.WithLogger(s.internal),
	}
	var src clusterview.Source
	var local clusterview.Local
	if !s.cfg.Cluster.WatchOnly {
		src, local = s.m, s.m
	}
	pub, err := clusterview.Publish(s.busConn, c.node, src, opts...)
	if err != nil {
		return err
	}
	view, err := clusterview.NewView(s.busConn, c.node, local, opts...)
	if err != nil {
		_ = pub.Close()
		return err
	}
	c.pub, c.view = pub, view
	return nil
}

// leave hands every shard of this node over to the others (SIGTERM, q),
// before the manager closes: each is closed resumable and its lease
// released with its session, and the others resume it.
func (c *clusterRun) leave(ctx context.Context) error {
	if c.owner == nil {
		return nil
	}
	return c.owner.Leave(ctx)
}

// held counts the shard leases this node holds.
func (c *clusterRun) held() int {
	if c.owner == nil {
		return 0
	}
	return c.owner.Leases()
}

// close frees the cluster's parts once the manager has closed: the
// limiter, then the lease table (whose leases were handed over or, after a
// failure, expire).
func (c *clusterRun) close() {
	if c.owner != nil {
		c.owner.Close()
	}
	if c.view != nil {
		_ = c.view.Close()
	}
	if c.pub != nil {
		_ = c.pub.Close()
	}
	c.mu.Lock()
	lim := c.limiter
	c.mu.Unlock()
	if lim != nil {
		lim.Close()
	}
	c.leases.Close()
}
