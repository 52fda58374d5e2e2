package gateway

import (
	"context"
	"time"
)

// IdentifyGate is what a shard needs from an identify limiter. A shard that
// must identify (no session to resume, or Discord refused the resume) calls
// Approach, dials and waits for Hello, then calls Acquire and sends Identify
// the moment Acquire returns. Resumes never touch the gate.
//
// The methods take only basic types so that limiter.Limiter, or a backend
// shared by several processes, satisfies the interface without importing
// this package.
type IdentifyGate interface {
	// Approach queues shardID in its bucket (first come, first served; a
	// shard already queued keeps its place) and blocks until its identify
	// slot is at most lead away, so the shard can dial and finish the
	// handshake in time for the slot. It returns ctx.Err() if ctx ends
	// first, and the shard then leaves the queue.
	Approach(ctx context.Context, shardID int, lead time.Duration) error

	// Acquire blocks until shardID may send its Identify now and spends one
	// session start from the daily budget. It returns ctx.Err() if ctx ends
	// first; the shard then leaves the queue and spends nothing.
	Acquire(ctx context.Context, shardID int) error

	// Release ends shardID's turn: after Acquire, ready reports whether
	// READY arrived; after Approach without Acquire (the dial failed, the
	// shard was closed), it gives the turn up so the next shard can go.
	Release(shardID int, ready bool)
}
