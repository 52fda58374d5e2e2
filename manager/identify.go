package manager

import (
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/limiter"
)

// IdentifyLimiter is what the manager needs from the identify limiter that
// paces its shards' identifies: the shards' gate, plus what Snapshot shows
// and the daily budget the manager reads from /gateway/bot. *limiter.Limiter
// satisfies it; a limiter shared by several processes of one bot (a cluster)
// may too. See WithIdentifyLimiter.
type IdentifyLimiter interface {
	gateway.IdentifyGate
	// Position returns ticket's bucket and its place in that bucket's
	// queue (0: the head); ok is false for a ticket no longer queued.
	Position(ticket uint64) (bucket, pos int, ok bool)
	// Snapshot describes the buckets and the budget, for Snapshot.
	Snapshot() limiter.Snapshot
	// SetSessionStartLimit replaces the daily budget with /gateway/bot's
	// session_start_limit.
	SetSessionStartLimit(total, remaining int, resetAfter time.Duration)
}

// IdentifyRecorder is what an IdentifyLimiter may also do: tell when each
// bucket last identified and be told it by a previous run. With it (and a
// Store that is an IdentifyHistory) a restart within one identify window
// waits the window out. *limiter.Limiter has it; a limiter shared by
// processes, which keeps that history itself, need not.
type IdentifyRecorder interface {
	// LastIdentifies appends, for every bucket in order, when it last
	// identified (zero if never) to dst and returns it.
	LastIdentifies(dst []time.Time) []time.Time
	// SeedLastIdentify tells the limiter that bucket identified at at,
	// before it existed.
	SeedLastIdentify(bucket int, at time.Time)
}

// The limiter of the default configuration has both.
var (
	_ IdentifyLimiter  = (*limiter.Limiter)(nil)
	_ IdentifyRecorder = (*limiter.Limiter)(nil)
)

// newLimiter makes the identify limiter for conc buckets: the option's
// factory, or else a *limiter.Limiter with the manager's window, margin,
// reserve and logger.
func (c *config) newLimiter(conc int) (IdentifyLimiter, error) {
	if c.limiterFactory != nil {
		return c.limiterFactory(conc)
	}
	return limiter.New(conc, limiter.WithWindow(c.identifyWindow), limiter.WithMargin(c.identifyMargin),
		limiter.WithReserve(c.reserve), limiter.WithLogger(c.logger.With("component", "limiter"))), nil
}
