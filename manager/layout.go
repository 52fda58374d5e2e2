package manager

import (
	"slices"

	"github.com/shardtop/shardtop/store"
)

// maxLayoutResidues bounds the work of checking a saved layout: the least
// common multiple of its shard counts. Real layouts (powers of two over
// Discord's counts) stay far below it.
const maxLayoutResidues = 1 << 20

// layout is the set of shards Open starts: the configured base shards, or
// the split or re-sharded layout that the saved sessions describe.
type layout struct {
	keys  []ShardKey                    // shards to start, sorted by ID
	saved map[ShardKey]store.ShardState // the sessions they resume
	stale []store.ShardState            // saved sessions of no further use
}

// planLayout decides which shards to start: base are the configured shard
// IDs of count (all says they are every shard of the bot), records the
// saved sessions.
//
// A split or re-shard changes the layout at run time, and a restart must
// resume that layout rather than re-identify the configured one:
//   - When this process runs every shard and the saved sessions receive
//     every guild exactly once (none twice, none missing), they are the
//     layout, whatever their counts (a re-shard to any count).
//   - Otherwise, for each configured shard s, saved shards whose counts are
//     multiples of count and that together receive exactly the guilds s
//     would receive are started instead of s (splits). Else s itself
//     starts, resuming its own session if one is saved.
//
// Sessions that fit neither are stale (the caller deletes them, saying so),
// as discord.js checks a session against the shard count before resuming.
func planLayout(count int, base []int, all bool, records []store.ShardState) layout {
	l := layout{saved: make(map[ShardKey]store.ShardState, len(records))}
	if all && len(records) > 0 && coversExactly(records, 1, 0) {
		for _, r := range records {
			key := ShardKey{r.ShardID, r.ShardCount}
			l.keys = append(l.keys, key)
			l.saved[key] = r
		}
		sortKeys(l.keys)
		return l
	}
	byBase := make(map[int][]store.ShardState, len(base))
	for _, id := range base {
		byBase[id] = nil
	}
	for _, r := range records {
		s := r.ShardID % count
		if _, ok := byBase[s]; !ok || r.ShardCount%count != 0 {
			l.stale = append(l.stale, r)
			continue
		}
		byBase[s] = append(byBase[s], r)
	}
	for _, s := range base {
		own := ShardKey{s, count}
		var ownRec *store.ShardState
		var split []store.ShardState
		for i, r := range byBase[s] {
			if r.ShardCount == count {
				ownRec = &byBase[s][i]
			} else {
				split = append(split, r)
			}
		}
		if len(split) > 0 && coversExactly(split, count, s) {
			// The split layout is newer than the shard it replaced: a split
			// deletes the old session only after the new shards are READY.
			for _, r := range split {
				key := ShardKey{r.ShardID, r.ShardCount}
				l.keys = append(l.keys, key)
				l.saved[key] = r
			}
			if ownRec != nil {
				l.stale = append(l.stale, *ownRec)
			}
			continue
		}
		l.keys = append(l.keys, own)
		if ownRec != nil {
			l.saved[own] = *ownRec
		}
		l.stale = append(l.stale, split...)
	}
	sortKeys(l.keys)
	return l
}

// coversExactly reports whether the shards in rs together receive every
// guild whose residue modulo c is s exactly once. A shard [id, n] receives
// the guilds with (guild_id >> 22) % n == id, so the check runs over the
// residues modulo the least common multiple of c and every n.
func coversExactly(rs []store.ShardState, c, s int) bool {
	period := c
	for _, r := range rs {
		if r.ShardCount <= 0 || r.ShardID < 0 || r.ShardID >= r.ShardCount {
			return false
		}
		period = lcm(period, r.ShardCount)
		if period > maxLayoutResidues {
			return false
		}
	}
	hits := make([]uint8, period/c) // hits[k]: residue s + k*c
	for _, r := range rs {
		if r.ShardID%c != s%c || r.ShardCount%c != 0 {
			return false
		}
		for res := r.ShardID; res < period; res += r.ShardCount {
			k := (res - s) / c
			if hits[k]++; hits[k] > 1 {
				return false
			}
		}
	}
	return !slices.Contains(hits, 0)
}

func sortKeys(keys []ShardKey) {
	slices.SortFunc(keys, func(a, b ShardKey) int { return a.ID - b.ID })
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func lcm(a, b int) int { return a / gcd(a, b) * b }
