// Package clusterview shows a bot run by several shardtop processes as one:
// every process publishes a compact snapshot of its shards over core NATS,
// and a View merges the latest of each with its own local manager's, for
// the TUI (it satisfies tui.Manager). Actions on a shard another process
// runs go to that process by request-reply.
//
// Subjects, under a prefix (default "shardtop"):
//
//	<prefix>.cluster.snapshot.<node>  a node's snapshot, every interval (JSON,
//	                                  S2-compressed above 32 KiB with header
//	                                  Shardtop-Encoding: s2)
//	<prefix>.cluster.action.<node>    {"op":"close","id":3} → {"error":"..."}
//
// Ops are open, close, resume, restart, split (with "k") and reshard (with
// "count"). Snapshots carry no token, session ID or resume URL; shard
// details and lifecycle events stay local.
package clusterview
