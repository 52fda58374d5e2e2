package tui

import (
	"context"

	"github.com/shardtop/shardtop/manager"
)

// Manager is what the UI needs from a shard manager; *manager.Manager
// satisfies it. Tests give the Model a fake.
type Manager interface {
	// SnapshotInto fills dst, reusing dst.Shards' storage.
	SnapshotInto(dst *manager.Snapshot)
	// ShardDetailInto fills dst with the detail of shard key (its recent
	// state changes, events by name and samples), reusing dst's slices;
	// false if there is no such shard.
	ShardDetailInto(key manager.ShardKey, dst *manager.ShardDetail) bool
	// Subscribe returns lifecycle events and a function ending the
	// subscription; it must never block the shards.
	Subscribe(buffer int) (<-chan manager.Event, func())

	// OpenShard starts a stopped shard (resume if a session is saved).
	OpenShard(ctx context.Context, id int) error
	// CloseShard closes a shard keeping its session resumable.
	CloseShard(ctx context.Context, id int) error
	// ResumeShard starts a stopped shard from its saved session.
	ResumeShard(ctx context.Context, id int) error
	// RestartShard closes a shard keeping its session, then resumes it.
	RestartShard(ctx context.Context, id int) error
	// SplitShard splits shard id of count c into k shards of count c*k.
	SplitShard(ctx context.Context, id, k int) error
	// Reshard moves the whole bot to count shards (0 = Discord's current
	// recommendation).
	Reshard(ctx context.Context, count int) error
}

var _ Manager = (*manager.Manager)(nil)
