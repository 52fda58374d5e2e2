package manager

import (
	"context"
	"errors"
	"time"

	"github.com/shardtop/shardtop/store"
)

// storeOp is one write to the store, made by the store writer in the order
// the loop decided it: a put, a delete, the buckets' last identifies, a
// flush whose result goes to flush, or a barrier.
type storeOp struct {
	put        *store.ShardState
	del        *ShardKey
	identifies []time.Time // with conc
	conc       int
	flush      func(error)
	barrier    func()          // called once every earlier write is done
	ctx        context.Context // of a flush
}

// storeWriter makes the loop's store writes on a goroutine of its own, so
// that a slow store (a remote backend) never holds the loop up. It takes
// them in batches, in order, until the loop closes storeIn.
func (m *Manager) storeWriter() {
	defer m.workers.Done()
	st := m.cfg.store
	for batch := range m.storeIn {
		for _, op := range batch {
			switch {
			case op.put != nil:
				if err := st.Put(*op.put); err != nil && !errors.Is(err, store.ErrClosed) {
					m.log.Warn("store: put session", "shard", op.put.ShardID, "shards", op.put.ShardCount, "err", err)
				}
			case op.del != nil:
				if err := st.Delete(op.del.ID, op.del.Count); err != nil && !errors.Is(err, store.ErrClosed) {
					m.log.Warn("store: delete session", "shard", op.del.ID, "shards", op.del.Count, "err", err)
				}
			case op.identifies != nil:
				if h, ok := st.(IdentifyHistory); ok {
					if err := h.SetLastIdentifies(op.conc, op.identifies); err != nil && !errors.Is(err, store.ErrClosed) {
						m.log.Warn("store: save the buckets' last identifies", "err", err)
					}
				}
			case op.flush != nil:
				op.flush(st.Flush(op.ctx))
			case op.barrier != nil:
				op.barrier()
			}
		}
	}
}
