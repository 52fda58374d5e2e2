// Package limiter paces Discord gateway identifies: the per-bucket identify
// window and the daily session-start budget.
//
// # Buckets and slots
//
// Discord lets each bucket (shard_id % max_concurrency) identify once per
// window (5 s). A Limiter keeps one first-come-first-served queue per bucket.
// The next slot of a bucket is its anchor plus window plus margin. Acquire of
// the head of a bucket returns at the slot, driven by a timer, never before
// it; the first grant in a bucket is immediate and is its own anchor.
//
// When the shard was already waiting in Acquire at its slot, any lateness
// of the grant is the timer's and the scheduler's (Go's timers wake up to
// about 1 ms late on Linux, more on a loaded machine): the anchor is the
// slot, or the grant minus the margin if the grant was later than the
// margin, so lateness does not accumulate from slot to slot (it did by
// about 1 ms per slot when the next slot counted from the grant). When the
// shard called Acquire after its slot (a slow handshake), and for the first
// grant of a bucket, the anchor is the grant itself, so a shard that is
// late never makes the next one early. N shards at concurrency C are
// therefore all granted within (ceil(N/C) - 1) x (window + margin) of the
// first grant plus the last grant's own lateness, as long as no grant is
// later than the margin.
//
// Why this is safe: with a_k <= g_k <= a_k + margin (anchor, grant) and
// g_k+1 >= a_k + window + margin, two grants of a bucket are
// g_k+1 - g_k >= window + margin - (g_k - a_k) >= window apart, and the
// Identifies they send arrive at least
// window + margin - ((g_k - a_k) + d_k) + ((g_k+1 - a_k+1) + d_k+1) apart,
// d being the time from grant to Discord reading the Identify. So Discord
// sees a violation only if the delay from slot to arrival (lateness plus
// d) of one shard exceeds the next one's by more than the margin: the margin
// absorbs the variation of that delay, not its size. Anchoring on the grant
// instead needs the same condition on d alone but lets lateness add up.
//
// The margin (DefaultMargin, 50 ms, 1% of the window) absorbs that
// variation: goroutine scheduling, the socket write, network jitter. With
// Discord's 5 s window it costs 1% of start-up time.
//
// READY is proof where the margin is an allowance: Discord sends it after
// it has read the Identify, so a window counted from the moment READY is
// released (Release(id, true)) is a window after the Identify's arrival,
// whatever the delays. When READY comes back before the margin runs out,
// the bucket's next slot moves up to READY + window; a READY slower than
// that changes nothing. On a fast path to Discord the margin then costs
// one round trip per slot instead of the whole margin, and a larger margin
// buys safety against stalls at no cost while READY is quick.
//
// # Approach and Acquire
//
// A shard that must identify calls Approach(ctx, id, lead): only the head of
// a bucket is let through, and only once its slot is at most lead away, so a
// connection never sits unidentified for longer than lead plus its own
// handshake. The shard dials, waits for Hello, then calls Acquire, which
// returns exactly at the slot and spends one session start. Release(id,
// ready) records whether READY arrived, or, for a shard that approached but
// never acquired, gives the turn to the next shard at once. A shard whose ctx
// ends, or that is released while it waits, leaves its queue and the next
// shard moves up; only the last grant (its anchor) still counts for its slot.
//
// Enqueue places shards in their queues in a given order without blocking;
// the manager uses it at start-up so that shards identify in shard order
// whatever order their goroutines reach Approach in. A queued shard that
// never calls Approach, Acquire or Release holds its bucket: whoever enqueues
// a shard must eventually run it or release it.
//
// # Daily budget
//
// Every grant spends one session start from the budget set by
// WithSessionStartLimit or SetSessionStartLimit (the session_start_limit of
// GET /gateway/bot). When remaining would fall to the reserve (DefaultReserve,
// 10, kept for manual restarts and never below one session start), grants wait
// for the reset instead; at the reset remaining becomes total again and the
// next reset is assumed one day later until SetSessionStartLimit says
// otherwise. A shard let through Approach holds one unit of the budget until
// it acquires or releases, so it is never stranded mid-handshake by another
// bucket spending the last start. An unknown budget (never set) is unlimited.
//
// # Other backends
//
// Consumers depend on three methods with basic types only (Approach, Acquire,
// Release; see gateway.IdentifyGate) plus Snapshot for display. A backend
// shared by several processes, e.g. Redis, can implement them with one
// sorted set per bucket as the FIFO queue (score = enqueue sequence), a key
// per bucket holding the anchor (computed as above from the slot, the
// caller's wait start and the grant), and a counter with a TTL of
// reset_after for the budget; Approach and Acquire become Lua scripts that
// check "am I the head and is now >= anchor + window + margin (minus lead)"
// atomically and return the time to wait otherwise, and Release
// removes the member. Positions and Snapshot read the same keys.
package limiter
