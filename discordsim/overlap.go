package discordsim

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// ShardKey is a shard as Discord routes it: its shard ID and the shard
// count it identified with. Shard 1 of 2 and shard 1 of 4 are different
// shards (Discord lets both run, for a re-shard).
type ShardKey struct{ ID, Count int }

// Overlap is one moment when a connection started serving a shard that a
// connection of another session was serving already: two sessions of one
// shard live at once, which Discord would serve twice (each guild's events
// to both). A resume taking over a session is no overlap: the simulator
// drops the old connection, as Discord does, before the new one is live.
type Overlap struct {
	Shard ShardKey
	// Sessions are the IDs of the sessions live for the shard at that
	// moment, one per connection, sorted.
	Sessions []string
	At       time.Time
}

// maxOverlapsKept bounds what Server.ShardOverlaps and Stats.Overlaps
// describe: every overlap is counted (Stats.ShardOverlaps), the first
// maxOverlapsKept are described.
const maxOverlapsKept = 100

// liveConn is one connection serving a shard, with its session.
type liveConn struct {
	c       *conn
	session string
}

// liveShards counts the live connections of every shard and session: a
// connection is live from READY or RESUMED until it stops serving its
// session (it closes, the server starts closing it, the client's close
// frame arrives, op 9 d=false ends its session, or another connection
// resumes the session).
//
// Its mutex is a leaf: it is taken while conn.mu is held (so a connection's
// live flag and its entry here change together) and takes no other lock.
type liveShards struct {
	mu        sync.Mutex
	live      map[ShardKey][]liveConn
	maxShard  map[ShardKey]int
	bySession map[string]int
	maxSess   map[string]int
	maxLive   int
	overlaps  int
	kept      []Overlap
}

// begin records c serving sess. A connection of another session live on
// the same shard makes it an overlap; one of the same session cannot be
// (resume releases the old connection before the new one is live): it
// shows in the per-session maximum, not as an overlap.
func (l *liveShards) begin(c *conn, sess *session, now time.Time) {
	k := ShardKey{sess.shardID, sess.shardCount}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live == nil {
		l.live, l.maxShard = map[ShardKey][]liveConn{}, map[ShardKey]int{}
		l.bySession, l.maxSess = map[string]int{}, map[string]int{}
	}
	others := l.live[k]
	cs := append(others, liveConn{c: c, session: sess.id})
	l.live[k] = cs
	l.maxShard[k] = max(l.maxShard[k], len(cs))
	l.maxLive = max(l.maxLive, len(cs))
	l.bySession[sess.id]++
	l.maxSess[sess.id] = max(l.maxSess[sess.id], l.bySession[sess.id])
	for _, o := range others {
		if o.session == sess.id {
			continue
		}
		l.overlaps++
		if len(l.kept) < maxOverlapsKept {
			ids := make([]string, len(cs))
			for i, lc := range cs {
				ids[i] = lc.session
			}
			slices.Sort(ids)
			l.kept = append(l.kept, Overlap{Shard: k, Sessions: ids, At: now})
		}
		return
	}
}

// end forgets c serving sess.
func (l *liveShards) end(c *conn, sess *session) {
	k := ShardKey{sess.shardID, sess.shardCount}
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := l.live[k]
	for i, o := range cs {
		if o.c == c {
			cs[i] = cs[len(cs)-1]
			cs[len(cs)-1] = liveConn{}
			cs = cs[:len(cs)-1]
			if l.bySession[sess.id]--; l.bySession[sess.id] <= 0 {
				delete(l.bySession, sess.id)
			}
			break
		}
	}
	if len(cs) == 0 {
		delete(l.live, k)
	} else {
		l.live[k] = cs
	}
}

// snapshot returns the counters and a copy of the described overlaps.
func (l *liveShards) snapshot() (overlaps, maxLive int, kept []Overlap) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.overlaps, l.maxLive, append([]Overlap(nil), l.kept...)
}

// ShardOverlaps describes the first overlaps (at most 100), oldest first
// (nil: never): moments when a connection started serving a shard (READY
// or RESUMED sent) while a connection of another session was serving it.
// A cluster of supervisors sharing one bot must have none.
// Stats.ShardOverlaps counts them all.
func (s *Server) ShardOverlaps() []Overlap {
	_, _, kept := s.shards.snapshot()
	return kept
}

// MaxLivePerShard is the most connections ever live at once for one shard;
// 1 means never two (0: none was ever live).
func (s *Server) MaxLivePerShard() int {
	_, m, _ := s.shards.snapshot()
	return m
}

// MaxLiveSessions reports, for every shard that was live, the most
// connections live for it at once, and for every session the most
// connections live for it at once. A bot that never runs a shard twice
// shows 1 everywhere.
func (s *Server) MaxLiveSessions() (perShard map[ShardKey]int, perSession map[string]int) {
	s.shards.mu.Lock()
	defer s.shards.mu.Unlock()
	return maps.Clone(s.shards.maxShard), maps.Clone(s.shards.maxSess)
}

// startLiveLocked marks c live for sess and records it (unless the
// connection is closing: then it serves nothing); c.mu is held.
func (c *conn) startLiveLocked(sess *session) {
	c.live = true
	if c.counted == nil && !c.over {
		c.counted = sess
		c.srv.shards.begin(c, sess, time.Now())
	}
}

// endLiveLocked stops counting c as serving a session; c.mu is held.
func (c *conn) endLiveLocked() {
	if c.counted != nil {
		c.srv.shards.end(c, c.counted)
		c.counted = nil
	}
}

// peerClosing runs when the client's close frame arrives, before it is
// answered: from then on the connection serves nothing, so a client that
// has seen the answer knows the simulator no longer counts it live.
func (c *conn) peerClosing() {
	c.mu.Lock()
	c.over = true
	c.endLiveLocked()
	c.mu.Unlock()
}
