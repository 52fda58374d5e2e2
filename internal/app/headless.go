package app

import (
	"context"
	"log/slog"
	"sync"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// eventBuffer is the lifecycle event buffer of the headless logger: a whole
// start-up of a large bot fits, so nothing is dropped while slog writes.
const eventBuffer = 4096

// runHeadless logs lifecycle events until ctx ends, plus one "all shards
// ready" line when every shard first is READY. A node of a cluster
// (clustered) starts with no shard and gains and hands over shards as
// processes come and go: it has no such moment, and logs each shard's
// events only.
func runHeadless(ctx context.Context, m *manager.Manager, events <-chan manager.Event, logger *slog.Logger, clustered bool) int {
	snap := m.Snapshot()
	logger.Info("supervising", "shards", snap.Totals.Total, "max_concurrency", snap.MaxConcurrency,
		"recommended_shards", snap.RecommendedShards)

	var wg sync.WaitGroup
	defer wg.Wait()
	readyCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		if clustered {
			return
		}
		if err := m.WaitReady(readyCtx); err != nil {
			if readyCtx.Err() == nil {
				logger.Warn("not every shard became ready", "err", err)
			}
			return
		}
		s := m.Snapshot()
		logger.Info("all shards ready", "ready", s.Totals.Ready, "total", s.Totals.Total,
			"identifies", s.Totals.Identifies, "resumes", s.Totals.Resumes)
	})

	for {
		select {
		case <-ctx.Done():
			return exitOK
		case ev, ok := <-events:
			if !ok {
				return exitOK
			}
			logEvent(logger, ev)
		}
	}
}

// logEvent writes one lifecycle event as one log line, scoped to its shard.
func logEvent(logger *slog.Logger, ev manager.Event) {
	l := logger.With("shard", ev.Key.String())
	if ev.Role != manager.RoleActive {
		l = l.With("role", ev.Role.String())
	}
	level := slog.LevelInfo
	var attrs []any
	msg := ev.Type.String()
	if ev.Type == manager.EventState {
		msg = "shard " + ev.To.String()
		attrs = append(attrs, "from", ev.From.String(), "to", ev.To.String())
		switch ev.To {
		case gateway.StateFailed:
			level = slog.LevelError
		case gateway.StateReconnecting:
			level = slog.LevelWarn
		}
	}
	switch ev.Type {
	case manager.EventSplitAborted, manager.EventReshardAborted:
		level = slog.LevelWarn
	}
	if ev.CloseCode != 0 {
		attrs = append(attrs, "close_code", ev.CloseCode)
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	if ev.Err != nil {
		attrs = append(attrs, "err", ev.Err.Error())
	}
	l.Log(context.Background(), level, msg, attrs...)
}
