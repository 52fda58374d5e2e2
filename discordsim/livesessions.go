package discordsim

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// ShardKey is a shard as Discord routes it: its shard ID and the shard
// count it identified with.
type ShardKey struct{ ID, Count int }

// Overlap is a moment when two or more connections had sessions of one
// shard at once: two identifies of one shard both live, which Discord
// would serve twice (each guild's events to both). A resume taking over a
// session is no overlap: the simulator drops the old connection as
// Discord does, before the new one counts.
type Overlap struct {
	Shard ShardKey
	// Sessions are the IDs of the sessions live at that moment (sorted;
	// one ID twice if a session had two connections).
	Sessions []string
	At       time.Time
}

// liveSessions counts the connections holding a session (from an
// accepted identify or resume until the connection ends or loses it), by
// shard and by session, and keeps their maxima. Its small mutex is a
// leaf: taken under conn.mu, never the other way.
type liveSessions struct {
	mu        sync.Mutex
	byShard   map[ShardKey][]string // live session IDs, one per connection
	maxShard  map[ShardKey]int
	bySession map[string]int
	maxSess   map[string]int
	overlaps  []Overlap
}

// note counts one connection gaining (delta +1) or losing (-1) sess.
func (l *liveSessions) note(sess *session, delta int) {
	k := ShardKey{ID: sess.shardID, Count: sess.shardCount}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byShard == nil {
		l.byShard, l.maxShard = map[ShardKey][]string{}, map[ShardKey]int{}
		l.bySession, l.maxSess = map[string]int{}, map[string]int{}
	}
	if delta < 0 {
		ids := l.byShard[k]
		if i := slices.Index(ids, sess.id); i >= 0 {
			l.byShard[k] = slices.Delete(ids, i, i+1)
		}
		if l.bySession[sess.id]--; l.bySession[sess.id] <= 0 {
			delete(l.bySession, sess.id)
		}
		return
	}
	ids := append(l.byShard[k], sess.id)
	l.byShard[k] = ids
	l.maxShard[k] = max(l.maxShard[k], len(ids))
	l.bySession[sess.id]++
	l.maxSess[sess.id] = max(l.maxSess[sess.id], l.bySession[sess.id])
	if len(ids) > 1 {
		l.overlaps = append(l.overlaps, Overlap{Shard: k, Sessions: slices.Sorted(slices.Values(ids)), At: time.Now()})
	}
}

// MaxLiveSessions reports, for every shard that had a session, the most
// connections that held one of its sessions at once, and for every
// session the most connections that held it at once. A bot that never
// runs a shard twice shows 1 everywhere.
func (s *Server) MaxLiveSessions() (perShard map[ShardKey]int, perSession map[string]int) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	return maps.Clone(s.live.maxShard), maps.Clone(s.live.maxSess)
}

// ShardOverlaps lists the moments when two or more connections held
// sessions of one shard at once, oldest first (nil: never).
func (s *Server) ShardOverlaps() []Overlap {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	return slices.Clone(s.live.overlaps)
}
