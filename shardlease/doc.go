// Package shardlease keeps the shard leases and sessions of a bot run by
// several shardtop processes in one NATS JetStream KV bucket.
//
// # Records
//
// Each shard has one key, "<id>.<count>", whose value holds both the lease
// (owner node, "" when free or handed off, and an epoch counting the
// acquisitions) and the shard's session (session ID, sequence, resume URL,
// guilds, updated_at), as JSON with a version field:
//
//	{"v":1,"owner":"node-a","epoch":3,"session":{"id":"…","seq":42,"resume_url":"wss://…","guilds":1000,"updated_at":"…"}}
//
// A value that is not such a record (bad JSON, unknown field or version,
// invalid field) is reported as a *[MalformedError] naming the key, and
// counts as held by an unknown owner: it never expires and nobody
// overwrites it.
//
// # Fencing
//
// Because the session lives in the lease's own key, every write of it
// (and every renewal) is a compare-and-set on the revision of the lease's
// last write: the KV revision is the fencing token. A process that lost its
// lease (paused past expiry, partitioned) gets a revision mismatch on its
// next write and cannot overwrite the new owner's state; its lease is then
// lost ([ErrLost], [Lease.Lost]).
//
// # Expiry without trusting clocks
//
// No process compares its clock with another's or with the server's. A
// record with an owner is expired for a Table once that Table has seen the
// same revision unchanged, on its watch of the bucket, for the TTL of its
// own monotonic clock. A claim of an expired record is a compare-and-set on
// that very revision, so it fails if the owner wrote meanwhile.
//
// The owner keeps a local deadline: the time its last successful write
// was sent, plus the TTL, minus a safety margin m. Past it the lease is
// lost and Lost closes, whether or not a renewal is still in flight; the
// owner must have stopped its shard by then. Why this comes first: a write
// sent at s (owner's clock) is stored and then delivered to the others, so
// any other Table first sees that revision at some real time ≥ s and
// considers it expired no earlier than TTL after that. The owner stops at
// s + TTL − m. With clock rates that differ by at most ρ, the owner's
// TTL − m lasts at most (TTL − m)(1+ρ) of real time and the other's TTL at
// least TTL(1−ρ), so the owner stops first whenever m > 2ρ·TTL plus the
// time the shard takes to stop; the default m, TTL/5, is seconds. A
// write whose outcome is unknown (timed out) does not move the deadline;
// if it was stored, the others see it later still, which only delays
// expiry. The owner's next write then meets a revision mismatch, reads the
// record, and, finding its own node and epoch there (every acquisition
// bumps the epoch, so nobody else writes with them), carries on from that
// revision instead of counting the lease lost.
//
// A restarted process does not recognise its own old records: a node that
// died holding leases waits out their expiry like any other. A graceful
// stop releases ([Lease.Release]) with the final session, and the next
// owner acquires at once.
//
// # Goroutines
//
// A Table runs three goroutines: the watcher (the view of every record and
// expiry signals), the renewer (one for all held leases: a lease whose
// last write is a renew interval old is rewritten unchanged, which moves
// its revision), and the [Store] adapter's writer. Each lease has a timer
// for its local deadline, independent of any I/O.
package shardlease
