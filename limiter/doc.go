// Package limiter paces Discord gateway identifies: the per-bucket identify
// window and the daily session-start budget.
//
// # Buckets, tickets and slots
//
// Discord lets each bucket (shard_id % max_concurrency) identify once per
// window (5 s). A Limiter keeps one first-come-first-served queue of tickets
// per bucket. A shard that must identify takes a ticket (Enqueue), waits
// with Approach until its slot is near, dials, waits in Acquire until its
// slot has come, sends its Identify, and tells the outcome with Release.
// A ticket is a value, not a shard ID: two shards with the same ID (an old
// shard and its successor during a split) hold two tickets and queue one
// after the other.
//
// # The rule: READY is proof
//
// Discord measures the window when it receives an identify, and sends READY
// only after it has. So a bucket's next identify goes no sooner than a
// window after the previous one's READY was seen (Release(t, true)); if the
// previous attempt ended without READY (the connection failed, op 9), no
// sooner than a window and the margin after that failure was seen (the
// margin covers an identify that may still have been on its way). While the
// previous identify awaits its outcome, nothing else of the bucket
// identifies. A stall anywhere (a starved host, a slow READY, a late timer)
// can only make the next identify later, never early: no allowance for
// jitter is spent, and none can run out. The cost is one READY round trip
// per window: N shards at concurrency C start in (ceil(N/C) - 1) x (window +
// READY latency).
//
// A holder that never tells the outcome (a stuck shard) holds its bucket
// for the hold limit (DefaultHoldLimit, WithHoldLimit), after which the
// bucket goes on as after a failure and the identify counts as expired.
//
// # Approach and Acquire
//
// Approach lets only the head of a bucket through, and only once its slot
// is at most lead away: the known slot, or while the previous identify
// awaits READY the earliest it could be (a window after that identify), so
// a connection sits unidentified for little more than lead plus the READY
// latency. Acquire returns when the slot has come (never before) and spends
// one session start. A ticket whose ctx ends, or that is released while it
// waits, leaves its queue and the next one moves up. Every step is
// idempotent: Approach or Acquire of a granted ticket returns at once,
// Release of a released ticket does nothing.
//
// Enqueue places a ticket at the end of its bucket's queue without
// blocking; a shard takes its first ticket when it is started, so shards
// started in ID order identify in ID order whatever order their goroutines
// run in. A queued ticket that is never acquired or released holds its
// place: whoever enqueues must eventually do one or the other.
//
// Across restarts, SeedLastIdentify tells a new Limiter when each bucket
// last identified in the previous run (LastIdentifies reads them out for
// saving); no READY proves those, so the margin applies.
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
// Consumers depend on four methods with basic types only (Enqueue,
// Approach, Acquire, Release; see gateway.IdentifyGate) plus Snapshot for
// display. A backend shared by several processes can keep them in a
// key-value store with per-key expiry and compare-and-set: a ticket is a
// key in its bucket's queue (ordered by a sequence), the bucket's identify
// in flight a key holding the granted ticket with a TTL of one window that
// its live holder refreshes until it writes the outcome (the time READY or
// the failure was seen), and the budget a counter spent by compare-and-set
// with a TTL of reset_after. Approach and Acquire read "am I the head, is no
// identify in flight, is now past outcome + window" and write their step
// by compare-and-set, returning how long to wait otherwise; a holder that
// crashes stops refreshing, so its bucket is blocked for one window at most.
package limiter
