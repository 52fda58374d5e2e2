// Package sharedlimiter is an identify limiter shared by every shardtop
// process of one bot, kept in a NATS JetStream KV bucket. It paces
// identifies per bucket (shard_id % max_concurrency) across processes and
// spends one shared daily session-start budget, with the rules of package
// limiter (read limiter/doc.go: READY is proof).
//
// # Keys
//
//   - b.<bucket>: the bucket's identify in flight, {"state":"held",...},
//     written with a per-key TTL of the hold limit; or the outcome of the
//     last one, {"state":"free","ready":bool,...}. When it was written is
//     the entry's server timestamp (stamped by the stream leader), never a
//     field: no process's wall clock decides a slot.
//   - budget: {"total","remaining","reset_at"}, reset_at in the server's
//     clock as estimated by the writer (below).
//   - w.<bucket>.<instance>: the head of one process's local queue of the
//     bucket, {"shard","enqueued"}, with a TTL of two windows (at least 2 s)
//     refreshed while it waits.
//   - n.<instance>: written once by New (TTL 1 s) to sample the server's clock.
//
// # A grant
//
// Each process has one worker goroutine per bucket; shards of the process
// queue locally (first come, first served) and wait on channels, so only
// the bucket's head ever talks to KV. When the head is in Acquire and the
// key b.<bucket> is not held, the worker claims it: a compare-and-set on
// the key's last revision (a publish with Nats-Expected-Last-Subject-
// Sequence, which also carries the claim's TTL). It reads its claim back
// for the server timestamp Tc. The previous entry, written at Tp, asks for
// a gap: a window after a READY outcome, a window and the margin after a
// failure or a claim that expired by its TTL (its delete marker is
// stamped when it expired), nothing if the key was never written. The
// worker waits Tp + gap - Tc on its local monotonic clock, counted from
// the claim's ack (after Tc, so never early), spends one start from the
// budget by compare-and-set, and grants. Release hands the outcome to the
// worker, which writes "free" by compare-and-set on the claim's revision.
// Two identifies of one bucket are thus never closer than the window as
// the stream leader's clock sees the KV writes, and Discord sees an
// identify after its claim and READY before its release write. (Tp and Tc
// come from one server's clock unless the stream's leader changes between
// them; a leader change between two servers with skewed clocks shifts the
// bound by the skew.)
//
// Cost per identify: claim publish + read-back + budget publish (if the
// budget is known) + outcome publish, 4 round trips to the stream; plus a
// waiters-key put when the head changes (and a purge when the queue
// empties), one refresh per window while a head waits, and the watch
// delivery of every write to every process. BenchmarkBucketOps measures it.
//
// # A crashed holder
//
// A claim that is never released (its process crashed, or lost its
// connection) expires by its TTL, the hold limit rounded up to whole
// seconds (NATS per-message TTLs count seconds; at least the window). The
// server then writes a delete marker, which every watcher sees; the next
// identify goes a window and the margin after the marker. So a crashed
// holder blocks its bucket for at most ceil_s(hold limit) + window +
// margin after its grant, plus the server's expiry latency (its TTL
// timer, well under a second). An outcome written after the claim expired
// is dropped and counted as expired.
//
// # Order across processes
//
// Each worker advertises its head's enqueue time (wall clock) in its
// waiters key. A worker whose head is younger than another process's
// advertised head defers, for at most two windows (a peer that advertises
// but never claims cannot stall it), then claims anyway. The oldest head
// never defers, so waiting shards are served roughly in enqueue order
// across processes; "roughly" because wall clocks of machines differ and
// a deferring worker may lose the CAS race to any other.
//
// # Budget
//
// SetSessionStartLimit seeds or refreshes the budget key: within one reset
// period (reset times within a minute), remaining becomes the smaller of
// Discord's reading and the KV's, since other processes may have spent
// starts since Discord answered; a new period replaces it. A grant spends
// one start by compare-and-set; when remaining would fall to the reserve
// (capped at total-1) the head waits for the reset, at which remaining
// becomes total and the next reset is assumed a day later. Tickets of this
// process let through Approach hold a unit each, as in package limiter;
// those of other processes do not (a peer may spend the unit meanwhile).
// The server's clock is estimated from the timestamp of an entry this
// process wrote and the local time of its ack (an underestimate by at most
// one round trip), so reset times are within a round trip of Discord's.
// An unknown budget (never set) is unlimited.
//
// # Bad values
//
// A KV value that does not parse is logged with its key; Approach and
// Acquire of the bucket's head return a *MalformedError naming the key
// (errors.Is ErrMalformed), and the bucket grants nothing until the key is
// rewritten. A malformed waiters key is ignored.
package sharedlimiter
