package tui

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// sortColumn is a column the shard table can be sorted by.
type sortColumn uint8

const (
	sortShard sortColumn = iota
	sortState
	sortNode // in a cluster only
	sortLatency
	sortGuilds
	sortEvents
	sortSeq
	sortBucket
	sortQueue
	sortUptime
	numSortColumns
)

// col returns the table column that shows the sort key.
func (s sortColumn) col() colID {
	return [...]colID{colShard, colState, colNode, colLatency, colGuilds, colEvents, colSeq, colBucket, colQueue, colUptime}[s]
}

// sortItem is a row with its sort key pulled out, so the sort compares
// plain integers in one contiguous slice instead of chasing ShardInfos.
type sortItem struct {
	key int64
	row int32
}

// sortKey is the value of col for one shard.
func sortKey(info *manager.ShardInfo, col sortColumn) int64 {
	switch col {
	case sortState:
		return int64(info.State)
	case sortLatency:
		if lat := shownLatency(info); lat > 0 { // as shown in the table
			return int64(lat)
		}
		return -1 // "-": below every measured latency, last when descending
	case sortEvents:
		if !connected(info.State) {
			return -1 // "-", as shown in the table
		}
		return int64(math.Round(info.EventsPerSec * 1000))
	case sortGuilds:
		return int64(info.Guilds)
	case sortSeq:
		return info.Sequence
	case sortBucket:
		return int64(info.Bucket)
	case sortQueue:
		if info.QueuePos < 0 {
			return math.MaxInt64 // not queued: after every queued shard
		}
		return int64(info.QueuePos)
	case sortUptime:
		if info.State != gateway.StateReady {
			return math.MinInt64 // "-", as shown in the table
		}
		// Time Ready, without a clock: the later it became Ready, the shorter.
		return -info.Since.UnixNano()
	}
	return 0
}

// sortRows sorts rows (indices into shards) by col, ties by (ID, Count);
// desc reverses the whole order. The snapshot is sorted by (ID, Count), so
// ties compare indices. buf is scratch space, returned for reuse.
func sortRows(rows []int32, shards []manager.ShardInfo, col sortColumn, desc bool, buf []sortItem) []sortItem {
	switch col {
	case sortShard:
		slices.Sort(rows)
		if desc {
			slices.Reverse(rows)
		}
		return buf
	case sortNode:
		// By name, no key to pull out; ties (a node's shards) by index.
		slices.SortFunc(rows, func(a, b int32) int {
			if c := strings.Compare(shards[a].Node, shards[b].Node); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		if desc {
			slices.Reverse(rows)
		}
		return buf
	}
	buf = buf[:0]
	for _, r := range rows {
		buf = append(buf, sortItem{sortKey(&shards[r], col), r})
	}
	slices.SortFunc(buf, func(a, b sortItem) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.row, b.row)
	})
	for i := range buf {
		rows[i] = buf[i].row
	}
	if desc {
		slices.Reverse(rows)
	}
	return buf
}
