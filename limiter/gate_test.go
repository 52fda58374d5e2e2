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
		Approach(ctx context.Context, shardID int, lead time.Duration) error
		Acquire(ctx context.Context, shardID int) error
		Release(shardID int, ready bool)
		Enqueue(ids ...int)
		SetSessionStartLimit(total, remaining int, resetAfter time.Duration)
		Snapshot() Snapshot
		Position(shardID int) (bucket, pos int, ok bool)
	} = (*Limiter)(nil)
)
