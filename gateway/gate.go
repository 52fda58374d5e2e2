package gateway

import (
	"context"
	"time"
)

// IdentifyGate is what a shard needs from an identify limiter. A shard that
// must identify (no session to resume, or Discord refused the resume) takes
// a ticket with Enqueue, waits with Approach until its slot is near, dials
// and waits for Hello, then calls Acquire and sends Identify the moment it
// returns; Release tells the outcome. Resumes never touch the gate.
//
// A ticket is a value, not a shard: two shards with the same ID (an old
// shard and its successor during a split) hold two tickets. Every step is
// idempotent (Approach or Acquire of a granted ticket returns at once,
// Release of a released ticket does nothing), so that a gate shared by
// several processes can keep tickets in a key-value store with expiring
// keys, where a holder that crashes blocks its bucket for one window at
// most.
//
// The methods take only basic types so that limiter.Limiter, or a backend
// shared by several processes, satisfies the interface without importing
// this package.
type IdentifyGate interface {
	// Enqueue gives shardID a ticket: a place at the end of its bucket's
	// queue (first come, first served). It does not block.
	Enqueue(shardID int) (ticket uint64, err error)

	// Approach blocks until ticket's identify slot is at most lead away,
	// so the shard can dial and finish the handshake in time for the slot.
	// It returns ctx.Err() if ctx ends first; the ticket then leaves the
	// queue.
	Approach(ctx context.Context, ticket uint64, lead time.Duration) error

	// Acquire blocks until ticket may send its Identify now and spends one
	// session start from the daily budget. It returns ctx.Err() if ctx
	// ends first; the ticket then leaves the queue and spends nothing.
	Acquire(ctx context.Context, ticket uint64) error

	// Release ends ticket's turn: after Acquire, ready reports whether
	// READY arrived (the bucket's next identify counts its window from
	// now); before (the dial failed, the shard was closed), it gives the
	// place up so the next shard can go.
	Release(ticket uint64, ready bool)
}
