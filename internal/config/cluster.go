package config

import (
	"os"
	"regexp"
	"time"
)

// Ownership modes of the [cluster] table: how the processes of one bot
// divide its shards.
const (
	// OwnershipFixed runs the shards of shard_ids (all of them if empty),
	// still by lease: two processes with overlapping ranges never run a
	// shard twice, and one takes over when the other goes.
	OwnershipFixed = "fixed"
	// OwnershipBalanced divides every shard evenly among the live
	// processes, handing shards over by resuming as processes come and go.
	OwnershipBalanced = "balanced"
)

// Defaults and bounds of the [cluster] table; config.example.toml
// documents the same.
const (
	// DefaultLeaseTTL is how long a shard's lease outlives its holder's
	// last renewal: the time a killed process's shards wait before others
	// take them over by resuming. Discord keeps a session for minutes, so
	// 15 s costs no identify.
	DefaultLeaseTTL = 15 * time.Second
	minLeaseTTL     = time.Second
	maxLeaseTTL     = 5 * time.Minute
	maxNodeName     = 64
)

// nodeName is a node's name: one NATS subject token and KV key token.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Cluster is the [cluster] table: one bot run by several shardtop
// processes that share identify buckets, the daily budget and the
// sessions through NATS JetStream (the [bus] connection), and own shards by
// lease.
type Cluster struct {
	// Enabled turns clustering on; the bus must not be off.
	Enabled bool `toml:"enabled"`
	// Node names this process among the bot's; the host name if empty.
	// Every process of a bot needs its own.
	Node string `toml:"node"`
	// Ownership is "fixed" or "balanced"; empty is fixed when shard_ids is
	// set, else balanced.
	Ownership string `toml:"ownership"`
	// LeaseTTL is how long a lease lasts without renewal.
	LeaseTTL Duration `toml:"lease_ttl"`
	// WatchOnly runs no shard: the process only shows and steers the
	// cluster.
	WatchOnly bool `toml:"watch_only"`
}

func defaultCluster() Cluster { return Cluster{LeaseTTL: Duration(DefaultLeaseTTL)} }

// NodeName is the node's name: Node, else the host name made into a valid
// name (characters other than letters, digits, '-' and '_' become '-').
func (c Cluster) NodeName() string {
	if c.Node != "" {
		return c.Node
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "shardtop"
	}
	b := []byte(h)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			b[i] = '-'
		}
	}
	if len(b) > maxNodeName {
		b = b[:maxNodeName]
	}
	return string(b)
}

// OwnershipMode is Ownership with its default resolved against shard_ids.
func (c *Config) OwnershipMode() string {
	if c.Cluster.Ownership != "" {
		return c.Cluster.Ownership
	}
	if len(c.ShardIDs) > 0 {
		return OwnershipFixed
	}
	return OwnershipBalanced
}

func (c *Config) validateCluster(bad func(key, format string, args ...any)) {
	cl := &c.Cluster
	if cl.Node != "" && (len(cl.Node) > maxNodeName || !nodeName.MatchString(cl.Node)) {
		bad("cluster.node", "must be 1 to %d letters, digits, '-' or '_', got %q", maxNodeName, cl.Node)
	}
	switch cl.Ownership {
	case "", OwnershipFixed, OwnershipBalanced:
	default:
		bad("cluster.ownership", "must be fixed or balanced, got %q", cl.Ownership)
	}
	if cl.Ownership == OwnershipBalanced && len(c.ShardIDs) > 0 {
		bad("cluster.ownership", "balanced divides every shard among the processes: remove shard_ids, or use fixed")
	}
	if cl.LeaseTTL < Duration(minLeaseTTL) || cl.LeaseTTL > Duration(maxLeaseTTL) {
		bad("cluster.lease_ttl", "must be at least %s and at most %s, got %s", minLeaseTTL, maxLeaseTTL, cl.LeaseTTL)
	}
	if !cl.Enabled {
		return
	}
	if c.Bus.Mode == BusOff {
		bad("cluster.enabled", "a cluster shares its state through NATS: set bus.mode to embedded or external")
	}
	if c.ShardCount == 0 && !cl.WatchOnly {
		bad("cluster.enabled", "every process of a cluster must agree on the layout: set shard_count")
	}
}
