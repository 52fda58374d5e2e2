package store

import "github.com/shardtop/shardtop/internal/regularfile"

// Bounds of what shardtop runs, shared by the config file (package main),
// the manager and this package: they live here because every one of them
// imports store, and the state file's records obey the first one.
const (
	// MaxShardCount is the largest shard count shardtop runs, checks in
	// the config file (shard_count, shard_ids) and accepts in a state file
	// record. Discord's largest bots run tens of thousands of shards (at
	// about 1000 guilds a shard, 65536 shards hold more guilds than Discord
	// has); the bound is far above any real bot yet stops a typo from
	// allocating gigabytes (each shard costs a few KB before it connects).
	// It equals the manager's cap on automatic splits.
	MaxShardCount = 1 << 16

	// MaxMaxConcurrency is the largest max_concurrency (identify buckets)
	// shardtop accepts. Discord gives 1 to most bots and 16, 32, 64 and up
	// to a few hundred to the largest; every bucket is a limiter queue and
	// a series in /metrics, so a million of them made every scrape 50 MB.
	MaxMaxConcurrency = 1024

	// MaxFileSize is the largest state file OpenFile reads. A record takes
	// about 210 bytes, so twice MaxShardCount records (a re-shard keeps
	// both layouts for a while) take about 28 MB.
	MaxFileSize = 64 << 20
)

// ErrNotRegular means the state file or its lock file exists but is not a
// regular file (a device, named pipe, directory or socket; for the lock
// file also a symbolic link). OpenFile never reads, moves or replaces such
// a file, even with [WithStartFresh].
var ErrNotRegular = regularfile.ErrNotRegular
