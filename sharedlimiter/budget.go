package sharedlimiter

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// budgetPeriod is how far the next reset lies after a reset performed
// here (Discord's budget is daily) until SetSessionStartLimit says.
const budgetPeriod = 24 * time.Hour

// sameResetTolerance: two readings whose reset times (in server time)
// differ by less than this are of one reset period.
const sameResetTolerance = time.Minute

// refilled is v as it stands at server time now: full again once its
// reset time has passed.
func refilled(v budgetVal, now time.Time) budgetVal {
	if now.Before(v.ResetAt) {
		return v
	}
	v.Remaining = v.Total
	periods := now.Sub(v.ResetAt)/budgetPeriod + 1
	v.ResetAt = v.ResetAt.Add(periods * budgetPeriod)
	return v
}

// effectiveReserve caps the reserve so one start per period stays possible.
func (l *Limiter) effectiveReserve(total int) int {
	return max(min(l.reserve, total-1), 0)
}

// budgetAllowsLocked reports whether one more start may be granted by the
// budget as last seen; if not, resetAt (server time) is when it refills.
// Tickets of this process let through Approach hold a unit each;
// approached tells whether the asker holds one of them.
func (l *Limiter) budgetAllowsLocked(approached bool) (ok bool, resetAt time.Time) {
	if !l.budget.known {
		return true, time.Time{}
	}
	v := refilled(l.budget.val, l.serverNowLocked())
	avail := v.Remaining - l.pending
	if approached {
		avail++
	}
	return v.Remaining > 0 && avail > l.effectiveReserve(v.Total), v.ResetAt
}

// spend takes one session start from the shared budget by
// compare-and-set. ok is false if the budget is at the reserve.
func (l *Limiter) spend(ctx context.Context, approached bool) (ok bool, err error) {
	for {
		l.mu.Lock()
		be, now := l.budget, l.serverNowLocked()
		others := l.pending
		if approached {
			others--
		}
		l.mu.Unlock()
		if be.err != nil {
			return false, be.err
		}
		if !be.known {
			return true, nil // unknown: unlimited
		}
		v := refilled(be.val, now)
		if v.Remaining <= 0 || v.Remaining-others <= l.effectiveReserve(v.Total) {
			return false, nil
		}
		v.Remaining--
		data, _ := json.Marshal(v)
		rev, err := l.publish(ctx, budgetKey, data, be.rev, 0)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			if err := l.reloadBudget(ctx); err != nil {
				return false, err
			}
			continue
		}
		if err != nil {
			return false, err
		}
		l.mu.Lock()
		if rev > l.budget.rev {
			l.budget = budgetEntry{rev: rev, known: true, val: v}
		}
		l.mu.Unlock()
		return true, nil
	}
}

// reloadBudget reads the budget key afresh.
func (l *Limiter) reloadBudget(ctx context.Context) error {
	e, err := l.kv.Get(ctx, budgetKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil
	}
	if err != nil {
		return err
	}
	be := budgetEntry{rev: e.Revision()}
	be.val, be.err = parseBudget(budgetKey, e.Value())
	be.known = be.err == nil
	l.mu.Lock()
	if be.rev >= l.budget.rev {
		l.budget = be
	}
	l.mu.Unlock()
	return be.err
}

// SetSessionStartLimit seeds or refreshes the shared budget from a
// session_start_limit of /gateway/bot: Discord's numbers are the truth,
// but other processes may have spent starts since Discord answered, so
// within one reset period (reset times within a minute of each other)
// remaining only goes down: it becomes the smaller of Discord's and the
// KV's. A reading of a new period replaces the budget. Values out of range
// are clamped and logged. It blocks for a few KV round trips at most
// (bounded by an internal timeout); a failure is logged.
func (l *Limiter) SetSessionStartLimit(total, remaining int, resetAfter time.Duration) {
	if total < 0 || remaining < 0 || remaining > total || resetAfter < 0 {
		l.log.Warn("sharedlimiter: session_start_limit out of range, clamping",
			"total", total, "remaining", remaining, "reset_after", resetAfter)
	}
	total = max(total, 0)
	remaining = min(max(remaining, 0), total)
	resetAfter = max(resetAfter, 0)
	ctx, cancel := context.WithTimeout(l.ctx, kvTimeout)
	defer cancel()
	for {
		e, err := l.kv.Get(ctx, budgetKey)
		var rev uint64
		var old *budgetVal
		switch {
		case err == nil:
			rev = e.Revision()
			if v, perr := parseBudget(budgetKey, e.Value()); perr == nil {
				old = &v
			} else {
				l.log.Warn("sharedlimiter: replacing malformed budget", "key", budgetKey, "err", perr)
			}
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case errors.Is(err, jetstream.ErrKeyDeleted):
			rev = 0
		default:
			l.log.Error("sharedlimiter: read budget", "key", budgetKey, "err", err)
			return
		}
		l.mu.Lock()
		now := l.serverNowLocked()
		l.mu.Unlock()
		v := budgetVal{Total: total, Remaining: remaining, ResetAt: now.Add(resetAfter)}
		if old != nil {
			o := refilled(*old, now)
			if d := o.ResetAt.Sub(v.ResetAt); d < sameResetTolerance && d > -sameResetTolerance {
				v.Remaining = min(v.Remaining, o.Remaining)
			}
		}
		data, _ := json.Marshal(v)
		if errors.Is(err, jetstream.ErrKeyDeleted) {
			_, err = l.kv.Create(ctx, budgetKey, data)
		} else {
			_, err = l.publish(ctx, budgetKey, data, rev, 0)
		}
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			l.log.Error("sharedlimiter: write budget", "key", budgetKey, "err", err)
			return
		}
		// The watcher brings the new value and wakes the heads.
		return
	}
}
