// Package shardowner decides which shards this process runs when one bot is
// spread over several shardtop processes, and drives the manager
// accordingly: it takes a shard's lease (package shardlease) before the
// manager starts it and stops the shard before the lease goes.
//
// # Modes
//
// Fixed(ids, count) runs the given shard IDs, still through their leases:
// two processes given overlapping ranges both try, one wins each shard, and
// the other keeps watching and takes the shard over when its owner goes
// (released, or its lease expired).
//
// Balanced(count) divides the count shards evenly among the live nodes.
// The assignment is deterministic: the live node names are sorted, and node
// j of n runs the contiguous range of shard IDs [j·count/n, (j+1)·count/n)
// (see Targets). Every node computes it from its own view of the membership,
// so they agree once their views do.
//
// # Membership
//
// Each Runner keeps one key, its node name, in a KV bucket of heartbeats
// (DefaultNodesBucket), rewritten every third of the TTL. A node is live
// for a Runner while its key exists and that Runner has seen its revision
// change within the TTL of its own monotonic clock: as with the leases, no
// clock is compared with another's. Leave deletes the key, so the others
// drop the node at once.
//
// # Hand-offs
//
// A node that is no longer a shard's target (a node joined, or it leaves)
// removes the shard from its manager keeping the session
// (manager.RemoveShard with save) and releases the lease with that session
// (owner ""). The target acquires the free record and adds the shard with
// the session, which resumes: no identify is spent. A node that died holds
// its leases until they expire; the targets then acquire them and resume
// from the session last saved in the record. A lost lease stops the shard at
// once (RemoveShard without save) and the Runner never writes it again.
//
// A balanced shard left free at one revision for two TTLs (its target is
// live but does not take it) is taken by whichever node acquires it first,
// so a shard is never left unrun. The node keeps it while the live nodes
// stay the same, for up to ten TTLs; then (or when a node joins or goes) it is
// handed to its target again.
//
// Hand-offs are paced: at most one shard is handed over per
// HandoffInterval, so a join does not close every moved shard at once;
// acquisitions of free and expired shards are not paced (resumes spend no
// identify, and identifies are paced by the manager's limiter).
//
// # Splits
//
// A split is done by the shard's owner, through the manager
// (SplitShard, or an automatic split after 4011). Wire the manager with a
// Hooks (NewHooks, WithHooks): before the new shards start, the Runner
// acquires their leases (a key held by another live node refuses the split,
// ErrSplitRefused); the manager's store delete of the shard split, once it
// has ended, deletes its record, and the new shards are the Runner's like
// any other; an aborted split's deletes of the new shards delete their
// records. Whole re-shards are refused on a cluster's node
// (manager.ErrReshardRefused).
//
// Ownership works on keys of any count that is a multiple of the mode's
// (the base): key (id, count) belongs to the owner of base ID id mod base
// (BaseID), so a split's shards stay with the owner of the shard split and
// move with it. A base key with no record whose guilds records of larger
// counts hold was retired by a split and is not created again. A record
// left by a split whose node died (the shard split, once its new shards'
// records cover it; a new shard, when they do not) is deleted by its
// target once free or expired, never run.
//
// All ownership state belongs to one goroutine, the Runner's loop, which
// hears lease changes, lease-lost notices and membership on channels.
package shardowner
