package limiter

import (
	"context"
	"time"

	"github.com/shardtop/shardtop/gateway"
)

// The gateway's consumer-defined interface, and the Limiter's extra methods
// the manager and the UI rely on.
var (
	_ gateway.IdentifyGate = (*Limiter)(nil)
	_ interface {
		Enqueue(shardID int) (uint64, error)
		Approach(ctx context.Context, ticket uint64, lead time.Duration) error
		Acquire(ctx context.Context, ticket uint64) error
		Release(ticket uint64, ready bool)
		SetSessionStartLimit(total, remaining int, resetAfter time.Duration)
		SeedLastIdentify(bucket int, at time.Time)
		LastIdentifies(dst []time.Time) []time.Time
		Snapshot() Snapshot
		Position(ticket uint64) (bucket, pos int, ok bool)
	} = (*Limiter)(nil)
)
