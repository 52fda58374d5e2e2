package shardowner

import "errors"

var (
	// ErrInvalidOption means an option or mode is out of range.
	ErrInvalidOption = errors.New("shardowner: invalid option")
	// ErrClosed means the Runner has stopped (Close or Leave).
	ErrClosed = errors.New("shardowner: runner closed")
	// ErrSplitRefused means a split's new shards could not all be leased
	// to this node (one is held by another live node, this node does not
	// own the shard split, or the keys are not a split's): the split is
	// refused and the shard keeps serving. A key held elsewhere also
	// matches shardlease.ErrHeld (a *shardlease.HeldError names the node).
	ErrSplitRefused = errors.New("shardowner: split refused")
	// ErrReshardInCluster means a whole re-shard was asked of one node of a
	// cluster, which this version does not lead.
	ErrReshardInCluster = errors.New("shardowner: a re-shard in a cluster: stop all nodes but one, or re-shard with the cluster disabled")
)
